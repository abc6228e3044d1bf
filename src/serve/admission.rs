//! Every request passes here: a concurrency limit (503 when saturated, never an unbounded
//! queue), a per-request time limit, latency and status metrics, and the access log line
//! (through `tracing`, with the request id).

use super::api_error::ApiError;
use super::request_id::RequestId;
use super::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// Admits, times out, measures and logs one request.
pub async fn admit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let line = state.settings.access_log.then(|| {
        let id = request.extensions().get::<RequestId>().map(|id| id.0.clone());
        (request.method().clone(), request.uri().path().to_string(), id)
    });
    let response = run_limited(&state, request, next).await;
    let latency = start.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status().as_u16();
    state.metrics.record_request(route, status, latency);
    if let Some((method, path, id)) = line {
        let request_id = id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or("");
        let ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
        tracing::info!(target: "access", request_id, %method, path, status, ms, "{method} {path} {status}");
    }
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
