//! `wardrobe photo`: what the model sees of a photo.

use clap::Args;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::data::photo;

#[derive(Args)]
pub struct PhotoArgs {
    /// Input photo (PNG, JPEG, WebP, BMP, GIF).
    pub input: PathBuf,
    /// Output PNG (28×28 grey).
    pub output: PathBuf,
    /// Largest accepted photo in pixels (guards against decompression bombs).
    #[arg(long, default_value_t = photo::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

pub fn run(a: PhotoArgs) -> Result<()> {
    let pixels = photo::load(&a.input, a.max_pixels)?;
    let png = photo::to_png(&pixels)?;
    wardrobe::fsutil::write_atomic(&a.output, |out| out.write_all(&png))?;
    println!("wrote {} (28×28, what the model sees)", a.output.display());
    Ok(())
}
