//! `wardrobe photo`: what the model sees of a photo.

use clap::Args;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::data::decode;
use wardrobe::data::photo;

#[derive(Args)]
pub struct PhotoArgs {
    /// Input photo (PNG, JPEG, WebP, BMP, GIF).
    pub input: PathBuf,
    /// Output PNG.
    pub output: PathBuf,
    /// Side of the square result.
    #[arg(long, default_value_t = photo::SIDE)]
    pub size: usize,
    /// Channels of the result: 1 (grey) or 3 (RGB).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Largest accepted photo in pixels (guards against decompression bombs).
    #[arg(long, default_value_t = decode::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

pub fn run(a: PhotoArgs) -> Result<()> {
    let shape = photo::PhotoShape::checked(a.size, a.channels)?;
    let pixels = photo::load_as(&a.input, shape, &decode::Limits::pixels(a.max_pixels))?;
    let png = photo::to_png(&pixels, shape)?;
    wardrobe::fsutil::write_atomic(&a.output, |out| out.write_all(&png))?;
    println!("wrote {} ({}×{}×{}, what the model sees)", a.output.display(), a.size, a.size, a.channels);
    Ok(())
}
