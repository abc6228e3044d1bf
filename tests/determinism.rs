//! Same seed, same bits, whatever the thread count: training, its metrics, resuming a
//! checkpoint with another thread count, and inference.

mod common;

use common::{InterruptAfter, Quiet, load};
use std::sync::atomic::AtomicBool;
use wardrobe::data::augment::Augment;
use wardrobe::data::dataset::{Dataset, Split};
use wardrobe::model_dir::EpochStats;
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;
use wardrobe::optim::config::OptimizerConfig;
use wardrobe::optim::lookahead::LookaheadConfig;
use wardrobe::optim::schedule::Schedule;
use wardrobe::train::checkpoint::{self, checkpoint_dir};
use wardrobe::train::config::TrainConfig;
use wardrobe::train::session;
use wardrobe::train::trainer::probabilities;

/// Batches of 96 (three micro-batches, so threads share a step unevenly), augmentation (the
/// flip alternating by epoch, so a resumed epoch must know its number), dropout and lookahead
/// (every 3 steps, so a checkpoint can fall between two returns) on.
fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 96,
        optimizer: OptimizerConfig { lookahead: Some(LookaheadConfig { k: 3, alpha: 0.5 }), ..Default::default() },
        schedule: Schedule::Cosine { warmup: 0.5 },
        augment: Augment { shift: 2, flip: true, alternate: true, erase: 0.5, ..Default::default() },
        label_smoothing: 0.0,
        early_stopping: None,
        seed: 7,
    }
}

/// 700 training images (the last step is short: 28 images, one short micro-batch) and 300
/// validation images.
fn subsets() -> (Dataset, Dataset) {
    let train = load(Split::Train);
    (train.slice(0..700), train.slice(50_000..50_300))
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

/// Trains `spec` for `epochs` on `threads` threads; the weights and each epoch's metrics
/// (without the timings).
fn train(spec: &ModelSpec, threads: usize, epochs: usize) -> (Vec<f32>, Vec<[f64; 4]>) {
    let (train, val) = subsets();
    let dir = tempfile::tempdir().unwrap();
    pool(threads).install(|| {
        let mut model = Model::initialised(spec.clone(), 10, 7).unwrap();
        let never = AtomicBool::new(false);
        let run = (&train, &val);
        session::run(&mut model, Default::default(), config(epochs), None, run, dir.path(), &mut Quiet, &never)
            .unwrap();
        let history = checkpoint::load(&checkpoint_dir(dir.path())).unwrap().resume.state.history;
        (model.params, history.iter().map(metrics).collect())
    })
}

fn metrics(e: &EpochStats) -> [f64; 4] {
    [e.loss, e.accuracy, e.val_loss, e.val_accuracy]
}

#[test]
fn seed_and_default_presets_train_to_the_same_bits_on_1_2_3_and_8_threads() {
    for spec in [ModelSpec::seed(), ModelSpec::default_preset()] {
        let (weights, history) = train(&spec, 1, 1);
        assert!(weights.iter().all(|w| w.is_finite()));
        for threads in [2, 3, 8] {
            let (w, h) = train(&spec, threads, 1);
            assert!(w == weights, "{threads} threads train other weights than 1 thread");
            assert_eq!(h, history, "{threads} threads report other metrics than 1 thread");
        }
    }
}

#[test]
fn a_checkpoint_resumed_with_another_thread_count_continues_exactly() {
    let spec = ModelSpec::default_preset();
    let (straight, history) = train(&spec, 2, 2);
    let (train, val) = subsets();
    let dir = tempfile::tempdir().unwrap();
    let flag = AtomicBool::new(false);
    pool(3).install(|| {
        let mut model = Model::initialised(spec.clone(), 10, 7).unwrap();
        let mut observer = InterruptAfter { after: 10, steps: 0, flag: &flag };
        session::run(&mut model, Default::default(), config(2), None, (&train, &val), dir.path(), &mut observer, &flag)
            .unwrap();
    });
    let ck = checkpoint::load(&checkpoint_dir(dir.path())).unwrap();
    assert_eq!((ck.resume.state.epoch, ck.resume.state.step), (2, 2), "8 steps per epoch: stopped in epoch 2");
    let never = AtomicBool::new(false);
    let mut resumed = ck.model;
    let history_resumed = pool(1).install(|| {
        session::run(
            &mut resumed,
            Default::default(),
            ck.config,
            Some(ck.resume),
            (&train, &val),
            dir.path(),
            &mut Quiet,
            &never,
        )
        .unwrap();
        checkpoint::load(&checkpoint_dir(dir.path())).unwrap().resume.state.history
    });
    assert!(resumed.params == straight, "resumed on 1 thread after 3: other weights than 2 threads straight");
    assert_eq!(history_resumed.iter().map(metrics).collect::<Vec<_>>(), history);
}

#[test]
fn inference_gives_the_same_bits_on_any_thread_count() {
    let model = Model::initialised(ModelSpec::default_preset(), 10, 3).unwrap();
    let images = load(Split::Test).slice(0..203);
    let one = pool(1).install(|| probabilities(&model, &images, false));
    for threads in [2, 3, 8] {
        assert!(pool(threads).install(|| probabilities(&model, &images, false)) == one, "{threads} threads");
    }
}
