//! Direct convolution of single-channel images (a network's first layer) with AVX-512. Each
//! output pixel is the sum, over the kernel taps inside the image, of one input value times that
//! tap's row of weights: the filters fill the vector lanes, and nothing is unfolded into a patch
//! matrix (which, with one channel, is 25 values per pixel for a 5×5 kernel and made this layer
//! memory-bound). The kernel gradient of a first layer (which needs no input gradient) is
//! computed the same way round: for each kernel row, the gradients of all its taps for up to 32
//! filters stay in registers while the output gradient is read once per kernel row. Used where
//! the CPU has AVX-512F and the filter count is a multiple of 16 (and, for the gradient, the
//! kernel is at most 7 wide); elsewhere the convolution layer keeps its im2col path.

use crate::nn::activation::Activation;
use crate::nn::conv::{BackwardAlgorithm, ConvBackward, ConvForward, ConvProblem, ForwardAlgorithm};
use crate::nn::vector::{LANES, whole_vectors};

/// Neighbouring output pixels computed together, each with its own accumulators, so that at least
/// eight independent multiply-adds are in flight.
const PIXELS: usize = 8;

/// Where the input and output of a single-channel convolution lie.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Input height and width.
    pub input: (usize, usize),
    /// Output height and width.
    pub output: (usize, usize),
    /// Kernel side.
    pub kernel: usize,
    /// Zero padding on each border.
    pub pad: usize,
}

impl Geometry {
    /// Taps of one kernel axis that land inside an input axis of length `len` for output
    /// coordinate `o`.
    fn taps(&self, o: usize, len: usize) -> std::ops::Range<usize> {
        let lo = self.pad.saturating_sub(o);
        let hi = (len + self.pad).saturating_sub(o).min(self.kernel);
        lo..hi.max(lo)
    }

    /// Output columns all of whose taps lie inside the image.
    fn inner_columns(&self) -> std::ops::Range<usize> {
        let (w, out) = (self.input.1, self.output.1);
        self.pad..(w + self.pad + 1).saturating_sub(self.kernel).min(out).max(self.pad)
    }
}

/// Whether this CPU runs the direct convolution for `filters` filters.
pub fn available(filters: usize) -> bool {
    whole_vectors(filters)
}

/// Widest kernel whose row of tap gradients `kernel_gradient` keeps in registers.
const MAX_GRADIENT_KERNEL: usize = 7;

/// Whether this CPU computes the kernel gradient directly for `filters` filters and this kernel.
pub fn gradient_available(g: &Geometry, filters: usize) -> bool {
    g.kernel <= MAX_GRADIENT_KERNEL && available(filters)
}

/// Values of one zero-padded input image (the scratch `kernel_gradient` needs when padding).
pub fn padded_len(g: &Geometry) -> usize {
    (g.input.0 + 2 * g.pad) * (g.input.1 + 2 * g.pad)
}

/// Adds the kernel gradient of `n` images to `dkernel` (`[k, k, 1, filters]`):
/// `dkernel[ky][kx][f] += Σ x[oy + ky − pad][ox + kx − pad] · dy[oy][ox][f]` over images and
/// output pixels. `padded` holds `padded_len(g)` values (unused without padding). Panics unless
/// `gradient_available(g, filters)`.
pub fn kernel_gradient(g: &Geometry, x: &[f32], dy: &[f32], n: usize, dkernel: &mut [f32], padded: &mut [f32]) {
    let filters = dkernel.len() / (g.kernel * g.kernel);
    assert!(gradient_available(g, filters), "direct kernel gradient needs AVX-512F, whole vectors, kernel ≤ 7");
    let (in_size, out_size) = (g.input.0 * g.input.1, g.output.0 * g.output.1 * filters);
    assert!(x.len() >= n * in_size && dy.len() >= n * out_size && padded.len() >= padded_len(g));
    for (image, dy) in x.chunks_exact(in_size).zip(dy.chunks_exact(out_size)).take(n) {
        let frame = if g.pad == 0 { image } else { pad_image(g, image, padded) };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (asserted); `frame` is the padded image, `dy` one image's
        // output gradient and `dkernel` the whole kernel, as `rows` expects.
        unsafe {
            avx512::kernel_gradient_rows(g, frame, dy, filters, dkernel)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (frame, dy);
    }
}

/// `image` inside a zero frame of `pad` on every side, written into `padded`.
fn pad_image<'a>(g: &Geometry, image: &[f32], padded: &'a mut [f32]) -> &'a [f32] {
    let (w, wp) = (g.input.1, g.input.1 + 2 * g.pad);
    let padded = &mut padded[..padded_len(g)];
    padded.fill(0.0);
    for (row, source) in image.chunks_exact(w).enumerate() {
        padded[(row + g.pad) * wp + g.pad..][..w].copy_from_slice(source);
    }
    padded
}

/// `y = act(conv(x) + bias)` for `n` images; `kernel` is `[k, k, 1, filters]`, `y` NHWC.
/// Panics unless `available(bias.len())`.
pub fn forward(g: &Geometry, x: &[f32], n: usize, kernel: &[f32], bias: &[f32], act: Activation, y: &mut [f32]) {
    assert!(available(bias.len()), "direct convolution needs AVX-512F and a multiple of 16 filters");
    let (in_size, out_size) = (g.input.0 * g.input.1, g.output.0 * g.output.1 * bias.len());
    assert!(x.len() >= n * in_size && y.len() >= n * out_size && kernel.len() == g.kernel * g.kernel * bias.len());
    #[cfg(target_arch = "x86_64")]
    for (image, out) in x.chunks_exact(in_size).zip(y.chunks_exact_mut(out_size)).take(n) {
        let relu = act == Activation::Relu;
        // SAFETY (both calls): AVX-512F is present (asserted); the slices' lengths were checked above.
        if bias.len().is_multiple_of(2 * LANES) {
            for first in (0..bias.len()).step_by(2 * LANES) {
                unsafe { avx512::forward_block::<2>(g, image, kernel, bias, first, relu, out) };
            }
        } else {
            for first in (0..bias.len()).step_by(LANES) {
                unsafe { avx512::forward_block::<1>(g, image, kernel, bias, first, relu, out) };
            }
        }
    }
}

/// The geometry of a single-channel, unpooled problem.
fn geometry(p: &ConvProblem) -> Option<Geometry> {
    let out = p.output();
    (p.input.c == 1 && !p.pool).then_some(Geometry {
        input: (p.input.h, p.input.w),
        output: (out.h, out.w),
        kernel: p.kernel,
        pad: p.pad,
    })
}

/// The direct forward pass.
struct Direct {
    geometry: Geometry,
    activation: crate::nn::activation::Activation,
}

/// The direct kernel gradient (a first layer: no input gradient).
struct DirectKernelGradient {
    geometry: Geometry,
}

/// The forward pass of a single-channel problem, where this CPU runs it.
pub fn forward_for(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    let geometry = geometry(p).filter(|_| available(p.filters))?;
    Some(Box::new(Direct { geometry, activation: p.activation }))
}

/// The backward pass of a single-channel problem that needs no input gradient, where this CPU
/// runs it.
pub fn backward_for(p: &ConvProblem) -> Option<Box<dyn BackwardAlgorithm>> {
    let geometry = geometry(p).filter(|g| !p.input_gradient && gradient_available(g, p.filters))?;
    Some(Box::new(DirectKernelGradient { geometry }))
}

impl ForwardAlgorithm for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        0
    }

    fn forward(&self, f: ConvForward) {
        forward(&self.geometry, f.x, f.n, f.kernel, f.bias, self.activation, f.y);
    }
}

impl BackwardAlgorithm for DirectKernelGradient {
    fn name(&self) -> &'static str {
        "direct-kernel-gradient"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        padded_len(&self.geometry)
    }

    fn backward(&self, b: ConvBackward) {
        kernel_gradient(&self.geometry, b.x, b.dy, b.n, b.dkernel, b.scratch);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Geometry, PIXELS};
    use crate::nn::vector::{LANES, load, store};
    use std::arch::x86_64::*;

    /// Calls `tap_gradients::<K, V>` for kernel width `K` (`1..=7`), a constant.
    macro_rules! with_kernel {
        ($k:expr, $v:literal, $args:expr) => {
            match $k {
                1 => tap_gradients::<1, $v>($args),
                2 => tap_gradients::<2, $v>($args),
                3 => tap_gradients::<3, $v>($args),
                4 => tap_gradients::<4, $v>($args),
                5 => tap_gradients::<5, $v>($args),
                6 => tap_gradients::<6, $v>($args),
                _ => tap_gradients::<7, $v>($args),
            }
        };
    }

    /// One image's kernel gradient, kernel row by kernel row, 32 or 16 filters at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kernel_gradient_rows(g: &Geometry, frame: &[f32], dy: &[f32], filters: usize, dk: &mut [f32]) {
        for ky in 0..g.kernel {
            let mut first = 0;
            while first < filters {
                let args = TapRow { g, frame, dy, filters, ky, first };
                if first + 2 * LANES <= filters {
                    with_kernel!(g.kernel, 2, (args, &mut *dk));
                    first += 2 * LANES;
                } else {
                    with_kernel!(g.kernel, 1, (args, &mut *dk));
                    first += LANES;
                }
            }
        }
    }

    /// The taps of kernel row `ky` for filters `first..first + 16·V`.
    struct TapRow<'a> {
        g: &'a Geometry,
        frame: &'a [f32],
        dy: &'a [f32],
        filters: usize,
        ky: usize,
        first: usize,
    }

    /// `K × V` accumulators, one per tap of the row and vector of filters: each output pixel's
    /// `V` gradient vectors meet the `K` input values its taps read.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn tap_gradients<const K: usize, const V: usize>((t, dk): (TapRow, &mut [f32])) {
        let ((oh, ow), f, wp) = (t.g.output, t.filters, t.g.input.1 + 2 * t.g.pad);
        let tap = |kx: usize, v: usize| (t.ky * K + kx) * f + t.first + v * LANES;
        let mut acc: [[__m512; V]; K] = std::array::from_fn(|kx| std::array::from_fn(|v| load(dk, tap(kx, v))));
        assert!((oh - 1 + t.ky) * wp + ow - 1 + K - 1 < t.frame.len() && oh * ow * f <= t.dy.len());
        // SAFETY: input reads stay below the bound just checked (rows `< oh + ky`, columns
        // `< ow + K − 1`), gradient reads inside `oh × ow × f`, filters `first + 16·V ≤ f`.
        unsafe {
            for oy in 0..oh {
                let inputs = t.frame.as_ptr().add((oy + t.ky) * wp);
                let grads = t.dy.as_ptr().add(oy * ow * f + t.first);
                for ox in 0..ow {
                    let d: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(grads.add(ox * f + v * LANES)));
                    for (kx, acc) in acc.iter_mut().enumerate() {
                        let x = _mm512_set1_ps(*inputs.add(ox + kx));
                        for (a, d) in acc.iter_mut().zip(&d) {
                            *a = _mm512_fmadd_ps(x, *d, *a);
                        }
                    }
                }
            }
        }
        for (kx, acc) in acc.iter().enumerate() {
            for (v, a) in acc.iter().enumerate() {
                store(dk, tap(kx, v), *a);
            }
        }
    }

    /// One image's outputs for filters `first..first + 16·B`: each input value loaded is used for
    /// `B` vectors of filters, so the multiply-adds, not the loads, set the pace.
    #[target_feature(enable = "avx512f")]
    pub(super) fn forward_block<const B: usize>(
        g: &Geometry,
        image: &[f32],
        kernel: &[f32],
        bias: &[f32],
        first: usize,
        relu: bool,
        y: &mut [f32],
    ) {
        let ((ih, iw), (oh, ow), k) = (g.input, g.output, g.kernel);
        let filters = bias.len();
        let start: [__m512; B] = std::array::from_fn(|b| load(bias, first + b * LANES));
        let weights = |ky: usize, kx: usize| -> [__m512; B] {
            std::array::from_fn(|b| load(kernel, (ky * k + kx) * filters + first + b * LANES))
        };
        let finish = |v: __m512| if relu { _mm512_max_ps(v, _mm512_setzero_ps()) } else { v };
        let store_pixel = |y: &mut [f32], pixel: usize, acc: [__m512; B]| {
            for (b, a) in acc.into_iter().enumerate() {
                store(y, pixel * filters + first + b * LANES, finish(a));
            }
        };
        let inner = g.inner_columns();
        for oy in 0..oh {
            let rows = g.taps(oy, ih);
            let mut ox = 0;
            while ox < ow {
                if inner.contains(&ox) && ox + PIXELS <= inner.end {
                    let mut acc = [start; PIXELS];
                    for ky in rows.clone() {
                        let row = &image[(oy + ky - g.pad) * iw + ox - g.pad..][..PIXELS + k - 1];
                        for kx in 0..k {
                            let (w, values) = (weights(ky, kx), row[kx..kx + PIXELS].as_ptr());
                            for (p, a) in acc.iter_mut().enumerate() {
                                // SAFETY: `values` points at PIXELS floats of `row`.
                                let v = _mm512_set1_ps(unsafe { *values.add(p) });
                                for (a, w) in a.iter_mut().zip(w) {
                                    *a = _mm512_fmadd_ps(v, w, *a);
                                }
                            }
                        }
                    }
                    for (p, a) in acc.into_iter().enumerate() {
                        store_pixel(y, oy * ow + ox + p, a);
                    }
                    ox += PIXELS;
                } else {
                    let mut acc = start;
                    for ky in rows.clone() {
                        let row = &image[(oy + ky - g.pad) * iw..][..iw];
                        for kx in g.taps(ox, iw) {
                            let v = _mm512_set1_ps(row[ox + kx - g.pad]);
                            for (a, w) in acc.iter_mut().zip(weights(ky, kx)) {
                                *a = _mm512_fmadd_ps(v, w, *a);
                            }
                        }
                    }
                    store_pixel(y, oy * ow + ox, acc);
                    ox += 1;
                }
            }
        }
    }
}
