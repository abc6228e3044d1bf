//! What the README promises of the command line, through the binary on real data: IDX ⇄ CSV
//! conversion, `predict FILE`, `photo`, `evaluate --tta`, the early-stopping flags, `tune
//! --budget-minutes`, Ctrl-C to `train`, and `--threads`.

mod common;

use common::{bin, data_dir, load, run, train_csv, trained_model, write_photo};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wardrobe::data::dataset::Split;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn idx_to_csv_and_back_is_byte_identical_to_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let original = data_dir().join("t10k-images-idx3-ubyte.gz");
    let (csv, idx) = (dir.path().join("test.csv"), dir.path().join("t10k-images-idx3-ubyte"));
    let (ok, out, err) = run(&["convert", path(&original), path(&csv)]);
    assert!(ok && out.contains("converted 10000 images"), "{out}{err}");
    let (ok, out, err) = run(&["convert", path(&csv), path(&idx)]);
    assert!(ok && out.contains("converted 10000 images"), "{out}{err}");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&original).unwrap()).read_to_end(&mut unzipped).unwrap();
    assert!(std::fs::read(&idx).unwrap() == unzipped, "the images differ from the original");
    let labels = dir.path().join("t10k-labels-idx1-ubyte");
    let mut original_labels = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap())
        .read_to_end(&mut original_labels)
        .unwrap();
    assert!(std::fs::read(&labels).unwrap() == original_labels, "the labels differ from the original");
}

#[test]
fn photo_writes_what_predict_sees_for_a_seller_photo() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    trained_model(&model);
    let test = load(Split::Test);
    let photo = write_photo(test.image(0), 0, dir.path());
    let seen = dir.path().join("seen.png");
    let (ok, out, err) = run(&["photo", path(&photo), path(&seen)]);
    assert!(ok && out.contains("what the model sees"), "{out}{err}");
    let img = image::open(&seen).unwrap().into_luma8();
    assert_eq!(img.dimensions(), (28, 28));
    assert_eq!(img.get_pixel(0, 0).0, [0], "background black, as in the data set");
    // The 28×28 grey image is taken as it is, so both give the same answer with the same figures.
    let (ok, out, err) = run(&["predict", "--model", path(&model), path(&photo), path(&seen)]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "three lines a photo: {out}");
    assert!(lines[0].starts_with(&format!("{}: ", photo.display())), "{out}");
    assert!(lines[3].starts_with(&format!("{}: ", seen.display())), "{out}");
    let label = |line: &str| line.rsplit(": ").next().unwrap().to_string();
    assert_eq!(label(lines[0]), "Ankle boot", "test item 0 is an ankle boot: {out}");
    assert_eq!((label(lines[0]), lines[1], lines[2]), (label(lines[3]), lines[4], lines[5]), "{out}");
    assert!(lines[2].trim().starts_with("verdict: label, ood score "), "{out}");
}

#[test]
fn evaluate_tta_averages_each_image_with_its_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    trained_model(&model);
    let figures = |extra: &[&str]| {
        let (ok, out, err) = run(&[&["evaluate", "--model", path(&model), "--json"], extra].concat());
        assert!(ok, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        (json["accuracy"].as_f64().unwrap(), json["loss"].as_f64().unwrap())
    };
    let (plain, tta) = (figures(&[]), figures(&["--tta"]));
    // This model was trained without flips, so its mirror images score lower: --tta is for
    // models that trained with them.
    assert!(plain.0 > 0.75 && tta.0 > 0.6, "{plain:?} {tta:?}");
    assert_ne!(plain.1, tta.1, "the mirrored images change the probabilities");
}

/// Trains on `csv` with a constant learning rate and `extra` flags; the weights and stdout.
fn train(csv: &Path, out: &Path, extra: &[&str]) -> (Vec<u8>, String) {
    let args = [&["train", "--train-csv", path(csv), "--schedule", "constant", "--out", path(out)], extra].concat();
    let (ok, stdout, err) = run(&args);
    assert!(ok, "{err}");
    (std::fs::read(out.join("model.safetensors")).unwrap(), stdout)
}

#[test]
fn early_stopping_flags_stop_and_restore_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 2_000);
    // No later epoch can beat the first by a whole point of accuracy: the run stops after
    // epoch 2 and keeps epoch 1's weights, the same as a run of one epoch.
    let stop = ["--epochs", "6", "--patience", "1", "--monitor", "val-accuracy", "--min-delta", "1.0"];
    let (restored, out) = train(&csv, &dir.path().join("restored"), &stop);
    assert!(out.contains("early stopping"), "{out}");
    assert!(out.contains("epoch 2/6") && !out.contains("epoch 3/6"), "{out}");
    let (one_epoch, _) = train(&csv, &dir.path().join("one"), &["--epochs", "1"]);
    assert!(restored == one_epoch, "the best epoch's weights were not restored");
    let (last, out) = train(&csv, &dir.path().join("last"), &[&stop[..], &["--no-restore-best"]].concat());
    assert!(out.contains("early stopping"), "{out}");
    assert!(last != one_epoch, "--no-restore-best keeps the last epoch's weights");
}

#[test]
fn tune_stops_at_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 3_000);
    let out = dir.path().join("tune");
    let started = Instant::now();
    // Trials far longer than the budget on any machine (200 epochs), so that one is running when
    // the budget ends: a fast machine otherwise finishes a short trial just before the deadline.
    let args = ["tune", "--train-csv", path(&csv), "--trials", "40", "--epochs", "200", "--budget-minutes", "0.1"];
    let (ok, stdout, err) = run(&[&args[..], &["--out", path(&out)]].concat());
    assert!(ok, "{err}");
    let started_trials = stdout.lines().filter(|l| l.starts_with("trial ")).count();
    assert!((1..40).contains(&started_trials), "{started_trials} trials started:\n{stdout}");
    let trials: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    let trials = trials.as_array().unwrap();
    assert_eq!(trials.len(), started_trials, "every started trial is recorded");
    let last = trials.iter().max_by_key(|t| t["trial"].as_u64()).unwrap();
    assert_eq!(last["completed"], false, "the trial running at the deadline was stopped: {last}");
    assert_eq!(last["rank"], serde_json::Value::Null, "and left out of the ranking: {last}");
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
}

#[test]
fn ctrl_c_stops_train_with_a_checkpoint_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 2_000);
    let run_dir = dir.path().join("run");
    let child = Command::new(bin())
        .args(["train", "--train-csv", path(&csv), "--epochs", "50", "--out", path(&run_dir)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let trainer_json = run_dir.join("checkpoint/trainer.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !trainer_json.exists() {
        assert!(Instant::now() < deadline, "no checkpoint after two minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill only sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "Ctrl-C exits 128 + SIGINT, as shells expect");
    let advice = format!("continue with: wardrobe train --resume {}", run_dir.display());
    assert!(stdout.contains("interrupted; checkpoint saved") && stdout.contains(&advice), "{stdout}");
    assert!(!run_dir.join("model.json").exists(), "no final model from an interrupted run");
    let checkpoint = wardrobe::train::checkpoint::load(&run_dir.join("checkpoint")).unwrap();
    assert!(checkpoint.resume.state.epoch >= 1, "the checkpoint says where the run stopped");
}

#[test]
fn threads_change_speed_never_weights() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 1_000);
    let weights = |threads: &str| {
        let out = dir.path().join(format!("t{threads}"));
        let (ok, stdout, err) =
            run(&["--threads", threads, "train", "--train-csv", path(&csv), "--epochs", "1", "--out", path(&out)]);
        assert!(ok, "{err}");
        assert!(stdout.contains(&format!("{threads} threads")), "{stdout}");
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    assert!(weights("1") == weights("3"), "1 and 3 threads trained different weights");
}
