//! `--kernels auto|avx2|portable|reference`: each mode trains and evaluates through the command line,
//! and they agree on real data.

mod common;

use common::{load, run, train_csv};
use wardrobe::data::dataset::Split;

/// Mean training loss of the one epoch `train` printed.
fn epoch_loss(stdout: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with("epoch 1/1")).expect("an epoch line");
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Accuracy and loss of `evaluate --json`.
fn scores(stdout: &str) -> (f64, f64) {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    (v["accuracy"].as_f64().unwrap(), v["loss"].as_f64().unwrap())
}

#[test]
fn every_kernel_mode_trains_and_evaluates_alike() {
    let dir = tempfile::tempdir().unwrap();
    let train = train_csv(dir.path(), 640);
    let test = dir.path().join("test.csv");
    wardrobe::data::csv::write(&test, &load(Split::Test).slice(0..400)).unwrap();
    let (train, test) = (train.to_str().unwrap(), test.to_str().unwrap());
    let mut losses = Vec::new();
    for mode in ["auto", "avx2", "portable", "reference"] {
        let out = dir.path().join(mode);
        let args = ["--kernels", mode, "train", "--train-csv", train, "--test-csv", test, "--epochs", "1"];
        let (ok, stdout, stderr) = run(&[&args[..], &["--seed", "3", "--out", out.to_str().unwrap()]].concat());
        assert!(ok, "{mode}: {stderr}");
        assert!(stdout.contains(&format!("plan for training ({mode} kernels)")), "{mode} prints its plan: {stdout}");
        if mode == "reference" {
            assert!(stdout.contains("0 Conv2D: reference / reference"), "{stdout}");
        }
        losses.push(epoch_loss(&stdout));
    }
    for (mode, loss) in ["avx2", "portable", "reference"].iter().zip(&losses[1..]) {
        assert!((loss - losses[0]).abs() < 2e-3, "{mode} trains to loss {loss}, auto to {}", losses[0]);
    }
    let model = dir.path().join("auto");
    let evaluate = |mode: &str| {
        let (ok, stdout, stderr) =
            run(&["--kernels", mode, "evaluate", "--model", model.to_str().unwrap(), "--test-csv", test, "--json"]);
        assert!(ok, "{mode}: {stderr}");
        scores(&stdout)
    };
    let auto = evaluate("auto");
    assert!(auto.0 > 0.3, "one epoch on 640 images learns something: {auto:?}");
    for mode in ["avx2", "portable", "reference"] {
        let (accuracy, loss) = evaluate(mode);
        assert_eq!(accuracy, auto.0, "{mode} accuracy");
        assert!((loss - auto.1).abs() < 1e-4, "{mode} loss {loss} against {}", auto.1);
    }
}

#[test]
fn an_unknown_kernel_mode_is_refused() {
    let (ok, _, stderr) = run(&["--kernels", "fastest", "evaluate", "--model", "x"]);
    assert!(!ok && !stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("expected auto, avx2, portable or reference"), "{stderr}");
}
