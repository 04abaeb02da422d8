//! Who is signed in: one-time sign-in codes, sessions, and each session's
//! CSRF token.
//!
//! The start banner prints a link with a one-time code (the way notebook
//! servers do); opening it makes a session and sets its cookie, and the code
//! is spent. The admin token, typed into the sign-in page, makes one too.
//! Codes and session ids are 256 random bits, kept only as their SHA-256
//! (a memory dump does not hand out live sessions), in memory: a restart
//! signs everyone out. Both are bounded in number and in time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use hookflow_core::tries::Tries;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// How long a sign-in code may be used (ms).
pub const CODE_TTL_MS: i64 = 15 * 60 * 1000;
/// How long a session lasts (ms).
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;
/// The most codes and sessions kept; past it the oldest go.
const MAX: usize = 1_000;
/// Wrong admin tokens allowed a minute from one client (an IP address):
/// past it that client's sign-in answers 429 for the rest of the minute;
/// everyone else signs in. One-time codes are not counted: 256 random bits
/// are not guessed, and counting them let anyone lock everyone out.
pub const TRIES_A_MINUTE: usize = 20;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token every change must carry (a form field).
    pub csrf: String,
    expires_at: i64,
}

/// Sign-in codes and sessions.
pub struct Sessions {
    inner: Mutex<Inner>,
    tries: Tries,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions { inner: Mutex::default(), tries: Tries::new(TRIES_A_MINUTE) }
    }
}

#[derive(Default)]
struct Inner {
    /// Unspent codes by their digest: when each expires.
    codes: HashMap<[u8; 32], i64>,
    /// Sessions by the digest of their cookie.
    sessions: HashMap<[u8; 32], Session>,
}

/// 256 random bits, hex.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Drops the expired entries, then the soonest to expire past `MAX`.
fn bound<V>(map: &mut HashMap<[u8; 32], V>, now: i64, expires: impl Fn(&V) -> i64) {
    map.retain(|_, v| expires(v) > now);
    while map.len() >= MAX {
        let Some(k) = map.iter().min_by_key(|(_, v)| expires(v)).map(|(k, _)| *k) else { break };
        map.remove(&k);
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new one-time sign-in code.
    pub fn new_code(&self, now: i64) -> String {
        let code = random_token();
        let mut inner = self.lock();
        bound(&mut inner.codes, now, |e| *e);
        inner.codes.insert(digest(&code), now + CODE_TTL_MS);
        code
    }

    /// Spends `code`: a new session (its cookie value and session), or
    /// `None` for a code that is wrong, spent or expired.
    pub fn redeem(&self, code: &str, now: i64) -> Option<(String, Session)> {
        let live = self.lock().codes.remove(&digest(code)).is_some_and(|expires| expires > now);
        live.then(|| self.start(now))
    }

    /// Whether `client` may try the admin token now ([`TRIES_A_MINUTE`]).
    pub fn may_try(&self, client: Option<IpAddr>, now: i64) -> bool {
        self.tries.may_try(client, now)
    }

    /// Records a wrong admin token from `client`.
    pub fn failed_try(&self, client: Option<IpAddr>, now: i64) {
        self.tries.failed(client, now);
    }

    /// A new session (after the admin token was checked).
    pub fn start(&self, now: i64) -> (String, Session) {
        let cookie = random_token();
        let session = Session { csrf: random_token(), expires_at: now + SESSION_TTL_MS };
        let mut inner = self.lock();
        bound(&mut inner.sessions, now, |s| s.expires_at);
        inner.sessions.insert(digest(&cookie), session.clone());
        (cookie, session)
    }

    /// The live session of a cookie value.
    pub fn session(&self, cookie: &str, now: i64) -> Option<Session> {
        let inner = self.lock();
        inner.sessions.get(&digest(cookie)).filter(|s| s.expires_at > now).cloned()
    }

    /// Ends the session of a cookie value.
    pub fn end(&self, cookie: &str) {
        self.lock().sessions.remove(&digest(cookie));
    }
}

/// Constant-time equality of two secrets (compared as digests, so their
/// lengths do not leak either).
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(digest(a).ct_eq(&digest(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_signs_in_once_and_only_before_it_expires() {
        let s = Sessions::default();
        let code = s.new_code(0);
        assert_eq!(code.len(), 64);
        let (cookie, session) = s.redeem(&code, 1).expect("a fresh code signs in");
        assert_eq!(s.session(&cookie, 2), Some(session.clone()));
        assert!(s.redeem(&code, 2).is_none(), "spent");
        assert!(s.redeem("0".repeat(64).as_str(), 2).is_none(), "wrong");
        let late = s.new_code(0);
        assert!(s.redeem(&late, CODE_TTL_MS + 1).is_none(), "expired");
        assert!(s.session(&cookie, SESSION_TTL_MS + 2).is_none(), "the session expires");
        s.end(&cookie);
        assert!(s.session(&cookie, 3).is_none());
        assert_ne!(session.csrf, cookie);
    }

    #[test]
    fn wrong_tokens_are_limited_a_minute_per_client_and_codes_are_not_counted() {
        let s = Sessions::default();
        let (me, other) = (Some("203.0.113.1".parse().unwrap()), Some("203.0.113.2".parse().unwrap()));
        let code = s.new_code(0);
        for _ in 0..TRIES_A_MINUTE * 3 {
            assert!(s.redeem("wrong", 1).is_none());
        }
        assert!(s.may_try(me, 1), "wrong codes are not counted against anyone");
        for _ in 0..TRIES_A_MINUTE {
            s.failed_try(me, 1);
        }
        assert!(!s.may_try(me, 2), "past this client's tries of the minute");
        assert!(s.may_try(other, 2), "another client signs in");
        assert!(s.redeem(&code, 2).is_some(), "a good code is never held back");
        assert!(s.may_try(me, 60_002), "a minute later");
    }

    #[test]
    fn codes_and_sessions_are_bounded() {
        let s = Sessions::default();
        for i in 0..(MAX as i64 + 50) {
            s.new_code(i);
            s.start(i);
        }
        let inner = s.lock();
        assert!(inner.codes.len() <= MAX && inner.sessions.len() <= MAX);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "abcd") && !same_secret("", "a"));
    }
}
