//! `wardrobe bench` and `wardrobe bench serve`: engine and server measurements.

use super::{DataArgs, print_plans};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::bench::engine::Target;
use wardrobe::bench::load::{self, LoadSettings};
use wardrobe::data::dataset::Split;
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: Option<BenchTarget>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Short runs (a smoke test, not a measurement).
    #[arg(long)]
    pub quick: bool,
    /// Architecture to measure: seed, default or best.
    #[arg(long, default_value = "seed")]
    pub preset: String,
    /// Measure this model directory's inference (float or int8) instead of a preset's.
    #[arg(long, conflicts_with = "preset")]
    pub model: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum BenchTarget {
    /// Load-test `wardrobe serve` with infer requests (single images by default) from keep-alive
    /// connections.
    Serve(ServeBenchArgs),
}

#[derive(Args)]
pub struct ServeBenchArgs {
    /// Model directory to serve.
    #[arg(long)]
    pub model: PathBuf,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub connections: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Unmeasured warm-up seconds before that.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Offer this many requests per second in all (open loop) instead of as many as answered.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds spent first timing a fixed 5 ms of arithmetic, the machine's own latency tail to
    /// read the server's against (0: skip).
    #[arg(long, default_value_t = 5)]
    pub reference_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Test images in each infer request.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub images_per_request: u64,
    /// Send images and receive probabilities as binary tensor data (Triton's extension).
    #[arg(long)]
    pub binary: bool,
    /// Send `Authorization: Bearer KEY` with every request (start the server with
    /// `-- --api-key-file FILE`).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Leave the server's access log on (`-- --log-format json` makes it JSON); its lines are
    /// read and discarded.
    #[arg(long)]
    pub access_log: bool,
    #[command(flatten)]
    pub data: DataArgs,
    /// Extra `wardrobe serve` options, after `--` (e.g. `-- --max-batch 128`).
    #[arg(last = true)]
    pub server_args: Vec<String>,
}

pub fn run(a: BenchArgs) -> Result<()> {
    if let Some(BenchTarget::Serve(serve)) = a.target {
        return run_serve(serve);
    }
    let loaded = a.model.as_deref().map(wardrobe::model_dir::load).transpose()?;
    let spec = ModelSpec::preset(&a.preset)?;
    let target = match &loaded {
        Some(loaded) => Target::Model(&loaded.model),
        None => Target::Architecture(&spec),
    };
    let r = wardrobe::bench::engine::run(&a.data.source(), target, a.quick)?;
    if a.json {
        println!("{}", serde_json::to_string(&r).expect("report serialises"));
        return Ok(());
    }
    match &loaded {
        Some(loaded) => print_plans(&loaded.model),
        None => print_plans(&Model::new(spec, 10)?),
    }
    println!("inference in {}", r.precision);
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

fn run_serve(a: ServeBenchArgs) -> Result<()> {
    let images = a.data.source().load(Split::Test)?;
    let settings = LoadSettings {
        connections: a.connections as usize,
        duration: std::time::Duration::from_secs(a.seconds.max(1)),
        warmup: std::time::Duration::from_secs(a.warmup_secs),
        rate: a.rate,
        reference: std::time::Duration::from_secs(a.reference_secs),
        images_per_request: a.images_per_request as usize,
        binary: a.binary,
        api_key: a.api_key,
        access_log: a.access_log,
    };
    let r = load::run(&a.model, &a.server_args, &images, settings)?;
    if a.json {
        println!("{}", serde_json::to_string(&r).expect("report serialises"));
        return Ok(());
    }
    let offered = r.offered_rate.map(|rate| format!(" (offered {rate:.0} req/s)")).unwrap_or_default();
    let k = a.images_per_request as f64;
    println!(
        "{} connections, {:.0} s: {} requests, {} errors, {:.0} req/s, {:.0} images/s{offered}",
        r.connections,
        r.seconds,
        r.requests,
        r.errors,
        r.requests_per_second,
        r.requests_per_second * k
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
