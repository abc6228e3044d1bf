//! `wardrobe audit`: find the labels of a data set a person should look at.

use super::{ArchitectureArgs, DataArgs, INTERRUPTED, install_ctrl_c};
use clap::Args;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::audit::{self, Issue};
use wardrobe::data::dataset::Split;
use wardrobe::train::progress::ConsoleProgress;

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub architecture: ArchitectureArgs,
    /// Folds: each image is judged by a model trained on the other folds.
    #[arg(long, default_value_t = 3)]
    pub folds: usize,
    /// Epochs of each fold's training (default: the preset's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Output labels file of the findings (serve --review takes it).
    #[arg(long)]
    pub out: PathBuf,
    /// Directory for the fold models.
    #[arg(long, default_value = "runs/audit")]
    pub work: PathBuf,
}

pub fn run(a: AuditArgs) -> Result<()> {
    let data = a.data.source().load(Split::Train)?;
    let mut run = a.architecture.run_for(&data)?;
    if let Some(epochs) = a.epochs {
        run.training.epochs = epochs;
    }
    run.training.validate()?;
    println!(
        "auditing {} images of {} classes with {} folds: {} --val-split {}",
        data.len(),
        data.classes.len(),
        a.folds,
        run.training.flags(),
        run.val_split
    );
    // Training images that are also test images: only where a test split is given.
    let test = match (&a.data.train_csv, &a.data.test_csv) {
        (Some(_), None) => None,
        _ => Some(a.data.source().load(Split::Test)?),
    };
    if test.is_none() {
        println!("no test split given (--test-csv): training images are not compared with test images");
    }
    install_ctrl_c()?;
    let mut console = ConsoleProgress::new(run.training.epochs);
    let found = audit::audit(&data, test.as_ref(), &run, a.folds, &a.work, &mut console, &INTERRUPTED)?;
    let photos = match &a.data.train_csv {
        Some(_) => None,
        None => wardrobe::data::import::photo_paths(&a.data.data, Split::Train, data.len())?,
    };
    audit::write(&a.out, &data, &found, photos.as_deref())?;
    let count = |kind: fn(&Issue) -> bool| found.findings.iter().filter(|f| kind(&f.issue)).count();
    println!(
        "{} label issues, {} near-duplicates with another label, {} also in the test set, {} outliers: {} (review with: wardrobe serve --model MODEL --review {})",
        count(|i| matches!(i, Issue::Label { .. })),
        count(|i| matches!(i, Issue::NearDuplicate { .. })),
        count(|i| matches!(i, Issue::InTestSet { .. })),
        count(|i| *i == Issue::Outlier),
        a.out.display(),
        a.out.display()
    );
    Ok(())
}
