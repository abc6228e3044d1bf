//! TensorBoard event files, written in the real format: TFRecord framing (u64 length, masked
//! CRC32C of the length, payload, masked CRC32C of the payload) around `Event` protocol buffers
//! (tensorflow/core/util/event.proto, summary.proto), the first event carrying
//! `file_version: "brain.Event:2"`. `--logdir DIR` writes `DIR/train` and `DIR/validation` runs
//! with Keras' tag names.

use crate::error::{Error, Result};
use crate::model_dir::EpochStats;
use crate::report::canvas::Figure;
use crate::report::confusion::confusion_png;
use crate::report::tb_proto::{Event, Image, Summary, SummaryValue, Value, What};
use crate::train::metrics::Evaluation;
use crate::train::state::TrainObserver;
use prost::Message;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The CRC mask of the TFRecord format.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends events to one `events.out.tfevents.*` file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

/// Seconds since the Unix epoch, as event files and HParams data record time.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl EventWriter {
    /// Creates `dir` and a new event file in it, starting with the file-version event.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        crate::fsutil::create_dir_all(dir)?;
        let path = dir.join(format!("events.out.tfevents.{:.0}.wardrobe.{}", now(), std::process::id()));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut writer = EventWriter { path, out: BufWriter::new(file) };
        writer.write(&Event { wall_time: now(), step: 0, what: Some(What::FileVersion("brain.Event:2".into())) })?;
        Ok(writer)
    }

    /// Writes one framed event and flushes it.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        let payload = event.encode_to_vec();
        let len = (payload.len() as u64).to_le_bytes();
        let framed = [&len[..], &masked_crc(&len).to_le_bytes(), &payload, &masked_crc(&payload).to_le_bytes()];
        framed
            .iter()
            .try_for_each(|part| self.out.write_all(part))
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Writes summary values at `step`.
    pub fn summary(&mut self, step: i64, value: Vec<SummaryValue>) -> Result<()> {
        self.write(&Event { wall_time: now(), step, what: Some(What::Summary(Summary { value })) })
    }

    /// Writes scalars `(tag, value)` at `step`.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f32)]) -> Result<()> {
        let value = values.iter().map(|&(tag, v)| SummaryValue::simple(tag, v)).collect();
        self.summary(step, value)
    }

    /// Writes a figure as an image summary under `tag` at `step`.
    pub fn image(&mut self, step: i64, tag: &str, figure: Figure) -> Result<()> {
        let (height, width) = (figure.height as i32, figure.width as i32);
        let image = Image { height, width, colorspace: 3, encoded_image_string: figure.png };
        self.summary(step, vec![SummaryValue { tag: tag.into(), metadata: None, value: Some(Value::Image(image)) }])
    }
}

/// Writes each epoch's metrics to `train/` and `validation/` runs under a log directory, and the
/// validation confusion matrix as an image.
pub struct TensorBoardLog {
    train: EventWriter,
    validation: EventWriter,
    class_names: Vec<String>,
    error: Option<Error>,
}

/// Tag of the per-epoch confusion-matrix image.
pub const CONFUSION_TAG: &str = "epoch_confusion_matrix";

impl TensorBoardLog {
    /// Opens the two runs under `logdir`; `class_names` label the confusion matrix.
    pub fn create(logdir: &Path, class_names: &[String]) -> Result<TensorBoardLog> {
        Ok(TensorBoardLog {
            train: EventWriter::create(&logdir.join("train"))?,
            validation: EventWriter::create(&logdir.join("validation"))?,
            class_names: class_names.to_vec(),
            error: None,
        })
    }

    fn log_epoch(&mut self, s: &EpochStats, validation: &Evaluation) -> Result<()> {
        let step = s.epoch as i64;
        let train =
            [("epoch_loss", s.loss as f32), ("epoch_accuracy", s.accuracy as f32), ("epoch_learning_rate", s.lr)];
        self.train.scalars(step, &train)?;
        self.validation
            .scalars(step, &[("epoch_loss", s.val_loss as f32), ("epoch_accuracy", s.val_accuracy as f32)])?;
        let title = format!("validation, epoch {}: accuracy {:.2}%", s.epoch, 100.0 * s.val_accuracy);
        let figure = confusion_png(&validation.confusion, &self.class_names, &title)?;
        self.validation.image(step, CONFUSION_TAG, figure)
    }

    /// The first write error, if any (observers cannot fail the run themselves).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

impl TrainObserver for TensorBoardLog {
    fn epoch_done(&mut self, s: &EpochStats, validation: &Evaluation) {
        if let Err(e) = self.log_epoch(s, validation) {
            self.error.get_or_insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_uses_crc32c_and_the_tfrecord_mask() {
        // 0xE3069283 is the standard CRC-32C check value of "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8, computed by hand.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }
}
