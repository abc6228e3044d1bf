//! `wardrobe convert`: IDX ⇄ Kaggle CSV, and model directory ⇄ ONNX.

use clap::Args;
use std::path::PathBuf;
use wardrobe::data::convert::convert;
use wardrobe::data::dataset::Split;
use wardrobe::data::source::{DataSource, split_validation};
use wardrobe::model_dir::{self, About};
use wardrobe::onnx::{export, import};
use wardrobe::train::session::fit_ood;
use wardrobe::{Error, Result};

/// Share of `--ood-data`'s training split held out to choose the unknown threshold.
const OOD_HELD_OUT: f64 = 0.1;

#[derive(Args)]
pub struct ConvertArgs {
    /// Input: a .csv file, an IDX images file (its labels file beside it), a model directory, or
    /// an .onnx model (converted to a model directory).
    pub input: PathBuf,
    /// Output: a .csv file, an IDX images file (gzipped when it ends in .gz), or (from a model
    /// directory) an .onnx file.
    pub output: PathBuf,
    /// Labels file of an IDX input, when its name does not follow the images file.
    #[arg(long)]
    pub input_labels: Option<PathBuf>,
    /// Labels file of an IDX output, when its name does not follow the images file.
    #[arg(long)]
    pub output_labels: Option<PathBuf>,
    /// Class names of an imported ONNX model, comma-separated (default: its own metadata, or
    /// Fashion-MNIST's for ten outputs).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Pixels an imported ONNX model takes when its graph does not scale them itself: unit
    /// (0–1) or byte (0–255).
    #[arg(long, default_value = "unit")]
    pub input_range: import::InputRange,
    /// Fit an imported ONNX model's out-of-distribution score (and unknown threshold) on this
    /// data directory's training split, its last 10% held out, so that its predictions get the
    /// verdict `unknown`; without it the model has no score.
    #[arg(long)]
    pub ood_data: Option<PathBuf>,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    if a.input.is_dir() {
        if a.output.extension().is_none_or(|e| e != "onnx") {
            return Err(Error::Invalid(format!("{}: a model directory converts to an .onnx file", a.output.display())));
        }
        let loaded = model_dir::load(&a.input)?;
        export::write(&loaded.model, &loaded.class_names, loaded.ood.as_ref(), &a.output)?;
        let input = loaded.model.spec.input;
        let layout = if input.c == 1 {
            format!("[N,{},{}]", input.h, input.w)
        } else {
            format!("[N,{},{},{}]", input.h, input.w, input.c)
        };
        let score = if loaded.ood.is_some() { " and ood_score FP32 [N]" } else { "" };
        let int8 = if loaded.model.int8().is_some() { ", int8 weights and activations (QDQ)" } else { "" };
        println!(
            "wrote {} (ONNX opset {}{int8}): input images UINT8 {layout}, output probabilities FP32 [N,{}]{score}, temperature {}",
            a.output.display(),
            export::OPSET,
            loaded.class_names.len(),
            loaded.model.temperature
        );
        return Ok(());
    }
    if a.input.extension().is_some_and(|e| e == "onnx") {
        let imported = import::read(&a.input, a.classes.clone(), a.input_range)?;
        let model = imported.model;
        let about = About { architecture: format!("onnx {}", a.input.display()), ..Default::default() };
        let ood = match &a.ood_data {
            Some(dir) => {
                let source = DataSource { dir: dir.clone(), ..Default::default() };
                let data = source.load(Split::Train)?;
                if data.classes.len() != imported.class_names.len() {
                    return Err(Error::Invalid(format!(
                        "--ood-data {}: {} classes, the model {}; give the data the model was trained on",
                        dir.display(),
                        data.classes.len(),
                        imported.class_names.len()
                    )));
                }
                let (train, val) = split_validation(data, OOD_HELD_OUT)?;
                Some(fit_ood(&model, (&train, &val))?)
            }
            None => None,
        };
        model_dir::save(&model, &imported.class_names, Some(&about), ood.as_ref(), &a.output)?;
        println!("{}", model.summary());
        println!(
            "wrote {}: {} classes ({}), input {}, temperature {}",
            a.output.display(),
            imported.class_names.len(),
            imported.class_names.join(", "),
            model.spec.input.hwc(),
            model.temperature
        );
        if let Some(ood) = &ood {
            println!("out-of-distribution score fitted: unknown above {:.3}", ood.threshold);
        }
        return Ok(());
    }
    let n = convert(&a.input, &a.output, a.input_labels.as_deref(), a.output_labels.as_deref())?;
    println!("converted {n} images: {} -> {}", a.input.display(), a.output.display());
    Ok(())
}
