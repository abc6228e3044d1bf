//! `wardrobe serve`: the HTTP server.

use super::PhotoLimitArgs;
use clap::{Args, ValueEnum};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wardrobe::serve::batcher::BatchSettings;
use wardrobe::serve::repository::Source;
use wardrobe::serve::state::ServeSettings;
use wardrobe::serve::tls::TlsFiles;
use wardrobe::{Error, Result};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("models_from").required(true).args(["model", "models"])))]
pub struct ServeArgs {
    /// One model directory, served as version 1 of --name.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A model repository: DIR/NAME/VERSION/ holds a model directory per version (a positive
    /// integer); every version is served, the highest when a request names none.
    #[arg(long, conflicts_with = "model")]
    pub models: Option<PathBuf>,
    /// Look at the model repository every this many seconds for added, changed and removed
    /// versions (default: only at start and on a load request).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_secs: Option<u64>,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Name --model is served under (/v2/models/NAME); with --models, the model the page and
    /// /v1/label use when a request names none (else the only one served).
    #[arg(long, default_value = "wardrobe")]
    pub name: String,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log lines on standard error as text or as one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Most images the model runs together.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_batch: u64,
    /// Longest a request waits for others to join its batch, in microseconds (0: a batch is
    /// whatever queued while the model was busy).
    #[arg(long, default_value_t = 0)]
    pub max_wait_us: u64,
    /// Model worker threads, each running whole batches (default: half the cores, at least 1).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Threads handling HTTP and JSON (default: half the cores, at least 1).
    #[arg(long)]
    pub http_threads: Option<usize>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// Per-request time limit in seconds, body upload included; also the longest a client may take
    /// to send its headers or leave a kept-alive connection idle.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_secs: f64,
    /// Requests handled at once; more are answered 503.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrent: u64,
    /// Open connections at most; more are closed at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Flag photos whose confidence is below this for human review.
    #[arg(long, default_value_t = 0.6)]
    pub review_below: f32,
    /// Most photos in one /v1/label upload.
    #[arg(long, default_value_t = 64)]
    pub max_photos: usize,
    #[command(flatten)]
    pub photo_limits: PhotoLimitArgs,
    /// File of API keys, one per line (re-read on SIGHUP): every route but /v2/health/* (and
    /// /metrics) then needs `Authorization: Bearer KEY`.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// With --api-key-file, /metrics needs a key too.
    #[arg(long, requires = "api_key_file")]
    pub protect_metrics: bool,
    /// Do not log each request to standard error.
    #[arg(long)]
    pub quiet: bool,
    /// A labels CSV (from `wardrobe label`) to review on the page /review: its rows that need
    /// review get their reviewed_label set, and the file is rewritten atomically on each change.
    #[arg(long)]
    pub review: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `TIME LEVEL message key=value…`.
    Text,
    /// One JSON object per line, the fields at the top level.
    Json,
}

/// Standard error behind a 64 KiB buffer: a log line is a copy into memory under a lock, and the
/// buffer reaches standard error when it is full, every 200 ms, and at the end.
struct LogBuffer(Mutex<BufWriter<std::io::Stderr>>);

impl LogBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<std::io::Stderr>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Write for &LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.lock().write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lock().flush()
    }
}

/// Sends the server's `tracing` events to standard error in `format`, through a [`LogBuffer`]
/// (returned, to flush at the end).
fn init_logging(format: LogFormat) -> Result<Arc<LogBuffer>> {
    let buffer = Arc::new(LogBuffer(Mutex::new(BufWriter::with_capacity(64 << 10, std::io::stderr()))));
    let flusher = Arc::downgrade(&buffer);
    std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(move || {
            while let Some(buffer) = flusher.upgrade() {
                let _ = buffer.lock().flush();
                drop(buffer);
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
        .map_err(|e| Error::System(format!("cannot start the log thread: {e}")))?;
    let builder = tracing_subscriber::fmt().with_writer(buffer.clone()).with_target(false).with_ansi(false);
    let _already = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(buffer)
}

/// Half the worker threads (at least one): the server's split between HTTP and the model.
fn half_the_cores() -> usize {
    (rayon::current_num_threads() / 2).max(1)
}

pub fn run(a: ServeArgs) -> Result<()> {
    if !(a.timeout_secs.is_finite() && a.timeout_secs > 0.0) {
        return Err(Error::flag("--timeout-secs", a.timeout_secs, "must be a positive number of seconds"));
    }
    let (memory_budget, photo_deadline) = a.photo_limits.budget_and_deadline()?;
    let log = init_logging(a.log_format)?;
    let (source, what) = match (a.models, a.model) {
        (Some(root), _) => (Source::Directory(root.clone()), format!("the models in {}", root.display())),
        (None, dir) => {
            let dir = dir.ok_or_else(|| Error::Invalid("--model or --models is required".into()))?;
            (Source::Single { name: a.name.clone(), dir: dir.clone() }, dir.display().to_string())
        }
    };
    let tls = a.tls_cert.zip(a.tls_key).map(|(cert, key)| TlsFiles { cert, key });
    let settings = ServeSettings {
        source,
        poll: a.poll_secs.map(std::time::Duration::from_secs),
        tls,
        model_name: a.name,
        max_body_bytes: a.max_body_bytes,
        request_timeout: std::time::Duration::from_secs_f64(a.timeout_secs),
        max_concurrent: a.max_concurrent as usize,
        max_connections: a.max_connections as usize,
        batch: BatchSettings {
            max_batch: a.max_batch as usize,
            max_wait: std::time::Duration::from_micros(a.max_wait_us),
            workers: a.workers.unwrap_or_else(half_the_cores).max(1),
        },
        review_below: a.review_below,
        max_pixels: a.photo_limits.max_pixels,
        memory_budget,
        photo_deadline,
        max_photos: a.max_photos,
        access_log: !a.quiet,
        review: a.review,
        api_key_file: a.api_key_file,
        protect_metrics: a.protect_metrics,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.http_threads.unwrap_or_else(half_the_cores).max(1))
        .enable_all()
        .build()
        .map_err(|e| Error::System(format!("cannot start the runtime: {e}")))?;
    let tls = settings.tls.is_some();
    let served = runtime.block_on(wardrobe::serve::serve(
        settings,
        a.addr,
        |bound| println!("{}", wardrobe::serve::serving_line(&what, bound, tls)),
        wardrobe::serve::shutdown_signal(),
    ));
    let _ = (&*log).flush();
    served?;
    println!("stopped");
    Ok(())
}
