//! The Open Inference Protocol v2 REST endpoints: health, server and model metadata, readiness
//! and inference (per model, and per model version), and Triton's model repository extension
//! (index, load, unload).

use super::api_error::ApiError;
use super::oip;
use super::repository::Served;
use super::state::AppState;
use crate::predict::Thresholds;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Shared state as the handlers receive it.
type Shared = State<Arc<AppState>>;

/// A model's path parameters: `/v2/models/{name}` or `/v2/models/{name}/versions/{version}`.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

impl ModelPath {
    /// The version served for this path: the one named, else the highest.
    fn served(&self, state: &AppState) -> Result<Arc<Served>, ApiError> {
        state.repository.get(&self.name, self.version.as_deref())
    }
}

/// GET /v2/health/live and /v2/health/ready: the server is up and answering.
pub async fn health() -> Json<Value> {
    Json(json!({ "live": true, "ready": true }))
}

/// GET /v2: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "wardrobe",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["classification", "binary_tensor_data", "model_repository"]
    }))
}

/// GET /v2/models/{name}[/versions/{version}]: the model's loaded versions, inputs and outputs.
pub async fn model_metadata(State(state): Shared, Path(path): Path<ModelPath>) -> Result<Json<Value>, ApiError> {
    let served = path.served(&state)?;
    let versions = state.repository.versions(&path.name);
    Ok(Json(oip::model_metadata(
        &served.name,
        &versions,
        served.shape,
        served.class_names.len(),
        served.unknown_above.is_some(),
    )))
}

/// GET /v2/models/{name}[/versions/{version}]/ready: 200 when loaded.
pub async fn model_ready(State(state): Shared, Path(path): Path<ModelPath>) -> Result<Json<Value>, ApiError> {
    let served = path.served(&state)?;
    Ok(Json(json!({ "name": served.name, "version": served.version.to_string(), "ready": true })))
}

/// POST /v2/models/{name}[/versions/{version}]/infer: probabilities (or top-k classes) and
/// out-of-distribution scores for a batch of images.
pub async fn infer(
    State(state): Shared,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let served = path.served(&state)?;
    let json_len = headers
        .get(HEADER_LENGTH)
        .map(|v| {
            v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()).ok_or_else(|| {
                ApiError::bad_request(format!("Inference-Header-Content-Length must be a byte count, got {v:?}"))
            })
        })
        .transpose()?;
    let body = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let (request, input) = oip::decode(&body, json_len, served.shape)?;
    oip::check_available(&request, served.unknown_above.is_some())?;
    let scored = served.batcher.infer(input.pixels).await?;
    let version = served.version.to_string();
    let computed = oip::Computed { probabilities: &scored.probabilities, ood_scores: scored.ood_scores.as_deref() };
    let thresholds = Thresholds { review_below: state.settings.review_below, unknown_above: served.unknown_above };
    state.metrics.record_predictions(
        &served.name,
        &served.class_names,
        (computed.probabilities, computed.ood_scores),
        thresholds,
    );
    let encoded = oip::encode(&served.name, &version, &request, computed, &served.class_names);
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

/// The body of a repository request: empty, or a JSON object of the given fields.
fn repository_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// `POST /v2/repository/index`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexRequest {
    /// Only the models ready for inference.
    #[serde(default)]
    ready: bool,
}

/// POST /v2/repository/index: every model in the repository, its versions and their state.
pub async fn repository_index(State(state): Shared, body: Bytes) -> Result<Json<Value>, ApiError> {
    let asked: IndexRequest = repository_body(&body)?;
    let repository = state.repository.clone();
    let rows = blocking(move || repository.index(asked.ready).map_err(ApiError::internal)).await?;
    Ok(Json(json!(rows)))
}

/// The body of a load or unload request: Triton's `parameters`, of which only
/// `unload_dependents` (there are none here) is accepted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeRequest {
    #[serde(default)]
    parameters: serde_json::Map<String, Value>,
}

impl ChangeRequest {
    fn check(&self) -> Result<(), ApiError> {
        match self.parameters.keys().find(|k| *k != "unload_dependents") {
            Some(k) => Err(ApiError::bad_request(format!(
                "parameter '{k}' is not supported: models load from their run directories as they are"
            ))),
            None => Ok(()),
        }
    }
}

/// POST /v2/repository/models/{name}/load: loads (or reloads) every version of the model.
pub async fn load(State(state): Shared, Path(name): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    repository_body::<ChangeRequest>(&body)?.check()?;
    let repository = state.repository.clone();
    blocking(move || repository.load(&name)).await?;
    Ok(Json(json!({})))
}

/// POST /v2/repository/models/{name}/unload: stops serving the model once the requests in
/// flight finish.
pub async fn unload(State(state): Shared, Path(name): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    repository_body::<ChangeRequest>(&body)?.check()?;
    let repository = state.repository.clone();
    blocking(move || repository.unload(&name)).await?;
    Ok(Json(json!({})))
}

/// Runs `work` (file reads, model loading, waiting for another change) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?
}
