//! `train --logdir` event files, read back with the test decoder written from the formats' specs
//! (tests/common/tfevents.rs), not with the library's own types.

mod common;

use common::tfevents::{Payload, scalars, summaries};
use common::{run, train_csv};

#[test]
fn event_files_hold_the_training_history() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 2_000);
    let (logdir, out) = (dir.path().join("logs"), dir.path().join("run"));
    let (ok, _, err) = run(&[
        "train",
        "--train-csv",
        csv.to_str().unwrap(),
        "--epochs",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--logdir",
        logdir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("history.json")).unwrap()).unwrap();
    let train = scalars(&logdir.join("train"));
    let val = scalars(&logdir.join("validation"));
    assert_eq!((train.len(), val.len()), (3, 3));
    for (i, epoch) in history.as_array().unwrap().iter().enumerate() {
        let get = |k: &str| epoch[k].as_f64().unwrap() as f32;
        assert_eq!(train[i].0, i as i64 + 1);
        let t: std::collections::HashMap<_, _> = train[i].1.iter().cloned().collect();
        let v: std::collections::HashMap<_, _> = val[i].1.iter().cloned().collect();
        assert_eq!(t["epoch_loss"], get("loss"));
        assert_eq!(t["epoch_accuracy"], get("accuracy"));
        assert_eq!(t["epoch_learning_rate"], get("lr"));
        assert_eq!(v["epoch_loss"], get("val_loss"));
        assert_eq!(v["epoch_accuracy"], get("val_accuracy"));
    }
    let images: Vec<(i64, i64, i64, Vec<u8>)> = summaries(&logdir.join("validation"))
        .into_iter()
        .flat_map(|(step, values)| values.into_iter().map(move |v| (step, v)))
        .filter_map(|(step, (tag, p))| match p {
            Payload::Image(w, h, png) if tag == "epoch_confusion_matrix" => Some((step, w, h, png)),
            _ => None,
        })
        .collect();
    assert_eq!(images.iter().map(|i| i.0).collect::<Vec<_>>(), [1, 2, 3], "one confusion matrix per epoch");
    for (_, w, h, png) in images {
        let decoded = image::load_from_memory(&png).expect("the image is a valid PNG");
        assert_eq!((i64::from(decoded.width()), i64::from(decoded.height())), (w, h));
        assert!(w > 400 && h > 400, "legible size: {w}×{h}");
    }
}
