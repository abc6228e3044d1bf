//! `wardrobe import`: labelled photos (category folders, reviewed labels CSV files) into a
//! data-set directory.

use super::with_photo_progress;
use clap::Args;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::data::decode;
use wardrobe::data::import::{ImportOptions, import};
use wardrobe::data::photo::{self, PhotoShape};

#[derive(Args)]
pub struct ImportArgs {
    /// Folders with one sub-folder per category (its name is the class name), or labels CSV
    /// files written by `wardrobe label` with `reviewed_label` filled in.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Data-set directory to write (read it with `--data DIR`).
    #[arg(long)]
    pub out: PathBuf,
    /// Fraction of photos for the test set, chosen by a hash of each photo's bytes.
    #[arg(long, default_value_t = 0.1)]
    pub test_split: f64,
    /// Side of the square images the photos become.
    #[arg(long, default_value_t = photo::SIDE)]
    pub size: usize,
    /// Channels of the images: 1 (grey) or 3 (RGB).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// For CSV rows without a reviewed label, take the model's label when it did not need review.
    #[arg(long)]
    pub accept_confident: bool,
    /// Largest accepted photo in pixels (guards against decompression bombs).
    #[arg(long, default_value_t = decode::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

pub fn run(a: ImportArgs) -> Result<()> {
    let options = ImportOptions {
        shape: PhotoShape::checked(a.size, a.channels)?,
        test_split: a.test_split,
        accept_confident: a.accept_confident,
        max_pixels: a.max_pixels,
    };
    let summary = with_photo_progress(|progress| import(&a.sources, &a.out, options, progress))?;
    println!(
        "{} photos found: {} training, {} test, {} duplicates ({} with another label), {} unreadable, {} CSV rows not reviewed",
        summary.found,
        summary.train,
        summary.test,
        summary.duplicates,
        summary.conflicting,
        summary.unreadable.len(),
        summary.unreviewed
    );
    if summary.model_labelled > 0 {
        println!(
            "{} training photos carry the model's own label (--accept-confident); the test split has only reviewed ones",
            summary.model_labelled
        );
    }
    println!("{} classes at {}×{}×{}:", summary.per_class.len(), a.size, a.size, a.channels);
    let width = summary.per_class.keys().map(|c| c.chars().count()).max().unwrap_or(0);
    for (class, count) in &summary.per_class {
        println!("  {class:<width$} {count}");
    }
    for u in summary.unreadable.iter().take(10) {
        println!("  unreadable: {}", u.reason);
    }
    if summary.unreadable.len() > 10 {
        println!("  … {} more in {}", summary.unreadable.len() - 10, a.out.join("unreadable.csv").display());
    }
    println!("wrote {} (train with: wardrobe train --data {})", a.out.display(), a.out.display());
    Ok(())
}
