//! Fashion-MNIST items rendered as seller photos: the dark product on a light canvas (white or
//! light grey), upscaled 4–10× with smooth interpolation, placed off-centre, saved as JPEG or
//! PNG; optionally in colour (the product dyed one of a few fabric colours). A shop's own
//! categories group Fashion-MNIST's classes.

use image::{GrayImage, Rgb, RgbImage, imageops::FilterType};
use std::path::{Path, PathBuf};

/// The shop's category of each Fashion-MNIST class.
pub const CATEGORIES: [&str; 10] = [
    "Oberteile",       // T-shirt/top
    "Hosen",           // Trouser
    "Strick",          // Pullover
    "Kleider",         // Dress
    "Jacken & Mäntel", // Coat
    "Schuhe",          // Sandal
    "Oberteile",       // Shirt
    "Schuhe",          // Sneaker
    "Taschen",         // Bag
    "Schuhe",          // Ankle boot
];

/// Fabric colours (RGB, 0–1) a colour photo's product is dyed in.
const DYES: [[f32; 3]; 6] =
    [[0.7, 0.05, 0.1], [0.1, 0.2, 0.6], [0.05, 0.4, 0.15], [0.8, 0.55, 0.05], [0.35, 0.1, 0.45], [0.15, 0.15, 0.15]];

/// Item `i` (28×28 grey, bright product on black) as a seller photo in `dir`, named after `i`;
/// in colour when `colour` is set.
pub fn write_photo_as(item: &[u8], i: usize, dir: &Path, colour: bool) -> PathBuf {
    let scale = 4 + (i % 7) as u32;
    let ink = GrayImage::from_raw(28, 28, item.to_vec()).expect("a 28×28 item");
    let big = image::imageops::resize(&ink, 28 * scale, 28 * scale, FilterType::CatmullRom);
    let bg = if i.is_multiple_of(2) { 255.0 } else { 228.0 };
    let dye = if colour { DYES[i % DYES.len()] } else { [0.0; 3] };
    let (cw, ch) = (28 * scale + 40 + (i % 13) as u32 * 9, 28 * scale + 30 + (i % 11) as u32 * 7);
    let (ox, oy) = (5 + (i % 5) as u32 * 7, 3 + (i % 3) as u32 * 9);
    let photo = RgbImage::from_fn(cw, ch, |x, y| {
        let v = if x >= ox && y >= oy && x - ox < big.width() && y - oy < big.height() {
            f32::from(big.get_pixel(x - ox, y - oy).0[0]) / 255.0
        } else {
            0.0
        };
        let paper = [bg, bg * 0.98, bg * 0.95];
        Rgb([0, 1, 2].map(|c| (paper[c] * (1.0 - v) + 255.0 * dye[c] * v) as u8))
    });
    std::fs::create_dir_all(dir).expect("photo folder");
    let path = dir.join(format!("item{i:05}.{}", if i.is_multiple_of(3) { "png" } else { "jpg" }));
    photo.save(&path).expect("photo saved");
    path
}
