//! `wardrobe quantize` on a seed CNN trained on real data: the int8 model keeps the float
//! model's test accuracy within 0.3 pt, runs in every command that takes a model, gives the
//! same bits on any thread count and with the textbook kernels, and its file is checked.

mod common;

use common::http::Server;
use common::{assert_clean_failure, load, run, trained_model};
use serde_json::json;
use wardrobe::data::dataset::Split;
use wardrobe::nn::infer::{INFERENCE_BATCH, Predictor};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The JSON `wardrobe evaluate` prints for `model`, after `kernels`.
fn evaluation(kernels: &str, model: &std::path::Path) -> serde_json::Value {
    let (ok, stdout, err) = run(&["--kernels", kernels, "evaluate", "--model", s(model), "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn int8_model_keeps_the_accuracy_and_runs_everywhere_with_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let (float, int8) = (dir.path().join("float"), dir.path().join("int8"));
    trained_model(&float);
    let (ok, stdout, err) = run(&["quantize", s(&float), s(&int8)]);
    assert!(ok, "{err}");
    assert!(stdout.contains("activation ranges from 1000 training images"), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("test accuracy:")).expect("accuracy line");
    let figures: Vec<f64> =
        line.split(['%', ' ']).filter_map(|w| w.strip_prefix('(').unwrap_or(w).parse().ok()).collect();
    let (before, after) = (figures[0], figures[1]);
    eprintln!("{line}");
    assert!(before > 75.0 && (after - before).abs() <= 0.3, "{line}");

    // evaluate agrees with quantize's figure, and the textbook kernels give the same numbers.
    let auto = evaluation("auto", &int8);
    assert!((100.0 * auto["accuracy"].as_f64().unwrap() - after).abs() < 0.005, "{auto}");
    assert_eq!(auto, evaluation("reference", &int8), "the fast int8 kernels against the textbook loops");
    assert_eq!(auto, evaluation("avx2", &int8));
    assert_eq!(auto, evaluation("portable", &int8));
    assert_ne!(auto["loss"], evaluation("auto", &float)["loss"], "evaluate ran the int8 form");

    // Same probabilities, bit for bit, on 1, 2 and 3 threads.
    let model = wardrobe::model_dir::load(&int8).unwrap().model;
    let images = load(Split::Test).slice(0..1_000).images;
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| Predictor::new(&model, INFERENCE_BATCH).probabilities(&images))
    };
    let one = on(1);
    assert_eq!(one, on(2));
    assert_eq!(one, on(3));

    // predict, label, serve and bench take it.
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    let photo = common::write_photo(load(Split::Test).image(0), 0, &photos);
    let (ok, stdout, err) = run(&["predict", "--model", s(&int8), s(&photo)]);
    assert!(ok && stdout.contains("Ankle boot"), "{stdout}{err}");
    let labels = dir.path().join("labels.csv");
    let (ok, stdout, err) = run(&["label", "--model", s(&int8), s(&photos), "--out", s(&labels)]);
    assert!(ok, "{stdout}{err}");
    assert!(std::fs::read_to_string(&labels).unwrap().contains("Ankle boot"));
    let server = Server::start(&int8, &["--quiet"], dir.path().join("server.log"));
    let pixels: Vec<u8> = images[..2 * 784].to_vec();
    let body = json!({ "inputs": [{ "name": "images", "shape": [2, 28, 28], "datatype": "UINT8", "data": pixels }] });
    let r = server.post_json("/v2/models/wardrobe/infer", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let served: Vec<f32> =
        r.json()["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(served, one[..20], "the server answers what the library computes");
    let (ok, stdout, err) = run(&["bench", "--model", s(&int8), "--quick", "--json"]);
    assert!(ok, "{err}");
    let bench: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(bench["precision"].as_str().unwrap().starts_with("int8"), "{bench}");
    assert!(bench["training"].as_array().unwrap().is_empty());

    // Refusals: quantising twice, and scales that do not fit the model.
    assert_clean_failure(&["quantize", s(&int8), s(&dir.path().join("again"))], "is already quantised");
    let json = std::fs::read_to_string(int8.join("model.json")).unwrap();
    let mut file: serde_json::Value = serde_json::from_str(&json).unwrap();
    file["int8"]["activation_scales"] = serde_json::json!([0.1, 0.2]);
    std::fs::write(int8.join("model.json"), file.to_string()).unwrap();
    assert_clean_failure(
        &["evaluate", "--model", s(&int8)],
        "model.json: int8: 2 activation scales, the quantised model has 3 hidden layers",
    );
    file["int8"]["activation_scales"] = serde_json::json!([0.1, -0.2, 0.3]);
    std::fs::write(int8.join("model.json"), file.to_string()).unwrap();
    assert_clean_failure(&["evaluate", "--model", s(&int8)], "activation scale 1 is -0.2, not a positive number");
}
