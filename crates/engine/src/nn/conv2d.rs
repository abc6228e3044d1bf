//! 2-D convolution layer, stride 1, "valid" or "same" padding, NHWC, with fused bias and
//! activation. The layer describes its [`ConvProblem`] and runs the algorithms
//! [`conv::select_forward`] and [`conv::select_backward`] chose for it once, at construction
//! (see `crate::nn::conv` for the ordered lists). A convolution followed by 2×2 max pooling may
//! instead run as one fused step of the model's plan (`crate::nn::plan`).

use crate::nn::activation::{Activation, bias_activation_backward};
use crate::nn::conv::{self, BackwardAlgorithm, ConvBackward, ConvForward, ConvProblem, ForwardAlgorithm};
use crate::nn::init::Init;
use crate::nn::layer::{Backward, Forward, Layer, ParamSpec, Shape};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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

/// The unpooled training problem, with input gradient, of a convolution.
pub fn problem(input: Shape, filters: usize, kernel: usize, padding: Padding, activation: Activation) -> ConvProblem {
    let pad = if padding == Padding::Same { kernel / 2 } else { 0 };
    ConvProblem { input, filters, kernel, pad, activation, pool: false, input_gradient: true, training: true }
}

/// A convolution layer. Parameters: `kernel [k, k, in, filters]`, then `bias [filters]`.
pub struct Conv2d {
    /// What it computes (unpooled, training).
    problem: ConvProblem,
    init: Init,
    /// The forward algorithm chosen for `problem`.
    forward: Box<dyn ForwardAlgorithm>,
    /// The backward algorithm chosen for `problem`.
    backward: Box<dyn BackwardAlgorithm>,
}

impl Conv2d {
    /// A `kernel × kernel` convolution with `filters` outputs over samples of `input`, whose
    /// backward pass computes the input gradient.
    pub fn new(
        input: Shape,
        filters: usize,
        kernel: usize,
        padding: Padding,
        activation: Activation,
        init: Init,
    ) -> Conv2d {
        Conv2d::for_problem(problem(input, filters, kernel, padding, activation), init)
    }

    /// The same convolution as a model's first layer, whose backward pass needs no input
    /// gradient (which lets faster algorithms take it).
    pub fn without_input_gradient(self) -> Conv2d {
        Conv2d::for_problem(ConvProblem { input_gradient: false, ..self.problem }, self.init)
    }

    fn for_problem(problem: ConvProblem, init: Init) -> Conv2d {
        let forward = conv::select_forward(&problem).expect("the reference takes every unpooled convolution");
        let backward = conv::select_backward(&problem).expect("the reference takes every unpooled convolution");
        Conv2d { problem, init, forward, backward }
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2D"
    }

    fn input_shape(&self) -> Shape {
        self.problem.input
    }

    fn output_shape(&self) -> Shape {
        self.problem.output()
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        let p = &self.problem;
        vec![
            ParamSpec { name: "kernel", trainable: true, dims: vec![p.kernel, p.kernel, p.input.c, p.filters] },
            ParamSpec { name: "bias", trainable: true, dims: vec![p.filters] },
        ]
    }

    fn init_params(&self, params: &mut [f32], rng: &mut ChaCha8Rng) {
        let p = &self.problem;
        let (kernel, bias) = params.split_at_mut(p.kernel_len());
        let area = p.kernel * p.kernel;
        self.init.fill(kernel, area * p.input.c, area * p.filters, rng);
        bias.fill(0.0);
    }

    fn scratch_len(&self, n: usize) -> usize {
        self.forward.scratch_len(n).max(self.backward.scratch_len(n))
    }

    fn macs(&self) -> usize {
        let out = self.problem.output();
        out.h * out.w * self.problem.patch_len() * self.problem.filters
    }

    fn conv_algorithms(&self) -> Option<(&'static str, &'static str)> {
        Some((self.forward.name(), self.backward.name()))
    }

    fn forward(&self, f: Forward) {
        let (kernel, bias) = f.params.split_at(self.problem.kernel_len());
        self.forward.forward(ConvForward { n: f.n, x: f.x, kernel, bias, y: f.y, scratch: f.scratch, kept: &mut [] });
    }

    fn backward(&self, b: Backward) {
        let (dkernel, dbias) = b.dparams.split_at_mut(self.problem.kernel_len());
        let out_size = self.problem.output().size();
        let dy = &mut b.dy[..b.n * out_size];
        bias_activation_backward(dy, &b.y[..b.n * out_size], self.problem.activation, dbias);
        self.backward.backward(ConvBackward {
            n: b.n,
            x: b.x,
            y: b.y,
            dy,
            kernel: &b.params[..self.problem.kernel_len()],
            dkernel,
            dbias,
            dx: b.dx,
            scratch: b.scratch,
        });
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
        let expected = if crate::nn::vector::avx512f() {
            ("winograd", "winograd-gradient")
        } else {
            ("implicit-gemm", "implicit-gemm")
        };
        assert_eq!(conv.conv_algorithms(), Some(expected));
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
    /// three images split into more than one im2col chunk (36,864 patch values per image).
    fn batched_convolutions() -> [Conv2d; 2] {
        let implicit = Conv2d::new(Shape::new(8, 8, 40), 2, 3, Padding::Same, Activation::Linear, Init::HeNormal);
        let kernel_major = Conv2d::new(Shape::new(48, 48, 1), 2, 5, Padding::Same, Activation::Linear, Init::HeNormal);
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
            let (ins, outs) = (conv.problem.input.size(), conv.problem.output().size());
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
    fn gradients_of_wide_single_channel_layers() {
        check_layer(&Conv2d::new(Shape::new(6, 7, 1), 16, 3, Padding::Same, Activation::Linear, Init::HeNormal), 2);
        check_layer(&Conv2d::new(Shape::new(12, 12, 1), 32, 5, Padding::Valid, Activation::Linear, Init::HeNormal), 1);
    }
}
