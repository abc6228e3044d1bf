//! `wardrobe evaluate`: score a saved model on the test set.

use super::DataArgs;
use clap::Args;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::data::dataset::Split;
use wardrobe::nn::store;
use wardrobe::report::{self, ReportInput};
use wardrobe::train::metrics::Evaluation;
use wardrobe::train::trainer;

#[derive(Args)]
pub struct EvaluateArgs {
    /// Model directory.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Test-time augmentation: average each image with its mirror image.
    #[arg(long)]
    pub tta: bool,
    /// Also write figures (confusion matrix, training curves, misclassified images) and
    /// report.json into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub fn run(a: EvaluateArgs) -> Result<()> {
    let loaded = store::load(&a.model)?;
    let test = a.data.source().load(Split::Test)?;
    loaded.check_data(&test, "the test set")?;
    let probs = trainer::probabilities(&loaded.model, &test, a.tta);
    let eval = Evaluation::from_probabilities(&probs, &test.labels, &loaded.class_names);
    if let Some(dir) = &a.report {
        let history = wardrobe::train::history::load(&a.model)?;
        let input = ReportInput {
            model: &a.model,
            evaluation: &eval,
            probabilities: &probs,
            data: &test,
            names: &loaded.class_names,
            history: history.as_deref(),
            tta: a.tta,
        };
        for path in report::write(dir, &input)? {
            eprintln!("wrote {}", path.display());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&eval).expect("evaluation serialises"));
    } else {
        print!("{}", eval.table());
    }
    Ok(())
}
