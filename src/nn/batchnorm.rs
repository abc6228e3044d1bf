//! Batch normalisation over the channels of NHWC samples (BatchNorm2d for images, BatchNorm1d
//! for vectors, which are 1×1×C). Training normalises with the (micro-)batch's statistics and
//! reports them so the trainer can update the moving averages after the step; inference uses the
//! moving averages. Parameters (Keras names and order): `gamma`, `beta` (trainable), then
//! `moving_mean`, `moving_variance` (not trainable: their gradients stay zero).

use crate::nn::layer::{Backward, Forward, Layer, ParamSpec, Shape};
use rand_chacha::ChaCha8Rng;

/// Keras' default epsilon.
const EPSILON: f32 = 1e-3;

/// A batch-normalisation layer.
pub struct BatchNorm {
    shape: Shape,
    momentum: f32,
}

impl BatchNorm {
    /// Normalises samples of `shape` per channel; moving averages decay with `momentum`.
    pub fn new(shape: Shape, momentum: f32) -> BatchNorm {
        BatchNorm { shape, momentum }
    }

    fn channels(&self) -> usize {
        self.shape.c
    }
}

/// Per-channel mean and (biased) variance of rows of `c` values.
fn channel_stats(x: &[f32], c: usize, mean: &mut [f32], var: &mut [f32]) {
    let rows = (x.len() / c).max(1) as f32;
    mean.fill(0.0);
    var.fill(0.0);
    x.chunks_exact(c).for_each(|row| mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v));
    mean.iter_mut().for_each(|m| *m /= rows);
    x.chunks_exact(c)
        .for_each(|row| var.iter_mut().zip(row).zip(&*mean).for_each(|((s, &v), &m)| *s += (v - m) * (v - m)));
    var.iter_mut().for_each(|s| *s /= rows);
}

impl Layer for BatchNorm {
    fn kind(&self) -> &'static str {
        "BatchNormalization"
    }

    fn input_shape(&self) -> Shape {
        self.shape
    }

    fn output_shape(&self) -> Shape {
        self.shape
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        let c = self.channels();
        ["gamma", "beta", "moving_mean", "moving_variance"]
            .into_iter()
            .map(|name| ParamSpec { name, dims: vec![c], trainable: !name.starts_with("moving") })
            .collect()
    }

    fn init_params(&self, params: &mut [f32], _rng: &mut ChaCha8Rng) {
        let c = self.channels();
        params[..c].fill(1.0);
        params[c..3 * c].fill(0.0);
        params[3 * c..].fill(1.0);
    }

    /// Normalised inputs, then per channel: batch mean, variance, 1/std, and two sums for backward.
    fn scratch_len(&self, n: usize) -> usize {
        n * self.shape.size() + 5 * self.channels()
    }

    fn forward(&self, f: Forward) {
        let (c, len) = (self.channels(), f.n * self.shape.size());
        let (gamma, beta) = (&f.params[..c], &f.params[c..2 * c]);
        let (xhat, stats) = f.scratch.split_at_mut(len);
        let (mean, rest) = stats.split_at_mut(c);
        let (var, inv_std) = rest.split_at_mut(c);
        if f.train {
            channel_stats(&f.x[..len], c, mean, var);
        } else {
            mean.copy_from_slice(&f.params[2 * c..3 * c]);
            var.copy_from_slice(&f.params[3 * c..4 * c]);
        }
        inv_std.iter_mut().zip(&*var).for_each(|(s, &v)| *s = 1.0 / (v + EPSILON).sqrt());
        for ((xr, hr), yr) in
            f.x[..len].chunks_exact(c).zip(xhat.chunks_exact_mut(c)).zip(f.y[..len].chunks_exact_mut(c))
        {
            for ch in 0..c {
                hr[ch] = (xr[ch] - mean[ch]) * inv_std[ch];
                yr[ch] = gamma[ch] * hr[ch] + beta[ch];
            }
        }
    }

    fn backward(&self, b: Backward) {
        let (c, len) = (self.channels(), b.n * self.shape.size());
        let rows = (len / c) as f32;
        let (xhat, stats) = b.scratch.split_at_mut(len);
        let (stats, sums) = stats.split_at_mut(3 * c);
        let inv_std = &stats[2 * c..3 * c];
        let (dgamma, rest) = b.dparams.split_at_mut(c);
        let dbeta = &mut rest[..c];
        // This call's batch sums (dgamma/dbeta may already hold earlier micro-batches).
        let (sum_dy, sum_dy_xhat) = sums.split_at_mut(c);
        sum_dy.fill(0.0);
        sum_dy_xhat.fill(0.0);
        for (dr, hr) in b.dy[..len].chunks_exact(c).zip(xhat.chunks_exact(c)) {
            for ch in 0..c {
                sum_dy[ch] += dr[ch];
                sum_dy_xhat[ch] += dr[ch] * hr[ch];
            }
        }
        dbeta.iter_mut().zip(&*sum_dy).for_each(|(d, s)| *d += s);
        dgamma.iter_mut().zip(&*sum_dy_xhat).for_each(|(d, s)| *d += s);
        let Some(dx) = b.dx else { return };
        let gamma = &b.params[..c];
        for ((dxr, dr), hr) in dx[..len].chunks_exact_mut(c).zip(b.dy[..len].chunks_exact(c)).zip(xhat.chunks_exact(c))
        {
            for ch in 0..c {
                let scale = gamma[ch] * inv_std[ch] / rows;
                dxr[ch] = scale * (rows * dr[ch] - sum_dy[ch] - hr[ch] * sum_dy_xhat[ch]);
            }
        }
    }

    fn accumulate_state(&self, scratch: &[f32], n: usize, acc: &mut [f32]) {
        let (c, len) = (self.channels(), n * self.shape.size());
        let (mean, var) = (&scratch[len..len + c], &scratch[len + c..len + 2 * c]);
        acc[2 * c..3 * c].iter_mut().zip(mean).for_each(|(a, &m)| *a += m);
        acc[3 * c..4 * c].iter_mut().zip(var).for_each(|(a, &v)| *a += v);
    }

    fn update_state(&self, params: &mut [f32], acc: &[f32], count: usize) {
        let c = self.channels();
        let (mom, count) = (self.momentum, count.max(1) as f32);
        params[2 * c..].iter_mut().zip(&acc[2 * c..4 * c]).for_each(|(p, &a)| *p = mom * *p + (1.0 - mom) * a / count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn normalises_each_channel_in_training() {
        let bn = BatchNorm::new(Shape::new(1, 2, 2), 0.99);
        let params = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let x = [1.0, 10.0, 3.0, 30.0, 5.0, 50.0, 7.0, 70.0];
        let (mut y, mut scratch) = (vec![0.0; 8], vec![0.0; bn.scratch_len(2)]);
        bn.forward(Forward { n: 2, params: &params, x: &x, y: &mut y, scratch: &mut scratch, train: true, seed: 0 });
        let ch0: Vec<f32> = y.iter().step_by(2).copied().collect();
        let mean: f32 = ch0.iter().sum::<f32>() / 4.0;
        let var: f32 = ch0.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 5.0 / (5.0 + EPSILON)).abs() < 1e-4, "{mean} {var}");
        assert!((y[1] - y[0]).abs() < 1e-3, "both channels standardise alike up to epsilon: {y:?}");
        let mut acc = vec![0.0; 8];
        bn.accumulate_state(&scratch, 2, &mut acc);
        assert_eq!(&acc[4..8], &[4.0, 40.0, 5.0, 500.0]);
        let mut p = params;
        bn.update_state(&mut p, &acc, 1);
        assert!((p[4] - 0.04).abs() < 1e-6 && (p[7] - (0.99 + 5.0)).abs() < 1e-4, "{p:?}");
    }

    #[test]
    fn inference_uses_moving_statistics() {
        let bn = BatchNorm::new(Shape::vector(1), 0.99);
        let params = [2.0, 1.0, 3.0, 4.0 - EPSILON];
        let (mut y, mut scratch) = (vec![0.0; 1], vec![0.0; bn.scratch_len(1)]);
        bn.forward(Forward {
            n: 1,
            params: &params,
            x: &[5.0],
            y: &mut y,
            scratch: &mut scratch,
            train: false,
            seed: 0,
        });
        assert!((y[0] - (2.0 * (5.0 - 3.0) / 2.0 + 1.0)).abs() < 1e-5);
    }

    #[test]
    fn gradients_2d_and_1d() {
        check_layer(&BatchNorm::new(Shape::new(3, 2, 3), 0.99), 2);
        check_layer(&BatchNorm::new(Shape::vector(4), 0.99), 5);
    }
}
