//! Finite-difference gradient checking for layers (tests only): the loss `Σ y·r` for a fixed
//! random `r`, differentiated numerically (central differences, loss summed in f64) and compared
//! with the layer's backward pass for every input and parameter value.

use crate::nn::layer::{Backward, Forward, Layer, param_count};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const EPS: f32 = 3e-3;
const ABS_TOL: f64 = 2e-3;
const REL_TOL: f64 = 2e-2;

fn uniform(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Values in (−1, 1) at least 4·EPS apart and away from 0, in random order, so that no max-pool
/// tie or ReLU kink lies within a finite-difference step.
fn distinct(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let step = (2.0 / (len as f32 + 1.0)).clamp(4.0 * EPS, 0.05);
    let mut values: Vec<f32> = (0..len).map(|i| (i as f32 - len as f32 / 2.0 + 0.5) * step).collect();
    values.shuffle(rng);
    values
}

/// Runs forward (training mode, fixed seed) and returns `Σ y·r` in f64.
fn loss(layer: &dyn Layer, n: usize, params: &[f32], x: &[f32], r: &[f32]) -> f64 {
    let mut y = vec![0.0; r.len()];
    let mut scratch = vec![0.0; layer.scratch_len(n)];
    layer.forward(Forward { n, params, x, y: &mut y, scratch: &mut scratch, train: true, seed: 99 });
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Central-difference derivative of the loss w.r.t. `values[i]`, where `eval` sees the perturbed values.
fn numeric(values: &mut [f32], i: usize, eval: &mut dyn FnMut(&[f32]) -> f64) -> f64 {
    let orig = values[i];
    values[i] = orig + EPS;
    let up = eval(values);
    values[i] = orig - EPS;
    let down = eval(values);
    values[i] = orig;
    (up - down) / (2.0 * EPS as f64)
}

fn assert_close(what: &str, i: usize, analytic: f32, numeric: f64) {
    let a = analytic as f64;
    let err = (a - numeric).abs();
    assert!(
        err <= ABS_TOL + REL_TOL * a.abs().max(numeric.abs()),
        "{what}[{i}]: analytic {a:.6} vs numeric {numeric:.6}"
    );
}

/// Output, input gradient and parameter gradient of one training-mode forward and backward pass
/// of `layer` over the samples `x`, for the output gradient `dy`.
pub fn forward_backward(layer: &dyn Layer, params: &[f32], x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = x.len() / layer.input_shape().size();
    let (mut y, mut scratch) = (vec![0.0; n * layer.output_shape().size()], vec![0.0; layer.scratch_len(n)]);
    layer.forward(Forward { n, params, x, y: &mut y, scratch: &mut scratch, train: true, seed: 0 });
    let (mut dy, mut dx, mut dparams) = (dy.to_vec(), vec![0.0; x.len()], vec![0.0; params.len()]);
    let dx_out = Some(dx.as_mut_slice());
    layer.backward(Backward {
        n,
        params,
        x,
        y: &y,
        dy: &mut dy,
        dx: dx_out,
        dparams: &mut dparams,
        scratch: &mut scratch,
    });
    (y, dx, dparams)
}

/// Checks the gradients of `layer` on a random batch of `n` samples.
pub fn check_layer(layer: &dyn Layer, n: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let in_len = n * layer.input_shape().size();
    let out_len = n * layer.output_shape().size();
    let mut params = vec![0.0; param_count(layer)];
    layer.init_params(&mut params, &mut rng);
    params.iter_mut().for_each(|p| *p += rng.random_range(-0.1f32..0.1));
    let mut x = distinct(in_len, &mut rng);
    let r = uniform(out_len, &mut rng);

    let mut y = vec![0.0; out_len];
    let mut scratch = vec![0.0; layer.scratch_len(n)];
    layer.forward(Forward { n, params: &params, x: &x, y: &mut y, scratch: &mut scratch, train: true, seed: 99 });
    let mut dy = r.clone();
    let mut dx = vec![0.0; in_len];
    let mut dparams = vec![0.0; params.len()];
    layer.backward(Backward {
        n,
        params: &params,
        x: &x,
        y: &y,
        dy: &mut dy,
        dx: Some(&mut dx),
        dparams: &mut dparams,
        scratch: &mut scratch,
    });

    let p = params.clone();
    for (i, &analytic) in dx.iter().enumerate() {
        let g = numeric(&mut x, i, &mut |xs| loss(layer, n, &p, xs, &r));
        assert_close("dx", i, analytic, g);
    }
    let xs = x.clone();
    for (i, &analytic) in dparams.iter().enumerate() {
        let g = numeric(&mut params, i, &mut |ps| loss(layer, n, ps, &xs, &r));
        assert_close("dparams", i, analytic, g);
    }
    assert_first_layer_gradients_match(layer, n, &params, &xs, &r, &dparams);
}

/// As a model's first layer (no input gradient wanted), `layer` gives the same parameter
/// gradient as with one, whatever shortcut it takes then.
fn assert_first_layer_gradients_match(layer: &dyn Layer, n: usize, params: &[f32], x: &[f32], r: &[f32], want: &[f32]) {
    let mut y = vec![0.0; r.len()];
    let mut scratch = vec![0.0; layer.scratch_len(n)];
    layer.forward(Forward { n, params, x, y: &mut y, scratch: &mut scratch, train: true, seed: 99 });
    let (mut dy, mut dparams) = (r.to_vec(), vec![0.0; params.len()]);
    let backward =
        Backward { n, params, x, y: &y, dy: &mut dy, dx: None, dparams: &mut dparams, scratch: &mut scratch };
    layer.backward(backward);
    for (i, (&got, &w)) in dparams.iter().zip(want).enumerate() {
        assert_close("dparams without dx", i, got, w as f64);
    }
}
