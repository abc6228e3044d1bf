//! A model directory: `model.json` (format tag, class names, calibration temperature,
//! architecture; fields it does not know are ignored, so newer files still load) and
//! `model.safetensors` (one f32 tensor per parameter, named `<layer index>.<tensor>`). Both are
//! written atomically; loading checks every tensor's presence, dtype and shape.

use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::nn::int8::Int8Model;
use crate::nn::model::Model;
use crate::nn::spec::ModelSpec;
use crate::nn::tensorfile;
use crate::ood::{self, Mahalanobis, Ood, OodSettings, Score};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of the architecture.
pub const SPEC_FILE: &str = "model.json";
/// File name of the weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the out-of-distribution score's tensors.
pub const OOD_FILE: &str = "ood.safetensors";
const FORMAT: &str = "wardrobe-model/1";

/// Contents of `model.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ModelFile {
    format: String,
    class_names: Vec<String>,
    #[serde(default = "no_temperature")]
    temperature: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    about: Option<About>,
    /// The out-of-distribution score's settings; its tensors are in [`OOD_FILE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ood: Option<OodSettings>,
    /// Its int8 form (`wardrobe quantize`): inference runs it instead of the float weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int8: Option<Int8Settings>,
    spec: ModelSpec,
}

/// What `model.json` says of a model's int8 form: the weights are quantised from the float ones
/// when it loads; the activation scales were calibrated on training images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Int8Settings {
    /// Each hidden layer's activation scale (one unit of its u8 outputs), in order.
    pub activation_scales: Vec<f32>,
    /// Training images they were measured on.
    pub calibration_images: usize,
}

/// Where a model came from, as `model.json` records it (every field optional, so that files of
/// other versions read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct About {
    /// wardrobe's version that trained it.
    pub wardrobe_version: String,
    /// When it was saved (UTC, RFC 3339).
    pub created: String,
    /// The training data: where from, how many images, how many classes.
    pub data: DataAbout,
    /// The architecture: `preset NAME`, `spec FILE` or `init-from DIR`.
    pub architecture: String,
    /// The training seed.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// The last epoch's figures.
    pub final_epoch: Option<EpochStats>,
    /// How the calibration temperature was chosen.
    pub calibration: Option<Calibration>,
}

/// How the calibration temperature was chosen on the validation split (by
/// `train::calibration::choose_temperature`), as `model.json` records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The temperature that minimises the validation NLL.
    pub fitted: f32,
    /// Validation NLL at temperature 1.
    pub nll_uncalibrated: f64,
    /// Validation NLL at the fitted temperature.
    pub nll_fitted: f64,
    /// The gain in NLL the validation size needs to count: twice the standard error of the
    /// per-image gain.
    pub margin: f64,
    /// Whether the fitted temperature was kept (its gain beat the margin); else 1.
    pub kept: bool,
}

impl Calibration {
    /// The temperature the model uses.
    pub fn temperature(&self) -> f32 {
        if self.kept { self.fitted } else { 1.0 }
    }

    /// One line saying which temperature and why.
    pub fn line(&self) -> String {
        let gain = self.nll_uncalibrated - self.nll_fitted;
        if self.kept {
            format!(
                "temperature {:.3} kept: validation NLL {:.4} → {:.4} (gain {gain:.4} > {:.4}, twice its standard error)",
                self.fitted, self.nll_uncalibrated, self.nll_fitted, self.margin
            )
        } else {
            format!(
                "temperature 1 kept: the fitted {:.3} lowered the validation NLL only by {gain:.4} (needed {:.4}, twice its standard error)",
                self.fitted, self.margin
            )
        }
    }
}

/// What one epoch achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss (with dropout active).
    pub loss: f64,
    /// Training accuracy (with dropout active).
    pub accuracy: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f32,
    /// Wall time of the epoch including validation.
    pub seconds: f64,
    /// Training images per second (optimiser steps only).
    pub images_per_second: f64,
}

impl EpochStats {
    /// The Keras-like one-line report; the validation figures only when there was a validation
    /// set (`validated`).
    pub fn line(&self, epochs: usize, validated: bool) -> String {
        let validation = if validated {
            format!("  val_loss {:.4}  val_acc {:.4}", self.val_loss, self.val_accuracy)
        } else {
            String::new()
        };
        format!(
            "epoch {}/{epochs}  loss {:.4}  acc {:.4}{validation}  lr {:.1e}  {:.1}s  {:.0} img/s",
            self.epoch, self.loss, self.accuracy, self.lr, self.seconds, self.images_per_second
        )
    }
}

/// The training data of [`About`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataAbout {
    /// The data directory or CSV file.
    pub source: String,
    /// Training images.
    pub train: usize,
    /// Validation images (the temperature was fitted on them).
    pub validation: usize,
    /// Classes.
    pub classes: usize,
    /// Fraction of the training data held out for validation (the last images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_split: Option<f64>,
}

/// Now as RFC 3339 UTC (`2026-12-02T09:30:00Z`).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

fn no_temperature() -> f32 {
    1.0
}

/// Saves `model` with its class names, its temperature and where it came from into `dir`
/// (created if needed).
pub fn save(model: &Model, class_names: &[String], about: Option<&About>, ood: Option<&Ood>, dir: &Path) -> Result<()> {
    fsutil::create_dir_all(dir)?;
    if let Some(ood) = ood {
        let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
        for (i, distance) in ood.score.distances().iter().enumerate() {
            let ((whitening, centres), dim) = (distance.parts(), distance.dim());
            tensors.push((format!("part{i}.whitening"), vec![dim, dim], whitening));
            tensors.push((format!("part{i}.centres"), vec![class_names.len(), dim], centres));
        }
        tensors.push(("scales".to_string(), vec![ood.score.scales().len()], ood.score.scales()));
        tensorfile::write(&dir.join(OOD_FILE), &tensors)?;
    }
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        model.tensors().into_iter().map(|(name, spec, range)| (name, spec.dims, &model.params[range])).collect();
    tensorfile::write(&dir.join(WEIGHTS_FILE), &tensors)?;
    let file = ModelFile {
        format: FORMAT.into(),
        class_names: class_names.to_vec(),
        temperature: model.temperature,
        about: about.cloned(),
        ood: ood.map(|o| OodSettings { method: ood::METHOD.into(), threshold: o.threshold, kept: o.kept }),
        int8: model.int8().map(|q| Int8Settings {
            activation_scales: q.activation_scales(),
            calibration_images: q.calibration_images(),
        }),
        spec: model.spec.clone(),
    };
    let json = serde_json::to_string_pretty(&file).expect("model file serialises");
    Ok(fsutil::write_atomic(&dir.join(SPEC_FILE), |out| out.write_all(json.as_bytes()))?)
}

/// A loaded model and its class names.
pub struct Loaded {
    /// The model with its trained parameters.
    pub model: Model,
    /// Class names by index.
    pub class_names: Vec<String>,
    /// Where it came from, when `model.json` records it.
    pub about: Option<About>,
    /// Its out-of-distribution score, when it has one.
    pub ood: Option<Ood>,
    /// The directory it was loaded from.
    pub dir: std::path::PathBuf,
}

/// What `dir`, which has no `model.json`, is instead, and what to do about it.
fn not_a_model(dir: &Path) -> Error {
    let shown = dir.display();
    let has = |name: &str| dir.join(name).exists();
    let message = if !dir.exists() {
        format!("{shown}: no such directory, so no {SPEC_FILE}; --model takes a directory that `wardrobe train` wrote")
    } else if !dir.is_dir() {
        format!(
            "{shown} is a file; --model takes a directory that `wardrobe train` wrote (an .onnx file converts to one with `wardrobe convert {shown} DIR`)"
        )
    } else if has("checkpoint") {
        format!("{shown} is a training run that did not finish; continue it with: wardrobe train --resume {shown}")
    } else if has(crate::data::dataset::DATASET_FILE)
        || has("train-images-idx3-ubyte")
        || has("train-images-idx3-ubyte.gz")
    {
        format!(
            "{shown} is a data set, not a model: pass it as --data DIR; --model takes a directory that `wardrobe train` wrote"
        )
    } else if crate::data::labels::find_images(dir).is_ok_and(|found| !found.is_empty()) {
        format!(
            "{shown} holds photos, not a model: label them with `wardrobe label --model MODEL {shown}`, or import a catalogue with `wardrobe import {shown} --out DATA`"
        )
    } else {
        format!("{shown} has no {SPEC_FILE}; --model takes a directory that `wardrobe train` wrote")
    };
    Error::Invalid(message)
}

fn read_model_file(path: &Path) -> Result<ModelFile> {
    let text = fsutil::read_at_most(path, fsutil::MAX_JSON_BYTES)?;
    let file: ModelFile =
        serde_json::from_slice(&text).map_err(|e| Error::model(path, format!("invalid JSON: {e}")))?;
    if file.format != FORMAT {
        return Err(Error::model(path, format!("format is '{}', expected '{FORMAT}'", file.format)));
    }
    if !(file.temperature.is_finite() && file.temperature > 0.0) {
        return Err(Error::model(path, format!("temperature {} is not a positive number", file.temperature)));
    }
    crate::data::dataset::check_classes(&file.class_names).map_err(|e| Error::model(path, e.to_string()))?;
    Ok(file)
}

/// A malformed tensor file is a model error; I/O errors stay as they are.
fn as_model_error(path: &Path, e: wardrobe_engine::Error) -> Error {
    match e {
        wardrobe_engine::Error::Format { message, .. } => Error::model(path, message),
        other => other.into(),
    }
}

/// Loads a model directory written by [`save`].
pub fn load(dir: &Path) -> Result<Loaded> {
    let spec_path = dir.join(SPEC_FILE);
    if !spec_path.exists() {
        return Err(not_a_model(dir));
    }
    let file = read_model_file(&spec_path)?;
    let mut model =
        Model::new(file.spec, file.class_names.len()).map_err(|e| Error::model(&spec_path, e.to_string()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let stored = tensorfile::read(&weights_path, model.params.len()).map_err(|e| as_model_error(&weights_path, e))?;
    let tensors = model.tensors();
    if stored.len() != tensors.len() {
        return Err(Error::model(
            &weights_path,
            format!("{} tensors, the architecture has {}", stored.len(), tensors.len()),
        ));
    }
    for (name, spec, range) in tensors {
        let tensor =
            stored.get(&name).ok_or_else(|| Error::model(&weights_path, format!("tensor '{name}' is missing")))?;
        if tensor.dims != spec.dims {
            return Err(Error::model(
                &weights_path,
                format!("tensor '{name}' is F32 {:?}, the architecture needs F32 {:?}", tensor.dims, spec.dims),
            ));
        }
        if let Some(i) = tensor.values.iter().position(|v| !v.is_finite()) {
            return Err(Error::model(
                &weights_path,
                format!("tensor '{name}' holds {} at index {i}", tensor.values[i]),
            ));
        }
        model.params[range].copy_from_slice(&tensor.values);
    }
    model.temperature = file.temperature;
    if let Some(int8) = file.int8 {
        let q = Int8Model::new(&model, &int8.activation_scales, int8.calibration_images)
            .map_err(|e| Error::model(&spec_path, format!("int8: {e}")))?;
        model.set_int8(Some(q));
    }
    let ood = file.ood.map(|settings| load_ood(dir, &model, file.class_names.len(), settings)).transpose()?;
    Ok(Loaded { model, class_names: file.class_names, about: file.about, ood, dir: dir.to_path_buf() })
}

/// Reads and checks the out-of-distribution score that `model.json` announces.
fn load_ood(dir: &Path, model: &Model, classes: usize, settings: OodSettings) -> Result<Ood> {
    let path = dir.join(OOD_FILE);
    let spec_path = dir.join(SPEC_FILE);
    if settings.method != ood::METHOD {
        return Err(Error::model(
            &spec_path,
            format!("ood.method '{}' is not known ({}): train the model again", settings.method, ood::METHOD),
        ));
    }
    if !(settings.threshold.is_finite() && settings.threshold >= 0.0 && (0.0..=1.0).contains(&settings.kept)) {
        return Err(Error::model(&spec_path, "ood.threshold or ood.kept is out of range"));
    }
    let groups = model.feature_groups();
    let values: usize = groups.iter().map(|g| g.len() * (g.len() + classes)).sum::<usize>() + groups.len() + 1;
    let mut tensors = tensorfile::read(&path, values).map_err(|e| as_model_error(&path, e))?;
    let mut take = |name: &str| {
        tensors.remove(name).map(|t| t.values).ok_or_else(|| Error::model(&path, format!("tensor '{name}' is missing")))
    };
    let mut distances = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let (whitening, centres) = (take(&format!("part{i}.whitening"))?, take(&format!("part{i}.centres"))?);
        let distance = Mahalanobis::from_parts(g.len(), classes, whitening, centres)
            .map_err(|e| Error::model(&path, format!("part {i}: {e}")))?;
        distances.push(distance);
    }
    let score =
        Score::from_parts(groups, distances, take("scales")?).map_err(|e| Error::model(&path, e.to_string()))?;
    Ok(Ood { score, threshold: settings.threshold, kept: settings.kept })
}

impl Loaded {
    /// Checks that the model takes `rows × cols × channels` images, as the data set named
    /// `what` gives them.
    pub fn check_images(&self, (rows, cols, channels): (usize, usize, usize), what: &str) -> Result<()> {
        let input = self.model.spec.input;
        if (input.h, input.w, input.c) != (rows, cols, channels) {
            return Err(Error::model(
                &self.dir.join(SPEC_FILE),
                format!(
                    "the model takes {}×{}×{} images, {what} gives {rows}×{cols}×{channels}",
                    input.h, input.w, input.c
                ),
            ));
        }
        Ok(())
    }

    /// Checks that `data` (named `what`) fits the model: its image shape, and its classes are the
    /// model's.
    pub fn check_data(&self, data: &Dataset, what: &str) -> Result<()> {
        self.check_images(data.shape(), what)?;
        if data.classes != self.class_names {
            return Err(Error::model(
                &self.dir.join(SPEC_FILE),
                format!(
                    "the model's {} classes ({}) are not {what}'s {} ({})",
                    self.class_names.len(),
                    preview(&self.class_names),
                    data.classes.len(),
                    preview(&data.classes)
                ),
            ));
        }
        Ok(())
    }

    /// The photo pipeline's output shape for this model: its input side and channels. Photos
    /// are made square, so the model's input must be.
    pub fn photo_shape(&self) -> Result<crate::data::photo::PhotoShape> {
        let input = self.model.spec.input;
        if input.h != input.w || !(input.c == 1 || input.c == 3) {
            return Err(Error::model(
                &self.dir.join(SPEC_FILE),
                format!("photos become square grey or RGB images; the model takes {}", input.hwc()),
            ));
        }
        Ok(crate::data::photo::PhotoShape { side: input.h, channels: input.c })
    }
}

/// The first few names of a class list, for messages.
fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    if names.len() > 4 { format!("{}, …", shown.join(", ")) } else { shown.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_line_shows_validation_only_when_there_was_some() {
        let stats = EpochStats {
            epoch: 3,
            loss: 0.25,
            accuracy: 0.9,
            val_loss: 0.0,
            val_accuracy: 0.0,
            lr: 1e-3,
            seconds: 70.0,
            images_per_second: 800.0,
        };
        assert_eq!(stats.line(15, false), "epoch 3/15  loss 0.2500  acc 0.9000  lr 1.0e-3  70.0s  800 img/s");
        let validated = EpochStats { val_loss: 0.2, val_accuracy: 0.93, ..stats };
        assert!(validated.line(15, true).contains("  val_loss 0.2000  val_acc 0.9300  lr"));
    }
    use crate::data::dataset::fashion_classes;

    fn saved() -> (tempfile::TempDir, Model) {
        let dir = tempfile::tempdir().unwrap();
        let model = Model::initialised(ModelSpec::seed(), 10, 4).unwrap();
        save(&model, &fashion_classes(), None, None, dir.path()).unwrap();
        (dir, model)
    }

    #[test]
    fn save_then_load_restores_every_parameter() {
        let (dir, model) = saved();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.model.params, model.params);
        assert_eq!(loaded.class_names[9], "Ankle boot");
    }

    #[test]
    fn missing_files_are_named() {
        let (dir, _) = saved();
        std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
        let err = load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("model.safetensors") && err.contains("No such file"), "{err}");
        std::fs::remove_file(dir.path().join(SPEC_FILE)).unwrap();
        assert!(load(dir.path()).err().unwrap().to_string().contains("model.json"));
    }

    #[test]
    fn weights_of_another_architecture_are_rejected() {
        let (dir, _) = saved();
        let mut spec = ModelSpec::seed();
        if let crate::nn::spec::LayerSpec::Dense { units, .. } = &mut spec.layers[6] {
            *units = 64;
        }
        let other = Model::initialised(spec, 10, 4).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        save(&other, &fashion_classes(), None, None, other_dir.path()).unwrap();
        std::fs::copy(other_dir.path().join(WEIGHTS_FILE), dir.path().join(WEIGHTS_FILE)).unwrap();
        let err = load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("tensor '6.kernel' is F32 [1600, 64], the architecture needs F32 [1600, 128]"), "{err}");
    }

    #[test]
    fn corrupt_files_are_rejected() {
        let (dir, _) = saved();
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"garbage").unwrap();
        assert!(load(dir.path()).err().unwrap().to_string().contains("not a safetensors file"));
        std::fs::write(dir.path().join(SPEC_FILE), b"{").unwrap();
        assert!(load(dir.path()).err().unwrap().to_string().contains("invalid JSON"));
    }

    #[test]
    fn the_clock_reads_as_a_utc_timestamp() {
        let now = now_utc();
        assert_eq!((now.len(), &now[4..5], &now[10..11], &now[19..]), (20, "-", "T", "Z"), "{now}");
        assert!(now.as_str() > "2025-01-01" && now.as_str() < "2100", "{now}");
    }

    #[test]
    fn temperature_is_kept_and_unknown_fields_are_tolerated() {
        let (dir, mut model) = saved();
        model.temperature = 1.75;
        save(&model, &fashion_classes(), None, None, dir.path()).unwrap();
        assert_eq!(load(dir.path()).unwrap().model.temperature, 1.75);
        let path = dir.path().join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let newer = text.replacen('{', r#"{"made_by_a_newer_version": {"x": 1}, "about": {"seed": 7, "new": 1},"#, 1);
        std::fs::write(&path, newer).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!((loaded.model.temperature, loaded.about.unwrap().seed), (1.75, 7));
        std::fs::write(&path, text.replace("1.75", "-1.0")).unwrap();
        assert!(load(dir.path()).err().unwrap().to_string().contains("temperature -1 is not a positive number"));
    }
}
