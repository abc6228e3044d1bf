//! Batch normalisation over the channels of NHWC samples (BatchNorm2d for images, BatchNorm1d
//! for vectors, which are 1×1×C), optionally followed by a fused ReLU. Training normalises with
//! the (micro-)batch's statistics and hands them back so the caller can update the moving averages
//! after the step; inference uses the moving averages. Parameters (Keras names and order):
//! `gamma`, `beta` (trainable), then `moving_mean`, `moving_variance` (not trainable: their
//! gradients stay zero). Each pass is one sweep over the activations with per-channel
//! coefficients: forward `y = act(x·scale + shift)`; backward recomputes the normalised input, and
//! where the fused ReLU passed, from `x` rather than reading a batch-sized copy of either.

use crate::nn::activation::Activation;
use crate::nn::layer::{Backward, Forward, Layer, ParamSpec, Shape};
use crate::nn::vector::whole_vectors;
use rand_chacha::ChaCha8Rng;

/// Keras' default epsilon.
pub const EPSILON: f32 = 1e-3;

/// Per-channel values kept in scratch from forward to backward: mean, variance, 1/std, and the
/// forward's scale and shift.
const KEPT: usize = 5;

/// A batch-normalisation layer.
pub struct BatchNorm {
    shape: Shape,
    momentum: f32,
    activation: Activation,
}

impl BatchNorm {
    /// Normalises samples of `shape` per channel, then applies `activation`; moving averages
    /// decay with `momentum`.
    pub fn new(shape: Shape, momentum: f32, activation: Activation) -> BatchNorm {
        BatchNorm { shape, momentum, activation }
    }

    fn channels(&self) -> usize {
        self.shape.c
    }
}

/// Per-channel mean and (biased) variance of rows of `c` values, in one sweep: sums of the
/// values shifted by the first row (which keeps the variance accurate when the mean is large).
fn channel_stats(x: &[f32], c: usize, mean: &mut [f32], var: &mut [f32]) {
    let rows = (x.len() / c).max(1) as f32;
    let shift = &x[..c];
    shifted_sums(x, shift, mean, var);
    for ((m, v), &k) in mean.iter_mut().zip(var.iter_mut()).zip(shift) {
        let shifted_mean = *m / rows;
        *v = (*v / rows - shifted_mean * shifted_mean).max(0.0);
        *m = shifted_mean + k;
    }
}

/// Per channel `Σ (x − k)` into `mean` and `Σ (x − k)²` into `var` over rows of `k.len()` values.
fn shifted_sums(x: &[f32], k: &[f32], mean: &mut [f32], var: &mut [f32]) {
    let c = k.len();
    #[cfg(target_arch = "x86_64")]
    if whole_vectors(c) {
        // SAFETY: `whole_vectors(c)` held, so AVX-512F is present.
        unsafe { avx512::run(c, avx512::Sweep::ShiftedSums { x, k, mean, var }) };
        return;
    }
    mean.fill(0.0);
    var.fill(0.0);
    for row in x.chunks_exact(c) {
        for (((m, v), &value), &k) in mean.iter_mut().zip(var.iter_mut()).zip(row).zip(k) {
            let d = value - k;
            *m += d;
            *v += d * d;
        }
    }
}

/// `y = act(x·scale + shift)` per channel over rows of `scale.len()` values.
fn scale_shift_activate(x: &[f32], y: &mut [f32], scale: &[f32], shift: &[f32], act: Activation) {
    let c = scale.len();
    #[cfg(target_arch = "x86_64")]
    if whole_vectors(c) {
        let t = avx512::Coefficients { scale, shift, relu: act == Activation::Relu };
        let sweep = avx512::Sweep::ScaleShiftActivate { x, y, t };
        // SAFETY: `whole_vectors(c)` held, so AVX-512F is present.
        unsafe { avx512::run(c, sweep) };
        return;
    }
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        for (((y, &x), &a), &b) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
            let t = x * a + b;
            *y = if act == Activation::Relu && t <= 0.0 { 0.0 } else { t };
        }
    }
}

/// Per-channel `Σ d` and `Σ d·x` over rows of `c` values, where `d` is `dy` through the fused
/// activation `act`, whose input was `x·scale + shift` in the forward pass.
fn gradient_sums(
    dy: &[f32],
    x: &[f32],
    (scale, shift): (&[f32], &[f32]),
    act: Activation,
    sums: (&mut [f32], &mut [f32]),
) {
    let (sum_dy, sum_dy_x) = sums;
    let c = sum_dy.len();
    #[cfg(target_arch = "x86_64")]
    if whole_vectors(c) {
        let t = avx512::Coefficients { scale, shift, relu: act == Activation::Relu };
        let sweep = avx512::Sweep::GradientSums { dy, x, t, sums: (&mut *sum_dy, &mut *sum_dy_x) };
        // SAFETY: `whole_vectors(c)` held, so AVX-512F is present.
        unsafe { avx512::run(c, sweep) };
        return;
    }
    sum_dy.fill(0.0);
    sum_dy_x.fill(0.0);
    for (dr, xr) in dy.chunks_exact(c).zip(x.chunks_exact(c)) {
        let coefficients = scale.iter().zip(shift);
        for ((((s, sx), &d), &x), (&a, &b)) in
            sum_dy.iter_mut().zip(sum_dy_x.iter_mut()).zip(dr).zip(xr).zip(coefficients)
        {
            let d = act.gradient(d, x * a + b);
            *s += d;
            *sx += d * x;
        }
    }
}

/// `dx = a·d + p·x + k` per channel over rows of `c` values, where `d` is `dy` through the
/// fused activation `act` (as in [`gradient_sums`]) and `(a, p, k)` are per-channel terms.
fn input_gradient(
    dy: &[f32],
    x: &[f32],
    (scale, shift): (&[f32], &[f32]),
    act: Activation,
    terms: (&[f32], &[f32], &[f32]),
    dx: &mut [f32],
) {
    let c = scale.len();
    #[cfg(target_arch = "x86_64")]
    if whole_vectors(c) {
        let t = avx512::Coefficients { scale, shift, relu: act == Activation::Relu };
        let sweep = avx512::Sweep::InputGradient { dy, x, t, terms, dx };
        // SAFETY: `whole_vectors(c)` held, so AVX-512F is present.
        unsafe { avx512::run(c, sweep) };
        return;
    }
    let (per_dy, per_x, constant) = terms;
    for ((dxr, dr), xr) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)).zip(x.chunks_exact(c)) {
        let coefficients = per_dy.iter().zip(per_x).zip(constant).zip(scale).zip(shift);
        for (((dx, &d), &x), ((((&a, &p), &k), &s), &t)) in dxr.iter_mut().zip(dr).zip(xr).zip(coefficients) {
            let d = act.gradient(d, x * s + t);
            *dx = a * d + p * x + k;
        }
    }
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

    /// Per channel: the values kept for backward, then three work rows.
    fn scratch_len(&self, _n: usize) -> usize {
        (KEPT + 3) * self.channels()
    }

    fn forward(&self, f: Forward) {
        let (c, len) = (self.channels(), f.n * self.shape.size());
        let (gamma, beta) = (&f.params[..c], &f.params[c..2 * c]);
        let (mean, rest) = f.scratch.split_at_mut(c);
        let (var, rest) = rest.split_at_mut(c);
        let (inv_std, rest) = rest.split_at_mut(c);
        let (scale, rest) = rest.split_at_mut(c);
        let shift = &mut rest[..c];
        if f.train {
            channel_stats(&f.x[..len], c, mean, var);
        } else {
            mean.copy_from_slice(&f.params[2 * c..3 * c]);
            var.copy_from_slice(&f.params[3 * c..4 * c]);
        }
        for ch in 0..c {
            inv_std[ch] = 1.0 / (var[ch] + EPSILON).sqrt();
            scale[ch] = gamma[ch] * inv_std[ch];
            shift[ch] = beta[ch] - mean[ch] * scale[ch];
        }
        scale_shift_activate(&f.x[..len], &mut f.y[..len], scale, shift, self.activation);
    }

    fn backward(&self, b: Backward) {
        let (c, len) = (self.channels(), b.n * self.shape.size());
        let rows = (len / c) as f32;
        let act = self.activation;
        let (dy, x) = (&b.dy[..len], &b.x[..len]);
        let (kept, work) = b.scratch.split_at_mut(KEPT * c);
        let (mean, inv_std) = (&kept[..c], &kept[2 * c..3 * c]);
        let forward = (&kept[3 * c..4 * c], &kept[4 * c..5 * c]);
        let (sum_dy, rest) = work.split_at_mut(c);
        let (sum_dy_x, per_dy) = rest.split_at_mut(c);
        gradient_sums(dy, x, forward, act, (&mut *sum_dy, &mut *sum_dy_x));
        // Σ d·x̂ = (Σ d·x − mean·Σ d)/std; gradients of gamma and beta.
        let (dgamma, dbeta) = b.dparams.split_at_mut(c);
        for ch in 0..c {
            sum_dy_x[ch] = (sum_dy_x[ch] - mean[ch] * sum_dy[ch]) * inv_std[ch];
            dgamma[ch] += sum_dy_x[ch];
            dbeta[ch] += sum_dy[ch];
        }
        let Some(dx) = b.dx else { return };
        // dx = γ/std · (d − Σd/rows − x̂·Σd·x̂/rows) = a·d + b·x + k per channel: `a` goes to
        // `per_dy`, `b` replaces `sum_dy_x` and `k` replaces `sum_dy`.
        let gamma = &b.params[..c];
        for ch in 0..c {
            let a = gamma[ch] * inv_std[ch];
            let per_x = -a * inv_std[ch] * sum_dy_x[ch] / rows;
            sum_dy[ch] = -a * sum_dy[ch] / rows - per_x * mean[ch];
            (per_dy[ch], sum_dy_x[ch]) = (a, per_x);
        }
        let (per_x, constant) = (&*sum_dy_x, &*sum_dy);
        input_gradient(dy, x, forward, act, (per_dy, per_x, constant), &mut dx[..len]);
    }

    fn accumulate_state(&self, scratch: &[f32], _n: usize, acc: &mut [f32]) {
        let c = self.channels();
        let (mean, var) = (&scratch[..c], &scratch[c..2 * c]);
        acc[2 * c..3 * c].iter_mut().zip(mean).for_each(|(a, &m)| *a += m);
        acc[3 * c..4 * c].iter_mut().zip(var).for_each(|(a, &v)| *a += v);
    }

    fn update_state(&self, params: &mut [f32], acc: &[f32], count: usize, updates: usize) {
        let c = self.channels();
        let mom = self.momentum.min((1 + updates) as f32 / (10 + updates) as f32);
        let count = count.max(1) as f32;
        params[2 * c..].iter_mut().zip(&acc[2 * c..4 * c]).for_each(|(p, &a)| *p = mom * *p + (1.0 - mom) * a / count);
    }
}

/// The four sweeps with AVX-512F over whole vectors of channels: `V` vectors of per-channel
/// coefficients and sums stay in registers across the rows. Each lane does what the portable
/// loops do, in the same order and without fused multiply-adds, so both give the same bits.
///
/// Indexed loops over the `V` vectors rather than iterators: closures are not inlined into
/// AVX-512 code and would move every vector through memory.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
mod avx512 {
    use crate::nn::vector::{LANES, groups, load, store};
    use std::arch::x86_64::*;

    /// The per-channel `scale` and `shift` of the forward pass, and whether a ReLU follows.
    pub(super) struct Coefficients<'a> {
        pub scale: &'a [f32],
        pub shift: &'a [f32],
        pub relu: bool,
    }

    impl Coefficients<'_> {
        /// The scale and shift vectors of channels `first..first + V·16`.
        #[target_feature(enable = "avx512f")]
        fn load<const V: usize>(&self, first: usize) -> ([__m512; V], [__m512; V]) {
            let (mut scale, mut shift) = ([_mm512_setzero_ps(); V], [_mm512_setzero_ps(); V]);
            for j in 0..V {
                scale[j] = load(self.scale, first + j * LANES);
                shift[j] = load(self.shift, first + j * LANES);
            }
            (scale, shift)
        }

        /// `d` through the ReLU, whose input was `x·scale + shift`: zero where that was not > 0.
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn gradient(&self, d: __m512, x: __m512, scale: __m512, shift: __m512) -> __m512 {
            if !self.relu {
                return d;
            }
            let z = _mm512_add_ps(_mm512_mul_ps(x, scale), shift);
            _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(z, _mm512_setzero_ps()), d)
        }
    }

    /// One of the four sweeps with its operands (as the portable function of the same name).
    pub(super) enum Sweep<'a> {
        ShiftedSums { x: &'a [f32], k: &'a [f32], mean: &'a mut [f32], var: &'a mut [f32] },
        ScaleShiftActivate { x: &'a [f32], y: &'a mut [f32], t: Coefficients<'a> },
        GradientSums { dy: &'a [f32], x: &'a [f32], t: Coefficients<'a>, sums: (&'a mut [f32], &'a mut [f32]) },
        InputGradient { dy: &'a [f32], x: &'a [f32], t: Coefficients<'a>, terms: Terms<'a>, dx: &'a mut [f32] },
    }

    /// The per-channel `(a, p, k)` of `dx = a·d + p·x + k`.
    type Terms<'a> = (&'a [f32], &'a [f32], &'a [f32]);

    /// Runs `sweep` over the `c` channels (whole vectors) in groups of 4, 2 or 1 vectors.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    pub(super) unsafe fn run(c: usize, mut sweep: Sweep) {
        for (first, vectors) in groups(c, LANES, &[4, 2, 1]) {
            // SAFETY: as for this function.
            unsafe {
                match vectors {
                    4 => group::<4>(&mut sweep, first),
                    2 => group::<2>(&mut sweep, first),
                    _ => group::<1>(&mut sweep, first),
                }
            }
        }
    }

    /// `sweep` over channels `first..first + V·16`.
    #[target_feature(enable = "avx512f")]
    fn group<const V: usize>(sweep: &mut Sweep, first: usize) {
        match sweep {
            Sweep::ShiftedSums { x, k, mean, var } => shifted_sums::<V>(x, first, k, mean, var),
            Sweep::ScaleShiftActivate { x, y, t } => scale_shift_activate::<V>(x, y, t, first),
            Sweep::GradientSums { dy, x, t, sums } => gradient_sums::<V>(dy, x, t, first, sums),
            Sweep::InputGradient { dy, x, t, terms, dx } => input_gradient::<V>(dy, x, t, first, *terms, dx),
        }
    }

    /// Per channel `Σ (x − k)` into `mean` and `Σ (x − k)²` into `var` over the rows of `x`
    /// (rows as long as `k`).
    #[target_feature(enable = "avx512f")]
    fn shifted_sums<const V: usize>(x: &[f32], first: usize, k: &[f32], mean: &mut [f32], var: &mut [f32]) {
        let c = k.len();
        let (mut shift, mut m, mut v) = ([_mm512_setzero_ps(); V], [_mm512_setzero_ps(); V], [_mm512_setzero_ps(); V]);
        for j in 0..V {
            shift[j] = load(k, first + j * LANES);
        }
        for row in x.chunks_exact(c) {
            for j in 0..V {
                let d = _mm512_sub_ps(load(row, first + j * LANES), shift[j]);
                m[j] = _mm512_add_ps(m[j], d);
                v[j] = _mm512_add_ps(v[j], _mm512_mul_ps(d, d));
            }
        }
        store_sums(m, v, first, (mean, var));
    }

    /// `y = act(x·scale + shift)`.
    #[target_feature(enable = "avx512f")]
    fn scale_shift_activate<const V: usize>(x: &[f32], y: &mut [f32], t: &Coefficients, first: usize) {
        let c = t.scale.len();
        let (scale, shift) = t.load::<V>(first);
        let zero = _mm512_setzero_ps();
        for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
            for j in 0..V {
                let at = first + j * LANES;
                let mut v = _mm512_add_ps(_mm512_mul_ps(load(xr, at), scale[j]), shift[j]);
                if t.relu {
                    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, zero), zero);
                }
                store(yr, at, v);
            }
        }
    }

    /// Per channel `Σ d` and `Σ d·x`, `d` being `dy` through the activation.
    #[target_feature(enable = "avx512f")]
    fn gradient_sums<const V: usize>(
        dy: &[f32],
        x: &[f32],
        t: &Coefficients,
        first: usize,
        (sum_dy, sum_dy_x): &mut (&mut [f32], &mut [f32]),
    ) {
        let c = t.scale.len();
        let (scale, shift) = t.load::<V>(first);
        let (mut s, mut sx) = ([_mm512_setzero_ps(); V], [_mm512_setzero_ps(); V]);
        for (dr, xr) in dy.chunks_exact(c).zip(x.chunks_exact(c)) {
            for j in 0..V {
                let at = first + j * LANES;
                let x = load(xr, at);
                let d = t.gradient(load(dr, at), x, scale[j], shift[j]);
                s[j] = _mm512_add_ps(s[j], d);
                sx[j] = _mm512_add_ps(sx[j], _mm512_mul_ps(d, x));
            }
        }
        store_sums(s, sx, first, (sum_dy, sum_dy_x));
    }

    /// Two per-channel sums into channels `first..first + V·16` of their rows.
    #[target_feature(enable = "avx512f")]
    fn store_sums<const V: usize>(
        a: [__m512; V],
        b: [__m512; V],
        first: usize,
        (to_a, to_b): (&mut [f32], &mut [f32]),
    ) {
        for j in 0..V {
            store(to_a, first + j * LANES, a[j]);
            store(to_b, first + j * LANES, b[j]);
        }
    }

    /// `dx = a·d + p·x + k`, `d` being `dy` through the activation and `(a, p, k)` per channel.
    #[target_feature(enable = "avx512f")]
    fn input_gradient<const V: usize>(
        dy: &[f32],
        x: &[f32],
        t: &Coefficients,
        first: usize,
        (per_dy, per_x, constant): Terms,
        dx: &mut [f32],
    ) {
        let c = t.scale.len();
        let (scale, shift) = t.load::<V>(first);
        let (mut a, mut p, mut k) = ([_mm512_setzero_ps(); V], [_mm512_setzero_ps(); V], [_mm512_setzero_ps(); V]);
        for j in 0..V {
            let at = first + j * LANES;
            (a[j], p[j], k[j]) = (load(per_dy, at), load(per_x, at), load(constant, at));
        }
        for ((dxr, dr), xr) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)).zip(x.chunks_exact(c)) {
            for j in 0..V {
                let at = first + j * LANES;
                let x = load(xr, at);
                let d = t.gradient(load(dr, at), x, scale[j], shift[j]);
                let v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(a[j], d), _mm512_mul_ps(p[j], x)), k[j]);
                store(dxr, at, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::activation::Relu;
    use crate::nn::gradcheck::{check_layer, forward_backward};

    #[test]
    fn normalises_each_channel_in_training() {
        let bn = BatchNorm::new(Shape::new(1, 2, 2), 0.99, Activation::Linear);
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
        bn.update_state(&mut p, &acc, 1, 1_000);
        assert!((p[4] - 0.04).abs() < 1e-6 && (p[7] - (0.99 + 5.0)).abs() < 1e-4, "{p:?}");
    }

    #[test]
    fn inference_uses_moving_statistics() {
        let bn = BatchNorm::new(Shape::vector(1), 0.99, Activation::Linear);
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
        check_layer(&BatchNorm::new(Shape::new(3, 2, 3), 0.99, Activation::Linear), 2);
        check_layer(&BatchNorm::new(Shape::vector(4), 0.99, Activation::Linear), 5);
    }

    #[test]
    fn gradients_over_whole_vectors_of_channels() {
        // 48 channels run as groups of two vectors and one on AVX-512; 64 as one group of four.
        check_layer(&BatchNorm::new(Shape::new(2, 1, 48), 0.99, Activation::Linear), 2);
        check_layer(&BatchNorm::new(Shape::vector(64), 0.99, Activation::Linear), 3);
    }

    #[test]
    fn whole_vectors_of_channels_give_the_bits_of_the_portable_loops() {
        // Channels are independent: the first 3 of 48 (vectorised on AVX-512) must come out
        // bit for bit as a 3-channel layer (portable loops) given the same values.
        let rows = 12;
        let x3: Vec<f32> = (0..rows * 3).map(|i| ((i * 7) % 11) as f32 * 0.37 - 1.3).collect();
        let dy3: Vec<f32> = (0..rows * 3).map(|i| ((i * 5) % 7) as f32 * 0.21 - 0.6).collect();
        let widen = |v: &[f32]| -> Vec<f32> {
            (0..rows * 48).map(|i| if i % 48 < 3 { v[i / 48 * 3 + i % 48] } else { (i % 13) as f32 - 6.0 }).collect()
        };
        let params = |c: usize| -> Vec<f32> {
            (0..4 * c)
                .map(|i| [1.5, 0.5, 1.0, 0.2, -0.3, 0.1, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0][(i / c) * 3 + (i % c) % 3])
                .collect()
        };
        for act in [Activation::Linear, Activation::Relu] {
            let (narrow, wide) =
                (BatchNorm::new(Shape::new(3, 4, 3), 0.99, act), BatchNorm::new(Shape::new(3, 4, 48), 0.99, act));
            let (y3, dx3, dp3) = forward_backward(&narrow, &params(3), &x3, &dy3);
            let (y48, dx48, dp48) = forward_backward(&wide, &params(48), &widen(&x3), &widen(&dy3));
            let first3 =
                |v: &[f32]| -> Vec<u32> { v.chunks(48).flat_map(|r| r[..3].iter().map(|f| f.to_bits())).collect() };
            let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|f| f.to_bits()).collect() };
            assert_eq!(first3(&y48), bits(&y3), "{act:?} y");
            assert_eq!(first3(&dx48), bits(&dx3), "{act:?} dx");
            let dp48: Vec<f32> = [&dp48[..3], &dp48[48..51]].concat();
            assert_eq!(bits(&dp48), bits(&dp3[..6]), "{act:?} dgamma, dbeta");
        }
    }

    #[test]
    fn fused_relu_equals_batch_norm_then_the_relu_layer() {
        for c in [3, 48] {
            fused_relu_matches(c);
        }
    }

    fn fused_relu_matches(c: usize) {
        let shape = Shape::new(3, 2, c);
        let (fused, plain) =
            (BatchNorm::new(shape, 0.99, Activation::Relu), BatchNorm::new(shape, 0.99, Activation::Linear));
        let gamma_beta = [1.5, 0.5, 1.0, 0.2, -0.3, 0.1];
        let mut params: Vec<f32> = (0..2 * c).map(|i| gamma_beta[(i / c) * 3 + i % 3]).collect();
        params.extend((0..2 * c).map(|i| if i < c { 0.0 } else { 1.0 }));
        let x: Vec<f32> = (0..12 * c).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let dy: Vec<f32> = (0..12 * c).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let (y, dx, dparams) = forward_backward(&fused, &params, &x, &dy);
        let relu = Relu::new(shape);
        let (normalised, _, _) = forward_backward(&plain, &params, &x, &dy);
        let (y_relu, dnormalised, _) = forward_backward(&relu, &[], &normalised, &dy);
        let (_, dx_plain, dparams_plain) = forward_backward(&plain, &params, &x, &dnormalised);
        assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0), "the ReLU cuts some values");
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() <= 1e-5 * a.abs().max(1.0));
        assert!(close(&y, &y_relu) && close(&dx, &dx_plain) && close(&dparams, &dparams_plain));
    }
}
