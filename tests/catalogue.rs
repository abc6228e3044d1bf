//! A marketplace's own catalogue, end to end through the binary: real Fashion-MNIST items
//! rendered as seller photos under the shop's own categories (not the ten classes) are imported,
//! trained on, evaluated, labelled, reviewed, imported again with the reviews and fine-tuned; a
//! colour catalogue at 32×32 trains and serves.

mod common;

use common::http::{Server, multipart};
use common::{CATEGORIES, load, run, write_photo_as};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use wardrobe::data::dataset::{Dataset, Split};

/// The shop's categories, sorted (the order `import` gives them).
fn categories() -> Vec<String> {
    CATEGORIES.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// Items `range` of `split` as seller photos in one folder per category under `dir`.
fn catalogue(split: Split, range: std::ops::Range<usize>, dir: &Path, colour: bool) {
    let data = load(split);
    for i in range {
        write_photo_as(data.image(i), i, &dir.join(CATEGORIES[data.labels[i] as usize]), colour);
    }
}

/// Items `range` of the test split as unlabelled uploads in `dir`; their categories by path.
fn uploads(range: std::ops::Range<usize>, dir: &Path) -> HashMap<String, String> {
    let data = load(Split::Test);
    range
        .map(|i| {
            let path = std::path::absolute(write_photo_as(data.image(i), i, dir, false)).unwrap();
            (path.display().to_string(), CATEGORIES[data.labels[i] as usize].to_string())
        })
        .collect()
}

fn ok(args: &[&str]) -> String {
    let (success, out, err) = run(args);
    assert!(success, "{args:?} failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The rows of a labels CSV.
fn rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| header.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.into(), v.into())).collect())
        .collect()
}

fn accuracy(labels: &Path, truth: &HashMap<String, String>) -> f64 {
    let rows = rows(labels);
    rows.iter().filter(|r| truth[&r["path"]] == r["label"]).count() as f64 / rows.len() as f64
}

#[test]
fn own_categories_are_imported_trained_labelled_reviewed_and_fine_tuned() {
    let dir = tempfile::tempdir().unwrap();
    let (cat, data) = (dir.path().join("catalogue"), dir.path().join("data"));
    catalogue(Split::Train, 0..3000, &cat, false);
    // The same photo under another category, and a broken file.
    let first = std::fs::read_dir(cat.join("Hosen")).unwrap().next().unwrap().unwrap().path();
    std::fs::copy(&first, cat.join("Taschen/copy.png")).unwrap();
    std::fs::write(cat.join("Taschen/broken.jpg"), b"\xff\xd8 not really").unwrap();

    let out = ok(&["import", s(&cat), "--out", s(&data)]);
    assert!(
        out.contains("3002 photos found") && out.contains("1 duplicates (1 with another label), 1 unreadable"),
        "{out}"
    );
    assert!(out.contains("7 classes at 28×28×1") && out.contains("Jacken & Mäntel"), "{out}");
    let train = Dataset::load_split(&data, Split::Train).unwrap();
    assert_eq!(train.classes, categories());

    let run1 = dir.path().join("run1");
    let out = ok(&["train", "--data", s(&data), "--epochs", "3", "--out", s(&run1)]);
    assert!(out.contains("of 7 classes") && out.contains("calibration: temperature"), "{out}");
    let model: Value = serde_json::from_str(&std::fs::read_to_string(run1.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["class_names"], json!(categories()));
    assert!(model["temperature"].as_f64().unwrap() > 0.0);
    let about = &model["about"];
    assert_eq!(
        (about["architecture"].as_str(), about["seed"].as_u64(), about["epochs"].as_u64()),
        (Some("preset seed"), Some(1), Some(3))
    );
    assert_eq!(about["data"]["source"], json!(std::path::absolute(&data).unwrap()));
    assert_eq!(about["data"]["classes"], 7);
    assert_eq!(
        about["data"]["train"].as_u64().unwrap() + about["data"]["validation"].as_u64().unwrap(),
        train.len() as u64
    );
    assert!(about["final_epoch"]["val_accuracy"].as_f64().unwrap() > 0.7, "{about}");
    assert!(
        about["created"].as_str().unwrap().ends_with('Z') && about["wardrobe_version"] == env!("CARGO_PKG_VERSION")
    );

    let report = dir.path().join("report");
    let out = ok(&["evaluate", "--model", s(&run1), "--data", s(&data), "--json", "--report", s(&report)]);
    let eval: Value = serde_json::from_str(&out).unwrap();
    assert!(eval["accuracy"].as_f64().unwrap() > 0.8, "{eval}");
    assert!(eval["ece"].as_f64().unwrap() < 0.1 && eval["ece_uncalibrated"].as_f64().is_some(), "{eval}");
    let names: Vec<&str> = eval["classes"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, categories());
    assert!(report.join("reliability.png").is_file() && report.join("confusion.png").is_file());
    // Each mistake names its original photo: a file in its true category's folder.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    let mistakes = json["most_confident_mistakes"].as_array().unwrap();
    assert!(!mistakes.is_empty());
    for m in mistakes {
        let photo = std::path::Path::new(m["photo"].as_str().unwrap());
        let folder = photo.parent().unwrap().file_name().unwrap().to_str().unwrap();
        assert!(photo.is_file() && folder == m["truth"].as_str().unwrap(), "{m}");
    }
    // The figure puts the photo beside the input: twice as wide a tile as Fashion-MNIST's.
    let figure = image::open(report.join("mistakes.png")).unwrap();
    assert!(figure.width() >= 1000, "{}", figure.width());
    // Reliability bins carry their counts, which add up to the test set.
    let counted: u64 = json["reliability"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, Dataset::load_split(&data, Split::Test).unwrap().len() as u64);

    let new = dir.path().join("new");
    let truth = uploads(0..300, &new);
    let labels = dir.path().join("labels.csv");
    let out = ok(&["label", "--model", s(&run1), s(&new), "--out", s(&labels)]);
    assert!(out.contains("Jacken & Mäntel"), "{out}");
    let first_accuracy = accuracy(&labels, &truth);
    assert!(first_accuracy > 0.8, "{first_accuracy}");
    let header = std::fs::read_to_string(&labels).unwrap().lines().next().unwrap().to_string();
    assert!(header.ends_with(",needs_review,ood_score,verdict,reviewed_label"), "{header}");

    // A reviewer fills reviewed_label of the rows that need review (with the truth).
    let mut reader = csv::Reader::from_path(&labels).unwrap();
    let head = reader.headers().unwrap().clone();
    let column = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (needs_review, reviewed_label) = (column("needs_review"), column("reviewed_label"));
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let mut w = csv::Writer::from_path(&labels).unwrap();
    w.write_record(&head).unwrap();
    let mut reviewed = 0;
    for r in &records {
        let mut fields: Vec<String> = r.iter().map(String::from).collect();
        if fields[needs_review] == "true" {
            fields[reviewed_label] = truth[&fields[0]].clone();
            reviewed += 1;
        }
        w.write_record(&fields).unwrap();
    }
    drop(w);
    assert!(reviewed > 0, "some rows need review");

    let data2 = dir.path().join("data2");
    let out = ok(&["import", s(&cat), s(&labels), "--out", s(&data2)]);
    assert!(out.contains(&format!("{} photos found", 3002 + reviewed)), "{out}");
    assert!(out.contains(&format!("{} CSV rows not reviewed", 300 - reviewed)), "{out}");
    let out = ok(&["import", s(&cat), s(&labels), "--accept-confident", "--out", s(&data2)]);
    assert!(out.contains("3302 photos found") && out.contains("0 CSV rows not reviewed"), "{out}");
    let run2 = dir.path().join("run2");
    let out = ok(&["train", "--data", s(&data2), "--init-from", s(&run1), "--epochs", "1", "--out", s(&run2)]);
    assert!(out.contains("every layer starts from its weights"), "{out}");
    let out = ok(&["predict", "--model", s(&run2), "--data", s(&data2), "--index", "0", "--json"]);
    let predicted: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(categories().contains(&predicted["label"].as_str().unwrap().to_string()), "{predicted}");
    assert!(categories().contains(&predicted["true_label"].as_str().unwrap().to_string()), "{predicted}");

    // Fine-tuning on a catalogue with a category less starts the last layer afresh.
    let six = dir.path().join("six");
    std::fs::rename(cat.join("Taschen"), dir.path().join("bags-elsewhere")).unwrap();
    ok(&["import", s(&cat), "--out", s(&six)]);
    let run3 = dir.path().join("run3");
    let out = ok(&["train", "--data", s(&six), "--init-from", s(&run1), "--epochs", "1", "--out", s(&run3)]);
    assert!(out.contains("its 7 classes are not the data's 6, so the last layer starts afresh"), "{out}");
    let (success, _, err) = run(&["evaluate", "--model", s(&run3), "--data", s(&data)]);
    assert!(!success && err.contains("the model's 6 classes") && err.contains("are not the test set's 7"), "{err}");
}

#[test]
fn a_colour_catalogue_at_32_pixels_trains_labels_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (cat, data, model) = (dir.path().join("colour"), dir.path().join("data"), dir.path().join("model"));
    catalogue(Split::Train, 0..1500, &cat, true);
    let out = ok(&["import", s(&cat), "--out", s(&data), "--size", "32", "--channels", "3"]);
    assert!(out.contains("7 classes at 32×32×3"), "{out}");
    let test = Dataset::load_split(&data, Split::Test).unwrap();
    assert_eq!(test.shape(), (32, 32, 3));
    ok(&["train", "--data", s(&data), "--epochs", "2", "--out", s(&model)]);
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(spec["spec"]["input"], json!({ "h": 32, "w": 32, "c": 3 }));
    let eval: Value =
        serde_json::from_str(&ok(&["evaluate", "--model", s(&model), "--data", s(&data), "--json"])).unwrap();
    assert!(eval["accuracy"].as_f64().unwrap() > 0.5, "{eval}");

    let server = Server::start(&model, &["--quiet"], dir.path().join("server.log"));
    let meta = server.get("/v2/models/wardrobe").json();
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 32, 32, 3]));
    assert_eq!(meta["outputs"][0]["shape"], json!([-1, 7]));
    let body = json!({
        "inputs": [{ "name": "images", "shape": [2, 32, 32, 3], "datatype": "UINT8", "data": test.images[..2 * 3072] }],
        "outputs": [{ "name": "probabilities", "parameters": { "classification": 2 } }]
    });
    let r = server.post_json("/v2/models/wardrobe/infer", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json()["outputs"][0]["data"][0].as_str().unwrap().to_string();
    assert!(categories().iter().any(|c| first.ends_with(&format!(":{c}"))), "{first}");
    let wrong =
        json!({ "inputs": [{ "name": "images", "shape": [1, 28, 28], "datatype": "UINT8", "data": vec![0; 784] }] });
    let r = server.post_json("/v2/models/wardrobe/infer", &wrong);
    assert_eq!(r.status, 400);
    assert!(r.error().contains("[N,32,32,3]"), "{}", r.error());

    let photo: PathBuf = write_photo_as(load(Split::Test).image(0), 0, &dir.path().join("up"), true);
    let bytes = std::fs::read(&photo).unwrap();
    let (content_type, body) = multipart(&[("boot.png", &bytes)]);
    let r = server.request("POST", "/v1/label", Some(&content_type), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let result = &r.json()["results"][0];
    assert!(categories().contains(&result["label"].as_str().unwrap().to_string()), "{result}");
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        result["model_input"].as_str().unwrap().trim_start_matches("data:image/png;base64,"),
    )
    .unwrap();
    let seen = image::load_from_memory(&png).unwrap();
    assert_eq!((seen.width(), seen.height(), seen.color()), (32, 32, image::ColorType::Rgb8));
}
