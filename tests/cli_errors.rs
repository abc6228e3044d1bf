//! Malformed inputs through the command line: each gives one clear error line and a non-zero
//! exit, never a panic.

mod common;

use common::{assert_clean_failure, data_dir, run};
use std::path::Path;
use wardrobe::data::idx::{IdxArray, write};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A data directory holding a valid tiny test split that `corrupt` may then damage.
fn tiny_data_dir(corrupt: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("t10k-images-idx3-ubyte.gz"), &IdxArray { dims: vec![3, 28, 28], data: vec![7; 3 * 784] })
        .unwrap();
    write(&dir.path().join("t10k-labels-idx1-ubyte.gz"), &IdxArray { dims: vec![3], data: vec![1, 2, 3] }).unwrap();
    corrupt(dir.path());
    dir
}

/// A trained-looking model directory (random weights are enough to exercise loading).
fn model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = wardrobe::nn::model::Model::initialised(wardrobe::nn::spec::ModelSpec::seed(), 10, 1).unwrap();
    wardrobe::model_dir::save(&model, &wardrobe::data::dataset::fashion_classes(), None, None, dir.path()).unwrap();
    dir
}

fn evaluate_on(data: &Path, needle: &str) {
    let model = model_dir();
    assert_clean_failure(&["evaluate", "--model", s(model.path()), "--data", s(data)], needle);
}

#[test]
fn a_valid_tiny_directory_evaluates() {
    let data = tiny_data_dir(|_| {});
    let model = model_dir();
    let (ok, out, err) = run(&["evaluate", "--model", s(model.path()), "--data", s(data.path())]);
    assert!(ok, "{err}");
    assert!(out.contains("samples 3"));
}

#[test]
fn truncated_gzip() {
    let data = tiny_data_dir(|d| {
        let p = d.join("t10k-images-idx3-ubyte.gz");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    });
    evaluate_on(data.path(), "t10k-images-idx3-ubyte.gz: corrupt gzip stream");
}

#[test]
fn wrong_magic() {
    let data = tiny_data_dir(|d| {
        std::fs::copy(d.join("t10k-labels-idx1-ubyte.gz"), d.join("t10k-images-idx3-ubyte.gz")).unwrap();
    });
    evaluate_on(data.path(), "magic number is 2049");
}

#[test]
fn dimension_and_length_mismatch() {
    let data = tiny_data_dir(|d| {
        let mut bytes = wardrobe::data::idx::encode(&IdxArray { dims: vec![3, 28, 28], data: vec![0; 3 * 784] });
        bytes.truncate(bytes.len() - 100);
        std::fs::write(d.join("t10k-images-idx3-ubyte.gz"), bytes).unwrap();
    });
    evaluate_on(data.path(), "need 2352 payload bytes but the file has 2252");
}

#[test]
fn labels_above_nine() {
    let data = tiny_data_dir(|d| {
        write(&d.join("t10k-labels-idx1-ubyte.gz"), &IdxArray { dims: vec![3], data: vec![1, 12, 3] }).unwrap();
    });
    evaluate_on(data.path(), "label 12 at index 1");
}

#[test]
fn images_and_labels_of_different_counts() {
    let data = tiny_data_dir(|d| {
        write(&d.join("t10k-labels-idx1-ubyte.gz"), &IdxArray { dims: vec![2], data: vec![1, 2] }).unwrap();
    });
    evaluate_on(data.path(), "2 labels but");
}

#[test]
fn images_of_the_wrong_size() {
    let data = tiny_data_dir(|d| {
        write(&d.join("t10k-images-idx3-ubyte.gz"), &IdxArray { dims: vec![3, 2, 2], data: vec![0; 12] }).unwrap();
    });
    evaluate_on(data.path(), "the model takes 28×28×1 images, the test set gives 2×2×1");
}

#[test]
fn missing_data_names_the_package() {
    evaluate_on(Path::new("/nonexistent"), "dataset-fashion-mnist");
}

fn csv_with_row(row: &str) -> tempfile::NamedTempFile {
    let mut text = String::from("label");
    for i in 1..=784 {
        text.push_str(&format!(",pixel{i}"));
    }
    text.push('\n');
    text.push_str(&format!("1{}\n", ",0".repeat(784)));
    text.push_str(row);
    let file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn train_on_csv(row: &str, needle: &str) {
    let csv = csv_with_row(row);
    assert_clean_failure(
        &["train", "--train-csv", s(csv.path()), "--epochs", "1", "--out", "/tmp/never-written"],
        needle,
    );
}

#[test]
fn csv_missing_column() {
    train_on_csv(&format!("1{}", ",0".repeat(783)), "line 3: 784 columns, expected 785");
}

#[test]
fn csv_non_number() {
    train_on_csv(&format!("1,abc{}", ",0".repeat(783)), "line 3, column pixel1: 'abc' is not a whole number");
}

#[test]
fn csv_pixel_256() {
    train_on_csv(&format!("1{},256", ",0".repeat(783)), "line 3, column pixel784: 256 is out of range 0–255");
}

#[test]
fn model_dir_with_missing_file() {
    let model = model_dir();
    std::fs::remove_file(model.path().join("model.json")).unwrap();
    assert_clean_failure(&["evaluate", "--model", s(model.path()), "--data", s(&data_dir())], "model.json");
}

#[test]
fn model_dir_with_mismatched_weights() {
    let model = model_dir();
    let json_path = model.path().join("model.json");
    let json = std::fs::read_to_string(&json_path).unwrap().replace("\"units\": 128", "\"units\": 100");
    std::fs::write(&json_path, json).unwrap();
    assert_clean_failure(
        &["predict", "--model", s(model.path()), "--index", "0"],
        "tensor '6.kernel' is F32 [1600, 128]",
    );
}

#[test]
fn bad_flags_are_refused() {
    let (ok, _, err) = run(&["train", "--epochs", "many"]);
    assert!(!ok && err.contains("invalid value 'many'"));
    assert_clean_failure(&["train", "--epochs", "0"], "--epochs must be at least 1");
    assert_clean_failure(&["train", "--val-split", "1.5", "--epochs", "1"], "--val-split '1.5': must be in [0, 1)");
    assert_clean_failure(
        &["train", "--preset", "nope"],
        "preset 'nope': no such preset (available: seed, default, best)",
    );
    assert_clean_failure(&["tune", "--param", "speed=1,2"], "unknown hyper-parameter 'speed'");
    assert_clean_failure(&["tune", "--param", "lr"], "expected NAME=V1,V2");
    assert_clean_failure(&["tune", "--param", "lr=0.1,fast"], "lr=fast: 'fast' is not a valid number here");
    assert_clean_failure(&["tune", "--trials", "0"], "--trials '0': must be at least 1");
    assert_clean_failure(&["tune", "--budget-minutes=-1"], "--budget-minutes '-1': must be a positive number");
    assert_clean_failure(&["serve", "--model", "/nonexistent/model"], "model.json");
    assert_clean_failure(
        &["bench", "serve", "--model", "/nonexistent/model", "--seconds", "1"],
        "did not start: /nonexistent/model: no such directory, so no model.json",
    );
    let spec = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(spec.path(), r#"{"model": 3, "training": {}}"#).unwrap();
    assert_clean_failure(&["train", "--spec", s(spec.path())], "invalid spec");
    // audit trains its fold models from the spec it is given, so a spec for other images is refused.
    let other = wardrobe::nn::spec::ModelSpec::seed().fitted_to(wardrobe::nn::layer::Shape::new(32, 32, 1), 10);
    std::fs::write(spec.path(), serde_json::to_string(&other).unwrap()).unwrap();
    assert_clean_failure(
        &["audit", "--spec", s(spec.path()), "--out", "/nonexistent/audit.csv"],
        "the architecture takes 32×32×1 images, the training data has 28×28×1",
    );
}

#[test]
fn predict_on_a_non_image() {
    let model = model_dir();
    let fake = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    std::fs::write(fake.path(), b"not a png").unwrap();
    assert_clean_failure(&["predict", "--model", s(model.path()), s(fake.path())], "not an image");
    assert_clean_failure(&["predict", "--model", s(model.path()), "--index", "10000"], "--index 10000 is past");
    let big = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    image::GrayImage::new(40, 30).save(big.path()).unwrap();
    let out = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    for args in [
        vec!["predict", "--model", s(model.path()), "--max-pixels", "1000", s(big.path())],
        vec!["photo", "--max-pixels", "1000", s(big.path()), s(out.path())],
    ] {
        assert_clean_failure(&args, "is 40×30, more than the limit of 1000 pixels");
    }
}

/// A saved seed CNN whose directory `damage` then breaks.
fn broken_model(damage: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = model_dir();
    damage(dir.path());
    dir
}

#[test]
fn broken_model_directories_fail_evaluate_predict_and_serve_with_one_line() {
    let json = |d: &Path| d.join("model.json");
    let edit_json = |d: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(json(d)).unwrap();
        assert!(text.contains(from), "{from} in {text}");
        std::fs::write(json(d), text.replace(from, to)).unwrap();
    };
    let truncate = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
    };
    let cases: Vec<(tempfile::TempDir, &str)> = vec![
        (
            // Not square: neither the test set nor the photo pipeline gives such images.
            broken_model(|d| edit_json(d, "\"h\": 28,\n      \"w\": 28", "\"h\": 30,\n      \"w\": 28")),
            "the model takes 30×28×1",
        ),
        (
            broken_model(|d| {
                let mut model =
                    wardrobe::nn::model::Model::initialised(wardrobe::nn::spec::ModelSpec::seed(), 10, 1).unwrap();
                model.params[40] = f32::NAN;
                model.params[900] = f32::INFINITY;
                wardrobe::model_dir::save(&model, &wardrobe::data::dataset::fashion_classes(), None, None, d).unwrap();
            }),
            "tensor '0.kernel' holds NaN at index 40",
        ),
        (
            broken_model(|d| {
                let text = std::fs::read_to_string(json(d)).unwrap();
                let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["class_names"] = serde_json::json!(["a", "b", "c"]);
                std::fs::write(json(d), v.to_string()).unwrap();
            }),
            "must output 3 class logits",
        ),
        (broken_model(|d| truncate(&d.join("model.safetensors"))), "model.safetensors"),
        (broken_model(|d| truncate(&json(d))), "model.json: invalid JSON"),
    ];
    for (dir, needle) in &cases {
        let m = s(dir.path());
        assert_clean_failure(&["evaluate", "--model", m], needle);
        assert_clean_failure(&["predict", "--model", m, "--index", "0"], needle);
        assert_clean_failure(&["serve", "--model", m, "--addr", "127.0.0.1:0"], needle);
    }
}

#[test]
fn a_directory_of_the_wrong_kind_is_named_with_the_command_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("uploads");
    common::write_photo(&[90; 784], 0, &photos);
    let model = model_dir();
    let unfinished = dir.path().join("run");
    std::fs::create_dir_all(unfinished.join("checkpoint")).unwrap();
    let data = wardrobe::data::dataset::DEFAULT_DATA_DIR;
    let cases: [(Vec<&str>, String); 6] = [
        (vec!["train", "--data", s(&photos)], format!("import them first: wardrobe import {}", photos.display())),
        (vec!["train", "--data", s(model.path())], "is a model directory; pass it as --model".into()),
        (vec!["evaluate", "--model", data], "is a data set, not a model: pass it as --data".into()),
        (vec!["evaluate", "--model", s(&photos)], "holds photos, not a model: label them with `wardrobe label".into()),
        (
            vec!["evaluate", "--model", s(&unfinished)],
            format!("continue it with: wardrobe train --resume {}", unfinished.display()),
        ),
        (
            vec!["predict", "--model", s(model.path()), s(&photos)],
            format!("to classify every photo in it use: wardrobe label --model {}", model.path().display()),
        ),
    ];
    for (args, needle) in &cases {
        assert_clean_failure(args, needle);
    }
}
