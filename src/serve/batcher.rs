//! Micro-batching: requests queue their images for a few worker threads. A free worker takes the
//! queue, gathers whatever is waiting (up to a maximum batch, waiting at most a short time for
//! more), hands the queue on and runs its batch through the model on its own thread, so one
//! worker gathers while the others compute. Throughput grows with load while a lone request waits
//! only briefly.

use super::api_error::ApiError;
use super::metrics::Metrics;
use crate::nn::infer::{INFERENCE_BATCH, outputs_into};
use crate::nn::model::Model;
use crate::ood::Ood;
use axum::http::StatusCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Most images run together (a single larger request still runs whole).
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch.
    pub max_wait: Duration,
    /// Worker threads, each running whole batches.
    pub workers: usize,
}

/// Images of one request, when they were queued, and where to send their probabilities.
struct Job {
    queued: Instant,
    pixels: Vec<u8>,
    reply: oneshot::Sender<Scored>,
}

/// What the model says of a request's images.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Class probabilities, a row per image.
    pub probabilities: Vec<f32>,
    /// Each image's out-of-distribution score, when the model has one.
    pub ood_scores: Option<Vec<f32>>,
}

/// Handle to the batching worker; cloning shares the worker.
#[derive(Clone)]
pub struct Batcher {
    jobs: Sender<Job>,
}

impl Batcher {
    /// Starts the worker threads over `model`; they end when every handle is dropped.
    pub fn start(model: Arc<Model>, ood: Option<Arc<Ood>>, settings: BatchSettings, metrics: Arc<Metrics>) -> Batcher {
        let (jobs, queue) = channel();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..settings.workers.max(1) {
            let (model, ood, queue, metrics) = (model.clone(), ood.clone(), queue.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("batcher-{i}"))
                .spawn(move || work(&model, ood.as_deref(), settings, &queue, &metrics))
                .expect("spawn a batching thread");
        }
        Batcher { jobs }
    }

    /// Class probabilities (one row per image) and out-of-distribution scores of u8 `pixels`,
    /// image after image.
    pub async fn infer(&self, pixels: Vec<u8>) -> Result<Scored, ApiError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model worker has stopped");
        self.jobs.send(Job { queued: Instant::now(), pixels, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }
}

/// A worker's loop: take a batch of jobs from the queue, run them, answer each.
fn work(model: &Model, ood: Option<&Ood>, settings: BatchSettings, queue: &Mutex<Receiver<Job>>, metrics: &Metrics) {
    let input = model.input_size();
    let mut ws = model.workspace(settings.max_batch.min(INFERENCE_BATCH));
    let (mut pixels, mut probs, mut features) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(jobs) = next_batch(queue, settings, input) {
        let started = Instant::now();
        pixels.clear();
        jobs.iter().for_each(|job| pixels.extend_from_slice(&job.pixels));
        let images = pixels.len() / input;
        probs.resize(images * model.classes(), 0.0);
        features.resize(if ood.is_some() { images * model.features_len() } else { 0 }, 0.0);
        outputs_into(model, &mut ws, &pixels, &mut probs, ood.map(|_| &mut features[..]));
        let scores = ood.map(|o| o.score.scores(&features, &probs, model.classes()));
        let waits = jobs.iter().map(|job| started.saturating_duration_since(job.queued));
        metrics.record_batch(images, waits, started.elapsed());
        answer(jobs, (&probs, scores.as_deref()), model.classes(), input);
    }
}

/// The next batch, gathered while holding the queue; `None` once every handle is gone.
fn next_batch(queue: &Mutex<Receiver<Job>>, settings: BatchSettings, input: usize) -> Option<Vec<Job>> {
    let queue = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let first = queue.recv().ok()?;
    Some(gather(first, &queue, settings, input))
}

/// `first` plus the jobs that arrive before the batch is full or the wait is over.
fn gather(first: Job, queue: &Receiver<Job>, settings: BatchSettings, input: usize) -> Vec<Job> {
    let deadline = Instant::now() + settings.max_wait;
    let mut images = first.pixels.len() / input;
    let mut jobs = vec![first];
    while images < settings.max_batch {
        match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(job) => {
                images += job.pixels.len() / input;
                jobs.push(job);
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    jobs
}

/// Sends each job its rows of `probs`; a client that has gone away is skipped.
fn answer(jobs: Vec<Job>, (probs, scores): (&[f32], Option<&[f32]>), classes: usize, input: usize) {
    let mut start = 0;
    for job in jobs {
        let images = start / classes..start / classes + job.pixels.len() / input;
        let end = images.end * classes;
        let scored =
            Scored { probabilities: probs[start..end].to_vec(), ood_scores: scores.map(|s| s[images].to_vec()) };
        let _gone = job.reply.send(scored);
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::spec::ModelSpec;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_get_their_own_rows_and_share_batches() {
        let model = Arc::new(Model::initialised(ModelSpec::seed(), 10, 3).unwrap());
        let metrics = Arc::new(Metrics::default());
        let settings = BatchSettings { max_batch: 16, max_wait: Duration::from_millis(20), workers: 2 };
        let batcher = Batcher::start(model.clone(), None, settings, metrics.clone());
        let images: Vec<Vec<u8>> =
            (0..24).map(|i| (0..784).map(|p| ((p * 7 + i * 13) % 256) as u8).collect()).collect();
        let tasks: Vec<_> = images
            .iter()
            .map(|img| {
                let (b, img) = (batcher.clone(), img.clone());
                tokio::spawn(async move { b.infer(img).await.unwrap().probabilities })
            })
            .collect();
        let mut expected = crate::nn::infer::Predictor::new(&model, 1);
        for (task, img) in tasks.into_iter().zip(&images) {
            let got = task.await.unwrap();
            let want = expected.probabilities(img);
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
        }
        let (batches, images_run) = metrics.batch_totals();
        assert_eq!(images_run, 24);
        assert!(batches < 24, "24 concurrent requests ran in {batches} batches");
    }
}
