//! Signing in to the monitor: a department gives its member token once, in a form posted to
//! `/signin` (never in a URL, so it is in no log, history or `Referer`), and gets a session
//! cookie (`HttpOnly`, `SameSite=Strict`) that lasts until the token would have expired, at most
//! [`MAX_SESSION`]. Sessions live in the node's memory: a restart signs everyone out.
//!
//! Forms are protected against cross-site requests twice: `SameSite=Strict` cookies, and a CSRF
//! token in each form that must equal the one the server holds (the sign-in form's in a cookie
//! of its own, a double submit; the sign-out form's in the session).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

/// The session cookie.
pub const SESSION_COOKIE: &str = "govdc_monitor_session";
/// The sign-in form's CSRF cookie.
pub const CSRF_COOKIE: &str = "govdc_monitor_csrf";
/// The longest session, seconds.
pub const MAX_SESSION: u64 = 8 * 3600;
/// Sessions held at most; the oldest give way.
const MAX_SESSIONS: usize = 10_000;

/// A signed-in department.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Its credit code.
    pub department: String,
    /// The sign-out form's CSRF token.
    pub csrf: String,
    /// When it ends, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// The sessions of this node's monitor.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

/// A fresh random token: 32 bytes from the kernel, as hex.
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn now_seconds() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `department` whose token expires at `token_expires`; returns its id.
    pub fn start(
        &self,
        department: &str,
        token_expires: u64,
    ) -> std::io::Result<(String, Session)> {
        let id = random_token()?;
        let now = now_seconds();
        let session = Session {
            department: department.to_owned(),
            csrf: random_token()?,
            expires_at: token_expires.min(now + MAX_SESSION),
        };
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.expires_at > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The live session `id` names, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = now_seconds();
        let mut sessions = self.lock();
        match sessions.get(id) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session of `department` (it left the node).
    pub fn end_all_of(&self, department: &str) {
        self.lock().retain(|_, s| s.department != department);
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, on `path`, for `max_age` seconds (0
/// deletes it).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict")
}

/// A `303 See Other` to `location`, never cached: what both websites answer after a form's
/// POST, and the portal for an anonymous download of a conditional file.
pub fn see_other(location: &str) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_end_and_expire() {
        let sessions = Sessions::default();
        let (id, session) = sessions.start("A", u64::MAX).expect("random");
        assert_eq!(sessions.get(&id), Some(session.clone()));
        assert!(session.expires_at <= now_seconds() + MAX_SESSION);
        sessions.end(&id);
        assert_eq!(sessions.get(&id), None);
        let (expired, _) = sessions.start("A", 1).expect("random");
        assert_eq!(sessions.get(&expired), None);
        let (other, _) = sessions.start("B", u64::MAX).expect("random");
        sessions.end_all_of("B");
        assert_eq!(sessions.get(&other), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("", ""));
        assert!(!same("ab", "abc"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=1; govdc_monitor_session=xyz".parse().expect("header"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}
