//! `wardrobe label`: label every photo of a folder.

use super::{PhotoLimitArgs, with_photo_progress};
use clap::Args;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::label::{self, LabelOptions, Shard, label_folder};
use wardrobe::model_dir;

#[derive(Args)]
pub struct LabelArgs {
    /// Model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Folder of photos.
    pub folder: PathBuf,
    /// Output file, .csv or .jsonl; rerunning with the same file skips labelled photos.
    #[arg(long)]
    pub out: PathBuf,
    /// Flag photos whose (calibrated) confidence is below this for human review.
    #[arg(long, default_value_t = wardrobe::predict::DEFAULT_REVIEW_BELOW)]
    pub review_below: f32,
    /// Call photos whose out-of-distribution score is above this `unknown` (default: the
    /// threshold stored with the model, chosen on its validation data).
    #[arg(long)]
    pub unknown_above: Option<f32>,
    /// Label only shard I of N (I from 0): a stable hash of each photo's path below the folder
    /// picks its shard, so N processes (a Kubernetes Indexed Job) cover the folder once.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
    /// Photos per batch (each batch is flushed to the output).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[command(flatten)]
    pub photo_limits: PhotoLimitArgs,
}

pub fn run(a: LabelArgs) -> Result<()> {
    let loaded = model_dir::load(&a.model)?;
    let shape = loaded.photo_shape()?;
    // Photos wait for each other's memory as long as it takes: the run is the only decoder.
    let limits = a.photo_limits.limits(std::time::Duration::from_secs(3600))?;
    let (review_below, unknown_above) = (a.review_below, a.unknown_above);
    let options = LabelOptions { review_below, unknown_above, batch: a.batch, limits, shape, shard: a.shard };
    let summary = with_photo_progress(|progress| {
        label_folder(&loaded.model, loaded.ood.as_ref(), &loaded.class_names, &a.folder, &a.out, options, progress)
    })?;
    println!(
        "{} photos: {} labelled now, {} already labelled, {} failed, {} need review, {} unknown",
        summary.found,
        summary.labelled,
        summary.skipped,
        summary.failed.len(),
        summary.needs_review,
        summary.unknown
    );
    if loaded.ood.is_none() {
        println!("this model has no out-of-distribution score (trained before it existed): no photo is called unknown");
    }
    let width = summary.per_label.keys().map(|l| l.chars().count()).max().unwrap_or(0);
    for (label, count) in &summary.per_label {
        println!("  {label:<width$} {count}");
    }
    for f in &summary.failed {
        println!("  failed: {}", f.reason);
    }
    println!("labels: {}  errors: {}", a.out.display(), label::errors_path(&a.out).display());
    Ok(())
}
