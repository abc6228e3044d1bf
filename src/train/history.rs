//! The metrics history of a run, saved beside the model as `history.json` and `history.csv`.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::model_dir::EpochStats;
use std::path::Path;

/// Writes the history (atomically) into `dir`.
pub fn save(dir: &Path, history: &[EpochStats]) -> Result<()> {
    fsutil::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(history).expect("history serialises");
    fsutil::write_atomic(&dir.join("history.json"), |out| out.write_all(json.as_bytes()))?;
    fsutil::write_atomic(&dir.join("history.csv"), |out| {
        writeln!(out, "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds,images_per_second")?;
        for e in history {
            writeln!(
                out,
                "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.3},{:.1}",
                e.epoch, e.loss, e.accuracy, e.val_loss, e.val_accuracy, e.lr, e.seconds, e.images_per_second
            )?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Reads the history `save` wrote into `dir`; `None` when there is none.
pub fn load(dir: &Path) -> Result<Option<Vec<EpochStats>>> {
    let path = dir.join("history.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = fsutil::read_at_most(&path, fsutil::MAX_JSON_BYTES)?;
    serde_json::from_slice(&text).map(Some).map_err(|e| Error::format(&path, format!("invalid history: {e}")))
}
