//! Training-time augmentation on u8 images, seeded per sample: random translation (zero fill),
//! horizontal flip (at random, or alternating from epoch to epoch), small rotation (bilinear,
//! zero fill) and random erasing. Each is switchable; the label is never changed.

use crate::seed::mix_seed;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which augmentations to apply, and how strongly.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// Largest shift in pixels along each axis (0 = off).
    pub shift: u8,
    /// Mirror left–right with probability ½.
    pub flip: bool,
    /// With `flip`: mirror each image in every other epoch instead of at random, starting from
    /// an orientation drawn once per image, so every two epochs show each image both ways.
    pub alternate: bool,
    /// Largest rotation in degrees either way (0 = off).
    pub rotate: f32,
    /// Probability of erasing one random rectangle (0 = off).
    pub erase: f32,
}

impl Augment {
    /// Parses the command-line form: `none`, or a comma list of `shift=N`, `flip` (or
    /// `flip=alternate`), `rotate=DEG`, `erase=P`.
    pub fn parse(text: &str) -> crate::Result<Augment> {
        let mut aug = Augment::default();
        if text == "none" {
            return Ok(aug);
        }
        for item in text.split(',') {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let bad = || {
                crate::Error::flag("--augment", item, "expected shift=N, flip, flip=alternate, rotate=DEG or erase=P")
            };
            match key {
                "flip" if value.is_empty() => aug.flip = true,
                "flip" if value == "alternate" => (aug.flip, aug.alternate) = (true, true),
                "shift" => aug.shift = value.parse().ok().filter(|&s| s <= 8).ok_or_else(bad)?,
                "rotate" => {
                    aug.rotate = value.parse().ok().filter(|r: &f32| (0.0..=45.0).contains(r)).ok_or_else(bad)?
                }
                "erase" => aug.erase = value.parse().ok().filter(|p: &f32| (0.0..=1.0).contains(p)).ok_or_else(bad)?,
                _ => return Err(bad()),
            }
        }
        Ok(aug)
    }

    /// True when no augmentation is switched on.
    pub fn is_off(&self) -> bool {
        *self == Augment::default()
    }

    /// Writes an augmented copy of the image `src` of `shape` (rows, cols, channels) into `dst`,
    /// for `visit`, drawing everything but an alternating flip from `rng`.
    pub fn apply(&self, src: &[u8], dst: &mut [u8], shape: (usize, usize, usize), visit: Visit, rng: &mut ChaCha8Rng) {
        let s = f32::from(self.shift);
        let (dx, dy) = if self.shift > 0 {
            (rng.random_range(-s..=s).round(), rng.random_range(-s..=s).round())
        } else {
            (0.0, 0.0)
        };
        let flip = self.flip && if self.alternate { visit.mirrored() } else { rng.random::<bool>() };
        let angle = if self.rotate > 0.0 { rng.random_range(-self.rotate..=self.rotate).to_radians() } else { 0.0 };
        sample_transformed(src, dst, shape, Transform { dx, dy, flip, angle });
        if self.erase > 0.0 && rng.random::<f32>() < self.erase {
            erase_rectangle(dst, shape, rng);
        }
    }
}

/// The command-line form [`Augment::parse`] reads.
impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.shift > 0 {
            parts.push(format!("shift={}", self.shift));
        }
        if self.flip {
            parts.push(if self.alternate { "flip=alternate" } else { "flip" }.to_string());
        }
        if self.rotate > 0.0 {
            parts.push(format!("rotate={}", self.rotate));
        }
        if self.erase > 0.0 {
            parts.push(format!("erase={}", self.erase));
        }
        f.write_str(if parts.is_empty() { "none".to_string() } else { parts.join(",") }.as_str())
    }
}

/// One training image in one epoch of a run: what an alternating flip depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visit {
    /// The run's seed for flip orientations.
    pub seed: u64,
    /// The image's index in the training set.
    pub image: u32,
    /// The epoch, from 1.
    pub epoch: usize,
}

impl Visit {
    /// Whether an alternating flip mirrors the image: an orientation drawn from the seed and
    /// the image in odd epochs, the other one in even epochs.
    fn mirrored(&self) -> bool {
        (mix_seed(self.seed, u64::from(self.image)) ^ self.epoch as u64) & 1 == 1
    }
}

/// Where each output pixel samples the input.
struct Transform {
    dx: f32,
    dy: f32,
    flip: bool,
    angle: f32,
}

/// Output pixel `(x, y)` reads the input at the inverse transform of its position: undo the
/// shift, undo the rotation about the centre, undo the flip. Bilinear, zero outside.
fn sample_transformed(src: &[u8], dst: &mut [u8], (rows, cols, channels): (usize, usize, usize), t: Transform) {
    let (cx, cy) = ((cols as f32 - 1.0) / 2.0, (rows as f32 - 1.0) / 2.0);
    let (sin, cos) = t.angle.sin_cos();
    for y in 0..rows {
        for x in 0..cols {
            let (px, py) = (x as f32 - t.dx - cx, y as f32 - t.dy - cy);
            let (mut sx, sy) = (cos * px + sin * py + cx, -sin * px + cos * py + cy);
            if t.flip {
                sx = 2.0 * cx - sx;
            }
            for c in 0..channels {
                dst[(y * cols + x) * channels + c] = bilinear(src, (rows, cols, channels), c, sx, sy);
            }
        }
    }
}

/// Channel `c` of the input at a fractional position (0 outside the image).
fn bilinear(src: &[u8], (rows, cols, channels): (usize, usize, usize), c: usize, x: f32, y: f32) -> u8 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| {
        if xi < 0.0 || yi < 0.0 || xi >= cols as f32 || yi >= rows as f32 {
            0.0
        } else {
            f32::from(src[(yi as usize * cols + xi as usize) * channels + c])
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
}

/// Sets a random rectangle covering 2–20% of the image to black.
fn erase_rectangle(img: &mut [u8], (rows, cols, channels): (usize, usize, usize), rng: &mut ChaCha8Rng) {
    let area = rng.random_range(0.02..0.2) * (rows * cols) as f32;
    let aspect = rng.random_range(0.3f32..3.3);
    let h = ((area * aspect).sqrt().round() as usize).clamp(1, rows);
    let w = ((area / aspect).sqrt().round() as usize).clamp(1, cols);
    let (top, left) = (rng.random_range(0..=rows - h), rng.random_range(0..=cols - w));
    for row in img.chunks_exact_mut(cols * channels).skip(top).take(h) {
        row[left * channels..(left + w) * channels].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn image() -> Vec<u8> {
        (0..28 * 28).map(|i| ((i * 7) % 256) as u8).collect()
    }

    fn run(aug: Augment, seed: u64) -> Vec<u8> {
        let mut out = vec![0; 784];
        aug.apply(&image(), &mut out, (28, 28, 1), Visit::default(), &mut ChaCha8Rng::seed_from_u64(seed));
        out
    }

    #[test]
    fn identity_when_off() {
        assert!(Augment::default().is_off());
        assert_eq!(run(Augment::default(), 1), image());
    }

    #[test]
    fn flip_mirrors_rows_exactly() {
        let aug = Augment { flip: true, ..Default::default() };
        let flipped = (0..20).map(|s| run(aug, s)).find(|o| *o != image()).unwrap();
        for y in 0..28 {
            for x in 0..28 {
                assert_eq!(flipped[y * 28 + x], image()[y * 28 + 27 - x]);
            }
        }
    }

    #[test]
    fn alternating_flip_shows_each_image_both_ways_every_two_epochs() {
        let aug = Augment { flip: true, alternate: true, ..Default::default() };
        let mirrored = |image: u32, epoch: usize| {
            let mut out = vec![0; 784];
            let visit = Visit { seed: 7, image, epoch };
            // The orientation does not depend on the per-sample generator.
            let seeds = [1, 2].map(|s| {
                aug.apply(&self::image(), &mut out, (28, 28, 1), visit, &mut ChaCha8Rng::seed_from_u64(s));
                out != self::image()
            });
            assert_eq!(seeds[0], seeds[1]);
            seeds[0]
        };
        let first: Vec<bool> = (0..64).map(|i| mirrored(i, 1)).collect();
        for epoch in 2..6 {
            for (i, &m) in first.iter().enumerate() {
                assert_eq!(mirrored(i as u32, epoch), m == (epoch % 2 == 1), "image {i}, epoch {epoch}");
            }
        }
        let count = first.iter().filter(|&&m| m).count();
        assert!((16..=48).contains(&count), "{count} of 64 images start mirrored");
    }

    #[test]
    fn shift_moves_content_by_whole_pixels_within_bounds() {
        let aug = Augment { shift: 2, ..Default::default() };
        for seed in 0..10 {
            let out = run(aug, seed);
            let src = image();
            let found = (-2i32..=2).any(|dy| {
                (-2i32..=2).any(|dx| {
                    (0..28i32).all(|y| {
                        (0..28i32).all(|x| {
                            let (sx, sy) = (x - dx, y - dy);
                            let want = if (0..28).contains(&sx) && (0..28).contains(&sy) {
                                src[(sy * 28 + sx) as usize]
                            } else {
                                0
                            };
                            out[(y * 28 + x) as usize] == want
                        })
                    })
                })
            });
            assert!(found, "seed {seed}: not a whole-pixel shift of at most 2");
        }
    }

    #[test]
    fn colour_flip_keeps_each_pixel_s_channels_together() {
        let src: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8).collect();
        let aug = Augment { flip: true, ..Default::default() };
        let mut out = vec![0; src.len()];
        let flipped = (0..20)
            .map(|seed| {
                aug.apply(&src, &mut out, (2, 3, 3), Visit::default(), &mut ChaCha8Rng::seed_from_u64(seed));
                out.clone()
            })
            .find(|o| *o != src)
            .unwrap();
        assert_eq!(flipped, [6, 7, 8, 3, 4, 5, 0, 1, 2, 15, 16, 17, 12, 13, 14, 9, 10, 11]);
    }

    #[test]
    fn rotation_and_erasing_change_the_image_deterministically() {
        let aug = Augment { rotate: 10.0, erase: 1.0, ..Default::default() };
        // Pinned: the same seed must give these pixels on any machine and in any later version
        // (a change here changes every trained model).
        let checksum =
            |pixels: Vec<u8>| pixels.iter().enumerate().map(|(i, &p)| (i as u64 + 1) * u64::from(p)).sum::<u64>();
        assert_eq!(checksum(run(aug, 3)), 26_401_265);
        assert_ne!(run(aug, 3), image());
        assert_ne!(run(aug, 3), run(aug, 4));
        assert!(run(Augment { erase: 1.0, ..Default::default() }, 5).iter().filter(|&&p| p == 0).count() > 15);
    }

    #[test]
    fn parses_lists_and_rejects_bad_items() {
        let a = Augment::parse("shift=2,flip,rotate=10,erase=0.5").unwrap();
        assert_eq!(a, Augment { shift: 2, flip: true, rotate: 10.0, erase: 0.5, alternate: false });
        let b = Augment::parse("flip=alternate,erase=0.5").unwrap();
        assert_eq!(b, Augment { flip: true, alternate: true, erase: 0.5, ..Default::default() });
        assert_eq!(b.to_string(), "flip=alternate,erase=0.5");
        assert!(Augment::parse("none").unwrap().is_off());
        assert!(Augment::parse("shift=99").is_err());
        assert!(Augment::parse("flip=yes").is_err());
        assert!(Augment::parse("zoom").unwrap_err().to_string().contains("'zoom'"));
    }
}
