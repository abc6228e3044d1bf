//! Inverted dropout: in training each value is zeroed with probability `rate` and the survivors
//! scaled by 1/(1−rate); at inference it is the identity. Drops are decided on 16-bit uniform
//! draws (the rate is rounded to a multiple of 1/65536). The mask comes from the call's seed, so
//! a training step is reproducible.

use crate::nn::layer::{Backward, Forward, Layer, Shape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A dropout layer.
pub struct Dropout {
    shape: Shape,
    rate: f32,
}

impl Dropout {
    /// Drops values of samples of `shape` with probability `rate` (0 ≤ rate < 1).
    pub fn new(shape: Shape, rate: f32) -> Dropout {
        Dropout { shape, rate }
    }
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn input_shape(&self) -> Shape {
        self.shape
    }

    fn output_shape(&self) -> Shape {
        self.shape
    }

    fn scratch_len(&self, n: usize) -> usize {
        n * self.shape.size()
    }

    fn forward(&self, f: Forward) {
        let len = f.n * self.shape.size();
        let (x, y) = (&f.x[..len], &mut f.y[..len]);
        if !f.train {
            y.copy_from_slice(x);
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(f.seed);
        let keep_scale = 1.0 / (1.0 - self.rate);
        let threshold = (f64::from(self.rate) * 65536.0).round() as u64;
        let mask = &mut f.scratch[..len];
        // Four 16-bit uniform draws from each 64-bit random word.
        for chunk in mask.chunks_mut(4) {
            let word = rng.next_u64();
            for (j, m) in chunk.iter_mut().enumerate() {
                *m = if (word >> (16 * j)) & 0xffff < threshold { 0.0 } else { keep_scale };
            }
        }
        y.iter_mut().zip(x).zip(mask.iter()).for_each(|((y, &x), &m)| *y = x * m);
    }

    fn backward(&self, b: Backward) {
        let len = b.n * self.shape.size();
        if let Some(dx) = b.dx {
            let mask = &b.scratch[..len];
            dx[..len].iter_mut().zip(&b.dy[..len]).zip(mask).for_each(|((dx, &d), &m)| *dx = d * m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    fn run(rate: f32, train: bool, len: usize) -> Vec<f32> {
        let d = Dropout::new(Shape::vector(len), rate);
        let (mut y, mut scratch) = (vec![0.0; len], vec![0.0; len]);
        d.forward(Forward { n: 1, params: &[], x: &vec![1.0; len], y: &mut y, scratch: &mut scratch, train, seed: 1 });
        y
    }

    #[test]
    fn drops_about_rate_and_keeps_expectation() {
        let y = run(0.25, true, 40_000);
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        assert!((dropped - 0.25).abs() < 0.01, "{dropped}");
        let mean = y.iter().sum::<f32>() / y.len() as f32;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
    }

    #[test]
    fn identity_at_inference() {
        assert!(run(0.5, false, 100).iter().all(|&v| v == 1.0));
    }

    #[test]
    fn gradient_uses_the_same_mask() {
        check_layer(&Dropout::new(Shape::new(2, 2, 3), 0.5), 2);
    }

    #[test]
    fn rate_zero_trains_as_identity() {
        assert!(run(0.0, true, 100).iter().all(|&v| v == 1.0));
        check_layer(&Dropout::new(Shape::vector(5), 0.0), 2);
    }
}
