//! Convolution by unfolding patches kernel-major (im2col: one image row per kernel offset) and
//! one matrix product per chunk of images: `cols[K·K·C, n·OH·OW]ᵀ · kernel[K·K·C, F] → y[n·OH·OW,
//! F]`, already NHWC. Chunks are sized so the patch matrix stays in the core's cache; backward
//! unfolds each chunk again rather than keeping a batch-sized patch matrix, which would only
//! stream through memory. Portable (plain Rust and `gemm`); any unpooled problem. The engine's
//! general fallback, and the fastest portable form for a single-channel layer.

use crate::nn::activation::add_bias_activate;
use crate::nn::conv::{BackwardAlgorithm, ConvBackward, ConvForward, ConvProblem, ForwardAlgorithm};
use crate::nn::layer::Shape;
use crate::nn::matmul::{matmul, n as plain, t as transposed};

/// Most im2col values per chunk (256 KiB of f32): a chunk's patches and their gradients stay in
/// a core's L2 cache while the matrix multiplies read them.
const CHUNK_VALUES: usize = 64 * 1024;

/// The im2col form of an unpooled problem.
pub struct Im2col {
    p: ConvProblem,
    /// The output image.
    out: Shape,
}

/// The forward pass of any unpooled problem.
pub fn forward_for(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    (!p.pool).then(|| Box::new(Im2col { p: *p, out: p.output() }) as Box<dyn ForwardAlgorithm>)
}

/// The backward pass of any unpooled problem.
pub fn backward_for(p: &ConvProblem) -> Option<Box<dyn BackwardAlgorithm>> {
    (!p.pool).then(|| Box::new(Im2col { p: *p, out: p.output() }) as Box<dyn BackwardAlgorithm>)
}

impl Im2col {
    /// Output pixels per image.
    fn out_pixels(&self) -> usize {
        self.out.h * self.out.w
    }

    /// Images per chunk: as many as fit `CHUNK_VALUES`, at least one.
    fn chunk_images(&self) -> usize {
        (CHUNK_VALUES / (self.out_pixels() * self.p.patch_len()).max(1)).max(1)
    }

    /// `(first image, images)` of each chunk of a batch of `n`.
    fn chunks(&self, n: usize) -> impl Iterator<Item = (usize, usize)> {
        let step = self.chunk_images();
        (0..n).step_by(step).map(move |first| (first, step.min(n - first)))
    }

    /// Scratch of both passes: a chunk's patches and their gradients.
    fn scratch(&self, n: usize) -> usize {
        2 * n.min(self.chunk_images()) * self.out_pixels() * self.p.patch_len()
    }

    /// Range of output columns `ox` whose input column `ox + kx − pad` lies inside the image.
    fn valid_columns(&self, kx: usize) -> std::ops::Range<usize> {
        let (pad, w, ow) = (self.p.pad, self.p.input.w, self.out.w);
        let lo = pad.saturating_sub(kx);
        let hi = (w + pad).saturating_sub(kx).min(ow);
        lo..hi.max(lo)
    }

    /// Calls `visit(col_offset, source, len)` for every contiguous run of the kernel-major `cols`:
    /// per kernel offset and channel, one image row. `source` is the input offset of the run's
    /// first value, or `None` where the run lies in the zero padding; `len` counts output
    /// columns, whose input values are `channels` apart.
    fn for_each_run(&self, n: usize, mut visit_any: impl FnMut(usize, Option<usize>, usize)) {
        let mut visit = |col, source, len| {
            if len > 0 {
                visit_any(col, source, len)
            }
        };
        let (p, out) = (&self.p, self.out);
        let (k, c, in_size) = (p.kernel, p.input.c, p.input.size());
        let rows = n * self.out_pixels();
        for b in 0..n {
            for oy in 0..out.h {
                let row = (b * out.h + oy) * out.w;
                for ky in 0..k {
                    let iy = (oy + ky).checked_sub(p.pad).filter(|&v| v < p.input.h);
                    for kx in 0..k {
                        let cols = self.valid_columns(kx);
                        let ix = (cols.start + kx).saturating_sub(p.pad);
                        for ch in 0..c {
                            let start = ((ky * k + kx) * c + ch) * rows + row;
                            visit(start, None, cols.start);
                            let source = iy.map(|iy| b * in_size + (iy * p.input.w + ix) * c + ch);
                            visit(start + cols.start, source, cols.len());
                            visit(start + cols.end, None, out.w - cols.end);
                        }
                    }
                }
            }
        }
    }

    /// Unfolds input patches into `cols`, writing zeros where a patch leaves the image.
    fn im2col(&self, x: &[f32], n: usize, cols: &mut [f32]) {
        let c = self.p.input.c;
        self.for_each_run(n, |col, source, len| match source {
            Some(inp) if c == 1 => cols[col..col + len].copy_from_slice(&x[inp..inp + len]),
            Some(inp) => cols[col..col + len].iter_mut().enumerate().for_each(|(j, v)| *v = x[inp + j * c]),
            None => cols[col..col + len].fill(0.0),
        });
    }

    /// Folds patch gradients back onto the input, summing overlaps.
    fn col2im(&self, dcols: &[f32], n: usize, dx: &mut [f32]) {
        let c = self.p.input.c;
        dx[..n * self.p.input.size()].fill(0.0);
        self.for_each_run(n, |col, source, len| {
            if let Some(inp) = source {
                dcols[col..col + len].iter().enumerate().for_each(|(j, g)| dx[inp + j * c] += g)
            }
        });
    }
}

impl ForwardAlgorithm for Im2col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn scratch_len(&self, n: usize) -> usize {
        self.scratch(n)
    }

    fn forward(&self, f: ConvForward) {
        let (k, fo) = (self.p.patch_len(), self.p.filters);
        let (in_size, out_size) = (self.p.input.size(), self.out.size());
        for (first, n) in self.chunks(f.n) {
            let rows = n * self.out_pixels();
            let cols = &mut f.scratch[..rows * k];
            self.im2col(&f.x[first * in_size..], n, cols);
            let y = &mut f.y[first * out_size..][..rows * fo];
            matmul(rows, fo, k, transposed(cols), plain(f.kernel), y, false);
            add_bias_activate(y, f.bias, self.p.activation);
        }
    }
}

impl BackwardAlgorithm for Im2col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn scratch_len(&self, n: usize) -> usize {
        self.scratch(n)
    }

    fn backward(&self, mut b: ConvBackward) {
        let (k, fo) = (self.p.patch_len(), self.p.filters);
        let (in_size, out_size) = (self.p.input.size(), self.out.size());
        for (first, n) in self.chunks(b.n) {
            let rows = n * self.out_pixels();
            let dy = &b.dy[first * out_size..][..rows * fo];
            let (cols, dcols) = b.scratch.split_at_mut(rows * k);
            self.im2col(&b.x[first * in_size..], n, cols);
            matmul(k, fo, rows, plain(cols), plain(dy), b.dkernel, true);
            if let Some(dx) = b.dx.as_deref_mut() {
                let dcols = &mut dcols[..rows * k];
                matmul(k, rows, fo, plain(b.kernel), transposed(dy), dcols, false);
                self.col2im(dcols, n, &mut dx[first * in_size..]);
            }
        }
    }
}
