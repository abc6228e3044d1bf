//! Every request passes here: a concurrency limit (503 when saturated, never an unbounded
//! queue), a per-request time limit, latency and status metrics, and the access log line
//! (through `tracing`, with the request id).

use super::api_error::ApiError;
use super::request_id;
use super::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// Admits, times out, measures and logs one request, and returns its id with the response.
pub async fn admit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let id = request_id::of(request.headers());
    let line = state.settings.access_log.then(|| (request.method().clone(), request.uri().path().to_string()));
    let mut response = run_limited(&state, request, next).await;
    let latency = start.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status().as_u16();
    state.metrics.record_request(route, status, latency);
    if let Some((method, path)) = line {
        let request_id = id.to_str().unwrap_or("");
        let ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
        tracing::info!(target: "access", request_id, %method, path, status, ms, "{method} {path} {status}");
    }
    response.headers_mut().insert(request_id::HEADER, id);
    response
}

/// Runs the request if a slot is free and it finishes in time.
async fn run_limited(state: &AppState, request: Request, next: Next) -> Response {
    let Ok(_slot) = state.slots.clone().try_acquire_owned() else {
        let limit = state.settings.max_concurrent;
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("server busy: {limit} requests already in progress; retry shortly"),
        )
        .into_response();
    };
    let limit = state.settings.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("request not completed within {:.1} s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}
