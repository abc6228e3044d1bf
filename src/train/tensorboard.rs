//! TensorBoard event files, written in the real format: TFRecord framing (u64 length, masked
//! CRC32C of the length, payload, masked CRC32C of the payload) around `Event` protocol buffers
//! (tensorflow/core/util/event.proto, summary.proto), the first event carrying
//! `file_version: "brain.Event:2"`. `--logdir DIR` writes `DIR/train` and `DIR/validation` runs
//! with Keras' tag names.

use crate::error::{Error, Result};
use crate::train::trainer::{EpochStats, TrainObserver};
use prost::Message;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// `tensorflow.Event`, the fields we write.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step (here: the epoch).
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// File format version, first event of a file.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// A summary of values.
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with a scalar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// Tag, e.g. `epoch_loss`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// `simple_value`.
    #[prost(float, tag = "2")]
    pub simple_value: f32,
}

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

fn now() -> f64 {
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

    /// Writes scalars `(tag, value)` at `step`.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f32)]) -> Result<()> {
        let value = values.iter().map(|&(tag, v)| SummaryValue { tag: tag.into(), simple_value: v }).collect();
        self.write(&Event { wall_time: now(), step, what: Some(What::Summary(Summary { value })) })
    }
}

/// Writes each epoch's metrics to `train/` and `validation/` runs under a log directory.
pub struct TensorBoardLog {
    train: EventWriter,
    validation: EventWriter,
    error: Option<Error>,
}

impl TensorBoardLog {
    /// Opens the two runs under `logdir`.
    pub fn create(logdir: &Path) -> Result<TensorBoardLog> {
        Ok(TensorBoardLog {
            train: EventWriter::create(&logdir.join("train"))?,
            validation: EventWriter::create(&logdir.join("validation"))?,
            error: None,
        })
    }

    /// The first write error, if any (observers cannot fail the run themselves).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

impl TrainObserver for TensorBoardLog {
    fn epoch_done(&mut self, s: &EpochStats) {
        let step = s.epoch as i64;
        let train =
            [("epoch_loss", s.loss as f32), ("epoch_accuracy", s.accuracy as f32), ("epoch_learning_rate", s.lr)];
        let val = [("epoch_loss", s.val_loss as f32), ("epoch_accuracy", s.val_accuracy as f32)];
        let result = self.train.scalars(step, &train).and_then(|_| self.validation.scalars(step, &val));
        if let Err(e) = result {
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
