//! Shared helpers for the integration tests: the real Fashion-MNIST files, which must be
//! installed (Debian package `dataset-fashion-mnist`); tests fail, never skip, without them.

#![allow(dead_code)]

pub mod http;
pub mod tfevents;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use wardrobe::data::augment::Augment;
use wardrobe::data::dataset::{DEFAULT_DATA_DIR, Dataset, Split, fashion_classes};
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;
use wardrobe::optim::config::OptimizerConfig;
use wardrobe::optim::schedule::Schedule;
use wardrobe::train::config::TrainConfig;
use wardrobe::train::state::TrainObserver;
use wardrobe::train::trainer::Trainer;

/// The real data directory, or a panic naming the package to install.
pub fn data_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("WARDROBE_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into()));
    assert!(
        dir.join("t10k-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST not found in {}: install it with `apt-get install -y dataset-fashion-mnist`",
        dir.display()
    );
    dir
}

/// A real split.
pub fn load(split: Split) -> Dataset {
    Dataset::load_split(&data_dir(), split).expect("real data loads")
}

/// The wardrobe binary built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wardrobe"))
}

/// Runs the binary; returns (exit success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin()).args(args).output().expect("binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Asserts a run failed with exactly one `error:` line mentioning `needle`, and no panic.
pub fn assert_clean_failure(args: &[&str], needle: &str) {
    let (ok, _, err) = run(args);
    assert!(!ok, "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one error line, got {err}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{args:?}: '{}' lacks '{needle}'", lines[0]);
}

/// An observer that ignores everything.
pub struct Quiet;
impl TrainObserver for Quiet {}

/// Raises the interrupt flag after `after` steps.
pub struct InterruptAfter<'a> {
    /// Steps before the flag goes up.
    pub after: usize,
    /// Steps seen so far.
    pub steps: usize,
    /// The flag.
    pub flag: &'a std::sync::atomic::AtomicBool,
}

impl TrainObserver for InterruptAfter<'_> {
    fn step_done(&mut self, _: f64, _: f64) {
        self.steps += 1;
        if self.steps == self.after {
            self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The first `n` real training images written as a Kaggle CSV `train.csv` in `dir`.
pub fn train_csv(dir: &Path, n: usize) -> PathBuf {
    let csv = dir.join("train.csv");
    wardrobe::data::csv::write(&csv, &load(Split::Train).slice(0..n)).unwrap();
    csv
}

/// [`trained_model`] saved once per test binary under the build's temporary directory as `name`.
pub fn shared_trained_model(name: &str) -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        trained_model(&dir);
        dir
    })
}

/// A seed CNN trained briefly on real data and saved into `dir` with its out-of-distribution
/// score, fitted as `train` fits it.
pub fn trained_model(dir: &Path) -> Model {
    let train = load(Split::Train).slice(0..12_000);
    let mut model = Model::initialised(ModelSpec::seed(), 10, 2).unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 64,
        optimizer: OptimizerConfig::default(),
        schedule: Schedule::Cosine { warmup: 0.0 },
        augment: Augment::default(),
        label_smoothing: 0.0,
        early_stopping: None,
        seed: 2,
    };
    Trainer::new(&mut model, config)
        .fit(&train, &train.slice(0..100), &mut Quiet, &AtomicBool::new(false), &mut |_| Ok(()))
        .unwrap();
    let ood = wardrobe::train::session::fit_ood(&model, (&train, &load(Split::Train).slice(12_000..13_000))).unwrap();
    wardrobe::model_dir::save(&model, &fashion_classes(), None, Some(&ood), dir).unwrap();
    model
}

#[path = "../../examples/catalogue/render.rs"]
mod render;
#[allow(unused_imports)]
pub use render::{CATEGORIES, write_photo_as};

/// Test item `i` as a grey seller photo in `dir`.
pub fn write_photo(item: &[u8], i: usize, dir: &Path) -> PathBuf {
    write_photo_as(item, i, dir, false)
}
