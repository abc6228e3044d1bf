//! `evaluate --report DIR` on a model trained from real data: the figures are valid PNGs of a
//! legible size, and report.json agrees with `evaluate --json` and the run's history.

mod common;

use common::{run, train_csv};

#[test]
fn evaluate_report_writes_figures_and_a_consistent_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 3_000);
    let (model, report) = (dir.path().join("run"), dir.path().join("report"));
    let (ok, _, err) =
        run(&["train", "--train-csv", csv.to_str().unwrap(), "--epochs", "2", "--out", model.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, stdout, err) =
        run(&["evaluate", "--model", model.to_str().unwrap(), "--json", "--report", report.to_str().unwrap()]);
    assert!(ok, "{err}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for name in ["confusion.png", "curves.png", "mistakes.png", "ood.png"] {
        let img = image::open(report.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(img.width() >= 600 && img.height() >= 400, "{name} is {}×{}", img.width(), img.height());
        assert!(err.contains(&format!("wrote {}", report.join(name).display())), "{err}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    let mut evaluation = printed.clone();
    for key in ["temperature", "ece", "ece_uncalibrated"] {
        assert_eq!(json[key], printed[key], "{key}");
        evaluation.as_object_mut().unwrap().remove(key);
    }
    // Beside the evaluation, stdout says how the temperature was chosen and how much of the test
    // set is unknown; report.json has the evaluation alone.
    assert!(evaluation.as_object_mut().unwrap().remove("test_unknown_fraction").is_some(), "{printed}");
    let choice = evaluation.as_object_mut().unwrap().remove("calibration").expect("the temperature's choice");
    assert_eq!(json["evaluation"], evaluation);
    // Temperature scaling minimises the validation loss, not the test ECE, so either ECE may be
    // the smaller; both are measured, from different probabilities, at the model's temperature.
    let model_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(printed["temperature"], model_json["temperature"]);
    // The fitted temperature is kept only when it beat its noise on the validation split.
    let kept = choice["kept"].as_bool().unwrap();
    let expected = if kept { choice["fitted"].clone() } else { serde_json::json!(1.0) };
    assert_eq!(printed["temperature"].as_f64().unwrap() as f32, expected.as_f64().unwrap() as f32, "{choice}");
    assert_eq!(model_json["about"]["calibration"], choice);
    let (ece, uncalibrated) = (printed["ece"].as_f64().unwrap(), printed["ece_uncalibrated"].as_f64().unwrap());
    assert!((0.0..0.2).contains(&ece) && (0.0..0.2).contains(&uncalibrated), "{printed}");
    // The calibrated ECE comes from the calibrated probabilities: the same ones when 1 was kept.
    assert_eq!((ece - uncalibrated).abs() > 1e-6, kept, "{printed}");
    assert!(report.join("reliability.png").is_file());
    let accuracy = printed["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.7, "a model trained on 2,700 real images: {accuracy}");
    let wrong = json["misclassified"].as_u64().unwrap();
    assert_eq!(wrong, (10_000.0 * (1.0 - accuracy)).round() as u64);
    let shown = json["most_confident_mistakes"].as_array().unwrap();
    assert_eq!(shown.len(), 40);
    let confidences: Vec<f64> = shown.iter().map(|m| m["confidence"].as_f64().unwrap()).collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "most confident first");
    assert!(shown.iter().all(|m| m["truth"] != m["predicted"]));
    assert_eq!(json["history"].as_array().unwrap().len(), 2);
    let rows = json["confusion_row_percent"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| (r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).sum::<f64>() - 100.0).abs() < 1e-6)
    );
}
