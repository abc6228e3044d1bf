//! Request ids: a request's `x-request-id` (1 to 128 of `A–Z a–z 0–9 - _ . :`) is kept, any
//! other request gets a new random one; the id goes into the access log line and back in the
//! response's `x-request-id`, so a client, a proxy and the log can follow one request.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the id.
pub const HEADER: &str = "x-request-id";

/// A request's id, as the handlers and the access log see it (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

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

/// Gives the request its id and puts the id on the response.
pub async fn tag(mut request: Request, next: Next) -> Response {
    let id = request.headers().get(HEADER).filter(|v| acceptable(v)).cloned().unwrap_or_else(fresh);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().insert(HEADER, id);
    response
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
