//! `wardrobe tune` on real data: trials are ranked by validation accuracy, each is an HParams
//! session TensorBoard can read, and the saved best spec retrains to the same validation accuracy.

mod common;

use common::tfevents::{Payload, bytes_field, fields, summaries};
use common::{run, train_csv};
use std::path::Path;

/// The hparams plugin payloads of the event file in `dir`, by tag.
fn hparams_payloads(dir: &Path) -> Vec<(String, Vec<u8>)> {
    summaries(dir)
        .into_iter()
        .flat_map(|(_, values)| values)
        .filter_map(|(tag, p)| match p {
            Payload::Plugin(name, content) if name == "hparams" => Some((tag, content)),
            _ => None,
        })
        .collect()
}

/// Names in repeated message field `number` whose own field 1 is a string.
fn names(message: &[u8], number: u64) -> Vec<String> {
    fields(message)
        .iter()
        .filter(|(n, _)| *n == number)
        .map(|(_, f)| match f {
            common::tfevents::Field::Bytes(b) => String::from_utf8(bytes_field(&fields(b), 1).unwrap()).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn tune_ranks_trials_logs_hparams_and_the_best_spec_retrains_identically() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 3_000);
    let out = dir.path().join("tune");
    let csv_arg = csv.to_str().unwrap();
    let (ok, stdout, err) =
        run(&["tune", "--train-csv", csv_arg, "--trials", "6", "--epochs", "2", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("rank trial"), "{stdout}");

    let trials: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    assert_eq!(trials.len(), 6);
    let mut by_rank = trials.clone();
    by_rank.sort_by_key(|t| t["rank"].as_u64().unwrap());
    let accuracies: Vec<f64> = by_rank.iter().map(|t| t["val_accuracy"].as_f64().unwrap()).collect();
    assert!(accuracies.windows(2).all(|w| w[0] >= w[1]), "ranked by validation accuracy: {accuracies:?}");
    assert!(accuracies[0] > 0.65, "best trial on 2,700 real images: {}", accuracies[0]);
    let distinct: std::collections::HashSet<String> = trials.iter().map(|t| t["hparams"].to_string()).collect();
    assert_eq!(distinct.len(), 6, "six different configurations");

    let logs = out.join("logs");
    let experiment = hparams_payloads(&logs);
    assert_eq!(experiment[0].0, "_hparams_/experiment");
    let exp = bytes_field(&fields(&experiment[0].1), 2).expect("experiment data");
    let mut hparams = names(&exp, 4);
    hparams.sort();
    assert_eq!(hparams, ["batch_size", "dropout", "lr", "optimizer"]);
    for trial in 1..=6 {
        let sessions: Vec<String> =
            hparams_payloads(&logs.join(format!("trial-{trial:02}"))).into_iter().map(|(t, _)| t).collect();
        assert_eq!(sessions, ["_hparams_/session_start_info", "_hparams_/session_end_info"]);
        assert!(logs.join(format!("trial-{trial:02}/validation")).is_dir());
    }

    let retrained = dir.path().join("retrained");
    let best = out.join("best.json");
    let (ok, _, err) =
        run(&["train", "--train-csv", csv_arg, "--spec", best.to_str().unwrap(), "--out", retrained.to_str().unwrap()]);
    assert!(ok, "{err}");
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(retrained.join("history.json")).unwrap()).unwrap();
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "the spec's epochs");
    assert_eq!(last["val_accuracy"], by_rank[0]["val_accuracy"], "same validation accuracy as the best trial");
    assert_eq!(last["val_loss"], by_rank[0]["val_loss"]);
}
