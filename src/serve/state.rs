//! What every request handler shares: the model repository, metrics, the concurrency slots and
//! the server settings.

use super::auth::ApiKeys;
use super::batcher::BatchSettings;
use super::metrics::Metrics;
use super::repository::{Repository, Source};
use super::review::ReviewFile;
use crate::data::budget::Budget;
use crate::data::decode::Limits;
use crate::error::Result;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Where the models come from.
    pub source: Source,
    /// The model the page, `/v1/label` and the review page use when a request names none (with
    /// a repository of several models).
    pub model_name: String,
    /// Seconds between looks at the repository for added, changed or removed versions.
    pub poll: Option<Duration>,
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
    /// Certificate chain and private key to serve HTTPS with, if any.
    pub tls: Option<super::tls::TlsFiles>,
}

/// State shared by all requests.
pub struct AppState {
    /// Settings.
    pub settings: ServeSettings,
    /// The models served.
    pub repository: Arc<Repository>,
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
    /// State serving `settings.source` (reading the labels file to review, if any); loads the
    /// models and starts their batching workers.
    pub fn new(settings: ServeSettings) -> Result<AppState> {
        let review = settings.review.as_deref().map(ReviewFile::open).transpose()?;
        let budget = Budget::new(settings.memory_budget, settings.request_timeout / 2);
        let api_keys = settings.api_key_file.as_deref().map(ApiKeys::load).transpose()?;
        let metrics = Arc::new(Metrics::default());
        let repository = Arc::new(Repository::open(settings.source.clone(), settings.batch, metrics.clone())?);
        Ok(AppState {
            review,
            budget,
            api_keys,
            slots: Arc::new(Semaphore::new(settings.max_concurrent)),
            settings,
            repository,
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
