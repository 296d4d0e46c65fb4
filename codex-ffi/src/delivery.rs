//! Event delivery: one library-owned callback thread, or a bounded poll
//! queue with a descriptor that is readable while it holds something.

use std::collections::VecDeque;
use std::ffi::{c_char, c_void};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use codex_ipc::app_server::connection::ServerMessage;
use tokio::sync::{mpsc, Semaphore};

use crate::error::FfiError;

/// A borrowed UTF-8 string: `len` bytes at `ptr`, followed by a NUL (so
/// `ptr` is also a C string). Valid only until the callback returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct codex_str {
    pub ptr: *const c_char,
    pub len: usize,
}

/// The event callback: one complete JSON-RPC message from the server (a
/// notification, a server request such as an approval, or the answer to a
/// request sent with `codex_send`). See `codex_runtime_options.on_event`.
#[allow(non_camel_case_types)]
pub type codex_event_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, message: codex_str)>;

/// Frees the host's userdata; called exactly once, by `codex_runtime_close`.
#[allow(non_camel_case_types)]
pub type codex_free_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Told that the server ended the connection. See
/// `codex_runtime_options.on_closed`.
#[allow(non_camel_case_types)]
pub type codex_closed_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// The host's userdata and its destructor.
pub(crate) struct Userdata {
    ptr: *mut c_void,
    free: codex_free_fn,
}

// SAFETY: the header's contract: userdata may be used from the callback
// thread and freed from the thread that closes the runtime.
unsafe impl Send for Userdata {}

impl Userdata {
    pub(crate) fn new(ptr: *mut c_void, free: codex_free_fn) -> Self {
        Self { ptr, free }
    }

    /// Calls the destructor (consumes `self`, so at most once).
    pub(crate) fn release(self) {
        if let Some(free) = self.free {
            // SAFETY: the host gave this destructor for this pointer, to be
            // called once, from any thread, after the last callback.
            unsafe { free(self.ptr) };
        }
    }
}

/// What the callback thread calls.
struct Target {
    f: unsafe extern "C" fn(*mut c_void, codex_str),
    closed: codex_closed_fn,
    userdata: *mut c_void,
}

// SAFETY: the header's contract: the callback and its userdata may be used
// from the library's callback thread.
unsafe impl Send for Target {}

/// The one thread that runs the host's callback.
pub(crate) struct CallbackThread {
    join: Mutex<Option<JoinHandle<()>>>,
    id: ThreadId,
    stop: Arc<AtomicBool>,
    /// Opens the gate: the thread delivers nothing before
    /// `codex_runtime_open` stored the handle (dropped unsent: it exits).
    gate: Mutex<Option<std::sync::mpsc::SyncSender<()>>>,
}

impl CallbackThread {
    pub(crate) fn spawn(
        events: mpsc::Receiver<ServerMessage>,
        f: unsafe extern "C" fn(*mut c_void, codex_str),
        closed: codex_closed_fn,
        userdata: *mut c_void,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let target = Target {
            f,
            closed,
            userdata,
        };
        let flag = stop.clone();
        let (gate, opened) = std::sync::mpsc::sync_channel::<()>(1);
        let join = std::thread::Builder::new()
            .name("codex-ffi-events".into())
            .spawn(move || {
                if opened.recv().is_err() {
                    return;
                }
                // Nothing here should panic; if it does, delivery ends
                // instead of unwinding out of the thread.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    deliver(events, target, &flag)
                }));
            })?;
        Ok(Self {
            id: join.thread().id(),
            join: Mutex::new(Some(join)),
            stop,
            gate: Mutex::new(Some(gate)),
        })
    }

    /// Starts delivery (once the host has its handle).
    pub(crate) fn start(&self) {
        if let Some(g) = lock(&self.gate).take() {
            let _ = g.send(());
        }
    }

    pub(crate) fn is_current(&self) -> bool {
        std::thread::current().id() == self.id
    }

    /// No callback starts after this.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Never started: let the thread exit.
        lock(&self.gate).take();
    }

    /// Waits for the thread to end (its event channel must be closing).
    pub(crate) fn join(&self) {
        let join = lock(&self.join).take();
        if let Some(j) = join {
            let _ = j.join();
        }
    }
}

fn deliver(mut events: mpsc::Receiver<ServerMessage>, target: Target, stop: &AtomicBool) {
    while let Some(m) = events.blocking_recv() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let bytes = nul_terminated(m.line);
        let message = codex_str {
            ptr: bytes.as_ptr().cast(),
            len: bytes.len() - 1,
        };
        // SAFETY: the host's callback, called as the header promises: from
        // this one thread, never concurrently, with a view that lives until
        // it returns.
        unsafe { (target.f)(target.userdata, message) };
    }
    // The server's side ended the connection (not codex_runtime_close).
    if let (Some(closed), false) = (target.closed, stop.load(Ordering::SeqCst)) {
        // SAFETY: as for the event callback.
        unsafe { closed(target.userdata) };
    }
}

/// The line without its line ending, plus a NUL.
fn nul_terminated(line: String) -> Vec<u8> {
    let mut bytes = line.into_bytes();
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    bytes.push(0);
    bytes
}

/// The result of waiting for the next queued message.
pub(crate) enum Next {
    /// Taken off the queue (NUL-terminated).
    Message(Vec<u8>),
    /// The first message is this long (without the NUL); it stays queued.
    TooSmall(usize),
}

/// The poll-mode queue: filled by [`pump`], drained by `codex_next_event`.
pub(crate) struct PollQueue {
    state: Mutex<PollState>,
    ready: Condvar,
    /// One permit per free slot: the pump waits for room, so a host that
    /// stops polling stops the connection's reader (the server then sheds
    /// or disconnects it, as any client that stops reading).
    room: Semaphore,
    wake: WakeFd,
}

struct PollState {
    queue: VecDeque<Vec<u8>>,
    /// No more messages will come.
    ended: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PollQueue {
    pub(crate) fn new(capacity: usize) -> std::io::Result<Self> {
        Ok(Self {
            state: Mutex::new(PollState {
                queue: VecDeque::new(),
                ended: false,
            }),
            ready: Condvar::new(),
            room: Semaphore::new(capacity.max(1)),
            wake: WakeFd::new()?,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.wake.fd()
    }

    fn push(&self, message: Vec<u8>) {
        let mut s = lock(&self.state);
        if s.ended {
            return;
        }
        if s.queue.is_empty() {
            self.wake.raise();
        }
        s.queue.push_back(message);
        self.ready.notify_all();
    }

    /// Marks the end: waiters wake, the descriptor stays readable.
    pub(crate) fn end(&self) {
        let mut s = lock(&self.state);
        if !s.ended {
            s.ended = true;
            if s.queue.is_empty() {
                self.wake.raise();
            }
        }
        self.room.close();
        self.ready.notify_all();
    }

    /// The next message, waiting up to `timeout` (`None`: forever) for one.
    /// Messages that fit `cap` bytes with their NUL are taken.
    pub(crate) fn next(&self, timeout: Option<Duration>, cap: usize) -> Result<Next, FfiError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = lock(&self.state);
        loop {
            if let Some(front) = s.queue.front() {
                if front.len() > cap {
                    return Ok(Next::TooSmall(front.len() - 1));
                }
                let Some(m) = s.queue.pop_front() else {
                    continue;
                };
                if s.queue.is_empty() && !s.ended {
                    self.wake.lower();
                }
                self.room.add_permits(1);
                return Ok(Next::Message(m));
            }
            if s.ended {
                return Err(FfiError::Closed(
                    "the connection to the server is closed and no events are left".into(),
                ));
            }
            s = match deadline {
                None => self.ready.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(FfiError::Timeout("no event within the timeout".into()));
                    }
                    self.ready
                        .wait_timeout(s, left)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
            };
        }
    }
}

/// Moves the connection's events into the poll queue, waiting for room.
pub(crate) async fn pump(mut events: mpsc::Receiver<ServerMessage>, queue: Arc<PollQueue>) {
    while let Some(m) = events.recv().await {
        match queue.room.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => break,
        }
        queue.push(nul_terminated(m.line));
    }
    queue.end();
}

/// A descriptor that is readable while raised: an eventfd on Linux, a pipe
/// elsewhere. Raised and lowered only under the queue's lock, on the
/// transitions between empty and not empty.
struct WakeFd {
    read: OwnedFd,
    /// The pipe's write end (`None` for an eventfd).
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    write: Option<OwnedFd>,
}

impl WakeFd {
    #[cfg(target_os = "linux")]
    fn new() -> std::io::Result<Self> {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let read = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { read, write: None })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> std::io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe writes two descriptors into the array it is given.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fresh descriptors nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            let raw = fd.as_raw_fd();
            // SAFETY: fcntl on descriptors we own, integer arguments only.
            unsafe {
                let fl = libc::fcntl(raw, libc::F_GETFL);
                libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK);
                let fd_flags = libc::fcntl(raw, libc::F_GETFD);
                libc::fcntl(raw, libc::F_SETFD, fd_flags | libc::FD_CLOEXEC);
            }
        }
        Ok(Self {
            read,
            write: Some(write),
        })
    }

    fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    fn raise(&self) {
        let one: u64 = 1;
        #[cfg(target_os = "linux")]
        let (fd, len) = (self.read.as_raw_fd(), 8);
        #[cfg(not(target_os = "linux"))]
        let (fd, len) = (self.write.as_ref().map_or(-1, |w| w.as_raw_fd()), 1);
        // SAFETY: writes `len` (<= 8) bytes from a local u64 to a
        // non-blocking descriptor we own; failure (EAGAIN) is harmless.
        unsafe {
            libc::write(fd, (&one as *const u64).cast(), len);
        }
    }

    fn lower(&self) {
        let mut buf = [0u8; 64];
        #[cfg(target_os = "linux")]
        let len = 8;
        #[cfg(not(target_os = "linux"))]
        let len = buf.len();
        loop {
            // SAFETY: reads at most `len` <= 64 bytes into a local buffer
            // from a non-blocking descriptor we own.
            let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), len) };
            if n <= 0 || (n as usize) < len || cfg!(target_os = "linux") {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn the_descriptor_is_readable_exactly_while_messages_are_queued() {
        let q = PollQueue::new(4).unwrap();
        assert!(!readable(q.fd()));
        assert!(matches!(
            q.next(Some(Duration::ZERO), 100),
            Err(FfiError::Timeout(_))
        ));
        q.push(nul_terminated("{\"a\":1}\n".into()));
        q.push(nul_terminated("{\"b\":2}".into()));
        assert!(readable(q.fd()));
        assert!(matches!(q.next(None, 3), Ok(Next::TooSmall(7))));
        assert!(readable(q.fd()), "a message that did not fit stays");
        let Ok(Next::Message(m)) = q.next(None, 8) else {
            panic!()
        };
        assert_eq!(m, b"{\"a\":1}\0");
        assert!(readable(q.fd()));
        let Ok(Next::Message(_)) = q.next(None, 100) else {
            panic!()
        };
        assert!(!readable(q.fd()));
        q.end();
        assert!(readable(q.fd()), "the end is readable too");
        assert!(matches!(q.next(None, 100), Err(FfiError::Closed(_))));
    }

    #[test]
    fn a_waiter_wakes_at_the_end() {
        let q = Arc::new(PollQueue::new(1).unwrap());
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.next(None, 10).is_err());
        std::thread::sleep(Duration::from_millis(50));
        q.end();
        assert!(t.join().unwrap());
    }
}
