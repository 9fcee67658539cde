//! Browser sessions and the failed-login limiter. A session is a random id
//! in an HttpOnly, SameSite=Strict cookie, with a CSRF token the page sends
//! back in `X-CSRF-Token` on every state-changing request. Sessions live in
//! memory: a restart logs everyone out. Failed logins are counted per user
//! name and per client address; past the limit, logins from there are
//! refused for a while whether the name exists or not.

use super::secret;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "weir_session";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

/// The open sessions, keyed by the digest of their id.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `user`; returns (id for the cookie, CSRF token).
    pub fn open(&self, user: &str) -> (String, String) {
        let id = secret::random_hex(32);
        let csrf = secret::random_hex(32);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        open.retain(|_, s| s.expires > now);
        open.insert(
            secret::digest(&id),
            Session {
                user: user.to_string(),
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        (id, csrf)
    }

    /// The user and CSRF token of a live session.
    pub fn get(&self, id: &str) -> Option<(String, String)> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&secret::digest(id))
            .filter(|s| s.expires > Instant::now())
            .map(|s| (s.user.clone(), s.csrf.clone()))
    }

    pub fn close(&self, id: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&secret::digest(id));
    }
}

/// Failed logins allowed per user name within [`WINDOW`].
pub const PER_USER: u32 = 5;
/// Failed logins allowed per client address within [`WINDOW`].
pub const PER_ADDRESS: u32 = 20;
/// How long failures count, and how long a locked name or address waits.
pub const WINDOW: Duration = Duration::from_secs(300);

/// Counts failed logins.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    fn keys(user: &str, addr: IpAddr) -> [(String, u32); 2] {
        [
            (format!("user:{user}"), PER_USER),
            (format!("addr:{addr}"), PER_ADDRESS),
        ]
    }

    /// None when a login may be tried; else how long to wait.
    pub fn check(&self, user: &str, addr: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        Self::keys(user, addr)
            .iter()
            .filter_map(|(k, limit)| {
                failures
                    .get(k)
                    .filter(|(n, since)| *n >= *limit && now < *since + WINDOW)
                    .map(|(_, since)| *since + WINDOW - now)
            })
            .max()
    }

    pub fn failed(&self, user: &str, addr: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        failures.retain(|_, (_, since)| now < *since + WINDOW);
        for (k, _) in Self::keys(user, addr) {
            let e = failures.entry(k).or_insert((0, now));
            e.0 += 1;
        }
    }

    /// A successful login clears the user's count (not the address's).
    pub fn succeeded(&self, user: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&format!("user:{user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_and_close() {
        let s = Sessions::default();
        let (id, csrf) = s.open("ana");
        assert_eq!(s.get(&id), Some(("ana".to_string(), csrf)));
        assert_eq!(s.get("nope"), None);
        s.close(&id);
        assert_eq!(s.get(&id), None);
    }

    #[test]
    fn the_limiter_locks_a_user_after_its_failures() {
        let l = LoginLimiter::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..PER_USER {
            assert!(l.check("ana", a).is_none());
            l.failed("ana", a);
        }
        assert!(l.check("ana", a).is_some());
        assert!(l.check("ana", b).is_some(), "per user, from any address");
        assert!(l.check("bo", b).is_none());
    }
}
