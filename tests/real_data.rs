//! End-to-end behaviour on the real Fashion-MNIST files.

mod common;

use common::{data_dir, load};
use std::io::Read;
use std::sync::atomic::AtomicBool;
use wardrobe::data::augment::Augment;
use wardrobe::data::convert::convert;
use wardrobe::data::dataset::{Dataset, Split};
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;
use wardrobe::optim::config::OptimizerConfig;
use wardrobe::optim::schedule::Schedule;
use wardrobe::train::config::TrainConfig;
use wardrobe::train::state::TrainObserver;
use wardrobe::train::trainer::{Trainer, evaluate};

struct Quiet;
impl TrainObserver for Quiet {}

fn gunzip(path: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn real_files_have_the_documented_shape() {
    let test = load(Split::Test);
    assert_eq!((test.len(), test.rows, test.cols), (10_000, 28, 28));
    let counts = (0..10).map(|c| test.labels.iter().filter(|&&l| l == c).count()).collect::<Vec<_>>();
    assert_eq!(counts, vec![1000; 10]);
}

#[test]
fn idx_csv_idx_round_trip_is_byte_identical_on_the_real_test_set() {
    let dir = tempfile::tempdir().unwrap();
    let src_images = data_dir().join("t10k-images-idx3-ubyte.gz");
    let csv = dir.path().join("test.csv");
    assert_eq!(convert(&src_images, &csv, None, None).unwrap(), 10_000);
    let back = dir.path().join("t10k-images-idx3-ubyte");
    convert(&csv, &back, None, None).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), gunzip(&src_images));
    let labels = dir.path().join("t10k-labels-idx1-ubyte");
    assert_eq!(std::fs::read(labels).unwrap(), gunzip(&data_dir().join("t10k-labels-idx1-ubyte.gz")));
    let header = std::fs::read_to_string(&csv).unwrap();
    assert!(header.starts_with("label,pixel1,pixel2,") && header.lines().count() == 10_001);
}

fn train_subset(train: &Dataset, epochs: usize, seed: u64) -> Model {
    let mut model = Model::initialised(ModelSpec::seed(), 10, seed).unwrap();
    let config = TrainConfig {
        epochs,
        batch_size: 64,
        optimizer: OptimizerConfig::default(),
        schedule: Schedule::Constant,
        augment: Augment::default(),
        label_smoothing: 0.0,
        early_stopping: None,
        seed,
    };
    let never = AtomicBool::new(false);
    Trainer::new(&mut model, config).fit(train, &train.slice(0..200), &mut Quiet, &never, &mut |_| Ok(())).unwrap();
    model
}

#[test]
fn short_real_training_run_learns_well_above_chance() {
    let train = load(Split::Train).slice(0..6_000);
    let test = load(Split::Test).slice(0..2_000);
    let model = train_subset(&train, 3, 7);
    let eval = evaluate(&model, &test);
    assert!(eval.accuracy > 0.78, "accuracy {} after 3 epochs on 6k images", eval.accuracy);
}

#[test]
fn same_seed_gives_identical_weights_and_another_seed_differs() {
    let train = load(Split::Train).slice(0..1_500);
    let a = train_subset(&train, 1, 11);
    let b = train_subset(&train, 1, 11);
    let c = train_subset(&train, 1, 12);
    assert!(a.params == b.params, "same seed must reproduce the weights bit for bit");
    assert!(a.params != c.params);
}
