//! One connection of the front: its socket, what it has received, where it is in the
//! request/answer cycle and its deadline; non-blocking reads and writes of what is ready.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub(super) enum State {
    /// Reading a request; `head_done` once the blank line after the headers arrived.
    Reading { head_done: bool },
    /// A request is with a handler.
    Waiting,
    /// Writing an answer.
    Writing {
        out: Vec<u8>,
        pos: usize,
        close: bool,
    },
}

pub(super) struct Conn {
    pub stream: TcpStream,
    pub gen: u64,
    pub buf: Vec<u8>,
    pub state: State,
    pub deadline: Instant,
    /// When the current request started (accept, or the end of the previous answer).
    pub since: Instant,
}

impl Conn {
    /// A new connection, reading its first request head.
    pub fn new(stream: TcpStream, gen: u64, header_timeout: Duration) -> Self {
        let now = Instant::now();
        Conn {
            stream,
            gen,
            buf: Vec::new(),
            state: State::Reading { head_done: false },
            deadline: now + header_timeout,
            since: now,
        }
    }

    /// After an answer on a kept-alive connection: reading the next request head.
    pub fn next_request(&mut self, header_timeout: Duration) {
        self.state = State::Reading { head_done: false };
        self.deadline = Instant::now() + header_timeout;
        self.since = Instant::now();
    }

    /// Reads what has arrived (up to about `cap` bytes buffered); false when the peer closed
    /// or the socket failed.
    pub fn read_available(&mut self, cap: usize) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match (&self.stream).read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if self.buf.len() > cap {
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Writes what the socket takes of the answer: `None` while some is left, `Some(close)`
    /// when it is all out (`close`: the answer said so, or the socket failed).
    pub fn write_pending(&mut self) -> Option<bool> {
        let State::Writing { out, pos, close } = &mut self.state else {
            return None;
        };
        loop {
            match (&self.stream).write(&out[*pos..]) {
                Ok(0) => return Some(true),
                Ok(n) => {
                    *pos += n;
                    if *pos == out.len() {
                        return Some(*close);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Some(true),
            }
        }
    }
}

/// The target of a request line, as far as it can be read (for metrics of refused requests).
pub(super) fn request_path(buf: &[u8]) -> String {
    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    String::from_utf8_lossy(target).into_owned()
}
