//! The I/O thread: one `poll(2)` loop over the listener and every connection, all
//! non-blocking. A connection costs a small buffer, not a thread, so slow or idle clients
//! (slowloris) cannot hold the service: each has a deadline for its request head
//! (`--header-timeout`, from accept or from the previous answer) and one for its body
//! (`--body-timeout`, from the end of the head), and at most `--max-connections` are open.
//! At the cap a new connection takes the place of the oldest one still sending its request
//! (evicted, counted): slow clients make room for new ones instead of locking them out; only
//! when every open connection has a request in progress does a new one get 503. Only complete
//! requests leave this thread (to the handlers, through `Dispatcher`); answers come back as
//! bytes through `replies` and are written here, under a write deadline (`--body-timeout`).

use super::conn::{request_path, Conn, State};
use super::http::{endpoint_label, Dispatcher};
use super::wire::{self, parse_request};
use super::Shared;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// An answer for connection `slot` (of generation `gen`): bytes and whether to close after.
pub(super) struct Answer {
    pub slot: usize,
    pub gen: u64,
    pub bytes: Vec<u8>,
    pub close: bool,
}

/// Limits of the front.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

pub(super) struct Front<'a> {
    pub shared: &'a Shared,
    pub dispatcher: Dispatcher<'a>,
    pub limits: Limits,
    pub replies: Receiver<Answer>,
    /// Readable when a handler has sent an answer.
    pub wake: UnixStream,
    conns: Vec<Option<Conn>>,
    next_gen: u64,
}

impl<'a> Front<'a> {
    pub fn new(
        shared: &'a Shared,
        dispatcher: Dispatcher<'a>,
        limits: Limits,
        replies: Receiver<Answer>,
        wake: UnixStream,
    ) -> Self {
        Front {
            shared,
            dispatcher,
            limits,
            replies,
            wake,
            conns: Vec::new(),
            next_gen: 0,
        }
    }

    /// Serves until `term` is set, then stops listening, finishes what was received and
    /// returns when no connection is left.
    pub fn run(&mut self, listener: TcpListener, term: &AtomicBool) {
        let mut listener = Some(listener);
        loop {
            if term.load(SeqCst) && listener.take().is_some() {
                // Stop listening; connections with nothing received yet are closed.
                for slot in 0..self.conns.len() {
                    let idle = matches!(&self.conns[slot], Some(c) if c.buf.is_empty()
                        && matches!(c.state, State::Reading { .. }));
                    if idle {
                        self.close(slot);
                    }
                }
            }
            if listener.is_none() && self.conns.iter().all(Option::is_none) {
                return;
            }
            let ready = self.poll(listener.as_ref());
            if let (Some(l), true) = (&listener, ready.first() == Some(&true)) {
                self.accept(l);
            }
            self.take_answers();
            for slot in 0..self.conns.len() {
                if ready.get(slot + 2) == Some(&true) {
                    self.service(slot);
                }
            }
            self.expire();
        }
    }

    /// `poll(2)` over the listener, the wake pipe and every connection; readiness by
    /// position (0 listener, 1 wake, 2.. connections by slot).
    fn poll(&self, listener: Option<&TcpListener>) -> Vec<bool> {
        let mut fds = Vec::with_capacity(self.conns.len() + 2);
        let pfd = |fd: i32, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        fds.push(pfd(listener.map_or(-1, |l| l.as_raw_fd()), libc::POLLIN));
        fds.push(pfd(self.wake.as_raw_fd(), libc::POLLIN));
        let mut next = Instant::now() + Duration::from_millis(200);
        for c in &self.conns {
            let (fd, events) = match c {
                None => (-1, 0),
                Some(c) => {
                    next = next.min(c.deadline);
                    match c.state {
                        State::Reading { .. } => (c.stream.as_raw_fd(), libc::POLLIN),
                        State::Waiting => (-1, 0),
                        State::Writing { .. } => (c.stream.as_raw_fd(), libc::POLLOUT),
                    }
                }
            };
            fds.push(pfd(fd, events));
        }
        let wait = next.saturating_duration_since(Instant::now());
        let ms = wait.as_millis().clamp(1, 200) as i32;
        // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n <= 0 {
            return vec![false; fds.len()];
        }
        fds.iter().map(|p| p.revents != 0).collect()
    }

    fn accept(&mut self, listener: &TcpListener) {
        loop {
            let (stream, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("bert-edge: accept error: {e}");
                    return;
                }
            };
            let open = self.conns.iter().filter(|c| c.is_some()).count();
            if open >= self.limits.max_connections && self.evict_slowest() {
                self.shared
                    .counters
                    .metrics
                    .front
                    .evicted
                    .fetch_add(1, SeqCst);
            } else if open >= self.limits.max_connections {
                self.shared
                    .counters
                    .metrics
                    .front
                    .rejected
                    .fetch_add(1, SeqCst);
                let bytes =
                    wire::retry_later("too many open connections, retry later", "Overloaded");
                let _ = stream.set_nonblocking(true);
                let _ = (&stream).write(&bytes);
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.next_gen += 1;
            let conn = Conn::new(stream, self.next_gen, self.limits.header_timeout);
            match self.conns.iter().position(Option::is_none) {
                Some(slot) => self.conns[slot] = Some(conn),
                None => self.conns.push(Some(conn)),
            }
        }
    }

    /// Closes the connection that has been sending its request the longest (head first, then
    /// body); false if every connection has a request with a handler or an answer going out.
    fn evict_slowest(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Some(Conn {
                    state: State::Reading { head_done },
                    since,
                    ..
                }) => Some((*head_done, *since, i)),
                _ => None,
            })
            .min();
        match victim {
            Some((_, _, slot)) => {
                self.close(slot);
                true
            }
            None => false,
        }
    }

    /// Answers from the handlers, to be written.
    fn take_answers(&mut self) {
        let mut drain = [0u8; 256];
        while let Ok(n) = (&self.wake).read(&mut drain) {
            if n == 0 {
                break;
            }
        }
        while let Ok(a) = self.replies.try_recv() {
            self.start_writing(a.slot, a.gen, a.bytes, a.close);
        }
    }

    fn start_writing(&mut self, slot: usize, gen: u64, out: Vec<u8>, close: bool) {
        let deadline = Instant::now() + self.limits.body_timeout;
        if let Some(Some(c)) = self.conns.get_mut(slot) {
            if c.gen == gen {
                c.state = State::Writing { out, pos: 0, close };
                c.deadline = deadline;
                self.service(slot);
            }
        }
    }

    /// Reads or writes what the connection in `slot` is ready for.
    fn service(&mut self, slot: usize) {
        match self.conns[slot].as_ref().map(|c| &c.state) {
            Some(State::Reading { .. }) => self.read(slot),
            Some(State::Writing { .. }) => self.write(slot),
            _ => {}
        }
    }

    fn write(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        match c.write_pending() {
            None => {}
            Some(true) => self.close(slot),
            Some(false) => {
                c.next_request(self.limits.header_timeout);
                // A pipelined request may already be in the buffer.
                self.parse(slot);
            }
        }
    }

    fn read(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let cap = wire::MAX_HEAD + self.shared.config.max_body + 64 * 1024;
        if c.read_available(cap) {
            self.parse(slot);
        } else {
            self.close(slot);
        }
    }

    /// Dispatches a complete request in the buffer, or answers a malformed one.
    fn parse(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        match parse_request(&c.buf, self.shared.config.max_body) {
            Ok(None) => {
                // Body deadline from the end of the head (scanned for only until it is found).
                if let State::Reading {
                    head_done: done @ false,
                } = &mut c.state
                {
                    if c.buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        *done = true;
                        c.deadline = Instant::now() + self.limits.body_timeout;
                    }
                }
            }
            Ok(Some((req, used))) => {
                c.buf.drain(..used);
                c.state = State::Waiting;
                let gen = c.gen;
                if let Some(answer) = self.dispatcher.dispatch(slot, gen, req) {
                    self.start_writing(slot, gen, answer.bytes, answer.close);
                }
            }
            Err(r) => {
                self.shared
                    .counters
                    .metrics
                    .front
                    .bad_requests
                    .fetch_add(1, SeqCst);
                let gen = c.gen;
                let bytes = wire::error_response(r.status, &r.message);
                let endpoint = endpoint_label(&request_path(&c.buf));
                self.shared
                    .counters
                    .metrics
                    .record(endpoint, r.status, Duration::ZERO);
                self.start_writing(slot, gen, bytes, true);
            }
        }
    }

    /// Closes connections past their deadline (counted; a body timeout answers 408 first).
    fn expire(&mut self) {
        let now = Instant::now();
        for slot in 0..self.conns.len() {
            let Some(c) = &self.conns[slot] else { continue };
            if c.deadline > now || matches!(c.state, State::Waiting) {
                continue;
            }
            let m = &self.shared.counters.metrics.front;
            match c.state {
                State::Reading { head_done: true } => {
                    m.body_timeouts.fetch_add(1, SeqCst);
                    let bytes = wire::error_response(408, "request body not received in time");
                    let _ = (&c.stream).write(&bytes);
                }
                State::Reading { head_done: false } => {
                    m.header_timeouts.fetch_add(1, SeqCst);
                }
                _ => {
                    m.write_timeouts.fetch_add(1, SeqCst);
                }
            }
            self.close(slot);
        }
        let open = self.conns.iter().filter(|c| c.is_some()).count();
        self.shared.counters.metrics.front.open.store(open, SeqCst);
    }

    fn close(&mut self, slot: usize) {
        self.conns[slot] = None;
    }
}
