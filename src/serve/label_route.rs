//! POST /v1/label: seller photos as multipart/form-data (one file field per photo) → for each
//! photo its label, confidence, top classes, whether a human should review it, and the
//! image the model saw (as a PNG data URL). A photo that cannot be read gets an `error` entry;
//! the request fails only when no photo could be read.

use super::api_error::ApiError;
use super::batcher::Scored;
use super::repository::Served;
use super::state::AppState;
use crate::Error;
use crate::data::decode::Limits;
use crate::data::photo::{self, PhotoShape};
use crate::label::LabelRow;
use crate::predict::{Ranked, Thresholds, Verdict};
use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Query parameters of /v1/label.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelQuery {
    /// How many classes to rank per photo (default 3).
    #[serde(default = "default_top")]
    top: usize,
    /// The model to label with (default: the server's default model).
    model: Option<String>,
    /// Its version (default: the highest).
    version: Option<String>,
}

fn default_top() -> usize {
    3
}

/// The answer for one photo.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PhotoResult {
    /// The photo was classified.
    Labelled {
        /// Uploaded file name.
        file: String,
        /// Most probable class.
        label: String,
        /// Its probability.
        confidence: f32,
        /// Most probable classes, best first.
        top: Vec<Ranked>,
        /// The verdict is not `label`.
        needs_review: bool,
        /// How unusual the photo is for the model (higher = more unusual), when it has a score.
        ood_score: Option<f32>,
        /// `label`, `review` or `unknown`.
        verdict: Verdict,
        /// The image the model saw, as a PNG data URL.
        model_input: String,
    },
    /// The photo could not be read.
    Failed {
        /// Uploaded file name.
        file: String,
        /// Why.
        error: String,
    },
}

impl PhotoResult {
    /// Why the photo could not be read, if it could not.
    fn error(&self) -> Option<&str> {
        match self {
            PhotoResult::Failed { error, .. } => Some(error),
            PhotoResult::Labelled { .. } => None,
        }
    }
}

/// An uploaded photo.
struct Upload {
    file: String,
    bytes: Bytes,
}

/// Handles POST /v1/label.
pub async fn label(
    State(state): State<Arc<AppState>>,
    query: Result<Query<LabelQuery>, axum::extract::rejection::QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let mut multipart = multipart.map_err(|r| {
        ApiError::new(
            r.status(),
            format!(
                "{}: send the photos as multipart/form-data, one file field per photo (curl -F photo=@item.jpg URL)",
                r.body_text()
            ),
        )
    })?;
    let served = match &query.model {
        Some(name) => state.repository.get(name, query.version.as_deref())?,
        None if query.version.is_some() => return Err(ApiError::bad_request("version needs model=NAME")),
        None => state.repository.default_model(&state.settings.model_name)?,
    };
    let uploads = read_uploads(&mut multipart, state.settings.max_photos, state.settings.max_body_bytes).await?;
    let (shape, limits) = (served.shape, state.photo_limits());
    let converted = tokio::task::spawn_blocking(move || convert_all(uploads, shape, &limits))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("photo conversion failed: {e}")))?;
    // A photo that found the decoding budget spent makes the whole upload a 503: trying again
    // later will do.
    if let Some(busy) = converted.iter().find_map(|(_, r)| match r {
        Err(Error::Busy(m)) => Some(m.clone()),
        _ => None,
    }) {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, busy));
    }
    let converted: Vec<(String, Result<Vec<u8>, String>)> =
        converted.into_iter().map(|(file, r)| (file, r.map_err(|e| e.to_string()))).collect();
    let pixels: Vec<u8> = converted.iter().filter_map(|(_, r)| r.as_ref().ok()).flatten().copied().collect();
    let scored = if pixels.is_empty() {
        Scored { probabilities: Vec::new(), ood_scores: None }
    } else {
        served.batcher.infer(pixels).await?
    };
    let thresholds = Thresholds { review_below: state.settings.review_below, unknown_above: served.unknown_above };
    let computed = (&scored.probabilities[..], scored.ood_scores.as_deref());
    state.metrics.record_predictions(&served.name, &served.class_names, computed, thresholds);
    let results = results(converted, &scored, &served, thresholds, query.top);
    let all_failed: Option<Vec<&str>> = results.iter().map(PhotoResult::error).collect();
    if let Some(reasons) = all_failed {
        let message = format!("no photo could be read: {}", reasons.join("; "));
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message));
    }
    Ok(Json(serde_json::json!({ "results": results })))
}

/// Reads every field of the upload as a photo; an upload over `max_body` bytes is a 413 naming
/// the limit.
async fn read_uploads(multipart: &mut Multipart, max_photos: usize, max_body: usize) -> Result<Vec<Upload>, ApiError> {
    let field_error = |e: MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "upload larger than this server's limit of {max_body} bytes (serve --max-body-bytes); send fewer or smaller photos per request"
            ),
        ),
        status => ApiError::new(status, format!("malformed upload: {}", e.body_text())),
    };
    let mut uploads = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(field_error)? {
        if uploads.len() == max_photos {
            return Err(ApiError::bad_request(format!("more than {max_photos} photos in one upload")));
        }
        let file = field.file_name().or(field.name()).unwrap_or("photo").to_string();
        let bytes = field.bytes().await.map_err(field_error)?;
        uploads.push(Upload { file, bytes });
    }
    if uploads.is_empty() {
        return Err(ApiError::bad_request("no photos: send multipart/form-data with one file field per photo"));
    }
    Ok(uploads)
}

/// Converts every upload to model input, in parallel, keeping the order.
fn convert_all(uploads: Vec<Upload>, shape: PhotoShape, limits: &Limits) -> Vec<(String, crate::Result<Vec<u8>>)> {
    uploads
        .into_par_iter()
        .map(|u| {
            let pixels = photo::from_bytes_as(&u.bytes, Path::new(&u.file), shape, limits);
            (u.file, pixels)
        })
        .collect()
}

/// One result per upload, in upload order; `scored` has a row for each readable one.
fn results(
    converted: Vec<(String, Result<Vec<u8>, String>)>,
    scored: &Scored,
    served: &Served,
    thresholds: Thresholds,
    top: usize,
) -> Vec<PhotoResult> {
    let mut rows = scored.probabilities.chunks_exact(served.class_names.len());
    let mut scores = scored.ood_scores.iter().flatten();
    converted
        .into_iter()
        .map(|(file, pixels)| match pixels {
            Ok(pixels) => {
                let row = rows.next().expect("one row per readable photo");
                labelled(file, &pixels, (row, scores.next().copied()), served, thresholds, top)
            }
            Err(error) => PhotoResult::Failed { file, error },
        })
        .collect()
}

fn labelled(
    file: String,
    pixels: &[u8],
    scored: (&[f32], Option<f32>),
    served: &Served,
    thresholds: Thresholds,
    top: usize,
) -> PhotoResult {
    let LabelRow { path: file, label, confidence, top, needs_review, ood_score, verdict, .. } =
        LabelRow::from_probabilities(file, scored, &served.class_names, top, thresholds);
    let png = photo::to_png(pixels, served.shape).unwrap_or_default();
    let model_input = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png));
    PhotoResult::Labelled { file, label, confidence, top, needs_review, ood_score, verdict, model_input }
}

#[cfg(test)]
mod tests {
    use crate::data::dataset::fashion_classes;
    use crate::nn::model::Model;
    use crate::nn::spec::ModelSpec;
    use crate::serve::batcher::BatchSettings;
    use crate::serve::repository::Source;
    use crate::serve::state::{AppState, ServeSettings};
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// POSTs one 28×28 PNG to `/v1/label` over TCP; the status and the body.
    async fn upload(addr: std::net::SocketAddr) -> (u16, String) {
        let mut png = Vec::new();
        image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * y) % 256) as u8]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let boundary = "budget-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        body.extend(&png);
        body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
        let head = format!(
            "POST /v1/label HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, answer)
    }

    #[test]
    fn uploads_wait_for_a_spent_decoding_budget_then_get_503_or_their_answer() {
        let dir = tempfile::tempdir().unwrap();
        let model = Model::initialised(ModelSpec::seed(), 10, 1).unwrap();
        crate::model_dir::save(&model, &fashion_classes(), None, None, dir.path()).unwrap();
        let settings = ServeSettings {
            source: Source::Single { name: "wardrobe".into(), dir: dir.path().to_path_buf() },
            model_name: "wardrobe".into(),
            poll: None,
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(2),
            max_concurrent: 8,
            max_connections: 8,
            batch: BatchSettings { max_batch: 8, max_wait: Duration::ZERO, workers: 1 },
            review_below: 0.6,
            max_pixels: 1 << 20,
            max_photos: 4,
            access_log: false,
            review: None,
            memory_budget: 1 << 20,
            photo_deadline: Duration::from_secs(5),
            api_key_file: None,
            protect_metrics: false,
            tls: None,
        };
        let state = Arc::new(AppState::new(settings).unwrap());
        let app = crate::serve::router(state.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            // Someone holds the whole budget: the upload waits half the request timeout, then 503.
            let held = state.budget.reserve(1 << 20, Path::new("held")).unwrap();
            let started = std::time::Instant::now();
            let (status, answer) = upload(addr).await;
            assert_eq!(status, 503, "{answer}");
            assert!(answer.contains("decoding memory budget") && answer.contains("try again"), "{answer}");
            assert!(started.elapsed() >= Duration::from_millis(990), "it waited: {:?}", started.elapsed());
            assert_eq!((state.budget.waits(), state.budget.refusals()), (1, 1));
            // Freed while the next upload waits: it gets its answer.
            let waiting = tokio::spawn(upload(addr));
            while state.budget.waits() < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            drop(held);
            let (status, answer) = waiting.await.unwrap();
            assert_eq!(status, 200, "{answer}");
            assert!(answer.contains("\"verdict\""), "{answer}");
        });
    }
}
