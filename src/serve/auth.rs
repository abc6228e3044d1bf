//! API keys: with `--api-key-file`, every route but `/v2/health/*` (and `/metrics`, unless
//! `--protect-metrics`) needs `Authorization: Bearer KEY` with one of the file's keys (one per
//! line; blank lines and `#` comments ignored), else 401 with a JSON error. Keys are compared
//! in constant time and never logged; SIGHUP re-reads the file.

use super::api_error::ApiError;
use super::state::AppState;
use crate::error::{Error, Result};
use crate::fsutil;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The keys of an API key file.
#[derive(Debug)]
pub struct ApiKeys {
    path: PathBuf,
    keys: RwLock<Vec<Vec<u8>>>,
}

/// The keys in a key file's text.
fn parse(text: &[u8], path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(text).map_err(|_| Error::format(path, "not UTF-8 text"))?;
    let keys: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if keys.is_empty() {
        return Err(Error::format(path, "no API keys (one per line)"));
    }
    Ok(keys)
}

/// Equal contents, in time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ApiKeys {
    /// Reads the key file.
    pub fn load(path: &Path) -> Result<ApiKeys> {
        let keys = parse(&fsutil::read_at_most(path, 1 << 20)?, path)?;
        Ok(ApiKeys { path: path.to_path_buf(), keys: RwLock::new(keys) })
    }

    /// Re-reads the key file (on SIGHUP); on error the keys stay as they were. Returns how many
    /// keys there are now.
    pub fn reload(&self) -> Result<usize> {
        let keys = parse(&fsutil::read_at_most(&self.path, 1 << 20)?, &self.path)?;
        let n = keys.len();
        *self.keys.write().expect("keys lock") = keys;
        Ok(n)
    }

    /// Whether an `Authorization` header value carries one of the keys.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some(given) = authorization.and_then(|v| v.strip_prefix(b"Bearer ")) else { return false };
        // Every key is compared, so the time does not tell which one matched.
        self.keys.read().expect("keys lock").iter().fold(false, |found, key| found | constant_time_eq(key, given))
    }
}

/// Lets a request through when it needs no key or carries a valid one.
pub async fn require_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(keys) = &state.api_keys else { return next.run(request).await };
    let path = request.uri().path();
    let open = path.starts_with("/v2/health/") || (path == "/metrics" && !state.settings.protect_metrics);
    if open || keys.allows(request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        return next.run(request).await;
    }
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or unknown API key (Authorization: Bearer KEY)")
            .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_whole_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "# team keys\nalpha-123\n\n  beta-456  \n").unwrap();
        let keys = ApiKeys::load(&path).unwrap();
        assert!(keys.allows(Some(b"Bearer alpha-123")) && keys.allows(Some(b"Bearer beta-456")));
        for bad in [&b"Bearer alpha-12"[..], b"Bearer alpha-1234", b"alpha-123", b"Bearer ", b"Basic alpha-123"] {
            assert!(!keys.allows(Some(bad)), "{}", String::from_utf8_lossy(bad));
        }
        assert!(!keys.allows(None));
        std::fs::write(&path, "gamma-789\n").unwrap();
        assert_eq!(keys.reload().unwrap(), 1);
        assert!(keys.allows(Some(b"Bearer gamma-789")) && !keys.allows(Some(b"Bearer alpha-123")));
        std::fs::write(&path, "\n# none\n").unwrap();
        assert!(keys.reload().unwrap_err().to_string().contains("no API keys"));
        assert!(keys.allows(Some(b"Bearer gamma-789")), "a bad file keeps the old keys");
    }
}
