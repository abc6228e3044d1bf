//! What every request handler shares: the model's description, the batching worker, metrics,
//! the concurrency slots and the server settings.

use super::batcher::{BatchSettings, Batcher};
use super::metrics::Metrics;
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
}

/// State shared by all requests.
pub struct AppState {
    /// Settings.
    pub settings: ServeSettings,
    /// Class names by index.
    pub class_names: Vec<String>,
    /// Side of the square input images.
    pub side: usize,
    /// The batching model worker.
    pub batcher: Batcher,
    /// Request and batch metrics.
    pub metrics: Arc<Metrics>,
    /// One permit per request in progress.
    pub slots: Arc<Semaphore>,
}

impl AppState {
    /// State serving `loaded` with `settings`; starts the batching worker.
    pub fn new(loaded: Loaded, settings: ServeSettings) -> AppState {
        let metrics = Arc::new(Metrics::default());
        let side = loaded.model.spec.input.w;
        let batcher = Batcher::start(Arc::new(loaded.model), settings.batch, metrics.clone());
        AppState {
            slots: Arc::new(Semaphore::new(settings.max_concurrent)),
            settings,
            class_names: loaded.class_names,
            side,
            batcher,
            metrics,
        }
    }
}
