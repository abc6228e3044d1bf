//! API keys: with `--api-key-file`, every route but `/v2/health/*` (and `/metrics`, unless
//! `--protect-metrics`) needs `Authorization: Bearer KEY` with one of the file's keys, else 401
//! with a JSON error. The file has one key per line, optionally followed by whitespace and the
//! key holder's name (as in `authorized_keys`; the review file records it as `reviewed_by`);
//! blank lines and `#` comments are ignored. Keys are compared in constant time and never
//! logged; SIGHUP re-reads the file.

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
    keys: RwLock<Vec<Key>>,
}

/// One key and the name of its holder.
#[derive(Debug)]
struct Key {
    secret: Vec<u8>,
    name: String,
}

/// Who a request's key belongs to: the name after the key in the key file, or `key N` (its
/// line among the keys, from 1) when the file names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder(pub String);

/// The keys in a key file's text.
fn parse(text: &[u8], path: &Path) -> Result<Vec<Key>> {
    let text = std::str::from_utf8(text).map_err(|_| Error::format(path, "not UTF-8 text"))?;
    let keys: Vec<Key> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| {
            let (secret, name) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            let name =
                Some(name.trim()).filter(|n| !n.is_empty()).map_or_else(|| format!("key {}", i + 1), String::from);
            Key { secret: secret.as_bytes().to_vec(), name }
        })
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

    /// The holder of the key an `Authorization` header value carries, if it is one of the keys.
    pub fn holder(&self, authorization: Option<&[u8]>) -> Option<KeyHolder> {
        let given = authorization.and_then(|v| v.strip_prefix(b"Bearer "))?;
        // Every key is compared, so the time does not tell which one matched.
        let keys = self.keys.read().expect("keys lock");
        let found =
            keys.iter().fold(None, |found, key| if constant_time_eq(&key.secret, given) { Some(key) } else { found });
        found.map(|key| KeyHolder(key.name.clone()))
    }
}

/// Lets a request through when it needs no key or carries a valid one.
pub async fn require_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(keys) = &state.api_keys else { return next.run(request).await };
    let path = request.uri().path();
    let open = path.starts_with("/v2/health/") || (path == "/metrics" && !state.settings.protect_metrics);
    let holder = keys.holder(request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()));
    if let Some(holder) = holder {
        let mut request = request;
        request.extensions_mut().insert(holder);
        return next.run(request).await;
    }
    if open {
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
        std::fs::write(&path, "# team keys\nalpha-123 Ana Lima\n\n  beta-456  \n").unwrap();
        let keys = ApiKeys::load(&path).unwrap();
        let holder = |header: &[u8]| keys.holder(Some(header)).map(|h| h.0);
        assert_eq!(holder(b"Bearer alpha-123").as_deref(), Some("Ana Lima"));
        assert_eq!(holder(b"Bearer beta-456").as_deref(), Some("key 2"));
        for bad in [&b"Bearer alpha-12"[..], b"Bearer alpha-1234", b"alpha-123", b"Bearer ", b"Basic alpha-123"] {
            assert_eq!(holder(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(holder(b"Bearer alpha-123 Ana Lima"), None, "the name is not part of the key");
        assert_eq!(keys.holder(None), None);
        std::fs::write(&path, "gamma-789\n").unwrap();
        assert_eq!(keys.reload().unwrap(), 1);
        assert!(holder(b"Bearer gamma-789").is_some() && holder(b"Bearer alpha-123").is_none());
        std::fs::write(&path, "\n# none\n").unwrap();
        assert!(keys.reload().unwrap_err().to_string().contains("no API keys"));
        assert!(holder(b"Bearer gamma-789").is_some(), "a bad file keeps the old keys");
    }
}
