//! `wardrobe convert`: IDX ⇄ Kaggle CSV.

use clap::Args;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::data::convert::convert;

#[derive(Args)]
pub struct ConvertArgs {
    /// Input: a .csv file, or an IDX images file (its labels file beside it).
    pub input: PathBuf,
    /// Output: a .csv file, or an IDX images file (gzipped when it ends in .gz).
    pub output: PathBuf,
    /// Labels file of an IDX input, when its name does not follow the images file.
    #[arg(long)]
    pub input_labels: Option<PathBuf>,
    /// Labels file of an IDX output, when its name does not follow the images file.
    #[arg(long)]
    pub output_labels: Option<PathBuf>,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    let n = convert(&a.input, &a.output, a.input_labels.as_deref(), a.output_labels.as_deref())?;
    println!("converted {n} images: {} -> {}", a.input.display(), a.output.display());
    Ok(())
}
