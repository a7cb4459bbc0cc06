//! The challenge-response of Python's `multiprocessing.connection` (`deliver_challenge` /
//! `answer_challenge`), with HMAC-SHA256 and a role label in each answer.
//!
//! The challenger sends CHALLENGE with 32 bytes from the kernel's random source; the
//! answerer sends RESPONSE = HMAC-SHA256(key, label(role) ‖ nonce), where `role` is the
//! answerer's; the challenger compares in constant time (`Mac::verify_slice`) and sends
//! WELCOME or FAILURE. Run once each way, both sides prove they know the key without
//! sending it. The label keeps a server's answer from being replayed as a client's.

use super::{expect, send, ConnectionError, CHALLENGE, FAILURE, RESPONSE, WELCOME};
use hmac::{Hmac, Mac};
use rustix::fd::OwnedFd;
use sha2::Sha256;
use std::time::Instant;

const NONCE: usize = 32;

/// Who answers a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Client,
    Server,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Client => b"shmproc-connection client answer\0",
            Role::Server => b"shmproc-connection server answer\0",
        }
    }
}

fn mac(key: &[u8], role: Role, nonce: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(role.label());
    m.update(nonce);
    m
}

fn nonce() -> Result<[u8; NONCE], ConnectionError> {
    let mut n = [0u8; NONCE];
    crate::sync::random(&mut n).map_err(|source| ConnectionError::Os {
        op: "getrandom",
        source,
    })?;
    Ok(n)
}

/// Challenges the peer, who must answer as `peer`.
pub(super) fn deliver(
    sock: &OwnedFd,
    key: &[u8],
    peer: Role,
    deadline: impl Fn() -> Option<Instant>,
) -> Result<(), ConnectionError> {
    let n = nonce()?;
    send(sock, CHALLENGE, &n, "sending the challenge", deadline())?;
    let answer = expect(sock, RESPONSE, "waiting for the answer", deadline())?;
    if mac(key, peer, &n).verify_slice(&answer).is_ok() {
        send(sock, WELCOME, &[], "welcoming", deadline())
    } else {
        let _ = send(sock, FAILURE, &[], "refusing", deadline());
        Err(ConnectionError::Authentication(format!(
            "the digest received from the {} was wrong (another authkey)",
            if peer == Role::Client {
                "client"
            } else {
                "server"
            }
        )))
    }
}

/// Answers the peer's challenge as `me`.
pub(super) fn answer(
    sock: &OwnedFd,
    key: &[u8],
    me: Role,
    deadline: impl Fn() -> Option<Instant>,
) -> Result<(), ConnectionError> {
    let n = expect(sock, CHALLENGE, "waiting for the challenge", deadline())?;
    if n.len() != NONCE {
        return Err(ConnectionError::Garbage(format!(
            "a challenge of {} bytes, not {NONCE}",
            n.len()
        )));
    }
    let digest = mac(key, me, &n).finalize().into_bytes();
    send(
        sock,
        RESPONSE,
        &digest,
        "answering the challenge",
        deadline(),
    )?;
    let m = crate::process::wire::recv_packet(rustix::fd::AsFd::as_fd(sock), deadline())
        .map_err(super::step("waiting for the verdict"))?;
    match m.kind {
        WELCOME => Ok(()),
        FAILURE => Err(ConnectionError::Authentication(
            "the digest sent was rejected by the peer (another authkey)".into(),
        )),
        k => Err(ConnectionError::Garbage(format!(
            "a message of kind {k} where the verdict was expected"
        ))),
    }
}
