//! wardrobe against real peers from Python (a venv at `target/venv`, made by `.ci/run` from
//! `tests/python/requirements.txt`; `WARDROBE_PYTHON` names another interpreter): Triton's own
//! HTTP client in its default settings (binary tensor data) and in JSON.

mod common;

use common::http::Server;
use common::{load, shared_trained_model};
use serde_json::Value;
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
