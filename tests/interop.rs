//! wardrobe against real peers from Python (a venv at `target/venv`, made by `.ci/run` from
//! `tests/python/requirements.txt`; `WARDROBE_PYTHON` names another interpreter): Triton's own
//! HTTP client in its default settings (binary tensor data) and in JSON.

mod common;

use common::http::Server;
use common::{load, shared_trained_model};
use serde_json::{Value, json};
use std::path::PathBuf;
use wardrobe::data::dataset::{CLASS_NAMES, Split};

/// The Python with the peers installed; fails, saying how to make it, when there is none.
fn python() -> PathBuf {
    let path = std::env::var_os("WARDROBE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: python3 -m venv target/venv && target/venv/bin/pip install -r tests/python/requirements.txt",
        path.display()
    );
    path
}

/// Runs a script of tests/python with `args`; its standard output as JSON.
fn script(name: &str, args: &[&str]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(name);
    let out = std::process::Command::new(python()).arg(path).args(args).output().expect("python runs");
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[test]
fn triton_client_defaults_binary_and_json_agree() {
    let model = shared_trained_model("interop-model");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(model, &["--quiet"], dir.path().join("server.log"));
    let test = load(Split::Test).slice(0..256);
    let images = dir.path().join("images.u8");
    std::fs::write(&images, &test.images).unwrap();
    let got = script("triton_client.py", &[&server.addr, images.to_str().unwrap(), "28", "28"]);
    assert_eq!(got["live"], true);
    assert!(got["extensions"].as_array().unwrap().iter().any(|e| e == "binary_tensor_data"), "{}", got["extensions"]);
    let rows = |key: &str| -> Vec<Vec<f64>> { serde_json::from_value(got[key].clone()).unwrap() };
    let (binary, json) = (rows("default"), rows("json"));
    assert_eq!(binary.len(), 256);
    assert_eq!(binary, json, "the same probabilities, bit for bit");
    let argmax = |r: &Vec<f64>| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
    let correct = binary.iter().zip(&test.labels).filter(|(r, l)| argmax(r) == **l as usize).count();
    assert!(correct > 200, "{correct}/256 right");
    let classes: Vec<Vec<String>> = serde_json::from_value(got["classes_binary"].clone()).unwrap();
    assert_eq!(got["classes_binary"], got["classes_json"]);
    for (row, probs) in classes.iter().zip(&binary) {
        assert_eq!(row.len(), 3);
        let top = argmax(probs);
        assert_eq!(row[0], format!("{}:{top}:{}", probs[top] as f32, CLASS_NAMES[top]));
    }
}

/// Probabilities wardrobe's own predictor gives the model in `dir` for `data`.
fn wardrobe_probabilities(dir: &std::path::Path, data: &wardrobe::data::dataset::Dataset) -> Vec<f32> {
    let loaded = wardrobe::model_dir::load(dir).unwrap();
    wardrobe::train::trainer::probabilities(&loaded.model, data, false)
}

#[test]
fn an_exported_model_gives_wardrobe_s_probabilities_in_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    // A calibrated default-preset model (batch norm, same padding), as `train` saves it.
    let train = dir.path().join("train.csv");
    wardrobe::data::csv::write(&train, &load(Split::Train).slice(0..3000)).unwrap();
    let model = dir.path().join("model");
    let (ok, _, err) = common::run(&[
        "train",
        "--preset",
        "default",
        "--train-csv",
        train.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let onnx = dir.path().join("m.onnx");
    let (ok, out, err) = common::run(&["convert", model.to_str().unwrap(), onnx.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("input images UINT8 [N,28,28], output probabilities FP32 [N,10] and ood_score FP32 [N]"),
        "{out}"
    );

    let test = load(Split::Test);
    let images = dir.path().join("test.u8");
    std::fs::write(&images, &test.images).unwrap();
    let got = script("onnx_runtime.py", &[onnx.to_str().unwrap(), images.to_str().unwrap(), "28", "28"]);
    assert_eq!(got["inputs"][0]["type"], "tensor(uint8)");
    assert_eq!(got["outputs"][0]["name"], "probabilities");
    let names: Vec<String> = serde_json::from_str(got["metadata"]["class_names"].as_str().unwrap()).unwrap();
    assert_eq!(names, CLASS_NAMES);
    let theirs: Vec<Vec<f64>> = serde_json::from_value(got["probabilities"].clone()).unwrap();
    let ours = wardrobe_probabilities(&model, &test);
    assert_eq!(theirs.len(), test.len());
    let worst = theirs.iter().flatten().zip(&ours).map(|(t, &o)| (t - f64::from(o)).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-5, "largest difference {worst}");
    let argmax = |r: &[f64]| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
    let right = |rows: Vec<usize>| rows.iter().zip(&test.labels).filter(|(p, l)| **p == **l as usize).count();
    let theirs_right = right(theirs.iter().map(|r| argmax(r)).collect());
    let ours_as_f64: Vec<Vec<f64>> = ours.chunks(10).map(|r| r.iter().map(|&p| f64::from(p)).collect()).collect();
    assert_eq!(theirs_right, right(ours_as_f64.iter().map(|r| argmax(r)).collect()), "same accuracy");
    eprintln!("ONNX Runtime vs wardrobe: largest difference {worst:.2e}, accuracy {}", theirs_right as f64 / 1e4);

    // The second output: the same out-of-distribution scores as wardrobe's.
    assert_eq!(got["outputs"][1]["name"], "ood_score");
    let theirs: Vec<f64> = serde_json::from_value(got["ood_score"].clone()).unwrap();
    let loaded = wardrobe::model_dir::load(&model).unwrap();
    let (probs, features) =
        wardrobe::nn::infer::Predictor::new(&loaded.model, 256).probabilities_and_features(&test.images);
    let ood = loaded.ood.expect("train fits a score");
    let ours = ood.score.scores(&features, &probs, 10);
    let worst = theirs
        .iter()
        .zip(&ours)
        .map(|(t, &o)| (t - f64::from(o)).abs() / f64::from(o).abs().max(1.0))
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "largest relative difference of the scores {worst}");
    assert_eq!(got["metadata"]["unknown_above"].as_str().unwrap().parse::<f32>().unwrap(), ood.threshold);
}

#[test]
fn a_keras_exported_seed_cnn_evaluates_to_keras_own_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("keras-seed.onnx");
    // One epoch on 10,000 images keeps the test short; the accuracy is Keras' own on the test set.
    let keras = script("keras_seed_onnx.py", &[onnx.to_str().unwrap(), "--train", "10000", "--epochs", "1"]);
    let keras_accuracy = keras["accuracy"].as_f64().unwrap();
    let model = dir.path().join("model");
    let (ok, out, err) = common::run(&["convert", onnx.to_str().unwrap(), model.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("10 classes (T-shirt/top, Trouser") && out.contains("input 28×28×1"), "{out}");
    let (ok, out, err) = common::run(&["evaluate", "--model", model.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let ours = serde_json::from_str::<Value>(&out).unwrap()["accuracy"].as_f64().unwrap();
    assert!((ours - keras_accuracy).abs() <= 0.001, "wardrobe {ours} vs Keras {keras_accuracy}");
    assert!(ours > 0.7, "{ours}");
    let test = load(Split::Test).slice(0..3);
    let probs = wardrobe_probabilities(&model, &test);
    let head: Vec<Vec<f64>> = serde_json::from_value(keras["probabilities_head"].clone()).unwrap();
    let worst = head.iter().flatten().zip(&probs).map(|(k, &w)| (k - f64::from(w)).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-4, "Keras and wardrobe probabilities differ by {worst}");

    // Imported without a score, evaluating has none to report; with --ood-data it gets one.
    assert!(serde_json::from_str::<Value>(&out).unwrap().get("test_unknown_fraction").is_none());
    let scored = dir.path().join("scored");
    let data = wardrobe::data::dataset::DEFAULT_DATA_DIR;
    let (ok, out, err) =
        common::run(&["convert", onnx.to_str().unwrap(), scored.to_str().unwrap(), "--ood-data", data]);
    assert!(ok && out.contains("out-of-distribution score fitted: unknown above "), "{out}{err}");
    let (ok, out, err) = common::run(&["evaluate", "--model", scored.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let unknown = serde_json::from_str::<Value>(&out).unwrap()["test_unknown_fraction"].as_f64().unwrap();
    assert!((0.01..=0.08).contains(&unknown), "{unknown} of the test set unknown");
}

/// `wardrobe predict --json --top-k 10` probabilities of test items `0..n`, by class index.
fn predicted(model: &std::path::Path, n: usize) -> Vec<Vec<f64>> {
    let mut args = vec!["predict".to_string(), "--model".into(), model.to_str().unwrap().into(), "--json".into()];
    args.extend(["--top-k".into(), "10".into()]);
    args.extend((0..n).flat_map(|i| ["--index".to_string(), i.to_string()]));
    let (ok, out, err) = common::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    out.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            let mut probs = vec![0.0; 10];
            for t in row["top"].as_array().unwrap() {
                probs[t["index"].as_u64().unwrap() as usize] = t["probability"].as_f64().unwrap();
            }
            probs
        })
        .collect()
}

#[test]
fn triton_client_drives_the_model_repository_versions_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for file in std::fs::read_dir(from).unwrap() {
            let file = file.unwrap().path();
            if file.is_file() {
                std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
            }
        }
    };
    copy(shared_trained_model("interop-model"), &repo.join("fashion/1"));
    let csv = common::train_csv(dir.path(), 2000);
    let v2 = repo.join("fashion/2");
    let (ok, _, err) = common::run(&[
        "train",
        "--preset",
        "seed",
        "--train-csv",
        csv.to_str().unwrap(),
        "--epochs",
        "1",
        "--seed",
        "5",
        "--out",
        v2.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    copy(&v2, &repo.join("shop/3"));
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "team-key-1\n").unwrap();
    let args = ["--models", repo.to_str().unwrap(), "--api-key-file", keys.to_str().unwrap(), "--quiet"];
    let server = Server::start_with(&args, dir.path().join("server.log"));
    let n = 32;
    let images = dir.path().join("images.u8");
    std::fs::write(&images, &load(Split::Test).slice(0..n).images).unwrap();
    let got =
        script("triton_repository.py", &[&server.addr, "team-key-1", images.to_str().unwrap(), "28", "28", "fashion"]);

    assert_eq!((&got["live_without_key"], &got["ready_without_key"]), (&Value::Bool(true), &Value::Bool(true)));
    for refused in ["index_without_key", "infer_without_key", "wrong_key"] {
        assert_eq!(got[refused], "401", "{refused}");
    }
    let index: Vec<(String, String, String)> = got["index"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["version"].as_str().unwrap().into(),
                r["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    let ready = |name: &str, v: &str| (name.to_string(), v.to_string(), "READY".to_string());
    assert_eq!(index, [ready("fashion", "1"), ready("fashion", "2"), ready("shop", "3")]);

    // Each version answers as its own run directory's `predict` does.
    let close = |served: &Value, want: &[Vec<f64>]| {
        let rows: Vec<Vec<f64>> = serde_json::from_value(served["probabilities"].clone()).unwrap();
        assert_eq!(rows.len(), want.len());
        let worst = rows.iter().flatten().zip(want.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-6, "largest difference from predict {worst}");
    };
    let (p1, p2) = (predicted(&repo.join("fashion/1"), n), predicted(&v2, n));
    assert_ne!(p1, p2, "the two versions are different models");
    close(&got["versions"]["fashion/1"], &p1);
    close(&got["versions"]["fashion/2"], &p2);
    close(&got["versions"]["shop/3"], &p2);
    assert_eq!(got["versions"]["fashion/1"]["version"], "1");
    assert_eq!((&got["latest"]["fashion"]["version"], &got["latest"]["shop"]["version"]), (&json!("2"), &json!("3")));
    close(&got["latest"]["fashion"], &p2);
    assert_eq!(got["metadata"]["versions"], json!(["1", "2"]));

    let unloaded = &got["after_unload"];
    assert_eq!(unloaded["ready"], false);
    assert_eq!(unloaded["infer_status"], "404");
    assert_eq!(unloaded["index"][0], json!({ "name": "fashion", "state": "UNAVAILABLE", "reason": "unloaded" }));
    assert_eq!(got["ready_after_load"], true);
    close(&got["after_load"], &p2);
}

#[test]
fn an_exported_int8_model_runs_in_onnx_runtime_as_wardrobe_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let (int8, onnx) = (dir.path().join("int8"), dir.path().join("q.onnx"));
    let float = shared_trained_model("interop-model").to_str().unwrap();
    let (ok, _, err) = common::run(&["quantize", float, int8.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, _, err) = common::run(&["convert", int8.to_str().unwrap(), onnx.to_str().unwrap()]);
    assert!(ok, "{err}");
    let model = std::fs::read(&onnx).unwrap();
    let text = String::from_utf8_lossy(&model);
    assert!(text.contains("QuantizeLinear") && text.contains("DequantizeLinear"), "a QDQ graph");

    let test = load(Split::Test);
    let images = dir.path().join("test.u8");
    std::fs::write(&images, &test.images).unwrap();
    let got = script("onnx_runtime.py", &[onnx.to_str().unwrap(), images.to_str().unwrap(), "28", "28"]);
    let theirs: Vec<Vec<f64>> = serde_json::from_value(got["probabilities"].clone()).unwrap();
    let ours = wardrobe_probabilities(&int8, &test);
    let argmax = |r: &[f64]| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
    let ours: Vec<Vec<f64>> = ours.chunks(10).map(|r| r.iter().map(|&p| f64::from(p)).collect()).collect();
    let agree = theirs.iter().zip(&ours).filter(|(t, o)| argmax(t) == argmax(o)).count();
    let worst = theirs.iter().flatten().zip(ours.iter().flatten()).map(|(t, o)| (t - o).abs()).fold(0.0, f64::max);
    let right = |rows: &[Vec<f64>]| rows.iter().zip(&test.labels).filter(|(p, l)| argmax(p) == **l as usize).count();
    eprintln!(
        "int8 in ONNX Runtime vs wardrobe: {agree} of 10,000 labels agree, largest difference {worst:.3}, right {} vs {}",
        right(&theirs),
        right(&ours)
    );
    // ONNX Runtime rounds its requantisation half to even, wardrobe half up: a few values
    // move by one step. Measured: 9,998 agree, largest difference 0.012, accuracy 91.11% / 91.13%
    // (the seed preset trained 10 epochs).
    assert!(agree >= 9_950 && worst < 0.05, "{agree} agree, largest difference {worst}");
    assert!(right(&theirs).abs_diff(right(&ours)) <= 10);
    assert_eq!(got["outputs"][1]["name"], "ood_score");
}
