//! Request ids: a request's `x-request-id` (1 to 128 of `A–Z a–z 0–9 - _ . :`) is kept, any
//! other request gets a new random one; admission puts the id into the access log line and back
//! in the response's `x-request-id`, so a client, a proxy and the log can follow one request.

use axum::http::{HeaderMap, HeaderValue};

/// The header carrying the id.
pub const HEADER: &str = "x-request-id";

/// Whether a client's id can be passed on as it is.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new id: 128 random bits in hex.
fn fresh() -> HeaderValue {
    let bits: u128 = rand::random();
    HeaderValue::from_str(&format!("{bits:032x}")).expect("hex is a valid header value")
}

/// The id of a request with these headers: its own if acceptable, else a new one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    headers.get(HEADER).filter(|v| acceptable(v)).cloned().unwrap_or_else(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_plain_and_short() {
        assert!(acceptable(&HeaderValue::from_static("req-42_a.b:c")));
        for bad in ["", "has space", "quote\"", "ünïcode-free?"] {
            if let Ok(v) = HeaderValue::from_str(bad) {
                assert!(!acceptable(&v), "{bad}");
            }
        }
        assert!(!acceptable(&HeaderValue::from_str(&"a".repeat(129)).unwrap()));
        let (a, b) = (fresh(), fresh());
        assert!(acceptable(&a) && a.len() == 32 && a != b);
    }
}
