//! 2-D convolution, stride 1, "valid" or "same" padding, NHWC, with fused bias and activation.
//! Multi-channel inputs are convolved image by image as matrix products over the padded image
//! itself (`implicit_conv`); a valid 3×3 convolution over whole vectors of channels and filters
//! computes its forward pass and its gradients by Winograd's F(2×2, 3×3) instead
//! (`winograd`, `winograd_gradient`). A single-channel layer computes its output, and as a first
//! layer its kernel gradient, by direct convolution (`direct_conv`) where the CPU has it;
//! otherwise, and for its input gradient, it unfolds its patches kernel-major (im2col, one image
//! row per kernel offset) and multiplies per chunk of images:
//! `cols[KH·KW, n·OH·OW]ᵀ · kernel[KH·KW, F] → y[n·OH·OW, F]`, already NHWC. Chunks are sized
//! so the patch matrix stays in the core's cache; backward unfolds each chunk again rather than
//! keeping a batch-sized patch matrix, which would only stream through memory. In inference, a
//! valid convolution followed by 2×2 max pooling can write the pooled output directly
//! (`forward_pooled`, `conv_pool`).

use crate::nn::activation::{Activation, add_bias_activate, bias_activation_backward};
use crate::nn::conv_pool::ConvPool;
use crate::nn::direct_conv;
use crate::nn::implicit_conv::ImplicitConv;
use crate::nn::init::Init;
use crate::nn::layer::{Backward, Forward, Layer, ParamSpec, Shape};
use crate::nn::matmul::{matmul, n as plain, t as transposed};
use crate::nn::pooled_training::PooledTraining;
use crate::nn::winograd::{Output, Winograd};
use crate::nn::winograd_gradient::Gradients;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Most im2col values per chunk (256 KiB of f32): a chunk's patches and their gradients stay in
/// a core's L2 cache while the matrix multiplies read them.
const CHUNK_VALUES: usize = 64 * 1024;

/// Border handling of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// No padding: the output shrinks by kernel − 1.
    #[default]
    Valid,
    /// Zero padding keeping the spatial size (odd kernels).
    Same,
}

/// A convolution layer. Parameters: `kernel [k, k, in, filters]`, then `bias [filters]`.
pub struct Conv2d {
    input: Shape,
    output: Shape,
    filters: usize,
    kernel: usize,
    pad: usize,
    activation: Activation,
    init: Init,
    /// The image-by-image matrix products of a multi-channel input.
    implicit: Option<ImplicitConv>,
    /// The single-channel geometry, where this CPU computes the output by direct convolution
    /// (decided once, at construction).
    direct: Option<direct_conv::Geometry>,
    /// The fused convolution and 2×2 max pooling for inference, where this CPU has it (valid
    /// padding only).
    pooled: Option<ConvPool>,
    /// Winograd's F(2×2, 3×3) for the whole output, where it applies (valid 3×3, whole vectors
    /// of channels and filters, even output sides, AVX-512F).
    winograd: Option<Winograd>,
    /// The kernel and input gradients by Winograd, where the forward pass uses it.
    winograd_gradients: Option<Gradients>,
    /// Training together with a following 2×2 max pooling, for a direct first layer.
    pooled_training: Option<PooledTraining>,
}

impl Conv2d {
    /// A `kernel × kernel` convolution with `filters` outputs over samples of `input`.
    pub fn new(
        input: Shape,
        filters: usize,
        kernel: usize,
        padding: Padding,
        activation: Activation,
        init: Init,
    ) -> Conv2d {
        let pad = if padding == Padding::Same { kernel / 2 } else { 0 };
        let out_side = |s: usize| s + 2 * pad + 1 - kernel;
        let output = Shape::new(out_side(input.h), out_side(input.w), filters);
        let implicit = (input.c > 1).then(|| ImplicitConv::new(input, output, kernel, pad));
        let direct = (input.c == 1 && direct_conv::available(filters)).then_some(direct_conv::Geometry {
            input: (input.h, input.w),
            output: (output.h, output.w),
            kernel,
            pad,
        });
        let pooled = if pad == 0 { ConvPool::new(input, kernel, filters) } else { None };
        let winograd = if pad == 0 && kernel == 3 { Winograd::covering(input, filters) } else { None };
        let winograd_gradients = winograd.and_then(Gradients::new);
        let pooled_training = direct.and_then(|g| PooledTraining::new(g, output));
        Conv2d {
            input,
            output,
            filters,
            kernel,
            pad,
            activation,
            init,
            implicit,
            direct,
            pooled,
            winograd,
            winograd_gradients,
            pooled_training,
        }
    }

    /// Length of one im2col row.
    fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.input.c
    }

    /// Output pixels per sample.
    fn out_pixels(&self) -> usize {
        self.output.h * self.output.w
    }

    /// Images per chunk: as many as fit `CHUNK_VALUES`, at least one.
    fn chunk_images(&self) -> usize {
        (CHUNK_VALUES / (self.out_pixels() * self.patch_len())).max(1)
    }

    /// `(first image, images)` of each chunk of a batch of `n`.
    fn chunks(&self, n: usize) -> impl Iterator<Item = (usize, usize)> {
        let step = self.chunk_images();
        (0..n).step_by(step).map(move |first| (first, step.min(n - first)))
    }

    /// Range of output columns `ox` whose input column `ox + kx − pad` lies inside the image.
    fn valid_columns(&self, kx: usize) -> std::ops::Range<usize> {
        let lo = self.pad.saturating_sub(kx);
        let hi = (self.input.w + self.pad).saturating_sub(kx).min(self.output.w);
        lo..hi.max(lo)
    }

    /// Calls `visit(col_offset, source, len)` for every contiguous run of the kernel-major `cols`
    /// of a single-channel input: one image row per kernel offset. `source` is the input offset
    /// to copy from, or `None` where the run lies in the zero padding.
    fn for_each_run(&self, n: usize, mut visit_any: impl FnMut(usize, Option<usize>, usize)) {
        let mut visit = |col, source, len| {
            if len > 0 {
                visit_any(col, source, len)
            }
        };
        let (k, in_size) = (self.kernel, self.input.size());
        let (oh, ow, rows) = (self.output.h, self.output.w, n * self.out_pixels());
        for b in 0..n {
            for oy in 0..oh {
                let row = (b * oh + oy) * ow;
                for ky in 0..k {
                    let iy = (oy + ky).checked_sub(self.pad).filter(|&v| v < self.input.h);
                    for kx in 0..k {
                        let start = (ky * k + kx) * rows + row;
                        let cols = self.valid_columns(kx);
                        let ix = (cols.start + kx).saturating_sub(self.pad);
                        visit(start, None, cols.start);
                        visit(start + cols.start, iy.map(|iy| b * in_size + iy * self.input.w + ix), cols.len());
                        visit(start + cols.end, None, ow - cols.end);
                    }
                }
            }
        }
    }

    /// Unfolds input patches into `cols`, writing zeros where a patch leaves the image.
    fn im2col(&self, x: &[f32], n: usize, cols: &mut [f32]) {
        self.for_each_run(n, |col, source, len| match source {
            Some(inp) => cols[col..col + len].copy_from_slice(&x[inp..inp + len]),
            None => cols[col..col + len].fill(0.0),
        });
    }

    /// Folds patch gradients back onto the input, summing overlaps.
    fn col2im(&self, dcols: &[f32], n: usize, dx: &mut [f32]) {
        dx[..n * self.input.size()].fill(0.0);
        self.for_each_run(n, |col, source, len| {
            if let Some(inp) = source {
                dx[inp..inp + len].iter_mut().zip(&dcols[col..col + len]).for_each(|(d, g)| *d += g)
            }
        });
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2D"
    }

    fn input_shape(&self) -> Shape {
        self.input
    }

    fn output_shape(&self) -> Shape {
        self.output
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                name: "kernel",
                trainable: true,
                dims: vec![self.kernel, self.kernel, self.input.c, self.filters],
            },
            ParamSpec { name: "bias", trainable: true, dims: vec![self.filters] },
        ]
    }

    fn init_params(&self, params: &mut [f32], rng: &mut ChaCha8Rng) {
        let (kernel, bias) = params.split_at_mut(self.patch_len() * self.filters);
        let area = self.kernel * self.kernel;
        self.init.fill(kernel, area * self.input.c, area * self.filters, rng);
        bias.fill(0.0);
    }

    fn scratch_len(&self, n: usize) -> usize {
        let fused = self.pooled.map_or(0, |p| p.scratch_len());
        let unfused = match &self.implicit {
            Some(conv) => conv.scratch_len(),
            None => 2 * n.min(self.chunk_images()) * self.out_pixels() * self.patch_len(),
        };
        let padded = self.direct.map_or(0, |g| direct_conv::padded_len(&g));
        let winograd = self.winograd.map_or(0, |w| w.scratch_len());
        let gradients = self.winograd_gradients.map_or(0, |g| g.scratch_len());
        let trained_pooled = self.pooled_training.map_or(0, |t| t.scratch_len(n));
        let kept = self.pooled.map_or(0, |p| p.kept_len());
        fused.max(unfused).max(padded).max(winograd).max(gradients).max(trained_pooled) + kept
    }

    fn macs(&self) -> usize {
        self.out_pixels() * self.patch_len() * self.filters
    }

    fn forward(&self, f: Forward) {
        let (k, fo) = (self.patch_len(), self.filters);
        let (in_size, out_size) = (self.input.size(), self.output.size());
        let (kernel, bias) = f.params.split_at(k * fo);
        if let Some(geometry) = &self.direct {
            return direct_conv::forward(geometry, f.x, f.n, kernel, bias, self.activation, f.y);
        }
        if let Some(winograd) = &self.winograd {
            let relu = self.activation == Activation::Relu;
            return winograd.forward(f.x, f.n, kernel, (bias, relu, Output::Full), f.y, f.scratch);
        }
        if let Some(conv) = &self.implicit {
            for (x, y) in f.x.chunks_exact(in_size).zip(f.y.chunks_exact_mut(out_size)).take(f.n) {
                conv.forward(x, kernel, y, f.scratch);
                add_bias_activate(y, bias, self.activation);
            }
            return;
        }
        for (first, n) in self.chunks(f.n) {
            let rows = n * self.out_pixels();
            let cols = &mut f.scratch[..rows * k];
            self.im2col(&f.x[first * in_size..], n, cols);
            let y = &mut f.y[first * out_size..][..rows * fo];
            matmul(rows, fo, k, transposed(cols), plain(kernel), y, false);
            add_bias_activate(y, bias, self.activation);
        }
    }

    fn trains_pooled(&self) -> bool {
        self.pooled_training.is_some()
    }

    fn forward_pooled(&self, f: Forward) -> bool {
        let (kernel, bias) = f.params.split_at(self.patch_len() * self.filters);
        if f.train {
            let Some(training) = &self.pooled_training else { return false };
            training.forward((f.x, f.n), (kernel, bias, self.activation), f.y, f.scratch);
            return true;
        }
        let Some(fused) = &self.pooled else { return false };
        // The fused pass keeps its transformed kernel at the end of the scratch, which the
        // other passes never reach (see `scratch_len`).
        let (scratch, kept) = f.scratch.split_at_mut(f.scratch.len() - fused.kept_len());
        fused.forward(f.x, f.n, kernel, bias, self.activation, f.y, scratch, kept);
        true
    }

    fn backward_pooled(&self, b: Backward) {
        let training = self.pooled_training.as_ref().expect("a pooled training pass (trains_pooled)");
        assert!(b.dx.is_none(), "the pooled training pass has no input gradient");
        let (dkernel, dbias) = b.dparams.split_at_mut(self.patch_len() * self.filters);
        training.backward((b.x, b.n, self.activation), (b.y, b.dy), (dkernel, dbias), b.scratch);
    }

    fn backward(&self, mut b: Backward) {
        let (k, fo) = (self.patch_len(), self.filters);
        let (in_size, out_size) = (self.input.size(), self.output.size());
        let (dkernel, dbias) = b.dparams.split_at_mut(k * fo);
        let kernel = &b.params[..k * fo];
        let dy = &mut b.dy[..b.n * out_size];
        bias_activation_backward(dy, &b.y[..b.n * out_size], self.activation, dbias);
        let dy = &*dy;
        let direct = self.direct.filter(|g| b.dx.is_none() && direct_conv::gradient_available(g, fo));
        if let Some(geometry) = direct {
            return direct_conv::kernel_gradient(&geometry, b.x, dy, b.n, dkernel, b.scratch);
        }
        if let Some(gradients) = &self.winograd_gradients {
            return gradients.backward((b.x, dy, b.n), kernel, dkernel, b.dx, b.scratch);
        }
        if let Some(conv) = &self.implicit {
            return conv.backward(b.n, b.x, dy, kernel, dkernel, b.dx, b.scratch);
        }
        for (first, n) in self.chunks(b.n) {
            let rows = n * self.out_pixels();
            let dy = &dy[first * out_size..][..rows * fo];
            let (cols, dcols) = b.scratch.split_at_mut(rows * k);
            self.im2col(&b.x[first * in_size..], n, cols);
            matmul(k, fo, rows, plain(cols), plain(dy), dkernel, true);
            if let Some(dx) = b.dx.as_deref_mut() {
                let dcols = &mut dcols[..rows * k];
                matmul(k, rows, fo, plain(kernel), transposed(dy), dcols, false);
                self.col2im(dcols, n, &mut dx[first * in_size..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer, forward_backward};
    use crate::nn::layer::param_count;

    #[test]
    fn valid_convolution_by_hand() {
        // 3×3 single-channel input, 2×2 kernel of ones, bias 1 → sums of each 2×2 window plus 1.
        let conv = Conv2d::new(Shape::new(3, 3, 1), 1, 2, Padding::Valid, Activation::Linear, Init::HeNormal);
        assert_eq!(conv.output_shape(), Shape::new(2, 2, 1));
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let params = [1.0, 1.0, 1.0, 1.0, 1.0];
        let mut y = vec![0.0; 4];
        let mut scratch = vec![0.0; conv.scratch_len(1)];
        conv.forward(Forward { n: 1, params: &params, x: &x, y: &mut y, scratch: &mut scratch, train: false, seed: 0 });
        assert_eq!(y, vec![13.0, 17.0, 25.0, 29.0]);
    }

    #[test]
    fn same_padding_keeps_size_and_zero_pads() {
        let conv = Conv2d::new(Shape::new(2, 2, 1), 1, 3, Padding::Same, Activation::Linear, Init::HeNormal);
        assert_eq!(conv.output_shape(), Shape::new(2, 2, 1));
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut params = vec![1.0; 10];
        params[9] = 0.0;
        let (mut y, mut scratch) = (vec![0.0; 4], vec![0.0; conv.scratch_len(1)]);
        conv.forward(Forward { n: 1, params: &params, x: &x, y: &mut y, scratch: &mut scratch, train: false, seed: 0 });
        assert_eq!(y, vec![10.0; 4]);
    }

    #[test]
    fn gradients_valid_relu_multichannel() {
        check_layer(&Conv2d::new(Shape::new(5, 6, 2), 3, 3, Padding::Valid, Activation::Relu, Init::HeNormal), 2);
    }

    #[test]
    fn gradients_of_a_winograd_convolution() {
        // Linear: with 144 terms per output, some ReLU inputs lie within a finite-difference step
        // of the kink (for the implicit-GEMM path too); the Winograd ReLU is checked against the
        // textbook sum in `winograd`.
        let conv = Conv2d::new(Shape::new(6, 8, 16), 16, 3, Padding::Valid, Activation::Linear, Init::HeNormal);
        #[cfg(target_arch = "x86_64")]
        {
            let avx512f = std::arch::is_x86_feature_detected!("avx512f");
            assert_eq!((conv.winograd.is_some(), conv.winograd_gradients.is_some()), (avx512f, avx512f));
        }
        check_layer(&conv, 2);
    }

    #[test]
    fn gradients_same_linear() {
        check_layer(&Conv2d::new(Shape::new(4, 4, 3), 2, 3, Padding::Same, Activation::Linear, Init::GlorotUniform), 2);
    }

    #[test]
    fn gradients_single_channel_same_padding() {
        check_layer(&Conv2d::new(Shape::new(5, 4, 1), 3, 3, Padding::Same, Activation::Linear, Init::HeNormal), 2);
    }

    #[test]
    fn gradients_single_channel_5x5() {
        check_layer(&Conv2d::new(Shape::new(7, 7, 1), 2, 5, Padding::Valid, Activation::Relu, Init::HeNormal), 2);
    }

    /// A multi-channel convolution (image by image) and a single-channel one whose batches of
    /// three images split into more than one im2col chunk.
    fn batched_convolutions() -> [Conv2d; 2] {
        let implicit = Conv2d::new(Shape::new(8, 8, 40), 2, 3, Padding::Same, Activation::Linear, Init::HeNormal);
        let kernel_major = Conv2d::new(Shape::new(48, 48, 1), 2, 5, Padding::Same, Activation::Linear, Init::HeNormal);
        assert!(kernel_major.chunks(3).count() >= 2, "the batch is split");
        [implicit, kernel_major]
    }

    #[test]
    fn gradients_of_chunk_sized_images() {
        for conv in batched_convolutions() {
            check_layer(&conv, 1);
        }
    }

    #[test]
    fn a_batch_equals_its_images_one_by_one() {
        for conv in batched_convolutions() {
            let params: Vec<f32> = (0..param_count(&conv)).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
            let (ins, outs) = (conv.input.size(), conv.output.size());
            let x: Vec<f32> = (0..3 * ins).map(|i| (i * 7 % 17) as f32 / 17.0).collect();
            let dy: Vec<f32> = (0..3 * outs).map(|i| (i * 5 % 11) as f32 / 11.0 - 0.5).collect();
            let (y, dx, dparams) = forward_backward(&conv, &params, &x, &dy);
            let mut dparams_sum = vec![0.0; params.len()];
            for i in 0..3 {
                let image = |v: &[f32], size: usize| v[i * size..(i + 1) * size].to_vec();
                let (y1, dx1, dparams1) = forward_backward(&conv, &params, &image(&x, ins), &image(&dy, outs));
                assert_eq!(y[i * outs..(i + 1) * outs], y1[..]);
                assert_eq!(dx[i * ins..(i + 1) * ins], dx1[..]);
                dparams_sum.iter_mut().zip(&dparams1).for_each(|(s, d)| *s += d);
            }
            for (a, b) in dparams.iter().zip(&dparams_sum) {
                assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "parameter gradient {a} vs {b}");
            }
        }
    }

    #[test]
    fn training_with_the_following_pooling_equals_the_two_layers_one_after_the_other() {
        let conv = Conv2d::new(Shape::new(12, 13, 1), 32, 5, Padding::Valid, Activation::Relu, Init::HeNormal);
        if !conv.trains_pooled() {
            eprintln!("SKIPPED: this CPU has no AVX-512F, so the pooled training pass is never used");
            return;
        }
        let pool = crate::nn::pool::MaxPool2d::new(conv.output, 2);
        let n = 3;
        let params: Vec<f32> = (0..param_count(&conv)).map(|i| (i % 13) as f32 / 13.0 - 0.4).collect();
        // The top rows are constant, so neighbouring outputs there tie in the pooling (which of
        // them takes the gradient is checked in `argmax_pool`).
        let x: Vec<f32> =
            (0..n * conv.input.size()).map(|i| if i % 156 < 91 { 0.5 } else { (i * 7 % 17) as f32 / 17.0 }).collect();
        let pooled_len = n * pool.output_shape().size();
        let dpooled: Vec<f32> = (0..pooled_len).map(|i| (i * 5 % 11) as f32 / 11.0 - 0.5).collect();
        let (y, _, _) = forward_backward(&conv, &params, &x, &vec![0.0; n * conv.output.size()]);
        let (expected_pooled, dy, _) = forward_backward(&pool, &[], &y, &dpooled);
        let (_, _, expected_dparams) = forward_backward(&conv, &params, &x, &dy);

        let (mut pooled, mut scratch) = (vec![f32::NAN; pooled_len], vec![f32::NAN; conv.scratch_len(n)]);
        let forward =
            Forward { n, params: &params, x: &x, y: &mut pooled, scratch: &mut scratch, train: true, seed: 0 };
        assert!(conv.forward_pooled(forward));
        assert_eq!(pooled, expected_pooled);
        let (mut dy_pooled, mut dparams) = (dpooled.clone(), vec![0.0; params.len()]);
        conv.backward_pooled(Backward {
            n,
            params: &params,
            x: &x,
            y: &pooled,
            dy: &mut dy_pooled,
            dx: None,
            dparams: &mut dparams,
            scratch: &mut scratch,
        });
        for (a, b) in dparams.iter().zip(&expected_dparams) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "parameter gradient {a} vs {b}");
        }
    }

    #[test]
    fn gradients_of_a_direct_first_layer() {
        check_layer(&Conv2d::new(Shape::new(6, 7, 1), 16, 3, Padding::Same, Activation::Linear, Init::HeNormal), 2);
        check_layer(&Conv2d::new(Shape::new(12, 12, 1), 32, 5, Padding::Valid, Activation::Linear, Init::HeNormal), 1);
    }
}
