//! `wardrobe convert`: IDX ⇄ Kaggle CSV, and a model directory to ONNX.

use clap::Args;
use std::path::PathBuf;
use wardrobe::data::convert::convert;
use wardrobe::nn::store;
use wardrobe::onnx::export;
use wardrobe::{Error, Result};

#[derive(Args)]
pub struct ConvertArgs {
    /// Input: a .csv file, an IDX images file (its labels file beside it), or a model directory.
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
}

pub fn run(a: ConvertArgs) -> Result<()> {
    if a.input.is_dir() {
        if a.output.extension().is_none_or(|e| e != "onnx") {
            return Err(Error::Invalid(format!("{}: a model directory converts to an .onnx file", a.output.display())));
        }
        let loaded = store::load(&a.input)?;
        export::write(&loaded.model, &loaded.class_names, &a.output)?;
        let input = loaded.model.spec.input;
        let layout = if input.c == 1 {
            format!("[N,{},{}]", input.h, input.w)
        } else {
            format!("[N,{},{},{}]", input.h, input.w, input.c)
        };
        println!(
            "wrote {} (ONNX opset {}): input images UINT8 {layout}, output probabilities FP32 [N,{}], temperature {}",
            a.output.display(),
            export::OPSET,
            loaded.class_names.len(),
            loaded.model.temperature
        );
        return Ok(());
    }
    let n = convert(&a.input, &a.output, a.input_labels.as_deref(), a.output_labels.as_deref())?;
    println!("converted {n} images: {} -> {}", a.input.display(), a.output.display());
    Ok(())
}
