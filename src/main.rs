//! The `wardrobe` command line: parses flags, calls the library, prints, sets the exit code.

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use wardrobe::data::augment::Augment;
use wardrobe::data::convert::convert;
use wardrobe::data::dataset::{CLASS_NAMES, Split};
use wardrobe::data::photo;
use wardrobe::data::source::{DataSource, split_validation};
use wardrobe::label::{self, LabelOptions, label_folder};
use wardrobe::nn::infer::Predictor;
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;
use wardrobe::nn::store;
use wardrobe::nn::vector::{Kernels, kernels, set_kernels};
use wardrobe::optim::config::{OptimizerConfig, OptimizerKind};
use wardrobe::optim::schedule::Schedule;
use wardrobe::predict::top_k;
use wardrobe::report::{self, ReportInput};
use wardrobe::serve::batcher::BatchSettings;
use wardrobe::serve::load_test::{self, LoadSettings};
use wardrobe::serve::state::ServeSettings;
use wardrobe::train::checkpoint;
use wardrobe::train::metrics::Evaluation;
use wardrobe::train::progress::ConsoleProgress;
use wardrobe::train::run_spec::{RunSpec, SpecFile};
use wardrobe::train::session;
use wardrobe::train::tensorboard::TensorBoardLog;
use wardrobe::train::trainer::{self, EarlyStopping, FitEnd, Monitor, TrainConfig, TrainObserver};
use wardrobe::tune::apply::apply;
use wardrobe::tune::output as tune_output;
use wardrobe::tune::space::{Search, SearchSpace};
use wardrobe::tune::tuner::{self, TrialResult, TuneSettings};
use wardrobe::{Error, Result};

/// Train, evaluate and use a Fashion-MNIST clothing classifier on the CPU.
#[derive(Parser)]
#[command(name = "wardrobe", version, about)]
struct Cli {
    /// Worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Kernels: auto (the fastest this CPU has), portable (no hand-written AVX-512: what other
    /// CPUs run), reference (textbook loops).
    #[arg(long, global = true, default_value = "auto")]
    kernels: Kernels,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert between IDX (images + labels files, optionally gzipped) and Kaggle CSV.
    Convert(ConvertArgs),
    /// Train a model and save it.
    Train(TrainArgs),
    /// Score a saved model on the test set.
    Evaluate(EvaluateArgs),
    /// Classify test-set items or image files with a saved model.
    Predict(PredictArgs),
    /// Label every photo in a folder (recursively) into a CSV or JSON-lines file.
    Label(LabelArgs),
    /// Convert a photo the way Fashion-MNIST was made and save the 28×28 result.
    Photo(PhotoArgs),
    /// Measure engine speed: sgemm ceiling, training and inference throughput, latency, memory.
    Bench(BenchArgs),
    /// Serve a model over HTTP: Open Inference Protocol v2, photo labelling, a web page, metrics.
    Serve(ServeArgs),
    /// Search hyper-parameters on the validation split; save the best as a run spec.
    Tune(TuneArgs),
}

/// Which architecture to start from.
#[derive(Args)]
struct ArchitectureArgs {
    /// Named architecture: seed (the notebook's CNN), default (conv + batch-norm blocks), best (default with dense 512).
    #[arg(long, default_value = "seed")]
    preset: String,
    /// Architecture from a JSON spec file instead of a preset; a run spec (as `tune` saves) also
    /// sets the training options and validation split, and flags given here override them.
    #[arg(long, conflicts_with = "preset")]
    spec: Option<PathBuf>,
}

#[derive(Args)]
struct TuneArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    architecture: ArchitectureArgs,
    /// A hyper-parameter and the values to try, NAME=V1,V2,… (repeat the flag for more). Names:
    /// optimizer, lr, batch_size, momentum, l2, weight_decay, dropout, filters (of the first
    /// convolution), schedule, augment (parts joined by +, e.g. flip+shift=2). Default:
    /// lr=0.0003,0.001,0.003 batch_size=64,128 dropout=0.25,0.5 optimizer=adam,adamw.
    #[arg(long = "param")]
    params: Vec<String>,
    /// Trials to run (at most the grid size).
    #[arg(long, default_value_t = 6)]
    trials: usize,
    /// Epochs per trial.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// How trials are picked from the grid.
    #[arg(long, value_enum, default_value = "random")]
    search: Search,
    /// Stop the search after this many minutes (the trial then running is left out).
    #[arg(long)]
    budget_minutes: Option<f64>,
    /// Seed of every trial (initialisation, shuffling, dropout) and of the random search.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fraction of the training set held out for validation (the last images).
    #[arg(long, default_value_t = 0.1)]
    val_split: f64,
    /// Directory for the ranking (trials.json, trials.csv) and the best run spec (best.json).
    #[arg(long, default_value = "runs/tune")]
    out: PathBuf,
    /// TensorBoard directory with the HParams experiment and one run per trial (default OUT/logs).
    #[arg(long)]
    logdir: Option<PathBuf>,
}

impl ArchitectureArgs {
    /// The spec file given with `--spec`, read.
    fn spec_file(&self) -> Result<Option<SpecFile>> {
        self.spec.as_deref().map(SpecFile::load).transpose()
    }
}

fn tune_base(a: &TuneArgs) -> Result<RunSpec> {
    let training = TrainConfig {
        epochs: a.epochs,
        batch_size: 64,
        optimizer: OptimizerConfig::default(),
        schedule: Schedule::parse("cosine").map_err(Error::Invalid)?,
        augment: Augment::default(),
        early_stopping: None,
        seed: a.seed,
    };
    let mut base = match a.architecture.spec_file()? {
        Some(SpecFile::Run(run)) => run,
        Some(SpecFile::Model(model)) => RunSpec { model, training, val_split: a.val_split },
        None => RunSpec { model: ModelSpec::preset(&a.architecture.preset)?, training, val_split: a.val_split },
    };
    (base.training.epochs, base.training.seed, base.val_split) = (a.epochs, a.seed, a.val_split);
    Ok(base)
}

fn run_tune(a: TuneArgs) -> Result<()> {
    positive("epochs", a.epochs)?;
    positive("trials", a.trials)?;
    if a.budget_minutes.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
        return Err(Error::Invalid("--budget-minutes must be a positive number".into()));
    }
    let space = if a.params.is_empty() { SearchSpace::default_space() } else { SearchSpace::parse(&a.params)? };
    let base = tune_base(&a)?;
    let trials = space.trials(a.search, a.trials, a.seed);
    for trial in &trials {
        apply(trial, &base.model, &base.training)?;
    }
    let (train, val) = split_validation(a.data.source().load(Split::Train)?, base.val_split)?;
    let logdir = a.logdir.clone().unwrap_or_else(|| a.out.join("logs"));
    println!(
        "tuning: {} of {} grid points, {} epochs each, {} training / {} validation images; TensorBoard: {}",
        trials.len(),
        space.grid().len(),
        base.training.epochs,
        train.len(),
        val.len(),
        logdir.display()
    );
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed))
        .map_err(|e| Error::Invalid(format!("cannot install the Ctrl-C handler: {e}")))?;
    let settings =
        TuneSettings { logdir, budget: a.budget_minutes.map(|m| std::time::Duration::from_secs_f64(m * 60.0)) };
    let epochs = base.training.epochs;
    let mut observer = |number: usize, trial: &wardrobe::tune::space::Trial| -> Box<dyn TrainObserver> {
        let values: Vec<String> = trial.iter().map(|(p, v)| format!("{}={v}", p.name())).collect();
        println!("trial {number}/{}: {}", trials.len(), values.join(" "));
        Box::new(ConsoleProgress::new(epochs))
    };
    let results = tuner::run(&base, &space, &trials, (&train, &val), &settings, &mut observer, &INTERRUPTED)?;
    let ranking = tuner::ranked(&results);
    print_ranking(&ranking);
    tune_output::save(&a.out, &results, &ranking)?;
    match ranking.first() {
        Some(best) => println!(
            "best: trial {} (val_acc {:.4}); saved {}; repeat it with: wardrobe train --spec {}",
            best.trial,
            best.val_accuracy,
            a.out.join("best.json").display(),
            a.out.join("best.json").display()
        ),
        None => println!("no trial completed"),
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

fn print_ranking(ranking: &[&TrialResult]) {
    println!("{:<5}{:<7}{:>9}{:>10}{:>8}  hyper-parameters", "rank", "trial", "val_acc", "val_loss", "time");
    for (rank, r) in ranking.iter().enumerate() {
        let values: Vec<String> = r.hparams.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<5}{:<7}{:>9.4}{:>10.4}{:>7.1}s  {}",
            rank + 1,
            r.trial,
            r.val_accuracy,
            r.val_loss,
            r.seconds,
            values.join(" ")
        );
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Name the model is served under (/v2/models/NAME).
    #[arg(long, default_value = "wardrobe")]
    name: String,
    /// Most images the model runs together.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_batch: u64,
    /// Longest a request waits for others to join its batch, in microseconds (0: a batch is
    /// whatever queued while the model was busy).
    #[arg(long, default_value_t = 0)]
    max_wait_us: u64,
    /// Model worker threads, each running whole batches (default: half the cores, at least 1).
    #[arg(long)]
    workers: Option<usize>,
    /// Threads handling HTTP and JSON (default: half the cores, at least 1).
    #[arg(long)]
    http_threads: Option<usize>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 32 << 20)]
    max_body_bytes: usize,
    /// Per-request time limit in seconds, body upload included; also the longest a client may take
    /// to send its headers or leave a kept-alive connection idle.
    #[arg(long, default_value_t = 10.0)]
    timeout_secs: f64,
    /// Requests handled at once; more are answered 503.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    max_concurrent: u64,
    /// Open connections at most; more are closed at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Flag photos whose confidence is below this for human review.
    #[arg(long, default_value_t = 0.6)]
    review_below: f32,
    /// Most photos in one /v1/label upload.
    #[arg(long, default_value_t = 64)]
    max_photos: usize,
    /// Largest accepted photo in pixels (guards against decompression bombs).
    #[arg(long, default_value_t = wardrobe::data::photo::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Do not log each request to standard error.
    #[arg(long)]
    quiet: bool,
}

/// Half the worker threads (at least one): the server's split between HTTP and the model.
fn half_the_cores() -> usize {
    (rayon::current_num_threads() / 2).max(1)
}

fn run_serve(a: ServeArgs) -> Result<()> {
    if !(a.timeout_secs.is_finite() && a.timeout_secs > 0.0) {
        return Err(Error::Invalid(format!("--timeout-secs must be positive, got {}", a.timeout_secs)));
    }
    let loaded = store::load(&a.model)?;
    loaded.check_images(photo::SIDE, photo::SIDE, "the photo pipeline")?;
    let settings = ServeSettings {
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
        max_pixels: a.max_pixels,
        max_photos: a.max_photos,
        access_log: !a.quiet,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.http_threads.unwrap_or_else(half_the_cores).max(1))
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the runtime: {e}")))?;
    let model_dir = a.model.display().to_string();
    runtime.block_on(wardrobe::serve::serve(
        loaded,
        settings,
        a.addr,
        |bound| println!("{}", wardrobe::serve::serving_line(&model_dir, bound)),
        wardrobe::serve::shutdown_signal(),
    ))?;
    println!("stopped");
    Ok(())
}

#[derive(Args)]
struct LabelArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Folder of photos.
    folder: PathBuf,
    /// Output file, .csv or .jsonl; rerunning with the same file skips labelled photos.
    #[arg(long)]
    out: PathBuf,
    /// Flag photos whose confidence is below this for human review.
    #[arg(long, default_value_t = 0.6)]
    review_below: f32,
    /// Photos per batch (each batch is flushed to the output).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Largest accepted image in pixels (guards against decompression bombs).
    #[arg(long, default_value_t = wardrobe::data::photo::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
}

#[derive(Args)]
struct PhotoArgs {
    /// Input photo (PNG, JPEG, WebP, BMP, GIF).
    input: PathBuf,
    /// Output PNG (28×28 grey).
    output: PathBuf,
}

/// Where the data comes from.
#[derive(Args)]
struct DataArgs {
    /// Directory with the Fashion-MNIST IDX files.
    #[arg(long, default_value = wardrobe::data::dataset::DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// Kaggle-style CSV to use as the training set instead of the IDX files.
    #[arg(long)]
    train_csv: Option<PathBuf>,
    /// Kaggle-style CSV to use as the test set instead of the IDX files.
    #[arg(long)]
    test_csv: Option<PathBuf>,
}

impl DataArgs {
    fn source(&self) -> DataSource {
        DataSource { dir: self.data.clone(), train_csv: self.train_csv.clone(), test_csv: self.test_csv.clone() }
    }
}

#[derive(Args)]
struct ConvertArgs {
    /// Input: a .csv file, or an IDX images file (its labels file beside it).
    input: PathBuf,
    /// Output: a .csv file, or an IDX images file (gzipped when it ends in .gz).
    output: PathBuf,
    /// Labels file of an IDX input, when its name does not follow the images file.
    #[arg(long)]
    input_labels: Option<PathBuf>,
    /// Labels file of an IDX output, when its name does not follow the images file.
    #[arg(long)]
    output_labels: Option<PathBuf>,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    architecture: ArchitectureArgs,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Images per optimiser step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Update rule.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Base learning rate (the schedule scales it).
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// SGD Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// L2 penalty λ on kernels, added to the loss as λ·Σw².
    #[arg(long, default_value_t = 0.0)]
    l2: f32,
    /// Decoupled weight decay on kernels (default 0.004 for adamw, else 0).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, cosine[:WARMUP_EPOCHS], one-cycle.
    #[arg(long, default_value = "cosine", value_parser = Schedule::parse)]
    schedule: Schedule,
    /// Training augmentation: none, or a comma list of shift=N, flip, rotate=DEG, erase=P.
    #[arg(long, default_value = "none", value_parser = Augment::parse)]
    augment: Augment,
    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fraction of the training set held out for validation (the last images).
    #[arg(long, default_value_t = 0.1)]
    val_split: f64,
    /// Directory for the trained model, its checkpoint and history.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Write TensorBoard event files (train/ and validation/ runs) into this directory.
    #[arg(long)]
    logdir: Option<PathBuf>,
    /// Continue the run in this directory from its checkpoint (its saved settings apply).
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Enable early stopping after this many epochs without improvement.
    #[arg(long)]
    patience: Option<usize>,
    /// Metric early stopping watches.
    #[arg(long, value_enum, default_value = "val-loss")]
    monitor: Monitor,
    /// Smallest change that counts as an improvement.
    #[arg(long, default_value_t = 0.0)]
    min_delta: f64,
    /// Keep the last epoch's weights instead of restoring the best.
    #[arg(long)]
    no_restore_best: bool,
}

#[derive(Args)]
struct EvaluateArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Test-time augmentation: average each image with its mirror image.
    #[arg(long)]
    tta: bool,
    /// Also write figures (confusion matrix, training curves, misclassified images) and
    /// report.json into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Args)]
struct PredictArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Classify test-set item N (repeatable).
    #[arg(long)]
    index: Vec<usize>,
    /// Photos (any size; 28×28 grey images are taken as data-set items as they are).
    images: Vec<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// How many classes to list.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// Test-time augmentation: average each image with its mirror image.
    #[arg(long)]
    tta: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(subcommand)]
    target: Option<BenchTarget>,
    #[command(flatten)]
    data: DataArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Short runs (a smoke test, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Architecture to measure: seed, default or best.
    #[arg(long, default_value = "seed")]
    preset: String,
}

#[derive(Subcommand)]
enum BenchTarget {
    /// Load-test `wardrobe serve` with single-image infer requests from keep-alive connections.
    Serve(ServeBenchArgs),
}

#[derive(Args)]
struct ServeBenchArgs {
    /// Model directory to serve.
    #[arg(long)]
    model: PathBuf,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Unmeasured warm-up seconds before that.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Offer this many requests per second in all (open loop) instead of as many as answered.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds spent first timing a fixed 5 ms of arithmetic, the machine's own latency tail to
    /// read the server's against (0: skip).
    #[arg(long, default_value_t = 5)]
    reference_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data: DataArgs,
    /// Extra `wardrobe serve` options, after `--` (e.g. `-- --max-batch 128`).
    #[arg(last = true)]
    server_args: Vec<String>,
}

fn run_bench_serve(a: ServeBenchArgs) -> Result<()> {
    let images = a.data.source().load(Split::Test)?;
    let settings = LoadSettings {
        connections: a.connections as usize,
        duration: std::time::Duration::from_secs(a.seconds.max(1)),
        warmup: std::time::Duration::from_secs(a.warmup_secs),
        rate: a.rate,
        reference: std::time::Duration::from_secs(a.reference_secs),
    };
    let r = load_test::run(&a.model, &a.server_args, &images, settings)?;
    if a.json {
        println!("{}", serde_json::to_string(&r).expect("report serialises"));
        return Ok(());
    }
    let offered = r.offered_rate.map(|rate| format!(" (offered {rate:.0} req/s)")).unwrap_or_default();
    println!(
        "{} connections, {:.0} s: {} requests, {} errors, {:.0} req/s{offered}",
        r.connections, r.seconds, r.requests, r.errors, r.requests_per_second
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        r.latency_ms_p50, r.latency_ms_p90, r.latency_ms_p99, r.latency_ms_max
    );
    println!(
        "server: {:.0} µs CPU per request; means: batch {:.1} images, queue wait {:.2} ms, batch compute {:.2} ms",
        r.server_cpu_us_per_request, r.mean_batch_size, r.mean_queue_wait_ms, r.mean_batch_compute_ms
    );
    let rss: Vec<String> = r.server_rss_mib.iter().map(|m| format!("{m:.0}")).collect();
    println!("server RSS MiB, each second: {}", rss.join(" "));
    if let Some(j) = &r.reference_work {
        println!(
            "machine alone, fixed 5 ms of arithmetic ({} times): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} ms",
            j.blocks, j.ms_p50, j.ms_p90, j.ms_p99, j.ms_max
        );
    }
    Ok(())
}

/// Which algorithm each step of the model runs, in training and in inference (`--kernels`).
fn print_plans(model: &Model) {
    for (mode, train) in [("training", true), ("inference", false)] {
        println!("plan for {mode} ({} kernels):", kernels());
        model.describe_plan(train).lines().for_each(|line| println!("  {line}"));
    }
}

fn run_bench(a: BenchArgs) -> Result<()> {
    if let Some(BenchTarget::Serve(serve)) = a.target {
        return run_bench_serve(serve);
    }
    let r = wardrobe::bench::run(&a.data.source(), &ModelSpec::preset(&a.preset)?, a.quick)?;
    if a.json {
        println!("{}", serde_json::to_string(&r).expect("report serialises"));
        return Ok(());
    }
    print_plans(&Model::new(ModelSpec::preset(&a.preset)?, 10)?);
    println!(
        "threads {}  sgemm {:.1} GFLOP/s ({:.1} on one thread)",
        r.threads, r.sgemm_gflops_all_threads, r.sgemm_gflops_one_thread
    );
    for t in &r.training {
        println!(
            "train batch {:>3} {:<5} {:>8.0} img/s  {:>6.1} GFLOP/s  {:>5.1}% of ceiling",
            t.batch_size,
            t.mode,
            t.images_per_second,
            t.gflops,
            100.0 * t.fraction_of_ceiling
        );
    }
    println!("inference, calls of 1000 {:.0} img/s ({:.1} GFLOP/s)", r.inference_images_per_second, r.inference_gflops);
    println!(
        "single image {:.4} ms median, {:.4} ms p99 over {} calls",
        r.latency_ms_median, r.latency_ms_p99, r.latency_calls
    );
    println!("peak RSS {:.1} MiB", r.peak_rss_mib);
    Ok(())
}

fn run_label(a: LabelArgs) -> Result<()> {
    let loaded = store::load(&a.model)?;
    loaded.check_images(photo::SIDE, photo::SIDE, "the photo pipeline")?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} photos {per_sec} ({eta})")
            .expect("valid template"),
    );
    let options = LabelOptions { review_below: a.review_below, batch: a.batch, max_pixels: a.max_pixels };
    let summary = label_folder(&loaded.model, &loaded.class_names, &a.folder, &a.out, options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    println!(
        "{} photos: {} labelled now, {} already labelled, {} failed, {} need review",
        summary.found,
        summary.labelled,
        summary.skipped,
        summary.failed.len(),
        summary.needs_review
    );
    for (label, count) in &summary.per_label {
        println!("  {label:<12} {count}");
    }
    for f in &summary.failed {
        println!("  failed: {}", f.reason);
    }
    println!("labels: {}  errors: {}", a.out.display(), label::errors_path(&a.out).display());
    Ok(())
}

fn run_photo(a: PhotoArgs) -> Result<()> {
    let pixels = photo::load(&a.input, photo::DEFAULT_MAX_PIXELS)?;
    let png = photo::to_png(&pixels)?;
    wardrobe::fsutil::write_atomic(&a.output, |out| out.write_all(&png))?;
    println!("wrote {} (28×28, what the model sees)", a.output.display());
    Ok(())
}

fn run_convert(a: ConvertArgs) -> Result<()> {
    let n = convert(&a.input, &a.output, a.input_labels.as_deref(), a.output_labels.as_deref())?;
    println!("converted {n} images: {} -> {}", a.input.display(), a.output.display());
    Ok(())
}

fn positive(name: &str, value: usize) -> Result<()> {
    if value == 0 { Err(Error::Invalid(format!("--{name} must be at least 1"))) } else { Ok(()) }
}

/// Raised by Ctrl-C; training checks it between steps.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn early_stopping(a: &TrainArgs) -> Option<EarlyStopping> {
    a.patience.map(|patience| EarlyStopping {
        monitor: a.monitor,
        patience,
        min_delta: a.min_delta,
        restore_best: !a.no_restore_best,
    })
}

/// Training settings from the flags alone.
fn config_from_flags(a: &TrainArgs) -> TrainConfig {
    TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        optimizer: OptimizerConfig {
            kind: a.optimizer,
            lr: a.lr,
            momentum: a.momentum,
            nesterov: a.nesterov,
            l2: a.l2,
            weight_decay: a.weight_decay.unwrap_or(a.optimizer.default_weight_decay()),
        },
        schedule: a.schedule,
        augment: a.augment,
        early_stopping: early_stopping(a),
        seed: a.seed,
    }
}

/// A run spec's training settings and validation split, with the flags typed on the command
/// line (`explicit`) taking precedence.
fn merge_flags(
    run: &RunSpec,
    flags: TrainConfig,
    a: &TrainArgs,
    explicit: &dyn Fn(&str) -> bool,
) -> (TrainConfig, f64) {
    let mut c = run.training.clone();
    let o = &mut c.optimizer;
    let any = |ids: &[&str]| ids.iter().any(|id| explicit(id));
    (c.epochs, c.batch_size) = (
        pick(explicit("epochs"), flags.epochs, c.epochs),
        pick(explicit("batch_size"), flags.batch_size, c.batch_size),
    );
    o.kind = pick(explicit("optimizer"), flags.optimizer.kind, o.kind);
    o.lr = pick(explicit("lr"), flags.optimizer.lr, o.lr);
    o.momentum = pick(explicit("momentum"), flags.optimizer.momentum, o.momentum);
    o.nesterov = pick(explicit("nesterov"), flags.optimizer.nesterov, o.nesterov);
    o.l2 = pick(explicit("l2"), flags.optimizer.l2, o.l2);
    o.weight_decay = pick(any(&["weight_decay", "optimizer"]), flags.optimizer.weight_decay, o.weight_decay);
    c.schedule = pick(explicit("schedule"), flags.schedule, c.schedule);
    c.augment = pick(explicit("augment"), flags.augment, c.augment);
    c.seed = pick(explicit("seed"), flags.seed, c.seed);
    let stopping = any(&["patience", "monitor", "min_delta", "no_restore_best"]);
    c.early_stopping = pick(stopping, flags.early_stopping, c.early_stopping);
    (c, pick(explicit("val_split"), a.val_split, run.val_split))
}

fn pick<T>(flag_given: bool, flag: T, spec: T) -> T {
    if flag_given { flag } else { spec }
}

/// A new model and its training settings and validation split.
fn fresh_run(a: &TrainArgs, explicit: &dyn Fn(&str) -> bool) -> Result<(Model, TrainConfig, f64)> {
    let flags = config_from_flags(a);
    let (spec, config, val_split) = match a.architecture.spec_file()? {
        Some(SpecFile::Run(run)) => {
            let (config, val_split) = merge_flags(&run, flags, a, explicit);
            (run.model, config, val_split)
        }
        Some(SpecFile::Model(model)) => (model, flags, a.val_split),
        None => (ModelSpec::preset(&a.architecture.preset)?, flags, a.val_split),
    };
    positive("epochs", config.epochs)?;
    positive("batch-size", config.batch_size)?;
    let lr = config.optimizer.lr;
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(Error::Invalid(format!("--lr must be a positive number, got {lr}")));
    }
    let model = Model::initialised(spec, CLASS_NAMES.len(), config.seed)?;
    Ok((model, config, val_split))
}

fn run_train(a: TrainArgs, explicit: &dyn Fn(&str) -> bool) -> Result<()> {
    let (mut model, config, resume, run_dir, val_split) = match &a.resume {
        Some(dir) => {
            let checkpoint::Checkpoint { model, config, resume } = checkpoint::load(&checkpoint::checkpoint_dir(dir))?;
            println!("resuming {} at epoch {} step {}", dir.display(), resume.state.epoch, resume.state.step);
            (model, config, Some(resume), dir.clone(), a.val_split)
        }
        None => {
            let (model, config, val_split) = fresh_run(&a, explicit)?;
            (model, config, None, a.out.clone(), val_split)
        }
    };
    let full = a.data.source().load(Split::Train)?;
    let (train, val) = split_validation(full, val_split)?;
    println!("{}", model.summary());
    print_plans(&model);
    println!(
        "training on {} images, validating on {}, {} threads",
        train.len(),
        val.len(),
        rayon::current_num_threads()
    );
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed))
        .map_err(|e| Error::Invalid(format!("cannot install the Ctrl-C handler: {e}")))?;
    let mut console = ConsoleProgress::new(config.epochs);
    let mut tensorboard = a.logdir.as_deref().map(|dir| TensorBoardLog::create(dir, &CLASS_NAMES)).transpose()?;
    let mut observers: Vec<&mut dyn TrainObserver> = vec![&mut console];
    if let Some(tb) = tensorboard.as_mut() {
        observers.push(tb);
    }
    let end = session::run(&mut model, config, resume, (&train, &val), &run_dir, &mut observers, &INTERRUPTED)?;
    if let Some(e) = tensorboard.as_mut().and_then(TensorBoardLog::take_error) {
        return Err(e);
    }
    match end {
        FitEnd::Interrupted => {
            println!("interrupted; checkpoint saved, continue with: wardrobe train --resume {}", run_dir.display());
            return Err(Error::Interrupted);
        }
        FitEnd::StoppedEarly => println!("early stopping: validation stopped improving"),
        FitEnd::Completed => {}
    }
    println!("saved {}", run_dir.display());
    Ok(())
}

fn run_evaluate(a: EvaluateArgs) -> Result<()> {
    let loaded = store::load(&a.model)?;
    let test = a.data.source().load(Split::Test)?;
    loaded.check_data(&test, "the test set")?;
    let probs = trainer::probabilities(&loaded.model, &test, a.tta);
    let eval = Evaluation::from_probabilities(&probs, &test.labels, &loaded.class_names);
    if let Some(dir) = &a.report {
        let history = wardrobe::train::history::load(&a.model)?;
        let input = ReportInput {
            model: &a.model,
            evaluation: &eval,
            probabilities: &probs,
            data: &test,
            names: &loaded.class_names,
            history: history.as_deref(),
            tta: a.tta,
        };
        for path in report::write(dir, &input)? {
            eprintln!("wrote {}", path.display());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&eval).expect("evaluation serialises"));
    } else {
        print!("{}", eval.table());
    }
    Ok(())
}

fn run_predict(a: PredictArgs) -> Result<()> {
    if a.index.is_empty() && a.images.is_empty() {
        return Err(Error::Invalid("give image files or --index N".into()));
    }
    let loaded = store::load(&a.model)?;
    let mut items: Vec<(String, Vec<u8>, Option<u8>)> = Vec::new();
    if !a.index.is_empty() {
        let test = a.data.source().load(Split::Test)?;
        loaded.check_data(&test, "the test set")?;
        for &i in &a.index {
            if i >= test.len() {
                return Err(Error::Invalid(format!("--index {i} is past the test set's {} images", test.len())));
            }
            items.push((format!("test[{i}]"), test.image(i).to_vec(), Some(test.labels[i])));
        }
    }
    if !a.images.is_empty() {
        loaded.check_images(photo::SIDE, photo::SIDE, "the photo pipeline")?;
    }
    for path in &a.images {
        items.push((path.display().to_string(), photo::load(path, photo::DEFAULT_MAX_PIXELS)?, None));
    }
    let pixels: Vec<u8> = items.iter().flat_map(|(_, p, _)| p.iter().copied()).collect();
    let mut predictor = Predictor::new(&loaded.model, 64);
    let probs = if a.tta { predictor.probabilities_tta(&pixels) } else { predictor.probabilities(&pixels) };
    for ((name, _, truth), probs) in items.iter().zip(probs.chunks_exact(loaded.class_names.len())) {
        let ranked = top_k(probs, &loaded.class_names, a.top_k);
        let truth = truth.map(|t| loaded.class_names[t as usize].clone());
        if a.json {
            let line =
                serde_json::json!({ "input": name, "label": ranked[0].label, "top": ranked, "true_label": truth });
            println!("{line}");
        } else {
            let top: Vec<String> =
                ranked.iter().map(|r| format!("{} {:.1}%", r.label, 100.0 * r.probability)).collect();
            let truth = truth.map(|t| format!("  (true: {t})")).unwrap_or_default();
            println!("{name}: {}{truth}\n    {}", ranked[0].label, top.join(", "));
        }
    }
    Ok(())
}

/// Dies quietly on a closed pipe (`wardrobe … | head`), as Unix tools do, instead of panicking
/// in `println!`.
fn restore_default_sigpipe() {
    // SAFETY: setting a signal disposition to its default before any thread starts is sound.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    restore_default_sigpipe();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(threads) = cli.threads
        && let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build_global()
    {
        eprintln!("error: cannot start {threads} threads: {e}");
        return ExitCode::FAILURE;
    }
    set_kernels(cli.kernels);
    let result = match cli.command {
        Command::Convert(a) => run_convert(a),
        Command::Train(a) => {
            let train = matches.subcommand_matches("train");
            run_train(a, &|id| train.and_then(|m| m.value_source(id)) == Some(ValueSource::CommandLine))
        }
        Command::Evaluate(a) => run_evaluate(a),
        Command::Predict(a) => run_predict(a),
        Command::Label(a) => run_label(a),
        Command::Photo(a) => run_photo(a),
        Command::Bench(a) => run_bench(a),
        Command::Serve(a) => run_serve(a),
        Command::Tune(a) => run_tune(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
