//! The HTTP inference server: Open Inference Protocol v2 REST endpoints (with Triton's model
//! repository extension), photo labelling, a single-page UI, the review page and Prometheus
//! metrics, in front of a micro-batching worker per served model version; over HTTP or HTTPS.

pub mod admission;
pub mod api_error;
pub mod auth;
pub mod batcher;
pub mod binary_data;
pub mod connections;
pub mod flat_numbers;
pub mod label_route;
pub mod metrics;
pub mod oip;
pub mod oip_routes;
pub mod repository;
pub mod request_id;
pub mod review;
pub mod state;
pub mod tls;

use crate::error::{Error, Result};
use api_error::ApiError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use connections::ConnectionLimits;
use state::{AppState, ServeSettings};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The single-page UI, embedded in the binary.
const PAGE: &str = include_str!("page.html");
/// What the page and the review page share.
const COMMON_JS: &str = include_str!("common.js");

/// All routes over `state`, with the admission layer and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings.max_body_bytes;
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/common.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], COMMON_JS) }))
        .route("/metrics", get(metrics))
        .route("/v1/label", post(label_route::label))
        .route("/review", get(review::page))
        .route("/v1/review", get(review::list))
        .route("/v1/review/{id}", post(review::set))
        .route("/v1/review/{id}/photo", get(review::photo))
        .route("/v1/review/{id}/model-input", get(review::model_input))
        .route("/v2", get(oip_routes::server_metadata))
        .route("/v2/health/live", get(oip_routes::health))
        .route("/v2/health/ready", get(oip_routes::health))
        .route("/v2/models/{name}", get(oip_routes::model_metadata))
        .route("/v2/models/{name}/ready", get(oip_routes::model_ready))
        .route("/v2/models/{name}/infer", post(oip_routes::infer))
        .route("/v2/models/{name}/versions/{version}", get(oip_routes::model_metadata))
        .route("/v2/models/{name}/versions/{version}/ready", get(oip_routes::model_ready))
        .route("/v2/models/{name}/versions/{version}/infer", post(oip_routes::infer))
        .route("/v2/repository/index", post(oip_routes::repository_index))
        .route("/v2/repository/models/{name}/load", post(oip_routes::load))
        .route("/v2/repository/models/{name}/unload", post(oip_routes::unload))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), admission::admit))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    let b = &state.budget;
    for (name, kind, help, value) in [
        ("wardrobe_decode_budget_bytes", "gauge", "Memory photo decoding may hold at once.", b.total()),
        ("wardrobe_decode_budget_in_use_bytes", "gauge", "Memory photo decoding holds now.", b.in_use()),
        ("wardrobe_decode_budget_waits_total", "counter", "Photos that waited for decoding memory.", b.waits()),
        ("wardrobe_decode_budget_refusals_total", "counter", "Photos refused for decoding memory.", b.refusals()),
    ] {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {}", uri.path()))
}

/// Serves the models of `settings.source` on `addr` until `shutdown` completes, then finishes
/// the requests in flight. `on_bound` is told the actual address (useful with port 0).
pub async fn serve(
    settings: ServeSettings,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::System(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(|e| Error::System(format!("cannot listen on {addr}: {e}")))?;
    let limits =
        ConnectionLimits { max_connections: settings.max_connections, header_timeout: settings.request_timeout };
    let tls = settings.tls.as_ref().map(tls::TlsFiles::acceptor).transpose()?;
    let state = Arc::new(AppState::new(settings)?);
    if state.api_keys.is_some() {
        tokio::spawn(reload_keys_on_sighup(state.clone()));
    }
    if let Some(every) = state.settings.poll {
        tokio::spawn(poll_repository(state.repository.clone(), every));
    }
    let app = router(state);
    on_bound(bound);
    connections::serve(listener, app, limits, tls, shutdown).await;
    Ok(())
}

/// Looks at the repository every `every` for added, changed and removed versions.
async fn poll_repository(repository: Arc<repository::Repository>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let repository = repository.clone();
        match tokio::task::spawn_blocking(move || repository.poll()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("repository not polled: {e}"),
            Err(e) => tracing::error!("repository poll failed: {e}"),
        }
    }
}

/// Re-reads the API key file on every SIGHUP.
async fn reload_keys_on_sighup(state: Arc<AppState>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hangup.recv().await.is_some() {
        if let Some(keys) = &state.api_keys {
            match keys.reload() {
                Ok(n) => tracing::info!("API keys reloaded: {n}"),
                Err(e) => tracing::error!("API keys not reloaded, the old ones stay: {e}"),
            }
        }
    }
}

/// The line `wardrobe serve` prints once it listens.
pub fn serving_line(what: &str, bound: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("serving {what} on {scheme}://{bound} (Ctrl-C to stop)")
}

/// The address in a [`serving_line`], as `host:port`.
pub fn address_in_serving_line(line: &str) -> Option<&str> {
    line.split("://").nth(1)?.split_whitespace().next()
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
