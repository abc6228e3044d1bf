//! The Open Inference Protocol v2 REST endpoints: health, server and model metadata, readiness
//! and inference.

use super::api_error::ApiError;
use super::oip;
use super::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// Shared state as the handlers receive it.
type Shared = State<Arc<AppState>>;

/// GET /v2/health/live and /v2/health/ready: the server is up and the model loaded.
pub async fn health() -> Json<Value> {
    Json(json!({ "live": true, "ready": true }))
}

/// GET /v2: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "wardrobe", "version": env!("CARGO_PKG_VERSION"), "extensions": ["classification"] }))
}

/// GET /v2/models/{name}: inputs and outputs of the model.
pub async fn model_metadata(State(state): Shared, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    known_model(&state, &name)?;
    Ok(Json(oip::model_metadata(&name, state.shape, state.class_names.len())))
}

/// GET /v2/models/{name}/ready.
pub async fn model_ready(State(state): Shared, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    known_model(&state, &name)?;
    Ok(Json(json!({ "name": name, "ready": true })))
}

/// POST /v2/models/{name}/infer: probabilities (or top-k classes) for a batch of images.
pub async fn infer(
    State(state): Shared,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    known_model(&state, &name)?;
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let (request, input) = oip::decode(&body, state.shape)?;
    let probs = state.batcher.probabilities(input.pixels).await?;
    Ok(Json(oip::response(&name, &request, &probs, &state.class_names)).into_response())
}

fn known_model(state: &AppState, name: &str) -> Result<(), ApiError> {
    if name == state.settings.model_name {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown model '{name}'; this server serves '{}'", state.settings.model_name),
        ))
    }
}
