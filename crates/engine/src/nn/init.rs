//! Weight initialisers (Keras definitions): He and Glorot, normal or uniform. The normal variants
//! are truncated at two standard deviations and rescaled, as Keras does.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How a weight tensor is initialised from its fan-in and fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Truncated normal, stddev sqrt(2 / fan_in).
    HeNormal,
    /// Uniform in ±sqrt(6 / fan_in).
    HeUniform,
    /// Truncated normal, stddev sqrt(2 / (fan_in + fan_out)).
    GlorotNormal,
    /// Uniform in ±sqrt(6 / (fan_in + fan_out)).
    GlorotUniform,
}

/// Stddev of a unit normal truncated at ±2, by which Keras divides to keep the target variance.
const TRUNCATED_STDDEV: f64 = 0.879_625_661_034_239_8;

/// One draw of a standard normal truncated to ±2 (rejection sampling over Box–Muller).
fn truncated_normal(rng: &mut ChaCha8Rng) -> f64 {
    loop {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        if z.abs() <= 2.0 {
            return z;
        }
    }
}

impl Init {
    /// Fills `weights` for a tensor with the given fans.
    pub fn fill(self, weights: &mut [f32], fan_in: usize, fan_out: usize, rng: &mut ChaCha8Rng) {
        let (fan_in, fan_out) = (fan_in as f64, fan_out as f64);
        match self {
            Init::HeNormal | Init::GlorotNormal => {
                let var = if self == Init::HeNormal { 2.0 / fan_in } else { 2.0 / (fan_in + fan_out) };
                let std = var.sqrt() / TRUNCATED_STDDEV;
                weights.iter_mut().for_each(|w| *w = (truncated_normal(rng) * std) as f32);
            }
            Init::HeUniform | Init::GlorotUniform => {
                let limit =
                    if self == Init::HeUniform { (6.0 / fan_in).sqrt() } else { (6.0 / (fan_in + fan_out)).sqrt() };
                weights.iter_mut().for_each(|w| *w = rng.random_range(-limit..limit) as f32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn stats(init: Init, fan_in: usize, fan_out: usize) -> (f64, f64, f64) {
        let mut w = vec![0.0f32; 100_000];
        init.fill(&mut w, fan_in, fan_out, &mut ChaCha8Rng::seed_from_u64(3));
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w.len() as f64;
        let max = w.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
        (mean, var, max)
    }

    #[test]
    fn variances_match_their_definitions() {
        for (init, want) in [
            (Init::HeNormal, 2.0 / 50.0),
            (Init::HeUniform, 2.0 / 50.0),
            (Init::GlorotNormal, 2.0 / 150.0),
            (Init::GlorotUniform, 2.0 / 150.0),
        ] {
            let (mean, var, _) = stats(init, 50, 100);
            assert!(mean.abs() < 0.003, "{init:?} mean {mean}");
            assert!((var / want - 1.0).abs() < 0.03, "{init:?} var {var} want {want}");
        }
    }

    #[test]
    fn normals_are_truncated_at_two_sigma() {
        let (_, _, max) = stats(Init::HeNormal, 50, 1);
        let sigma = (2.0f64 / 50.0).sqrt() / TRUNCATED_STDDEV;
        assert!(max <= 2.0 * sigma + 1e-6, "{max} > 2σ");
    }
}
