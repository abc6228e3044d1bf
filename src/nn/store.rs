//! A model directory: `model.json` (format tag, architecture, class names) and
//! `model.safetensors` (one f32 tensor per parameter, named `<layer index>.<tensor>`). Both are
//! written atomically; loading checks every tensor's presence, dtype and shape.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::nn::model::Model;
use crate::nn::spec::ModelSpec;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of the architecture.
pub const SPEC_FILE: &str = "model.json";
/// File name of the weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
const FORMAT: &str = "wardrobe-model/1";

/// Contents of `model.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    format: String,
    class_names: Vec<String>,
    spec: ModelSpec,
}

/// Saves `model` with its class names into `dir` (created if needed).
pub fn save(model: &Model, class_names: &[&str], dir: &Path) -> Result<()> {
    fsutil::create_dir_all(dir)?;
    let bytes: Vec<u8> = model.params.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors = model.tensors();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, spec, range)| {
            let view = TensorView::new(Dtype::F32, spec.dims.clone(), &bytes[range.start * 4..range.end * 4])
                .expect("tensor view matches its shape");
            (name.clone(), view)
        })
        .collect();
    let weights_path = dir.join(WEIGHTS_FILE);
    let encoded = safetensors::serialize(views, None).map_err(|e| Error::model(&weights_path, e.to_string()))?;
    fsutil::write_atomic(&weights_path, |out| out.write_all(&encoded))?;
    let file = ModelFile {
        format: FORMAT.into(),
        class_names: class_names.iter().map(|s| s.to_string()).collect(),
        spec: model.spec.clone(),
    };
    let json = serde_json::to_string_pretty(&file).expect("model file serialises");
    fsutil::write_atomic(&dir.join(SPEC_FILE), |out| out.write_all(json.as_bytes()))
}

/// A loaded model and its class names.
pub struct Loaded {
    /// The model with its trained parameters.
    pub model: Model,
    /// Class names by index.
    pub class_names: Vec<String>,
}

fn read_model_file(path: &Path) -> Result<ModelFile> {
    let text = fsutil::read(path)?;
    let file: ModelFile =
        serde_json::from_slice(&text).map_err(|e| Error::model(path, format!("invalid JSON: {e}")))?;
    if file.format != FORMAT {
        return Err(Error::model(path, format!("format is '{}', expected '{FORMAT}'", file.format)));
    }
    Ok(file)
}

/// Loads a model directory written by [`save`].
pub fn load(dir: &Path) -> Result<Loaded> {
    let spec_path = dir.join(SPEC_FILE);
    let file = read_model_file(&spec_path)?;
    let mut model =
        Model::new(file.spec, file.class_names.len()).map_err(|e| Error::model(&spec_path, e.to_string()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = fsutil::read(&weights_path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::model(&weights_path, format!("not a safetensors file: {e}")))?;
    let tensors = model.tensors();
    if st.len() != tensors.len() {
        return Err(Error::model(
            &weights_path,
            format!("{} tensors, the architecture has {}", st.len(), tensors.len()),
        ));
    }
    for (name, spec, range) in tensors {
        let view = st.tensor(&name).map_err(|_| Error::model(&weights_path, format!("tensor '{name}' is missing")))?;
        if view.dtype() != Dtype::F32 || view.shape() != spec.dims.as_slice() {
            return Err(Error::model(
                &weights_path,
                format!(
                    "tensor '{name}' is {:?} {:?}, the architecture needs F32 {:?}",
                    view.dtype(),
                    view.shape(),
                    spec.dims
                ),
            ));
        }
        let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        model.params[range].iter_mut().zip(values).for_each(|(p, v)| *p = v);
    }
    Ok(Loaded { model, class_names: file.class_names })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::CLASS_NAMES;

    fn saved() -> (tempfile::TempDir, Model) {
        let dir = tempfile::tempdir().unwrap();
        let model = Model::initialised(ModelSpec::seed(), 10, 4).unwrap();
        save(&model, &CLASS_NAMES, dir.path()).unwrap();
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
        save(&other, &CLASS_NAMES, other_dir.path()).unwrap();
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
}
