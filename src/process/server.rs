//! The forkserver: a process made early (by [`init`](crate::init), while the program is
//! single-threaded) that forks each [`StartMethod::ForkServer`](super::StartMethod)
//! child on request.
//!
//! # Protocol
//! The program holds one end of a `SOCK_SEQPACKET` control socket (inherited by its
//! forks, which may use the server too). A request is one packet: the requester's process
//! group, and two descriptors: the child's end of a fresh socket pair (the requester
//! keeps the other) and the write end of a status pipe. The server forks; the child joins
//! the requester's process group (so a terminal's Ctrl-C and a group kill reach it as
//! they reach a forked child), reads its START message from its socket (the requester
//! sent it right behind the request) and reports to the requester itself, with its pid
//! and a pidfd (`remote::run_child`). The server keeps the status pipe, and when the
//! child exits writes its exit code there (4 bytes, `n` or `-signal`) and closes it: only
//! a parent can reap its child. A child that leaves normally writes its code there itself
//! just before `_exit`, so the requester's `join` (which takes the code once the pidfd
//! says the child is gone) does not wait for the server to reap it.
//!
//! The server runs no code of the program's but this loop, ignores `SIGINT` (its children
//! get the disposition back), and exits when every holder of the control socket's other
//! end has closed it (the program and its forks have exited, however they died). A
//! request that is garbage is dropped, with its descriptors.
//!
//! Consequences: a forkserver child's parent (`getppid`) is the server, so a daemon child
//! dies with the server, that is when the program and every fork of it are gone (or at
//! the program's normal exit, when the exit hook terminates it), not when an intermediate
//! process that started it dies. Its state is the program's at `init`, not at `start`.

use super::error::ProcessError;
use super::remote::{self, FORK_REQUEST};
use super::wire::{self, Dec, Enc, WireError};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, OwnedFd};
use rustix::process::{pidfd_open, waitid, Pid, PidfdFlags, WaitId, WaitIdOptions};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The program's end of the control socket, once a server runs. Replaced (by a server
/// started by exec) if the server is found gone.
static CONTROL: Mutex<Option<Arc<OwnedFd>>> = Mutex::new(None);

/// Forks the server now (from [`init`](crate::init), single-threaded). On failure the
/// server is started on first use instead.
pub(crate) fn fork_at_init() {
    let Ok((ours, theirs)) = wire::pair() else {
        return;
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: the caller checked that this process has one thread, so the child is a
    // faithful copy; it runs only `serve` and leaves through `_exit`.
    // libc's fork, not rustix's: rustix::runtime::kernel_fork is for programs without libc,
    // and here libc must do its own fork handling (atfork handlers, its caches).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(ours);
        serve(theirs);
    }
    drop(theirs);
    if pid > 0 {
        *CONTROL.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(ours));
    }
}

/// The control socket, starting a server by running this binary again if none runs
/// (`init` found threads, this process is itself a spawned or forkserver child, or the
/// server was found gone).
fn control() -> Result<Arc<OwnedFd>, ProcessError> {
    let mut c = CONTROL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(ctl) = c.as_ref() {
        return Ok(ctl.clone());
    }
    let (ours, theirs) = wire::pair().map_err(|e| ProcessError::ForkServer(e.to_string()))?;
    remote::spawn_self(&theirs, remote::SERVER_ENV, 0)?;
    drop(theirs);
    let ours = Arc::new(ours);
    *c = Some(ours.clone());
    Ok(ours)
}

/// Forgets `ctl` if it is still the control socket (its server is gone).
fn forget(ctl: &Arc<OwnedFd>) {
    let mut c = CONTROL.lock().unwrap_or_else(PoisonError::into_inner);
    if c.as_ref().is_some_and(|x| Arc::ptr_eq(x, ctl)) {
        *c = None;
    }
}

/// Asks the server to fork a child whose socket is `theirs` (the caller keeps the other
/// end, and sends START on it). Returns the read end of the child's status pipe
/// (non-blocking).
pub(crate) fn request_fork(
    theirs: OwnedFd,
    deadline: Option<Instant>,
) -> Result<OwnedFd, ProcessError> {
    let (status_r, status_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| ProcessError::os("pipe2 (forkserver status)", e))?;
    rustix::fs::fcntl_setfl(&status_r, rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| ProcessError::os("fcntl(O_NONBLOCK)", e))?;
    let pgid = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
    let mut e = Enc::default();
    e.u32(pgid);
    // A server that is gone (killed) is replaced once: the request goes to a new one.
    for attempt in 0..2 {
        let ctl = control()?;
        match wire::send_packet(
            ctl.as_fd(),
            FORK_REQUEST,
            &e.0,
            &[theirs.as_fd(), status_w.as_fd()],
            deadline,
        ) {
            Ok(()) => return Ok(status_r),
            Err(WireError::Eof) if attempt == 0 => forget(&ctl),
            Err(e) => {
                return Err(ProcessError::ForkServer(format!(
                    "sending the request: {e}"
                )));
            }
        }
    }
    Err(ProcessError::ForkServer("the server is gone".into()))
}

/// One child of the server: its pidfd and the status pipe its exit code goes to.
struct Kid {
    pid: Pid,
    pidfd: OwnedFd,
    status: OwnedFd,
}

/// The server's loop (see the module docs). Never returns.
pub(crate) fn serve(ctl: OwnedFd) -> ! {
    // SAFETY: plain signal-disposition changes in this single-threaded process.
    // libc: rustix has no sigaction in its stable API (runtime::kernel_sigaction is for
    // programs without libc).
    let old_int = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    // SAFETY: as above; writing to a status pipe whose reader is gone must not kill us.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let me = rustix::process::getpid().as_raw_nonzero().get() as u32;
    let mut ctl = Some(ctl);
    let mut kids: Vec<Kid> = Vec::new();
    loop {
        let c = ctl
            .as_ref()
            .expect("the control socket lives in the server");
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(kids.len() + 1);
        fds.push(PollFd::new(c, PollFlags::IN));
        for k in &kids {
            fds.push(PollFd::new(&k.pidfd, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            // SAFETY: nothing to clean up; the server holds no shared state. (libc's
            // `_exit`: see `process::exit`'s note on why not rustix.)
            Err(_) => unsafe { libc::_exit(1) },
        }
        let request = !fds[0].revents().is_empty();
        let exited: Vec<usize> = (0..kids.len())
            .filter(|&i| !fds[i + 1].revents().is_empty())
            .collect();
        drop(fds);
        for i in exited.into_iter().rev() {
            if let Ok(Some(st)) = waitid(
                WaitId::Pid(kids[i].pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            ) {
                let code = super::child::exit_code(&st);
                let k = kids.swap_remove(i);
                let _ = rustix::io::write(&k.status, &code.to_le_bytes());
            }
        }
        if !request {
            continue;
        }
        let m = match wire::recv_packet(c.as_fd(), wire::deadline(Duration::from_secs(1))) {
            Ok(m) => m,
            // Every holder of the program's end is gone: so is everyone we serve.
            // SAFETY: leaving the server; its children are reparented.
            Err(WireError::Eof) => unsafe { libc::_exit(0) },
            // A bad request: dropped with its descriptors.
            Err(_) => continue,
        };
        if m.kind != FORK_REQUEST || m.fds.len() != 2 {
            continue;
        }
        let mut d = Dec::new(&m.body);
        let Ok(pgid) = d.u32("process group") else {
            continue;
        };
        let mut fds = m.fds.into_iter();
        let (sock, status) = (fds.next().expect("two"), fds.next().expect("two"));
        // SAFETY: this process has one thread; the child runs `run_child` and leaves
        // through `_exit`, never returning into this loop.
        // libc's fork, not rustix's: rustix::runtime::kernel_fork is for programs without libc,
        // and here libc must do its own fork handling (atfork handlers, its caches).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // The child: nothing of the server's but its socket and its status pipe.
            drop(ctl.take());
            drop(std::mem::take(&mut kids));
            // SAFETY: restoring the disposition the program had.
            unsafe { libc::signal(libc::SIGINT, old_int) };
            // Joining the requester's group; failure (another session) is fine.
            let _ = rustix::process::setpgid(None, Pid::from_raw(pgid as i32));
            remote::run_child(sock, 0, Some(me), Some(status));
        }
        // The child reports itself to the requester; a failed fork closes the socket,
        // which the requester sees.
        drop(sock);
        let Some(pid) = Pid::from_raw(pid) else {
            continue;
        };
        let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty()) else {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            continue;
        };
        kids.push(Kid { pid, pidfd, status });
    }
}
