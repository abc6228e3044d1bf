//! A "valid" stride-1 convolution with bias and ReLU (or none) followed by 2×2 max pooling,
//! computed together for inference with AVX-512: each register tile holds the four convolution
//! outputs of one or more pooling windows for up to 64 filters, and only their maximum (plus
//! bias, then ReLU) is stored. The convolution's own output, four times the size of what is kept,
//! is never written or read back, and no padded or unfolded copy of the input is made.
//!
//! `max(conv + b) = max(conv) + b` and ReLU is monotone, so pooling before the bias and the
//! activation gives the same values as the layers one after another. A 3×3 kernel over whole
//! vectors of channels is computed by Winograd's F(2×2, 3×3) instead (`winograd`), whose output
//! tiles are the pooling windows.

use crate::nn::activation::Activation;
use crate::nn::conv::winograd_tiles::{Output, Winograd};
use crate::nn::conv::{ConvForward, ConvProblem, ForwardAlgorithm};
use crate::nn::layer::Shape;
use crate::nn::vector::whole_vectors;

/// Where a fused convolution and pooling reads and writes, for NHWC images.
#[derive(Debug, Clone, Copy)]
pub struct ConvPool {
    /// One input image.
    pub input: Shape,
    /// Kernel side.
    pub kernel: usize,
    /// Filters (a multiple of 16).
    pub filters: usize,
    /// The Winograd form, where the kernel is 3×3 and channels and filters whole vectors.
    winograd: Option<Winograd>,
}

impl ConvPool {
    /// The fused form of a valid `kernel × kernel` convolution of `input` with `filters` filters,
    /// where this CPU has it (AVX-512F and a multiple of 16 filters) and the pooled output is
    /// not empty.
    pub fn new(input: Shape, kernel: usize, filters: usize) -> Option<ConvPool> {
        let winograd = if kernel == 3 { Winograd::new(input, filters) } else { None };
        let g = ConvPool { input, kernel, filters, winograd };
        let usable = kernel <= input.h && kernel <= input.w && g.pooled().size() > 0;
        (usable && whole_vectors(filters)).then_some(g)
    }

    /// The convolution's output shape.
    fn conv(&self) -> Shape {
        Shape::new(self.input.h + 1 - self.kernel, self.input.w + 1 - self.kernel, self.filters)
    }

    /// The pooled output shape (a trailing odd row or column of the convolution is dropped).
    pub fn pooled(&self) -> Shape {
        let conv = self.conv();
        Shape::new(conv.h / 2, conv.w / 2, self.filters)
    }

    /// Scratch values `forward` needs.
    pub fn scratch_len(&self) -> usize {
        self.winograd.map_or(0, |w| w.work_len())
    }

    /// Values `forward` keeps between calls (the Winograd form's transformed kernel).
    pub fn kept_len(&self) -> usize {
        self.winograd.map_or(0, |w| w.kept_len())
    }

    /// `y = pool(act(conv(x) + bias))` for `n` images; `kernel` is `[k, k, C, filters]`. `kept`
    /// ([`ConvPool::kept_len`] values) is for this convolution alone, from one call to the next.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        kernel: &[f32],
        bias: &[f32],
        act: Activation,
        y: &mut [f32],
        scratch: &mut [f32],
        kept: &mut [f32],
    ) {
        let (in_size, out_size) = (self.input.size(), self.pooled().size());
        let k_len = self.kernel * self.kernel * self.input.c * self.filters;
        assert!(x.len() >= n * in_size && y.len() >= n * out_size, "conv-pool buffers too small");
        assert!(kernel.len() == k_len && bias.len() == self.filters, "conv-pool parameters of the wrong size");
        assert!(whole_vectors(self.filters), "conv-pool needs AVX-512F and a multiple of 16 filters");
        assert!(scratch.len() >= self.scratch_len(), "conv-pool scratch too small");
        if let Some(winograd) = &self.winograd {
            let relu = act == Activation::Relu;
            return winograd.forward_kept(x, n, kernel, (bias, relu, Output::Pooled), y, scratch, kept);
        }
        #[cfg(target_arch = "x86_64")]
        for (image, out) in x.chunks_exact(in_size).zip(y.chunks_exact_mut(out_size)).take(n) {
            // SAFETY: AVX-512F is present (asserted) and the slices have the sizes checked above.
            unsafe { avx512::image(self, image, kernel, bias, act == Activation::Relu, out) };
        }
    }
}

/// The fused inference pass of a valid problem followed by pooling, where this CPU runs it.
pub fn forward_for(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    let usable = p.pool && !p.training && p.pad == 0;
    let fused = usable.then(|| ConvPool::new(p.input, p.kernel, p.filters)).flatten()?;
    Some(Box::new(Fused { fused, activation: p.activation }))
}

/// [`ConvPool`] as a forward algorithm.
struct Fused {
    fused: ConvPool,
    activation: Activation,
}

impl ForwardAlgorithm for Fused {
    fn name(&self) -> &'static str {
        "conv-pool"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        self.fused.scratch_len()
    }

    fn kept_len(&self) -> usize {
        self.fused.kept_len()
    }

    fn forward(&self, f: ConvForward) {
        self.fused.forward(f.x, f.n, f.kernel, f.bias, self.activation, f.y, f.scratch, f.kept);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::ConvPool;
    use crate::nn::vector::{LANES, groups, load, store};
    use std::arch::x86_64::*;

    /// One register tile: `W` neighbouring pooling windows of one pooled row, for the `V`
    /// vectors of filters starting at `first`.
    struct Tile<'a> {
        g: &'a ConvPool,
        image: &'a [f32],
        kernel: &'a [f32],
        bias: &'a [f32],
        relu: bool,
        first: usize,
        py: usize,
        px: usize,
    }

    /// One image: every pooled pixel, filters in groups of 4, 2 or 1 vectors, windows in runs
    /// that keep 16 accumulators busy (`4·W·V = 16`), single windows at the end of a row.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn image(g: &ConvPool, image: &[f32], kernel: &[f32], bias: &[f32], relu: bool, y: &mut [f32]) {
        let pooled = g.pooled();
        for (first, vectors) in groups(g.filters, LANES, &[4, 2, 1]) {
            let run = 4 / vectors;
            for py in 0..pooled.h {
                let mut px = 0;
                while px < pooled.w {
                    let t = Tile { g, image, kernel, bias, relu, first, py, px };
                    let windows = if px + run <= pooled.w { run } else { 1 };
                    match (vectors, windows) {
                        (4, _) => tile::<4, 1>(&t, y),
                        (2, 2) => tile::<2, 2>(&t, y),
                        (2, _) => tile::<2, 1>(&t, y),
                        (_, 4) => tile::<1, 4>(&t, y),
                        _ => tile::<1, 1>(&t, y),
                    }
                    px += windows;
                }
            }
        }
    }

    /// `4·W × V` accumulators (the 2×2 convolution outputs of `W` windows, top row then bottom
    /// row): for each kernel row and each of its `k·C` values, `V` vectors of weights meet `4·W`
    /// broadcast inputs. Then each window's maximum, plus bias, through the activation, into `y`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn tile<const V: usize, const W: usize>(t: &Tile, y: &mut [f32]) {
        let (g, c, f) = (t.g, t.g.input.c, t.g.filters);
        let (row, band) = (g.input.w * c, g.kernel * c);
        let top_left = 2 * t.py * row + 2 * t.px * c;
        let last_input = top_left + (g.kernel) * row + (2 * W - 1) * c + band - 1;
        let last_weight = ((g.kernel - 1) * band + band - 1) * f + t.first + V * LANES - 1;
        assert!(last_input < t.image.len() && last_weight < t.kernel.len(), "tile reaches outside its operands");
        let mut acc = [[_mm512_setzero_ps(); V]; 16];
        // SAFETY: every input read lies in `top_left ..= last_input` (kernel rows `< k`, rows
        // `top_left` and `top_left + row`, columns `< 2W`, band values `< k·C`) and every weight
        // read in `..= last_weight`; both were checked against the slices above.
        unsafe {
            for ky in 0..g.kernel {
                let weights = t.kernel.as_ptr().add(ky * band * f + t.first);
                let top = t.image.as_ptr().add(top_left + ky * row);
                let rows = [top, top.add(row)];
                for j in 0..band {
                    let w: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(weights.add(j * f + v * LANES)));
                    for (dy, input) in rows.iter().enumerate() {
                        for dx in 0..2 * W {
                            let x = _mm512_set1_ps(*input.add(dx * c + j));
                            for (a, w) in acc[dy * 2 * W + dx].iter_mut().zip(&w) {
                                *a = _mm512_fmadd_ps(x, *w, *a);
                            }
                        }
                    }
                }
            }
        }
        let pooled_row = t.py * g.pooled().w;
        for window in 0..W {
            // Window `window` holds pixels (0, 2w), (0, 2w+1), (1, 2w), (1, 2w+1) of the tile.
            let pixel = |dy: usize, dx: usize| &acc[dy * 2 * W + 2 * window + dx];
            let (a, b, c, d) = (pixel(0, 0), pixel(0, 1), pixel(1, 0), pixel(1, 1));
            for (v, (((a, b), c), d)) in a.iter().zip(b).zip(c).zip(d).enumerate() {
                let max = _mm512_max_ps(_mm512_max_ps(*a, *b), _mm512_max_ps(*c, *d));
                let mut out = _mm512_add_ps(max, load(t.bias, t.first + v * LANES));
                if t.relu {
                    out = _mm512_max_ps(out, _mm512_setzero_ps());
                }
                store(y, (pooled_row + t.px + window) * f + t.first + v * LANES, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declines_shapes_it_cannot_pool() {
        assert!(ConvPool::new(Shape::new(3, 3, 1), 3, 16).is_none(), "a 1×1 convolution output has no 2×2 window");
        assert!(ConvPool::new(Shape::new(8, 8, 1), 3, 24).is_none(), "24 filters are not whole vectors");
    }
}
