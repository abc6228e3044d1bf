//! The command line: one file per subcommand (its flags, its run, its printing), and what the
//! subcommands share: where the data comes from, which architecture to start from, the Ctrl-C
//! flag, and the printed plan.

pub mod audit;
pub mod bench;
pub mod convert;
pub mod evaluate;
pub mod import;
pub mod label;
pub mod photo;
pub mod predict;
pub mod quantize;
pub mod serve;
pub mod train;
pub mod tune;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use wardrobe::data::dataset::Dataset;
use wardrobe::data::source::DataSource;
use wardrobe::nn::layer::Shape;
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;
use wardrobe::nn::vector::{Kernels, kernels};
use wardrobe::train::run_spec::{RunSpec, SpecFile};
use wardrobe::{Error, Result};

/// Train, evaluate and use a Fashion-MNIST clothing classifier on the CPU.
#[derive(Parser)]
#[command(name = "wardrobe", version, about)]
pub struct Cli {
    /// Worker threads (default: one per core). Results do not depend on it.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Kernels: auto (the fastest this CPU has), avx2 (what a CPU with AVX2 but no AVX-512
    /// runs), portable (no hand-written vector code), reference (textbook loops).
    #[arg(long, global = true, default_value = "auto")]
    pub kernels: Kernels,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Convert between IDX (images + labels files, optionally gzipped) and Kaggle CSV, or a
    /// model directory to ONNX.
    Convert(convert::ConvertArgs),
    /// Import labelled photos (category folders, reviewed labels CSV files) as a data set.
    Import(import::ImportArgs),
    /// Train a model and save it.
    Train(train::TrainArgs),
    /// Score a saved model on the test set.
    Evaluate(evaluate::EvaluateArgs),
    /// Classify test-set items or image files with a saved model.
    Predict(predict::PredictArgs),
    /// Label every photo in a folder (recursively) into a CSV or JSON-lines file.
    Label(label::LabelArgs),
    /// Convert a photo the way Fashion-MNIST was made and save the 28×28 result.
    Photo(photo::PhotoArgs),
    /// Measure engine speed: sgemm ceiling, training and inference throughput, latency, memory.
    Bench(bench::BenchArgs),
    /// Serve a model over HTTP: Open Inference Protocol v2, photo labelling, a web page, metrics.
    Serve(serve::ServeArgs),
    /// Search hyper-parameters on the validation split; save the best as a run spec.
    Tune(tune::TuneArgs),
    /// Find labels to check: confident learning over K folds, near-duplicates, outliers.
    Audit(audit::AuditArgs),
    /// Quantise a trained model to int8 (calibrated on training images) for faster inference.
    Quantize(quantize::QuantizeArgs),
}

/// Which architecture to start from.
#[derive(Args)]
pub struct ArchitectureArgs {
    /// Named architecture and its training recipe: seed (the notebook's CNN and recipe), default
    /// (conv + batch-norm blocks), best (default with dense 512, random erasing, longer); its
    /// input and output follow the data's image shape and classes. Training flags typed override
    /// the recipe.
    #[arg(long, default_value = "seed")]
    pub preset: String,
    /// Architecture from a JSON spec file instead of a preset; a run spec (as `tune` saves) also
    /// sets the training options and validation split, and flags given here override them.
    #[arg(long, conflicts_with = "preset")]
    pub spec: Option<PathBuf>,
}

impl ArchitectureArgs {
    /// The spec file given with `--spec`, read.
    pub fn spec_file(&self) -> Result<Option<SpecFile>> {
        self.spec.as_deref().map(SpecFile::load).transpose()
    }

    /// The named preset's architecture for the images and classes of `data`.
    pub fn preset_for(&self, data: &Dataset) -> Result<ModelSpec> {
        Ok(self.preset_run(data)?.model)
    }

    /// The run `--spec` names, checked against the images of `data` (an architecture-only spec
    /// trains with the seed recipe and validation split), or else the preset's.
    pub fn run_for(&self, data: &Dataset) -> Result<RunSpec> {
        let run = match self.spec_file()? {
            Some(SpecFile::Run(run)) => run,
            Some(SpecFile::Model(model)) => RunSpec { model, ..RunSpec::preset("seed")? },
            None => return self.preset_run(data),
        };
        check_input(&run.model, data)?;
        Ok(run)
    }

    /// The named preset for the images and classes of `data`, with its training recipe.
    pub fn preset_run(&self, data: &Dataset) -> Result<RunSpec> {
        let (rows, cols, channels) = data.shape();
        let mut run = RunSpec::preset(&self.preset)?;
        run.model = run.model.fitted_to(Shape::new(rows, cols, channels), data.classes.len());
        Ok(run)
    }
}

/// Checks that an architecture takes the images of `data`.
pub fn check_input(spec: &ModelSpec, data: &Dataset) -> Result<()> {
    let (rows, cols, channels) = data.shape();
    if spec.input != Shape::new(rows, cols, channels) {
        return Err(Error::Invalid(format!(
            "the architecture takes {} images, the training data has {rows}×{cols}×{channels}",
            spec.input.hwc()
        )));
    }
    Ok(())
}

/// Where the data comes from.
#[derive(Args)]
pub struct DataArgs {
    /// Data directory: Fashion-MNIST's IDX files, or a catalogue made by `wardrobe import`.
    #[arg(long, default_value = wardrobe::data::dataset::DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    /// Kaggle-style CSV to use as the training set instead of the IDX files.
    #[arg(long)]
    pub train_csv: Option<PathBuf>,
    /// Kaggle-style CSV to use as the test set instead of the IDX files.
    #[arg(long)]
    pub test_csv: Option<PathBuf>,
}

impl DataArgs {
    /// The data source these flags name.
    pub fn source(&self) -> DataSource {
        DataSource { dir: self.data.clone(), train_csv: self.train_csv.clone(), test_csv: self.test_csv.clone() }
    }
}

/// What decoding one photo may take, for commands that decode many from strangers.
#[derive(Args)]
pub struct PhotoLimitArgs {
    /// Largest accepted photo in pixels (guards against decompression bombs).
    #[arg(long, default_value_t = wardrobe::data::decode::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Memory photo decoding may hold at once, in MiB: each photo reserves its decoded size
    /// before decoding, waits while the budget is spent, and is refused if it could never fit.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub memory_budget_mib: u64,
    /// Longest one photo's decoding and conversion may take, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub photo_deadline_secs: f64,
}

impl PhotoLimitArgs {
    /// The budget in bytes and the deadline, checked.
    pub fn budget_and_deadline(&self) -> Result<(u64, std::time::Duration)> {
        if !(self.photo_deadline_secs.is_finite() && self.photo_deadline_secs > 0.0) {
            return Err(Error::flag(
                "--photo-deadline-secs",
                self.photo_deadline_secs,
                "must be a positive number of seconds",
            ));
        }
        Ok((self.memory_budget_mib << 20, std::time::Duration::from_secs_f64(self.photo_deadline_secs)))
    }

    /// The limits, with a budget of their own (for a command that is the only decoder).
    pub fn limits(&self, patience: std::time::Duration) -> Result<wardrobe::data::decode::Limits> {
        let (budget, deadline) = self.budget_and_deadline()?;
        Ok(wardrobe::data::decode::Limits {
            max_pixels: self.max_pixels,
            budget: Some(wardrobe::data::budget::Budget::new(budget, patience)),
            deadline: Some(deadline),
        })
    }
}

/// Which algorithm each step of the model runs, in training and in inference (`--kernels`).
pub fn print_plans(model: &Model) {
    if let Some(q) = model.int8() {
        println!("plan for inference (int8, {} products):", q.kernel().name());
        q.describe().lines().for_each(|line| println!("  {line}"));
        return;
    }
    for (mode, train) in [("training", true), ("inference", false)] {
        println!("plan for {mode} ({} kernels):", kernels());
        model.describe_plan(train).lines().for_each(|line| println!("  {line}"));
    }
}

/// Runs `work` with a progress bar over photos that it moves by calling its argument with
/// (done, total); the bar is cleared at the end.
pub fn with_photo_progress<T>(work: impl FnOnce(&mut dyn FnMut(usize, usize)) -> Result<T>) -> Result<T> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} photos {per_sec} ({eta})")
            .expect("valid template"),
    );
    let result = work(&mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    result
}

/// Raised by Ctrl-C; training and tuning check it between steps.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes Ctrl-C raise [`INTERRUPTED`] instead of ending the process.
pub fn install_ctrl_c() -> Result<()> {
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed))
        .map_err(|e| Error::System(format!("cannot install the Ctrl-C handler: {e}")))
}
