//! Stride-1 convolution of multi-channel NHWC images as matrix products over the zero-padded
//! image itself ("implicit GEMM"), with no patch matrix.
//!
//! Kernel row `ky` of output pixel `(oy, ox)` reads the `k·C` consecutive values that start at
//! padded pixel `(oy + ky, ox)`. Counting output pixels as *wide* rows `r = oy·Wp + ox` over the
//! full padded width `Wp` (the columns `ox ≥ OW` are computed and dropped), row `r` of kernel row
//! `ky` starts at value `(r + ky·Wp)·C`: a matrix whose rows overlap at stride `C`, which the
//! GEMM reads in place. One image's output is then `k` products
//! `wide[M, F] += X_ky[M, k·C] · kernel_ky[k·C, F]`, and the kernel gradient `k` products
//! `dkernel_ky += X_ky^T · dwide` (the wide output gradient, zero in the dropped columns). The
//! input gradient is `k²` products, one per kernel tap, each adding `dwide · kernel_tapᵀ` to the
//! padded input gradient shifted to the tap: rows `r + ky·Wp + kx`, which do not overlap.

use crate::nn::activation::{Activation, add_bias_activate};
use crate::nn::conv::{BackwardAlgorithm, ConvBackward, ConvForward, ConvProblem, ForwardAlgorithm};
use crate::nn::layer::Shape;
use crate::nn::matmul::{View, matmul_views};
use std::ops::Range;

/// A stride-1 convolution of multi-channel images, computed image by image without im2col.
#[derive(Debug, Clone, Copy)]
pub struct ImplicitConv {
    input: Shape,
    output: Shape,
    kernel: usize,
    pad: usize,
}

impl ImplicitConv {
    /// A `kernel × kernel` convolution from `input` to `output` with `pad` zeros on every side
    /// (`pad < kernel`, `output = input + 2·pad − kernel + 1`).
    pub fn new(input: Shape, output: Shape, kernel: usize, pad: usize) -> ImplicitConv {
        let fits = |i: usize, o: usize| o + kernel == i + 2 * pad + 1;
        assert!(pad < kernel && fits(input.h, output.h) && fits(input.w, output.w), "inconsistent convolution shapes");
        ImplicitConv { input, output, kernel, pad }
    }

    /// The zero-padded input.
    fn padded(&self) -> Shape {
        Shape::new(self.input.h + 2 * self.pad, self.input.w + 2 * self.pad, self.input.c)
    }

    /// Wide output rows: full padded-width rows, but the last one stops at the output width.
    fn wide_rows(&self) -> usize {
        (self.output.h - 1) * self.padded().w + self.output.w
    }

    /// The wide output (or output gradient) as a frame of full padded-width rows.
    fn wide_frame(&self) -> Shape {
        Shape::new(self.output.h, self.padded().w, self.output.c)
    }

    /// Values one kernel row spans in the input (`k·C`).
    fn band(&self) -> usize {
        self.kernel * self.input.c
    }

    /// `X_ky`: wide row `r`, column `j` at `padded[(r + ky·Wp)·C + j]`.
    fn rows_of<'a>(&self, padded: &'a [f32], ky: usize) -> View<'a> {
        let c = self.input.c;
        View { data: &padded[ky * self.padded().w * c..], row_stride: c, col_stride: 1 }
    }

    /// Where kernel row `ky` (a `k·C × F` matrix) lies in a `[k][k][C][F]` kernel.
    fn kernel_row(&self, ky: usize) -> Range<usize> {
        let len = self.band() * self.output.c;
        ky * len..(ky + 1) * len
    }

    /// Where tap `(ky, kx)` (a `C × F` matrix) lies in the kernel.
    fn tap(&self, ky: usize, kx: usize) -> Range<usize> {
        let len = self.input.c * self.output.c;
        let at = (ky * self.kernel + kx) * len;
        at..at + len
    }

    /// Values of a padded image (none without padding: the image is used where it is).
    fn padded_len(&self) -> usize {
        if self.pad > 0 { self.padded().size() } else { 0 }
    }

    /// Scratch values `forward` and `backward` need, whatever the batch size.
    pub fn scratch_len(&self) -> usize {
        self.padded_len() + self.wide_frame().size()
    }

    /// `x` zero-padded (in `padded`), or `x` itself without padding.
    fn pad_input<'a>(&self, x: &'a [f32], padded: &'a mut [f32]) -> &'a [f32] {
        if self.pad == 0 {
            return x;
        }
        embed(x, self.input, padded, self.padded(), self.pad);
        padded
    }

    /// One image `x` correlated with `kernel` (`[k][k][C][F]`) into `y`; no bias, no activation.
    pub fn forward(&self, x: &[f32], kernel: &[f32], y: &mut [f32], scratch: &mut [f32]) {
        let (padded, wide) = scratch.split_at_mut(self.padded_len());
        let x = self.pad_input(x, padded);
        let (m, band, f) = (self.wide_rows(), self.band(), self.output.c);
        let wide = &mut wide[..m * f];
        for ky in 0..self.kernel {
            let w = View::rows(&kernel[self.kernel_row(ky)], f);
            matmul_views(m, f, band, self.rows_of(x, ky), w, wide, ky > 0);
        }
        crop(wide, self.wide_frame(), 0, self.output, y);
    }

    /// For `n` images `x` and their output gradients `dy`: adds the kernel gradient to `dkernel`
    /// and, when `dx` is given, writes the input gradients there.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        n: usize,
        x: &[f32],
        dy: &[f32],
        kernel: &[f32],
        dkernel: &mut [f32],
        mut dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        let (padded, dwide) = scratch.split_at_mut(self.padded_len());
        let (in_size, out_size) = (self.input.size(), self.output.size());
        for b in 0..n {
            embed(&dy[b * out_size..][..out_size], self.output, dwide, self.wide_frame(), 0);
            self.kernel_gradient(self.pad_input(&x[b * in_size..][..in_size], padded), dwide, dkernel);
            if let Some(dx) = dx.as_deref_mut() {
                let dx = &mut dx[b * in_size..][..in_size];
                if self.pad == 0 {
                    self.spread(dwide, kernel, dx);
                } else {
                    self.spread(dwide, kernel, padded);
                    crop(padded, self.padded(), self.pad, self.input, dx);
                }
            }
        }
    }

    /// `dkernel_ky += X_ky^T · dwide` for every kernel row.
    fn kernel_gradient(&self, padded: &[f32], dwide: &[f32], dkernel: &mut [f32]) {
        let (m, band, f) = (self.wide_rows(), self.band(), self.output.c);
        let dwide = View::rows(&dwide[..m * f], f);
        for ky in 0..self.kernel {
            let x_t = self.rows_of(padded, ky).transposed();
            matmul_views(band, f, m, x_t, dwide, &mut dkernel[self.kernel_row(ky)], true);
        }
    }

    /// The padded input gradient from the wide output gradient: for every tap, the rows
    /// `r + ky·Wp + kx` gain `dwide[r] · kernel_tapᵀ`.
    fn spread(&self, dwide: &[f32], kernel: &[f32], dpadded: &mut [f32]) {
        let (m, c, f, wp) = (self.wide_rows(), self.input.c, self.output.c, self.padded().w);
        let dpadded = &mut dpadded[..self.padded().size()];
        dpadded.fill(0.0);
        let dwide = View::rows(&dwide[..m * f], f);
        for ky in 0..self.kernel {
            for kx in 0..self.kernel {
                let tap_t = View::rows(&kernel[self.tap(ky, kx)], f).transposed();
                matmul_views(m, c, f, dwide, tap_t, &mut dpadded[(ky * wp + kx) * c..][..m * c], true);
            }
        }
    }
}

/// Copies an image of `shape` into `frame`, its top-left corner at `(at, at)`, and zeroes the rest
/// of the frame (each value is written once).
pub fn embed(image: &[f32], shape: Shape, out: &mut [f32], frame: Shape, at: usize) {
    let (row, frame_row, left) = (shape.w * shape.c, frame.w * frame.c, at * frame.c);
    let source = |y: usize| y.checked_sub(at).filter(|&iy| iy < shape.h).map(|iy| &image[iy * row..][..row]);
    for (y, out_row) in out[..frame.size()].chunks_exact_mut(frame_row).enumerate() {
        match source(y) {
            Some(source) => {
                out_row[..left].fill(0.0);
                out_row[left..left + row].copy_from_slice(source);
                out_row[left + row..].fill(0.0);
            }
            None => out_row.fill(0.0),
        }
    }
}

/// The `shape.h × shape.w` window of `frame` whose top-left corner is at `(at, at)`, into `out`.
fn crop(values: &[f32], frame: Shape, at: usize, shape: Shape, out: &mut [f32]) {
    let row = shape.w * shape.c;
    for (y, out_row) in out[..shape.size()].chunks_exact_mut(row).enumerate() {
        out_row.copy_from_slice(&values[((y + at) * frame.w + at) * frame.c..][..row]);
    }
}

/// An unpooled multi-channel problem, by implicit GEMM.
struct Implicit {
    conv: ImplicitConv,
    activation: Activation,
    input: Shape,
    output: Shape,
}

/// The implicit-GEMM form of an unpooled problem with more than one channel.
fn implicit(p: &ConvProblem) -> Option<Implicit> {
    let output = p.output();
    (p.input.c > 1 && !p.pool).then(|| Implicit {
        conv: ImplicitConv::new(p.input, output, p.kernel, p.pad),
        activation: p.activation,
        input: p.input,
        output,
    })
}

/// The forward pass of an unpooled problem with more than one channel.
pub fn forward_for(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    implicit(p).map(|i| Box::new(i) as Box<dyn ForwardAlgorithm>)
}

/// The backward pass of an unpooled problem with more than one channel.
pub fn backward_for(p: &ConvProblem) -> Option<Box<dyn BackwardAlgorithm>> {
    implicit(p).map(|i| Box::new(i) as Box<dyn BackwardAlgorithm>)
}

impl ForwardAlgorithm for Implicit {
    fn name(&self) -> &'static str {
        "implicit-gemm"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        self.conv.scratch_len()
    }

    fn forward(&self, f: ConvForward) {
        let (in_size, out_size) = (self.input.size(), self.output.size());
        for (x, y) in f.x.chunks_exact(in_size).zip(f.y.chunks_exact_mut(out_size)).take(f.n) {
            self.conv.forward(x, f.kernel, y, f.scratch);
            add_bias_activate(y, f.bias, self.activation);
        }
    }
}

impl BackwardAlgorithm for Implicit {
    fn name(&self) -> &'static str {
        "implicit-gemm"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        self.conv.scratch_len()
    }

    fn backward(&self, b: ConvBackward) {
        self.conv.backward(b.n, b.x, b.dy, b.kernel, b.dkernel, b.dx, b.scratch);
    }
}
