//! A first-layer, single-channel convolution trained together with the 2×2 max pooling that
//! follows it, one image at a time.
//!
//! Layer by layer, a batch's whole convolution output (24×24×32 values per image in the seed
//! CNN, 2.4 MB for a thread's 32 images) is written, read back by the pooling, read again by the
//! pooling's backward pass, which writes its gradient, and read twice more by the bias and
//! activation backward and the kernel gradient — each pass through the last-level cache. Here
//! each image's convolution output is pooled while it is still in the core's cache, and only the
//! pooled values and where each maximum was are kept ([`argmax_pool`]). Going back, the bias and
//! activation backward runs on the pooled gradient (a quarter of the values: the maximum of
//! activated values is the activated value at its position), and each image's convolution
//! gradient is rebuilt in cache and consumed by the direct kernel gradient at once.

use crate::nn::activation::{Activation, bias_activation_backward};
use crate::nn::conv::argmax_pool::{self, pooled_shape};
use crate::nn::conv::direct::{self, Geometry};
use crate::nn::conv::{BackwardAlgorithm, ConvBackward, ConvForward, ConvProblem, ForwardAlgorithm};
use crate::nn::layer::Shape;

/// The convolution and pooling pair, as one training pass.
#[derive(Debug, Clone, Copy)]
pub struct PooledTraining {
    /// The direct convolution.
    geometry: Geometry,
    /// One image of its output, before pooling.
    output: Shape,
}

impl PooledTraining {
    /// The pair for a direct convolution with output `output`, where its kernel gradient is
    /// direct too.
    pub fn new(geometry: Geometry, output: Shape) -> Option<PooledTraining> {
        direct::gradient_available(&geometry, output.c).then_some(PooledTraining { geometry, output })
    }

    /// Lengths of the pooling positions of `n` images, one image's convolution output (or its
    /// gradient) and one padded input image, in that order.
    fn parts(&self, n: usize) -> [usize; 3] {
        [n * self.image_sizes().1, self.output.size(), direct::padded_len(&self.geometry)]
    }

    /// Values of one input image and of one pooled output image.
    fn image_sizes(&self) -> (usize, usize) {
        (self.geometry.input.0 * self.geometry.input.1, pooled_shape(self.output).size())
    }

    /// Scratch values for batches of `n`; the first part is kept from `forward` to `backward`.
    pub fn scratch_len(&self, n: usize) -> usize {
        self.parts(n).iter().sum()
    }

    /// `pooled = pool(act(conv(x) + bias))` for `n` images `x`; `kernel` is `[k, k, 1, F]`.
    pub fn forward(
        &self,
        (x, n): (&[f32], usize),
        (kernel, bias, act): (&[f32], &[f32], Activation),
        pooled: &mut [f32],
        scratch: &mut [f32],
    ) {
        let (in_size, pooled_size) = self.image_sizes();
        assert!(x.len() >= n * in_size && pooled.len() >= n * pooled_size, "pooled training buffers too small");
        let [positions_len, output_len, _] = self.parts(n);
        let (positions, rest) = scratch[..self.scratch_len(n)].split_at_mut(positions_len);
        let output = &mut rest[..output_len];
        let images = x.chunks_exact(in_size).zip(pooled.chunks_exact_mut(pooled_size));
        for ((image, pooled), positions) in images.zip(positions.chunks_exact_mut(pooled_size)).take(n) {
            direct::forward(&self.geometry, image, 1, kernel, bias, act, output);
            argmax_pool::pool(output, self.output, pooled, positions);
        }
    }

    /// After `forward` over the same `n` images `x` (whose pooled output is `pooled` and whose
    /// positions `scratch` still holds): turns `dpooled` into the gradient before the activation,
    /// in place, and adds the parameter gradients to `dkernel` and `dbias`.
    pub fn backward(
        &self,
        (x, n, act): (&[f32], usize, Activation),
        (pooled, dpooled): (&[f32], &mut [f32]),
        (dkernel, dbias): (&mut [f32], &mut [f32]),
        scratch: &mut [f32],
    ) {
        let (in_size, pooled_size) = self.image_sizes();
        assert!(x.len() >= n * in_size && pooled.len() >= n * pooled_size && dpooled.len() >= n * pooled_size);
        let dpooled = &mut dpooled[..n * pooled_size];
        bias_activation_backward(dpooled, &pooled[..n * pooled_size], act, dbias);
        let [positions_len, output_len, padded_len] = self.parts(n);
        let (positions, rest) = scratch[..self.scratch_len(n)].split_at_mut(positions_len);
        let (doutput, padded) = rest.split_at_mut(output_len);
        let images = x.chunks_exact(in_size).zip(dpooled.chunks_exact(pooled_size));
        for ((image, dpooled), positions) in images.zip(positions.chunks_exact(pooled_size)).take(n) {
            argmax_pool::unpool(dpooled, positions, self.output, doutput);
            direct::kernel_gradient(&self.geometry, image, doutput, 1, dkernel, &mut padded[..padded_len]);
        }
    }
}

/// The pair for a training problem of one channel followed by pooling, with no input gradient,
/// where this CPU runs the direct convolution and its kernel gradient.
fn pair(p: &ConvProblem) -> Option<(PooledTraining, Activation)> {
    if !(p.pool && p.training && !p.input_gradient && p.input.c == 1) {
        return None;
    }
    let output = p.output();
    let geometry =
        Geometry { input: (p.input.h, p.input.w), output: (output.h, output.w), kernel: p.kernel, pad: p.pad };
    direct::available(p.filters).then(|| PooledTraining::new(geometry, output)).flatten().map(|t| (t, p.activation))
}

/// The forward pass of [`pair`]'s problems.
pub fn forward_for(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    pair(p).map(|t| Box::new(t) as Box<dyn ForwardAlgorithm>)
}

/// The backward pass of [`pair`]'s problems (after this forward pass, whose scratch it reads).
pub fn backward_for(p: &ConvProblem) -> Option<Box<dyn BackwardAlgorithm>> {
    pair(p).map(|t| Box::new(t) as Box<dyn BackwardAlgorithm>)
}

impl ForwardAlgorithm for (PooledTraining, Activation) {
    fn name(&self) -> &'static str {
        "pooled-training"
    }

    fn scratch_len(&self, n: usize) -> usize {
        self.0.scratch_len(n)
    }

    fn forward(&self, f: ConvForward) {
        self.0.forward((f.x, f.n), (f.kernel, f.bias, self.1), f.y, f.scratch);
    }
}

impl BackwardAlgorithm for (PooledTraining, Activation) {
    fn name(&self) -> &'static str {
        "pooled-training"
    }

    fn scratch_len(&self, n: usize) -> usize {
        self.0.scratch_len(n)
    }

    fn backward(&self, b: ConvBackward) {
        self.0.backward((b.x, b.n, self.1), (b.y, b.dy), (b.dkernel, b.dbias), b.scratch);
    }
}
