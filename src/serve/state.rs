//! What every request handler shares: the model's description, the batching worker, metrics,
//! the concurrency slots and the server settings.

use super::auth::ApiKeys;
use super::batcher::{BatchSettings, Batcher};
use super::metrics::Metrics;
use super::review::ReviewFile;
use crate::data::budget::Budget;
use crate::data::photo::{Limits, PhotoShape};
use crate::error::Result;
use crate::nn::store::Loaded;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Name the model is served under (`/v2/models/{name}`).
    pub model_name: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
    /// Requests handled at once; more get 503.
    pub max_concurrent: usize,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Micro-batching.
    pub batch: BatchSettings,
    /// Photos below this confidence are flagged for a human.
    pub review_below: f32,
    /// Largest accepted photo, in pixels.
    pub max_pixels: u64,
    /// Most photos in one `/v1/label` upload.
    pub max_photos: usize,
    /// Log one line per request to standard error.
    pub access_log: bool,
    /// Labels CSV the review page edits.
    pub review: Option<std::path::PathBuf>,
    /// Bytes photo decoding may hold at once.
    pub memory_budget: u64,
    /// Longest one photo's decoding and conversion may take.
    pub photo_deadline: Duration,
    /// API keys every route but health (and metrics) needs, if any.
    pub api_key_file: Option<std::path::PathBuf>,
    /// Whether `/metrics` needs a key too.
    pub protect_metrics: bool,
}

/// State shared by all requests.
pub struct AppState {
    /// Settings.
    pub settings: ServeSettings,
    /// Class names by index.
    pub class_names: Vec<String>,
    /// The model's input: square images of this side and channel count.
    pub shape: PhotoShape,
    /// The batching model worker.
    pub batcher: Batcher,
    /// Request and batch metrics.
    pub metrics: Arc<Metrics>,
    /// One permit per request in progress.
    pub slots: Arc<Semaphore>,
    /// The labels file under review, with `--review`.
    pub review: Option<ReviewFile>,
    /// The memory photo decoding draws from.
    pub budget: Arc<Budget>,
    /// The accepted API keys, with `--api-key-file`.
    pub api_keys: Option<ApiKeys>,
}

impl AppState {
    /// State serving `loaded` with `settings` (reading the labels file to review, if any);
    /// starts the batching worker.
    pub fn new(loaded: Loaded, settings: ServeSettings) -> Result<AppState> {
        let review = settings.review.as_deref().map(ReviewFile::open).transpose()?;
        let budget = Budget::new(settings.memory_budget, settings.request_timeout / 2);
        let api_keys = settings.api_key_file.as_deref().map(ApiKeys::load).transpose()?;
        let metrics = Arc::new(Metrics::default());
        let shape = loaded.photo_shape()?;
        let batcher = Batcher::start(Arc::new(loaded.model), settings.batch, metrics.clone());
        Ok(AppState {
            review,
            budget,
            api_keys,
            slots: Arc::new(Semaphore::new(settings.max_concurrent)),
            settings,
            class_names: loaded.class_names,
            shape,
            batcher,
            metrics,
        })
    }

    /// What decoding one uploaded photo may take: the pixel limit, the memory budget, the deadline.
    pub fn photo_limits(&self) -> Limits {
        Limits {
            max_pixels: self.settings.max_pixels,
            budget: Some(self.budget.clone()),
            deadline: Some(self.settings.photo_deadline),
        }
    }
}
