//! Early stopping, checkpoints and resuming, on real Fashion-MNIST subsets.

mod common;

use common::{InterruptAfter, Quiet, bin, load, run, train_csv};
use std::sync::atomic::AtomicBool;
use wardrobe::data::augment::Augment;
use wardrobe::data::dataset::{Dataset, Split};
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::{LayerSpec, ModelSpec};
use wardrobe::optim::config::OptimizerConfig;
use wardrobe::optim::schedule::Schedule;
use wardrobe::train::checkpoint::{self, checkpoint_dir};
use wardrobe::train::config::{EarlyStopping, Monitor, TrainConfig};
use wardrobe::train::session;
use wardrobe::train::state::FitEnd;
use wardrobe::train::trainer::{Trainer, evaluate};

fn config(epochs: usize, early_stopping: Option<EarlyStopping>) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 64,
        optimizer: OptimizerConfig::default(),
        schedule: Schedule::Cosine { warmup: 0.5 },
        augment: Augment { shift: 1, flip: true, ..Default::default() },
        label_smoothing: 0.0,
        early_stopping,
        seed: 5,
    }
}

fn subsets() -> (Dataset, Dataset) {
    let train = load(Split::Train);
    (train.slice(0..1_280), train.slice(50_000..51_000))
}

#[test]
fn early_stopping_stops_and_restores_the_best_epoch() {
    let (train, val) = (load(Split::Train).slice(0..320), load(Split::Train).slice(50_000..51_000));
    let es = EarlyStopping { monitor: Monitor::ValLoss, patience: 2, min_delta: 0.0, restore_best: true };
    let mut cfg = config(40, Some(es));
    cfg.augment = Augment::default();
    cfg.optimizer.lr = 3e-3;
    let mut model = Model::initialised(ModelSpec::seed(), 10, 1).unwrap();
    let mut trainer = Trainer::new(&mut model, cfg);
    let end = trainer.fit(&train, &val, &mut Quiet, &AtomicBool::new(false), &mut |_| Ok(())).unwrap();
    let state = trainer.state().clone();
    assert_eq!(end, FitEnd::StoppedEarly, "320 images overfit well before 40 epochs");
    let best = state.best_epoch.unwrap();
    assert_eq!(state.history.len(), best + 2, "stops exactly `patience` epochs after the best");
    let best_loss = state.history.iter().map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
    assert_eq!(state.history[best - 1].val_loss, best_loss);
    assert!(state.history.last().unwrap().val_loss > best_loss);
    let restored = evaluate(&model, &val);
    assert!((restored.loss - best_loss).abs() < 1e-9, "restored weights score {} not {best_loss}", restored.loss);
}

#[test]
fn interrupted_then_resumed_run_ends_exactly_like_an_uninterrupted_one() {
    let (train, val) = subsets();
    let never = AtomicBool::new(false);
    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = Model::initialised(ModelSpec::seed(), 10, 5).unwrap();
    session::run(
        &mut straight,
        Default::default(),
        config(3, None),
        None,
        (&train, &val),
        straight_dir.path(),
        &mut Quiet,
        &never,
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let flag = AtomicBool::new(false);
    let mut model = Model::initialised(ModelSpec::seed(), 10, 5).unwrap();
    let mut observer = InterruptAfter { after: 27, steps: 0, flag: &flag };
    let end = session::run(
        &mut model,
        Default::default(),
        config(3, None),
        None,
        (&train, &val),
        dir.path(),
        &mut observer,
        &flag,
    )
    .unwrap();
    assert_eq!(end, FitEnd::Interrupted);
    let ck = checkpoint::load(&checkpoint_dir(dir.path())).unwrap();
    assert_eq!((ck.resume.state.epoch, ck.resume.state.step), (2, 7), "20 steps per epoch: interrupted in epoch 2");
    let mut resumed = ck.model;
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
    assert!(resumed.params == straight.params, "resumed weights differ from the uninterrupted run");
    let a = std::fs::read_to_string(straight_dir.path().join("history.csv")).unwrap();
    let b = std::fs::read_to_string(dir.path().join("history.csv")).unwrap();
    let metrics = |s: &str| s.lines().map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect::<Vec<_>>();
    assert_eq!(metrics(&a), metrics(&b));
}

#[test]
fn kill_9_mid_training_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 3_000);
    let csv = csv.to_str().unwrap();
    let args = |out: &str| -> Vec<String> {
        ["train", "--train-csv", csv, "--epochs", "4", "--out", out].iter().map(|s| s.to_string()).collect()
    };
    let straight = dir.path().join("straight");
    let (ok, _, err) = run(&args(straight.to_str().unwrap()).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");

    let killed = dir.path().join("killed");
    let mut child = std::process::Command::new(bin())
        .args(args(killed.to_str().unwrap()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state_file = killed.join("checkpoint/trainer.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&state_file).unwrap_or_default();
        if text.contains("\"epoch\": 2,") || text.contains("\"epoch\": 3,") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (ok, out, err) = run(&["train", "--train-csv", csv, "--resume", killed.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("resuming"), "{out}");
    let weights = |d: &std::path::Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(weights(&straight) == weights(&killed), "resumed run's weights differ");
}

#[test]
fn resume_remembers_the_data_and_extends_a_run_to_the_bits_of_a_longer_one() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 1_000);
    let csv = csv.to_str().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (short, long) = (path("short"), path("long"));
    for (out, epochs) in [(&short, "2"), (&long, "3")] {
        let (ok, _, err) =
            run(&["train", "--train-csv", csv, "--schedule", "constant", "--epochs", epochs, "--out", out]);
        assert!(ok, "{err}");
    }
    // Finished: resuming without more epochs has nothing to do, and says how to extend.
    common::assert_clean_failure(&["train", "--resume", &short], "--epochs N");
    // Recipe flags conflict with the saved recipe; a different data source too.
    common::assert_clean_failure(&["train", "--resume", &short, "--epochs", "3", "--lr", "0.01"], "--lr conflicts");
    common::assert_clean_failure(
        &["train", "--resume", &short, "--epochs", "3", "--data", "elsewhere"],
        "drop the flag",
    );
    common::assert_clean_failure(&["train", "--resume", &short, "--epochs", "1"], "already finished 2 epochs");
    // No --train-csv: the run remembers its data source.
    let (ok, out, err) = run(&["train", "--resume", &short, "--epochs", "3"]);
    assert!(ok, "{err}");
    assert!(out.contains("training on 900 images"), "{out}");
    let weights = |d: &str| std::fs::read(std::path::Path::new(d).join("model.safetensors")).unwrap();
    assert!(weights(&short) == weights(&long), "2 epochs extended to 3 differ from 3 epochs from the start");

    // A cosine schedule is laid out over the run's length: extending it is refused.
    let cosine = path("cosine");
    let (ok, _, err) = run(&["train", "--train-csv", csv, "--epochs", "1", "--out", &cosine]);
    assert!(ok, "{err}");
    common::assert_clean_failure(&["train", "--resume", &cosine, "--epochs", "2"], "learning-rate schedule");
    common::assert_clean_failure(&["train", "--resume", &path("none"), "--epochs", "2"], "has no checkpoint");
}

#[test]
fn batch_norm_model_learns_and_updates_its_moving_statistics() {
    let (train, val) = subsets();
    // Momentum 0.9 instead of 0.99: this short run (80 steps) must still settle the averages.
    let mut spec = ModelSpec::preset("default").unwrap();
    for layer in &mut spec.layers {
        if let LayerSpec::BatchNorm { momentum, .. } = layer {
            *momentum = 0.9;
        }
    }
    let mut model = Model::initialised(spec, 10, 3).unwrap();
    let before = model.params.clone();
    let mut trainer = Trainer::new(&mut model, config(4, None));
    trainer.fit(&train, &val, &mut Quiet, &AtomicBool::new(false), &mut |_| Ok(())).unwrap();
    let (_, spec, range) = model.tensors().into_iter().find(|(name, _, _)| name == "1.moving_mean").unwrap();
    assert!(!spec.trainable);
    assert!(model.params[range.clone()].iter().zip(&before[range]).any(|(a, b)| a != b), "moving mean never updated");
    let eval = evaluate(&model, &val);
    assert!(eval.accuracy > 0.7, "default preset trained on 1,280 images reached only {} on 1,000", eval.accuracy);
}

#[test]
fn a_checkpoint_with_fields_out_of_range_is_refused_with_one_line() {
    let (train, val) = (load(Split::Train).slice(0..128), load(Split::Train).slice(50_000..50_064));
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::initialised(ModelSpec::seed(), 10, 5).unwrap();
    let never = AtomicBool::new(false);
    session::run(&mut model, Default::default(), config(2, None), None, (&train, &val), dir.path(), &mut Quiet, &never)
        .unwrap();
    let state_path = checkpoint_dir(dir.path()).join("trainer.json");
    let good = std::fs::read_to_string(&state_path).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
    for (field, bad, needle) in [
        ("best_epoch", serde_json::json!(7), "best epoch 7 of 2"),
        ("best_epoch", serde_json::json!(0), "best epoch 0 of 2"),
        ("epoch", serde_json::json!(0), "epoch 0 after 2 finished epochs"),
        ("epoch", serde_json::json!(9), "epoch 9 after 2 finished epochs"),
    ] {
        let original = value["state"][field].clone();
        value["state"][field] = bad;
        std::fs::write(&state_path, value.to_string()).unwrap();
        let err = checkpoint::load(&checkpoint_dir(dir.path())).err().expect("refused").to_string();
        assert!(err.contains("trainer.json: invalid checkpoint state") && err.contains(needle), "{err}");
        let (ok, _, stderr) = run(&["train", "--resume", dir.path().to_str().unwrap()]);
        assert!(!ok && !stderr.contains("panicked") && stderr.lines().count() == 1, "{stderr}");
        value["state"][field] = original;
    }
    std::fs::write(&state_path, good).unwrap();
    assert!(checkpoint::load(&checkpoint_dir(dir.path())).is_ok());
}

#[test]
fn a_preset_brings_its_recipe_and_typed_flags_override_parts_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 400);
    let csv = csv.to_str().unwrap();
    let recipe = |args: &[&str]| {
        let out = dir.path().join("run");
        let (ok, stdout, err) = run(&[&["train", "--train-csv", csv, "--out", out.to_str().unwrap()], args].concat());
        assert!(ok, "{err}");
        stdout.lines().find_map(|l| l.strip_prefix("recipe: ")).unwrap_or_else(|| panic!("{stdout}")).to_string()
    };
    assert_eq!(
        recipe(&["--preset", "default", "--epochs", "1"]),
        "--epochs 1 --batch-size 64 --optimizer adam --lr 0.004 --schedule cosine:0.5 --augment flip \
         --label-smoothing 0.1 --seed 1 --val-split 0.05"
    );
    assert_eq!(
        recipe(&[
            "--preset",
            "default",
            "--epochs",
            "1",
            "--augment",
            "none",
            "--label-smoothing",
            "0",
            "--val-split",
            "0.1"
        ]),
        "--epochs 1 --batch-size 64 --optimizer adam --lr 0.004 --schedule cosine:0.5 --augment none --seed 1 --val-split 0.1"
    );
    assert_eq!(
        recipe(&["--preset", "best", "--epochs", "1"]),
        "--epochs 1 --batch-size 64 --optimizer adamw --lr 0.004 --schedule cosine:0.5 --augment flip=alternate,erase=0.5 \
         --weight-decay 0.1 --label-smoothing 0.1 --lookahead 5:0.5 --seed 1 --val-split 0.05",
        "the best preset adds random erasing, weight decay and lookahead"
    );
    assert!(
        recipe(&["--preset", "best", "--epochs", "1", "--lookahead", "10:0.8"])
            .contains(" --lookahead 10:0.8 --seed 1"),
        "a typed lookahead replaces the preset's"
    );
    assert!(
        !recipe(&["--preset", "best", "--epochs", "1", "--lookahead", "none"]).contains("lookahead"),
        "--lookahead none turns it off"
    );
    assert_eq!(
        recipe(&["--preset", "seed", "--epochs", "1"]),
        "--epochs 1 --batch-size 64 --optimizer adam --lr 0.001 --schedule cosine --augment none --seed 1 --val-split 0.1",
        "the seed preset keeps the notebook's recipe"
    );
}
