//! Convolution algorithms, and the one place that chooses among them.
//!
//! A [`ConvProblem`] describes one convolution step: input shape, filters, kernel, padding,
//! activation, whether 2×2 max pooling follows inside the same step, whether the backward pass
//! must produce the input gradient, training or inference. For each pass, [`select_forward`] and
//! [`select_backward`] walk an ordered list of algorithms — fastest first, the textbook
//! [`reference`] last — and take the first that supports the problem on this CPU (as oneDNN's
//! implementation lists, burn's `Conv2dStrategy` and candle's `Conv2dImpl` do). `Kernels`
//! (`--kernels`) restricts the lists: `portable` leaves out the hand-written AVX-512 algorithms
//! (they see no AVX-512), `reference` takes the reference alone. Adding an algorithm is one file
//! implementing [`ForwardAlgorithm`] and/or [`BackwardAlgorithm`] plus one line in a list; the
//! differential test below runs every algorithm that accepts a shape against the reference.
//!
//! | algorithm | passes | supports |
//! |---|---|---|
//! | [`conv_pool`] | forward, inference | valid, followed by pooling; AVX-512, filters ×16 |
//! | [`pooled_training`] | forward + backward, training | one channel, followed by pooling, no input gradient; AVX-512, filters ×16 |
//! | [`direct`] | forward; kernel gradient | one channel; AVX-512, filters ×16 (gradient: no input gradient, kernel ≤ 7) |
//! | [`winograd`], [`winograd_gradient`] | forward; backward | valid or same 3×3, channels and filters ×16, even output (4×4 tiles where its sides are ×4); AVX-512 |
//! | [`implicit_gemm`] | forward + backward | more than one channel (portable) |
//! | [`im2col`] | forward + backward | any (portable) |
//! | [`reference`] | forward + backward | any, unpooled (textbook loops) |

pub mod argmax_pool;
pub mod conv_pool;
pub mod direct;
pub mod im2col;
pub mod implicit_gemm;
pub mod pooled_training;
pub mod reference;
pub mod winograd;
pub mod winograd_gradient;
pub mod winograd_tiles;

use crate::nn::activation::Activation;
use crate::nn::layer::Shape;
use crate::nn::vector::{Kernels, kernels};

/// One convolution step: stride 1, square kernel, zero padding `pad` on each border, bias and
/// activation fused, optionally followed by 2×2 max pooling (stride 2) in the same step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvProblem {
    /// One input image.
    pub input: Shape,
    /// Output channels.
    pub filters: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Zero padding on each border (0: valid, kernel / 2: same).
    pub pad: usize,
    /// Activation after the bias.
    pub activation: Activation,
    /// Followed by 2×2 max pooling in the same step: the step's output is the pooled one.
    pub pool: bool,
    /// The backward pass writes the input gradient (false for a model's first layer).
    pub input_gradient: bool,
    /// Training (a backward pass follows) or inference.
    pub training: bool,
}

impl ConvProblem {
    /// The convolution's output image, before any pooling.
    pub fn output(&self) -> Shape {
        let side = |s: usize| s + 2 * self.pad + 1 - self.kernel;
        Shape::new(side(self.input.h), side(self.input.w), self.filters)
    }

    /// The step's output image: pooled (a trailing odd row or column dropped) where `pool`.
    pub fn step_output(&self) -> Shape {
        let out = self.output();
        if self.pool { argmax_pool::pooled_shape(out) } else { out }
    }

    /// Values of the kernel, `[k, k, C, F]`.
    pub fn kernel_len(&self) -> usize {
        self.kernel * self.kernel * self.input.c * self.filters
    }

    /// Values of one im2col row (one output pixel's patch).
    pub fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.input.c
    }
}

/// Inputs and outputs of a forward pass over `n` images.
pub struct ConvForward<'a> {
    /// Images in the batch.
    pub n: usize,
    /// Input images.
    pub x: &'a [f32],
    /// `[k, k, C, F]`.
    pub kernel: &'a [f32],
    /// `[F]`.
    pub bias: &'a [f32],
    /// Output images (pooled where the problem pools): `act(conv(x) + bias)`.
    pub y: &'a mut [f32],
    /// `scratch_len(n)` values, kept until the matching backward pass.
    pub scratch: &'a mut [f32],
    /// `kept_len()` values that this algorithm alone uses, from one call to the next.
    pub kept: &'a mut [f32],
}

/// Inputs and outputs of a backward pass over `n` images.
pub struct ConvBackward<'a> {
    /// Images in the batch.
    pub n: usize,
    /// The forward input.
    pub x: &'a [f32],
    /// The forward output (pooled where the problem pools).
    pub y: &'a [f32],
    /// For an unpooled problem, the gradient before the activation (the caller ran the bias and
    /// activation backward); for a pooled one, the gradient of the pooled output. May be
    /// overwritten.
    pub dy: &'a mut [f32],
    /// The forward kernel.
    pub kernel: &'a [f32],
    /// Kernel gradient, accumulated.
    pub dkernel: &'a mut [f32],
    /// Bias gradient, accumulated (by pooled algorithms; the caller's bias backward otherwise).
    pub dbias: &'a mut [f32],
    /// Where to write the input gradient, when the problem asks for it.
    pub dx: Option<&'a mut [f32]>,
    /// The scratch written by the forward pass.
    pub scratch: &'a mut [f32],
}

/// A way to compute the forward pass of the problems it accepts.
pub trait ForwardAlgorithm: Send + Sync {
    /// Short name, as the plan prints it.
    fn name(&self) -> &'static str;
    /// Scratch values for a batch of `n`.
    fn scratch_len(&self, n: usize) -> usize;
    /// Values kept from one call to the next (a prepared kernel).
    fn kept_len(&self) -> usize {
        0
    }
    /// Computes `y`.
    fn forward(&self, f: ConvForward);
}

/// A way to compute the backward pass of the problems it accepts.
pub trait BackwardAlgorithm: Send + Sync {
    /// Short name, as the plan prints it.
    fn name(&self) -> &'static str;
    /// Scratch values for a batch of `n` (beyond what the forward pass keeps there, for pooled
    /// algorithms, which share their forward pass's scratch).
    fn scratch_len(&self, n: usize) -> usize;
    /// Accumulates the parameter gradients and writes the input gradient where asked.
    fn backward(&self, b: ConvBackward);
}

/// Builds a forward algorithm for a problem it supports on this CPU.
pub type ForwardCandidate = fn(&ConvProblem) -> Option<Box<dyn ForwardAlgorithm>>;
/// Builds a backward algorithm for a problem it supports on this CPU.
pub type BackwardCandidate = fn(&ConvProblem) -> Option<Box<dyn BackwardAlgorithm>>;

/// Forward algorithms, fastest first; the reference last.
pub const FORWARD: &[ForwardCandidate] = &[
    conv_pool::forward_for,
    pooled_training::forward_for,
    direct::forward_for,
    winograd::forward_for,
    implicit_gemm::forward_for,
    im2col::forward_for,
    reference::forward_for,
];

/// Backward algorithms, fastest first; the reference last.
pub const BACKWARD: &[BackwardCandidate] = &[
    pooled_training::backward_for,
    direct::backward_for,
    winograd_gradient::backward_for,
    implicit_gemm::backward_for,
    im2col::backward_for,
    reference::backward_for,
];

/// The candidates `kernels` allows: all (the AVX-512 ones see AVX-512 only under `Auto`), or the
/// reference alone.
fn allowed<T>(list: &[T]) -> &[T] {
    if kernels() == Kernels::Reference { &list[list.len() - 1..] } else { list }
}

/// Whether a step's output has pixels: a pooled problem whose output is one row or column
/// pools to nothing, and the fused algorithms are not asked to run it (the unfused step rejects
/// that pooling with its own error).
fn has_output(p: &ConvProblem) -> bool {
    p.step_output().size() > 0
}

/// The first forward algorithm that supports `p` here; `None` only for a pooled problem no
/// fused algorithm supports.
pub fn select_forward(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    has_output(p).then(|| allowed(FORWARD).iter().find_map(|candidate| candidate(p))).flatten()
}

/// The first backward algorithm that supports `p` here; `None` only for a pooled problem.
pub fn select_backward(p: &ConvProblem) -> Option<Box<dyn BackwardAlgorithm>> {
    has_output(p).then(|| allowed(BACKWARD).iter().find_map(|candidate| candidate(p))).flatten()
}

#[cfg(test)]
mod tests {
    //! The differential test: every algorithm that accepts a problem of the grid against the
    //! reference, forward output and both gradients.

    use super::*;
    use crate::nn::activation::bias_activation_backward;
    use crate::nn::layer::Shape;

    /// Deterministic values in about [-0.5, 0.5).
    fn values(len: usize, salt: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + salt * 104_729) % 1009) as f32 / 1009.0 - 0.5).collect()
    }

    fn close(a: &[f32], b: &[f32], what: &str, name: &str, p: &ConvProblem) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 2e-4 * y.abs().max(1.0), "{name} {what}[{i}]: {x} vs reference {y} for {p:?}");
        }
    }

    /// The reference forward pass of the unpooled problem, then pooling that remembers the
    /// first position of each maximum.
    fn reference_forward(p: &ConvProblem, n: usize, x: &[f32], kernel: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<usize>) {
        let out = p.output();
        let mut y = vec![0.0; n * out.size()];
        let f = reference::forward_for(&ConvProblem { pool: false, ..*p }).unwrap();
        let bias = bias.to_vec();
        f.forward(ConvForward { n, x, kernel, bias: &bias, y: &mut y, scratch: &mut [], kept: &mut [] });
        if !p.pool {
            let at = (0..y.len()).collect();
            return (y, at);
        }
        let pooled = p.step_output();
        let (mut values, mut at) = (Vec::new(), Vec::new());
        for b in 0..n {
            for py in 0..pooled.h {
                for px in 0..pooled.w {
                    for c in 0..p.filters {
                        let index =
                            |dy: usize, dx: usize| ((b * out.h + 2 * py + dy) * out.w + 2 * px + dx) * p.filters + c;
                        let mut best = index(0, 0);
                        for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                            if y[index(dy, dx)] > y[best] {
                                best = index(dy, dx);
                            }
                        }
                        values.push(y[best]);
                        at.push(best);
                    }
                }
            }
        }
        (values, at)
    }

    fn problems() -> impl Iterator<Item = ConvProblem> {
        let mut out = Vec::new();
        for c in [1, 3, 16, 32, 48] {
            for kernel in [1, 3, 5] {
                for same in [false, true] {
                    for (h, w) in [(8, 8), (6, 6), (12, 8), (9, 7)] {
                        for pool in [false, true] {
                            for (training, input_gradient) in [(false, true), (true, true), (true, false)] {
                                let pad = if same { kernel / 2 } else { 0 };
                                let filters = if c == 3 { 8 } else { 16 * (1 + c % 3) };
                                out.push(ConvProblem {
                                    input: Shape::new(h, w, c),
                                    filters,
                                    kernel,
                                    pad,
                                    activation: if kernel == 3 { Activation::Linear } else { Activation::Relu },
                                    pool,
                                    input_gradient,
                                    training,
                                });
                            }
                        }
                    }
                }
            }
        }
        out.into_iter()
    }

    #[test]
    fn every_algorithm_agrees_with_the_reference_over_the_grid() {
        let n = 2;
        let mut used: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for p in problems() {
            let (in_size, out_size) = (p.input.size(), p.step_output().size());
            let (x, kernel, bias) = (values(n * in_size, 1), values(p.kernel_len(), 2), values(p.filters, 3));
            let (expected, at) = reference_forward(&p, n, &x, &kernel, &bias);
            // The gradient of the step's output, and what the reference backward of the unpooled
            // convolution makes of it.
            let dout = values(n * out_size, 4);
            let conv_size = p.output().size();
            let mut dconv = vec![0.0; n * conv_size];
            let mut conv_y = vec![0.0; n * conv_size];
            for (k, &i) in at.iter().enumerate() {
                dconv[i] += dout[k];
                conv_y[i] = expected[k];
            }
            let mut expected_dbias = vec![0.0; p.filters];
            bias_activation_backward(&mut dconv, &conv_y, p.activation, &mut expected_dbias);
            let (mut expected_dkernel, mut expected_dx) = (vec![0.0; kernel.len()], vec![0.0; n * in_size]);
            reference::backward_for(&ConvProblem { pool: false, ..p }).unwrap().backward(ConvBackward {
                n,
                x: &x,
                y: &conv_y,
                dy: &mut dconv.clone(),
                kernel: &kernel,
                dkernel: &mut expected_dkernel,
                dbias: &mut [],
                dx: Some(&mut expected_dx),
                scratch: &mut [],
            });

            let forwards: Vec<_> = FORWARD.iter().filter_map(|c| c(&p)).collect();
            let backwards: Vec<_> = BACKWARD.iter().filter_map(|c| c(&p)).collect();
            if !p.pool {
                assert!(forwards.last().is_some_and(|f| f.name() == "reference"), "the reference takes {p:?}");
            }
            let mut scratch_of_forward = Vec::new();
            for f in &forwards {
                *used.entry(f.name()).or_default() += 1;
                let mut y = vec![f32::NAN; n * out_size];
                let mut scratch = vec![f32::NAN; f.scratch_len(n)];
                let mut kept = vec![0.0; f.kept_len()];
                for _ in 0..2 {
                    // Twice: a prepared kernel kept from the first call must give the same.
                    f.forward(ConvForward {
                        n,
                        x: &x,
                        kernel: &kernel,
                        bias: &bias,
                        y: &mut y,
                        scratch: &mut scratch,
                        kept: &mut kept,
                    });
                    close(&y, &expected, "output", f.name(), &p);
                }
                scratch_of_forward.push((f.name(), scratch));
            }
            if !p.training {
                continue;
            }
            for b in &backwards {
                *used.entry(b.name()).or_default() += 1;
                // A pooled backward reads what its own forward pass left in the scratch.
                let mut scratch = match scratch_of_forward.iter().find(|(name, _)| *name == b.name()) {
                    Some((_, s)) if p.pool => {
                        let mut s = s.clone();
                        s.resize(s.len().max(b.scratch_len(n)), f32::NAN);
                        s
                    }
                    _ => vec![f32::NAN; b.scratch_len(n)],
                };
                let mut dy = if p.pool { dout.clone() } else { dconv.clone() };
                // Gradients are added to what the buffers hold.
                let (mut dkernel, mut dbias) = (vec![0.5; kernel.len()], vec![0.25; p.filters]);
                let mut dx = vec![f32::NAN; n * in_size];
                b.backward(ConvBackward {
                    n,
                    x: &x,
                    y: &expected,
                    dy: &mut dy,
                    kernel: &kernel,
                    dkernel: &mut dkernel,
                    dbias: &mut dbias,
                    dx: p.input_gradient.then_some(&mut dx[..]),
                    scratch: &mut scratch,
                });
                let added = |v: &[f32], base: f32| v.iter().map(|g| g + base).collect::<Vec<f32>>();
                close(&dkernel, &added(&expected_dkernel, 0.5), "kernel gradient", b.name(), &p);
                if p.pool {
                    close(&dbias, &added(&expected_dbias, 0.25), "bias gradient", b.name(), &p);
                }
                if p.input_gradient {
                    close(&dx, &expected_dx, "input gradient", b.name(), &p);
                }
            }
        }
        // On a CPU with AVX-512 every algorithm met some problem of the grid; elsewhere the
        // portable ones and the reference did.
        let expected: &[&str] = if crate::nn::vector::avx512f() {
            &[
                "conv-pool",
                "pooled-training",
                "direct",
                "direct-kernel-gradient",
                "winograd",
                "winograd-gradient",
                "implicit-gemm",
                "im2col",
                "reference",
            ]
        } else {
            &["implicit-gemm", "im2col", "reference"]
        };
        for name in expected {
            assert!(used.get(name).is_some_and(|&count| count > 0), "{name} never ran: {used:?}");
        }
    }

    #[test]
    fn same_padded_3x3_convolutions_run_winograd_where_avx512_is() {
        let p = ConvProblem {
            input: Shape::new(28, 28, 32),
            filters: 64,
            kernel: 3,
            pad: 1,
            activation: Activation::Linear,
            pool: false,
            input_gradient: true,
            training: true,
        };
        let names = (select_forward(&p).unwrap().name(), select_backward(&p).unwrap().name());
        let expected = if crate::nn::vector::avx512f() { "winograd" } else { "implicit-gemm" };
        assert_eq!(names.0, expected);
        assert!(names.1.starts_with(expected), "{names:?}");
        // 28 = 7 × 4: F(4×4, 3×3); 14 is not a multiple of 4: F(2×2, 3×3).
        let half = ConvProblem { input: Shape::new(14, 14, 64), ..p };
        let tiles = [p, half].map(|p| winograd_tiles::covering_problem(&p).map(|w| w.tile()));
        let expected = if crate::nn::vector::avx512f() { [Some(4), Some(2)] } else { [None, None] };
        assert_eq!(tiles, expected);
    }

    #[test]
    fn a_pooled_problem_that_pools_to_nothing_is_left_to_the_unfused_steps() {
        // A valid 3×3 convolution of a 3×3 image has one output pixel: pooling it leaves none.
        let p = ConvProblem {
            input: Shape::new(3, 3, 1),
            filters: 16,
            kernel: 3,
            pad: 0,
            activation: Activation::Relu,
            pool: true,
            input_gradient: false,
            training: true,
        };
        assert_eq!(p.step_output().size(), 0);
        for training in [true, false] {
            let p = ConvProblem { training, ..p };
            assert!(select_forward(&p).is_none() && select_backward(&p).is_none(), "{p:?}");
            let unpooled = ConvProblem { pool: false, ..p };
            assert!(select_forward(&unpooled).is_some() && select_backward(&unpooled).is_some());
        }
    }
}
