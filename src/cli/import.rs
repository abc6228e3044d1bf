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
    /// The catalogue's classes, one per line, beside those its folders name: a reviewed label
    /// outside them is an error naming the row and the closest class.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Allow a labels file to bring this class, which the catalogue does not have yet
    /// (repeatable).
    #[arg(long = "new-class")]
    pub new_classes: Vec<String>,
}

pub fn run(a: ImportArgs) -> Result<()> {
    let options = ImportOptions {
        shape: PhotoShape::checked(a.size, a.channels)?,
        test_split: a.test_split,
        accept_confident: a.accept_confident,
        max_pixels: a.max_pixels,
        classes: a.classes.as_deref().map(read_classes).transpose()?,
        new_classes: a.new_classes.clone(),
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
    for hidden in &summary.hidden {
        println!("  ignored (hidden): {hidden}");
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

/// The class names of a `--classes` file: one per line, blank lines and `#` comments skipped.
fn read_classes(path: &std::path::Path) -> Result<Vec<String>> {
    let text = wardrobe::fsutil::read_at_most(path, 1 << 20)?;
    let text = String::from_utf8(text).map_err(|_| wardrobe::Error::format(path, "not UTF-8 text"))?;
    let classes: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    if classes.is_empty() {
        return Err(wardrobe::Error::format(path, "no class names (one per line)"));
    }
    Ok(classes)
}
