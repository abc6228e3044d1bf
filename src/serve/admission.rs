//! Every request passes here: a concurrency limit (503 when saturated, never an unbounded
//! queue), a per-request time limit, latency and status metrics, and the access log line.

use super::api_error::ApiError;
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
    let line = state.settings.access_log.then(|| format!("{} {}", request.method(), request.uri().path()));
    let response = run_limited(&state, request, next).await;
    let latency = start.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state.metrics.record_request(route, response.status().as_u16(), latency);
    if let Some(line) = line {
        eprintln!("{line} {} {:.3}ms", response.status().as_u16(), latency.as_secs_f64() * 1e3);
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
