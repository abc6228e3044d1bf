//! Photos that are not of the model's categories: a model trained from real data carries an
//! out-of-distribution score, `label`, `predict` and `evaluate --ood` use it, and receipts
//! (text drawn in the system's font) are told from photos of real test items.

mod common;

use common::{load, run, train_csv, write_photo};
use plotters::prelude::*;
use std::path::Path;
use wardrobe::data::dataset::Split;
use wardrobe::report::canvas::{render_png, text};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `count` receipts: lines of shop words in dark type on white paper.
fn receipts(dir: &Path, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let words = ["TOTAL", "EUR", "VAT", "CASH", "Milk", "Bread", "2.49", "12.00", "Thank you", "Qty", "Item"];
    for i in 0..count {
        let figure = render_png("receipt", 160, 200, |canvas| {
            for line in 0..(5 + i % 6) {
                let words = format!("{} {}", words[(i + line) % words.len()], words[(i * 7 + line * 3) % words.len()]);
                canvas.draw_text(&words, &text(15, RGBColor(20, 20, 20)), (8, 8 + 17 * line as i32))?;
            }
            Ok(())
        })
        .unwrap();
        std::fs::write(dir.join(format!("receipt{i:03}.png")), figure.png).unwrap();
    }
}

#[test]
fn receipts_are_unknown_and_clothing_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 6_000);
    let model = dir.path().join("model");
    let (ok, out, err) = run(&["train", "--train-csv", path(&csv), "--epochs", "3", "--out", path(&model)]);
    assert!(ok, "{out}{err}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(
        (saved["ood"]["method"].as_str(), saved["ood"]["kept"].as_f64()),
        (Some("layer-mahalanobis+confidence"), Some(0.95))
    );
    assert!(saved["ood"]["threshold"].as_f64().unwrap() > 0.0);

    let (clothing, documents) = (dir.path().join("uploads"), dir.path().join("receipts"));
    std::fs::create_dir_all(&clothing).unwrap();
    let test = load(Split::Test);
    for i in 0..60 {
        write_photo(test.image(i), i, &clothing);
    }
    receipts(&documents, 60);

    // evaluate --ood: the receipts against the test set.
    let (ok, out, err) = run(&["evaluate", "--model", path(&model), "--json", "--ood", path(&documents)]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let receipts_vs_test = &json["ood"][0];
    assert_eq!(receipts_vs_test["count"], 60, "{json}");
    assert!(receipts_vs_test["auroc"].as_f64().unwrap() > 0.9, "{receipts_vs_test}");

    // label: every row has a score and a verdict; receipts are unknown, clothing mostly not.
    let labels = dir.path().join("labels.csv");
    for folder in [&clothing, &documents] {
        let (ok, out, err) = run(&["label", "--model", path(&model), path(folder), "--out", path(&labels)]);
        assert!(ok && out.contains("unknown"), "{out}{err}");
    }
    let file = wardrobe::data::labels::LabelsFile::read(&labels).unwrap();
    let column = |name: &str| file.column(name, &labels).unwrap();
    let (verdict, score, review) = (column("verdict"), column("ood_score"), column("needs_review"));
    let unknown_share = |folder: &Path| {
        let rows: Vec<_> = file.records.iter().filter(|r| Path::new(&r[0]).starts_with(folder)).collect();
        assert_eq!(rows.len(), 60);
        for r in &rows {
            assert!(r[score].parse::<f32>().unwrap() >= 0.0, "{r:?}");
            assert_eq!(&r[review] == "true", &r[verdict] != "label", "{r:?}");
        }
        rows.iter().filter(|r| &r[verdict] == "unknown").count() as f64 / 60.0
    };
    let (clothing_unknown, receipts_unknown) = (
        unknown_share(&std::path::absolute(&clothing).unwrap()),
        unknown_share(&std::path::absolute(&documents).unwrap()),
    );
    assert!(clothing_unknown <= 0.2, "{clothing_unknown} of the clothing photos called unknown");
    assert!(receipts_unknown >= 0.8, "only {receipts_unknown} of the receipts called unknown");

    // predict says the same for one receipt, and --unknown-above overrides the threshold.
    let receipt = documents.join("receipt000.png");
    let (ok, out, err) = run(&["predict", "--model", path(&model), path(&receipt)]);
    assert!(ok && out.contains("verdict: unknown, ood score"), "{out}{err}");
    let (ok, out, _) = run(&["predict", "--model", path(&model), path(&receipt), "--unknown-above", "1e9"]);
    assert!(ok && !out.contains("verdict: unknown"), "{out}");
}

#[test]
fn a_broken_score_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 1_000);
    let model = dir.path().join("model");
    let (ok, _, err) = run(&["train", "--train-csv", path(&csv), "--epochs", "1", "--out", path(&model)]);
    assert!(ok, "{err}");
    std::fs::write(model.join("ood.safetensors"), b"garbage").unwrap();
    let (ok, _, err) = run(&["evaluate", "--model", path(&model)]);
    assert!(!ok && err.contains("ood.safetensors") && err.starts_with("error: "), "{err}");
    std::fs::remove_file(model.join("ood.safetensors")).unwrap();
    let (ok, _, err) = run(&["evaluate", "--model", path(&model)]);
    assert!(!ok && err.contains("ood.safetensors"), "{err}");
}
