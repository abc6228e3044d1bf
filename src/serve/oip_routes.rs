//! The Open Inference Protocol v2 REST endpoints: health, server and model metadata, readiness
//! and inference.

use super::api_error::ApiError;
use super::oip;
use super::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
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
    Json(json!({
        "name": "wardrobe",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["classification", "binary_tensor_data"]
    }))
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    known_model(&state, &name)?;
    let json_len = headers
        .get(HEADER_LENGTH)
        .map(|v| {
            v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()).ok_or_else(|| {
                ApiError::bad_request(format!("Inference-Header-Content-Length must be a byte count, got {v:?}"))
            })
        })
        .transpose()?;
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let (request, input) = oip::decode(&body, json_len, state.shape)?;
    let probs = state.batcher.probabilities(input.pixels).await?;
    let encoded = oip::encode(&name, &request, &probs, &state.class_names);
    Ok(match encoded.json_len {
        None => ([(header::CONTENT_TYPE, "application/json")], encoded.body).into_response(),
        Some(n) => {
            let headers =
                [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (HEADER_LENGTH, n.to_string())];
            (headers, encoded.body).into_response()
        }
    })
}

/// The binary tensor data extension's header: the length of the JSON part of the body.
const HEADER_LENGTH: header::HeaderName = header::HeaderName::from_static("inference-header-content-length");

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
