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

use crate::sync::liveness::{Liveness, Procfs};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

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
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is a valid pollfd for the duration of the call; timeout 0 never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    // Nobody ever writes into token pipes, so readable means hung up, too.
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLIN) != 0
}

impl Token {
    /// Tokens for the two ends of a new pipe.
    pub(crate) fn pair() -> io::Result<(Token, Token)> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (ra, wa) = pipe_with(PipeFlags::CLOEXEC)?;
        let (rb, wb) = pipe_with(PipeFlags::CLOEXEC)?;
        let ra2 = rustix::io::fcntl_dupfd_cloexec(&ra, 0)?;
        let rb2 = rustix::io::fcntl_dupfd_cloexec(&rb, 0)?;
        Ok((
            Token {
                mine_w: Some(wa),
                mine_r: ra,
                peer_r: rb,
            },
            Token {
                mine_w: Some(wb),
                mine_r: rb2,
                peer_r: ra2,
            },
        ))
    }

    /// True when every copy of the peer end is closed, in every process.
    pub(crate) fn peer_gone(&self) -> bool {
        use std::os::fd::AsFd;
        hung_up(self.peer_r.as_fd())
    }

    /// Drops this process's hold on the end; true when no process holds it any more.
    pub(crate) fn release(&mut self) -> bool {
        use std::os::fd::AsFd;
        self.mine_w = None;
        hung_up(self.mine_r.as_fd())
    }

    /// The read side of the peer's token: becomes readable (`POLLHUP`) when the peer end
    /// is gone.
    pub(crate) fn peer_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.peer_r.as_fd()
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
