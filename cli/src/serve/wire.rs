//! HTTP/1.1 on the wire, without sockets: parsing a request from bytes (head with `httparse`,
//! body by `Content-Length` or chunked) and writing a response. Pure functions: the I/O loop
//! (`front.rs`) feeds them what it has read, and the `http_request` fuzz target feeds them
//! anything.

/// Longest request head accepted (request line + headers): beyond it, 431.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The target without its query string.
    pub path: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the client keeps the connection open after the answer.
    pub keep_alive: bool,
}

/// Why bytes are not a request: the status to answer before closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// 400, 413, 431, 501 or 505.
    pub status: u16,
    /// What was wrong.
    pub message: String,
}

fn reject(status: u16, message: impl Into<String>) -> Reject {
    Reject {
        status,
        message: message.into(),
    }
}

enum Body {
    Length(usize),
    Chunked,
}

/// Parses one request from the start of `buf`. `Ok(None)`: not complete yet (read more);
/// `Ok(Some((request, used)))`: a request and how many bytes of `buf` it took; `Err`: answer
/// the status and close. A body over `max_body` is refused as soon as that is known (from
/// `Content-Length` before reading it, or while de-chunking).
pub fn parse_request(buf: &[u8], max_body: usize) -> Result<Option<(Request, usize)>, Reject> {
    let Some((mut req, body, head_len)) = parse_head(buf, max_body)? else {
        return Ok(None);
    };
    let rest = &buf[head_len..];
    match body {
        Body::Length(n) if rest.len() < n => Ok(None),
        Body::Length(n) => {
            req.body = rest[..n].to_vec();
            Ok(Some((req, head_len + n)))
        }
        Body::Chunked => match dechunk(rest, max_body)? {
            None => Ok(None),
            Some((body, used)) => {
                req.body = body;
                Ok(Some((req, head_len + used)))
            }
        },
    }
}

/// The head, if complete: the request without its body, the body's framing, the head's length.
fn parse_head(buf: &[u8], max_body: usize) -> Result<Option<(Request, Body, usize)>, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(reject(431, "request head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many headers")),
        Err(e) => return Err(reject(400, format!("malformed request: {e}"))),
    };
    if head_len > MAX_HEAD {
        return Err(reject(431, "request head too large"));
    }
    let version = parsed.version.unwrap_or(1);
    let target = parsed.path.unwrap_or("/");
    let mut req = Request {
        method: parsed.method.unwrap_or("").to_string(),
        path: target.split('?').next().unwrap_or("").to_string(),
        headers: Vec::with_capacity(parsed.headers.len()),
        body: Vec::new(),
        keep_alive: version == 1,
    };
    let (length, chunked) = read_headers(parsed.headers, &mut req)?;
    let body = match (chunked, length) {
        (true, Some(_)) => return Err(reject(400, "both Content-Length and chunked")),
        (true, None) => Body::Chunked,
        (false, Some(n)) if n > max_body => {
            return Err(reject(
                413,
                format!("request body is larger than {max_body} bytes"),
            ))
        }
        (false, n) => Body::Length(n.unwrap_or(0)),
    };
    Ok(Some((req, body, head_len)))
}

/// The head's headers into `req` (names lower-cased; `Connection` sets keep-alive), and the
/// body's framing they declare: its `Content-Length`, and whether it is chunked.
fn read_headers(
    headers: &[httparse::Header],
    req: &mut Request,
) -> Result<(Option<usize>, bool), Reject> {
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        match name.as_str() {
            "content-length" => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| reject(400, "bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(reject(400, "conflicting Content-Length headers"));
                }
                length = Some(n);
            }
            "transfer-encoding" => {
                if !value.eq_ignore_ascii_case("chunked") {
                    return Err(reject(
                        501,
                        format!("Transfer-Encoding {value} not supported"),
                    ));
                }
                chunked = true;
            }
            "connection" if value.eq_ignore_ascii_case("close") => req.keep_alive = false,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => req.keep_alive = true,
            _ => {}
        }
        req.headers.push((name, value));
    }
    Ok((length, chunked))
}

/// De-chunks a chunked body: `Ok(None)` until the last chunk (and trailers) arrived.
fn dechunk(buf: &[u8], max_body: usize) -> Result<Option<(Vec<u8>, usize)>, Reject> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            return if buf.len() - pos > 1024 {
                Err(reject(400, "chunk size line too long"))
            } else {
                Ok(None)
            };
        };
        let line =
            std::str::from_utf8(&buf[pos..pos + eol]).map_err(|_| reject(400, "bad chunk size"))?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| reject(400, "bad chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        if body.len().saturating_add(size) > max_body {
            return Err(reject(
                413,
                format!("request body is larger than {max_body} bytes"),
            ));
        }
        if buf.len() < pos.saturating_add(size).saturating_add(2) {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
        if &buf[pos..pos + 2] != b"\r\n" {
            return Err(reject(400, "chunk not followed by CRLF"));
        }
        pos += 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// The bytes of a response with a `Content-Length` body.
pub fn response(
    status: u16,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    out.extend_from_slice(head.as_bytes());
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The bytes of a refusal from the HTTP layer (malformed request, timeout): a JSON
/// `{"error": …}` body, and the connection closed after it.
/// A 503 that tells the client to come back (`Retry-After: 1`), closing the connection: the
/// front's answer at its connection cap, and every answer while the model loads.
pub fn retry_later(message: &str, error_type: &str) -> Vec<u8> {
    let body = serde_json::json!({"error": message, "error_type": error_type});
    let retry = [("Retry-After", "1".to_string())];
    response(
        503,
        "application/json",
        &retry,
        body.to_string().as_bytes(),
        false,
    )
}

pub fn error_response(status: u16, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"error": message, "error_type": "Validation"});
    response(
        status,
        "application/json",
        &[],
        body.to_string().as_bytes(),
        false,
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        424 => "Failed Dependency",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_split_anywhere_parse_the_same() {
        let raw = b"POST /embed?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /health HTTP/1.0\r\n\r\n";
        let first = raw.windows(3).position(|w| w == b"GET").unwrap();
        for cut in 0..raw.len() {
            let r = parse_request(&raw[..cut], 100).unwrap();
            match r {
                None => assert!(cut < first, "cut {cut}"),
                Some((_, used)) => assert!(cut >= first && used == first, "cut {cut}"),
            }
        }
        let (req, used) = parse_request(raw, 100).unwrap().unwrap();
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/embed"));
        assert_eq!(req.body, b"hello");
        assert!(req.keep_alive);
        let (next, _) = parse_request(&raw[used..], 100).unwrap().unwrap();
        assert_eq!(next.path, "/health");
        assert!(!next.keep_alive, "HTTP/1.0 closes by default");
    }

    #[test]
    fn chunked_bodies_and_limits() {
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let (req, used) = parse_request(raw, 100).unwrap().unwrap();
        assert_eq!(
            (req.body.as_slice(), used),
            (b"abcde".as_slice(), raw.len())
        );
        assert_eq!(parse_request(raw, 4).unwrap_err().status, 413);
        let big = b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
        assert_eq!(parse_request(big, 100).unwrap_err().status, 413);
        assert_eq!(
            parse_request(b"\x00\x01 garbage\r\n\r\n", 100)
                .unwrap_err()
                .status,
            400
        );
        let huge = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(parse_request(&huge, 100).unwrap_err().status, 431);
        let te = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(parse_request(te, 100).unwrap_err().status, 501);
    }
}
