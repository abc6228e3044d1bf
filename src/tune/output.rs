//! What `tune` leaves behind: every trial (`trials.json`, `trials.csv`, in trial order, with its
//! rank) and the best configuration as a run spec (`best.json`) for `train --spec`.

use super::tuner::TrialResult;
use crate::error::Result;
use crate::fsutil;
use serde_json::json;
use std::path::Path;

/// Writes the files into `dir` (each atomically).
pub fn save(dir: &Path, results: &[TrialResult], ranking: &[&TrialResult]) -> Result<()> {
    fsutil::create_dir_all(dir)?;
    let rank_of = |trial: usize| ranking.iter().position(|r| r.trial == trial).map(|p| p + 1);
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let mut row = serde_json::to_value(r).expect("trial serialises");
            row["rank"] = json!(rank_of(r.trial));
            row["hparams"] = json!(r.hparams.iter().cloned().collect::<std::collections::BTreeMap<_, _>>());
            row
        })
        .collect();
    let text = serde_json::to_string_pretty(&rows).expect("trials serialise");
    fsutil::write_atomic(&dir.join("trials.json"), |out| out.write_all(text.as_bytes()))?;
    fsutil::write_atomic(&dir.join("trials.csv"), |out| {
        writeln!(out, "trial,rank,val_accuracy,val_loss,epochs,seconds,completed,hparams")?;
        for r in results {
            let values: Vec<String> = r.hparams.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let rank = rank_of(r.trial).map(|x| x.to_string()).unwrap_or_default();
            writeln!(
                out,
                "{},{rank},{:.6},{:.6},{},{:.1},{},\"{}\"",
                r.trial,
                r.val_accuracy,
                r.val_loss,
                r.epochs,
                r.seconds,
                r.completed,
                values.join(" ")
            )?;
        }
        Ok(())
    })?;
    match ranking.first() {
        Some(best) => best.spec.save(&dir.join("best.json")),
        None => Ok(()),
    }
}
