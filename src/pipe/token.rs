//! Liveness tokens: one OS pipe per [`Connection`](super::Connection) end, so the kernel
//! counts the processes that hold each end, across `fork` and death.
//!
//! End `X` holds the **write** side of its own token pipe `X`; the peer end holds its
//! **read** side. The kernel closes every descriptor of a process that exits or is
//! killed (`SIGKILL` included), and `fork` duplicates them, so the read side reports
//! `POLLHUP` exactly when no process holds end `X` any more. End `X` also keeps a read
//! side of its own pipe, to learn on [`close`](super::Connection::close) whether it was
//! the last holder (then it sets the shared "closed" flags and wakes the peer at once;
//! a death is instead noticed by the peer's periodic check).
//!
//! All descriptors are `O_CLOEXEC`: a program started by `exec` does not hold an end.
//!
//! Every write side this process holds is listed in a process-local registry ([`HOLDS`]),
//! so that a forked child can give up, before its target runs, the ends it inherited but
//! was not handed ([`release_holds_except`]: a child started from a function and its
//! arguments holds exactly the ends in its arguments, as a spawned child does).

use crate::sync::liveness::{Liveness, Procfs};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError, TryLockError};

/// The write sides (`mine_w`) of the tokens this process holds, by descriptor number.
static HOLDS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

fn register(fd: &OwnedFd) {
    HOLDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(fd.as_raw_fd());
}

fn deregister(fd: &OwnedFd) {
    let raw = fd.as_raw_fd();
    let mut holds = HOLDS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(i) = holds.iter().position(|&h| h == raw) {
        holds.swap_remove(i);
    }
}

/// In a freshly forked child, before its target runs: gives up every pipe end this
/// process holds except those whose write side is in `keep`. Each released write side is
/// replaced, under the same descriptor number, by `/dev/null` (so the `Token` that still
/// names it, in memory inherited from the parent, later closes a harmless descriptor,
/// never an unrelated one). Returns how many ends were released; 0 if the registry is
/// locked (held by a thread lost in the fork: nothing is released then).
pub(crate) fn release_holds_except(keep: &[RawFd]) -> usize {
    let mut holds = match HOLDS.try_lock() {
        Ok(h) => h,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return 0,
    };
    let drop_these: Vec<RawFd> = holds
        .iter()
        .copied()
        .filter(|h| !keep.contains(h))
        .collect();
    if drop_these.is_empty() {
        return 0;
    }
    let Ok(null) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return 0;
    };
    let mut released = 0;
    for fd in drop_these {
        // SAFETY: `fd` is the write side of a token this process holds (registered while
        // its `OwnedFd` lives, removed when it closes), so the number is open and ours;
        // dup3 atomically replaces the pipe with /dev/null under the same number, which the
        // owning `OwnedFd` closes in due course. `null` is a valid descriptor.
        let rc = unsafe { libc::dup3(null.as_raw_fd(), fd, libc::O_CLOEXEC) };
        if rc == fd {
            holds.retain(|&h| h != fd);
            released += 1;
        }
    }
    released
}

/// The three descriptors of one end.
#[derive(Debug)]
pub(crate) struct Token {
    /// Write side of this end's pipe: holding it keeps this end alive.
    mine_w: Option<OwnedFd>,
    /// Read side of this end's pipe: `POLLHUP` once every copy of `mine_w` is closed.
    mine_r: OwnedFd,
    /// Read side of the peer's pipe.
    peer_r: OwnedFd,
}

/// True when the write side of the pipe whose read side is `fd` is closed everywhere.
pub(crate) fn hung_up(fd: BorrowedFd<'_>) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut p = [PollFd::new(&fd, PollFlags::IN)];
    // A zero timeout never blocks.
    let n = poll(&mut p, Some(&Timespec::default())).unwrap_or(0);
    // Nobody ever writes into token pipes, so readable means hung up, too.
    n > 0
        && p[0]
            .revents()
            .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::IN)
}

impl Token {
    /// Tokens for the two ends of a new pipe.
    pub(crate) fn pair() -> io::Result<(Token, Token)> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (ra, wa) = pipe_with(PipeFlags::CLOEXEC)?;
        let (rb, wb) = pipe_with(PipeFlags::CLOEXEC)?;
        let ra2 = rustix::io::fcntl_dupfd_cloexec(&ra, 0)?;
        let rb2 = rustix::io::fcntl_dupfd_cloexec(&rb, 0)?;
        Ok((Token::from_fds(wa, ra, rb), Token::from_fds(wb, rb2, ra2)))
    }

    /// The token of an end rebuilt from its three descriptors (an end that travelled):
    /// the write side of its own pipe, the read side of its own pipe, the read side of
    /// the peer's.
    pub(crate) fn from_fds(mine_w: OwnedFd, mine_r: OwnedFd, peer_r: OwnedFd) -> Token {
        register(&mine_w);
        Token {
            mine_w: Some(mine_w),
            mine_r,
            peer_r,
        }
    }

    /// The three descriptors, in [`from_fds`](Self::from_fds)'s order; `None` once released.
    pub(crate) fn fds(&self) -> Option<[BorrowedFd<'_>; 3]> {
        let w = self.mine_w.as_ref()?;
        Some([w.as_fd(), self.mine_r.as_fd(), self.peer_r.as_fd()])
    }

    /// True when every copy of the peer end is closed, in every process.
    pub(crate) fn peer_gone(&self) -> bool {
        hung_up(self.peer_r.as_fd())
    }

    /// Drops this process's hold on the end; true when no process holds it any more.
    pub(crate) fn release(&mut self) -> bool {
        if let Some(w) = self.mine_w.take() {
            deregister(&w);
        }
        hung_up(self.mine_r.as_fd())
    }

    /// The read side of the peer's token: becomes readable (`POLLHUP`) when the peer end
    /// is gone.
    pub(crate) fn peer_fd(&self) -> BorrowedFd<'_> {
        self.peer_r.as_fd()
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if let Some(w) = &self.mine_w {
            deregister(w);
        }
    }
}

/// Who waits in a ring operation: this process (as [`Procfs`] knows it), whose peer is
/// the pipe's other end, gone once its token says so.
pub(crate) struct PeerWatch<'a>(pub(crate) &'a Token);

impl Liveness for PeerWatch<'_> {
    fn me(&self) -> u32 {
        Procfs.me()
    }
    fn my_start(&self) -> u64 {
        Procfs.my_start()
    }
    fn my_ident(&self) -> u64 {
        Procfs.my_ident()
    }
    fn my_thread(&self) -> u32 {
        Procfs.my_thread()
    }
    fn is_dead(&self, pid: u32, start: u64) -> bool {
        Procfs.is_dead(pid, start)
    }
    fn peer_gone(&self) -> bool {
        self.0.peer_gone()
    }
}
