//! `wardrobe audit` on real Fashion-MNIST with 100 of 3,000 labels flipped: confident learning
//! over out-of-fold models finds most of them and ranks them first, and the findings file is a
//! review file `serve --review` shows and writes reviews into.

mod common;

use common::http::Server;
use common::{load, run};
use serde_json::json;
use wardrobe::data::dataset::Split;

#[test]
fn audit_finds_flipped_labels_and_its_file_is_reviewable() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = load(Split::Train).slice(0..3_000);
    // 100 labels moved to another class, chosen by a fixed stride.
    let flipped: Vec<usize> = (0..100).map(|j| (j * 29 + 7) % 3_000).collect();
    for (j, &i) in flipped.iter().enumerate() {
        data.labels[i] = (data.labels[i] + 1 + (j % 9) as u16) % 10;
    }
    let csv = dir.path().join("noisy.csv");
    wardrobe::data::csv::write(&csv, &data).unwrap();
    let (out, work) = (dir.path().join("audit.csv"), dir.path().join("work"));
    let args = ["audit", "--train-csv", csv.to_str().unwrap(), "--folds", "3", "--epochs", "3"];
    let (ok, stdout, err) =
        run(&[&args[..], &["--out", out.to_str().unwrap(), "--work", work.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    assert!(stdout.contains("label issues") && stdout.contains("serve --model MODEL --review"), "{stdout}");
    let file = wardrobe::data::labels::LabelsFile::read(&out).unwrap();
    let column = |name: &str| file.column(name, &out).unwrap();
    let (path, issue, given, label) = (column("path"), column("issue"), column("given_label"), column("label"));
    let issues: Vec<usize> = file
        .records
        .iter()
        .filter(|r| &r[issue] == "label")
        .map(|r| r[path].strip_prefix("train:").unwrap().parse().unwrap())
        .collect();
    let found = flipped.iter().filter(|i| issues.contains(i)).count();
    let first_100 = flipped.iter().filter(|i| issues[..100.min(issues.len())].contains(i)).count();
    eprintln!("audit: {found} of the 100 flipped labels among {} issues, {first_100} in the first 100", issues.len());
    // Measured (the same bits on any machine; 3 epochs of the seed preset per fold): 95 found
    // among 493 issues, 71 in the first 100.
    assert!(found >= 90, "found {found} of the 100 flipped labels among {} issues", issues.len());
    assert!(first_100 >= 65, "only {first_100} of the 100 first-ranked issues are flipped labels");
    for r in file.records.iter().filter(|r| &r[issue] == "label") {
        assert_ne!(&r[given], &r[label], "an issue's suggestion differs from its given label: {r:?}");
    }

    // The findings file is a review file: the page lists its rows and writes a review into it.
    let server =
        Server::start(&work.join("fold1"), &["--quiet", "--review", out.to_str().unwrap()], dir.path().join("log"));
    let listed = server.get("/v1/review").json();
    let rows = listed["rows"].as_array().unwrap();
    assert_eq!(rows.len(), file.records.len(), "every finding is on the page");
    let first = &rows[0];
    let r = server.post_json(&format!("/v1/review/{}", first["id"]), &json!({ "reviewed_label": "Bag" }));
    assert_eq!(r.status, 200, "{}", r.text());
    let after = wardrobe::data::labels::LabelsFile::read(&out).unwrap();
    let reviewed = after.column("reviewed_label", &out).unwrap();
    let row = after.records.iter().find(|r| r[path] == *first["path"].as_str().unwrap()).unwrap();
    assert_eq!(&row[reviewed], "Bag");
}
