//! The layer interface. Layers are stateless descriptions: parameters, activations and scratch
//! buffers are passed in, so one model can run on several threads at once, each thread with its
//! own workspace and gradient buffer. Tensors are NHWC (channels last): a convolution's im2col rows
//! are then contiguous channel runs, its output rows land directly in NHWC, and the flatten order
//! matches Keras.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The shape of one sample, NHWC without the batch: height, width, channels. Vectors are 1×1×C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels (or vector length).
    pub c: usize,
}

impl Shape {
    /// A per-sample image shape.
    pub fn new(h: usize, w: usize, c: usize) -> Shape {
        Shape { h, w, c }
    }

    /// A vector of `len` values.
    pub fn vector(len: usize) -> Shape {
        Shape { h: 1, w: 1, c: len }
    }

    /// Values per sample.
    pub fn size(&self) -> usize {
        self.h * self.w * self.c
    }

    /// `rows×cols×channels`, as messages name image shapes.
    pub fn hwc(&self) -> String {
        format!("{}×{}×{}", self.h, self.w, self.c)
    }

    /// Keras-style text, `(None, 24, 24, 32)` or `(None, 128)`.
    pub fn describe(&self) -> String {
        if self.h == 1 && self.w == 1 {
            format!("(None, {})", self.c)
        } else {
            format!("(None, {}, {}, {})", self.h, self.w, self.c)
        }
    }
}

/// One named parameter tensor of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Name within the layer (`kernel`, `bias`).
    pub name: &'static str,
    /// Dimensions, Keras order (a conv kernel is `[kh, kw, in, out]`).
    pub dims: Vec<usize>,
    /// Updated by the optimiser (false for statistics such as moving averages).
    pub trainable: bool,
}

impl ParamSpec {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// True for a tensor without values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Inputs and outputs of a forward pass over `n` samples.
pub struct Forward<'a> {
    /// Samples in the batch.
    pub n: usize,
    /// This layer's parameters.
    pub params: &'a [f32],
    /// Input activations, `n × input size`.
    pub x: &'a [f32],
    /// Output activations to write, `n × output size`.
    pub y: &'a mut [f32],
    /// Layer-private scratch of `scratch_len(n)` values, kept until the matching backward.
    pub scratch: &'a mut [f32],
    /// Training mode (dropout active).
    pub train: bool,
    /// Seed for any randomness of this call.
    pub seed: u64,
}

/// Inputs and outputs of a backward pass over `n` samples.
pub struct Backward<'a> {
    /// Samples in the batch.
    pub n: usize,
    /// This layer's parameters.
    pub params: &'a [f32],
    /// The forward input.
    pub x: &'a [f32],
    /// The forward output.
    pub y: &'a [f32],
    /// Gradient of the loss w.r.t. `y`; layers may overwrite it.
    pub dy: &'a mut [f32],
    /// Where to write the gradient w.r.t. `x`; `None` for the first layer, which needs none.
    pub dx: Option<&'a mut [f32]>,
    /// Parameter gradients, accumulated (`+=`); the caller zeroes them.
    pub dparams: &'a mut [f32],
    /// The scratch written by the forward pass.
    pub scratch: &'a mut [f32],
}

/// A differentiable layer.
pub trait Layer: Send + Sync {
    /// Keras-like type name for summaries.
    fn kind(&self) -> &'static str;
    /// Shape of one input sample.
    fn input_shape(&self) -> Shape;
    /// Shape of one output sample.
    fn output_shape(&self) -> Shape;
    /// Parameter tensors, in storage order.
    fn param_specs(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    /// Initial parameter values.
    fn init_params(&self, _params: &mut [f32], _rng: &mut ChaCha8Rng) {}
    /// Scratch values needed for a batch of `n`.
    fn scratch_len(&self, _n: usize) -> usize {
        0
    }
    /// Multiply-adds per sample in the forward pass (for FLOP accounting).
    fn macs(&self) -> usize {
        0
    }
    /// Computes the output.
    fn forward(&self, f: Forward);
    /// For a convolution, the names of the forward and backward algorithms it runs.
    fn conv_algorithms(&self) -> Option<(&'static str, &'static str)> {
        None
    }
    /// Computes the input and parameter gradients.
    fn backward(&self, b: Backward);
    /// After a training forward over `n` samples, adds the statistics its scratch holds into
    /// `acc` (laid out like this layer's parameters).
    fn accumulate_state(&self, _scratch: &[f32], _n: usize, _acc: &mut [f32]) {}
    /// Updates the non-trainable parameters from statistics summed over `count` forward calls;
    /// `updates` is how many updates came before this one (moving averages start fast: their
    /// decay is at most `(1 + updates) / (10 + updates)`, as TensorFlow's `num_updates`).
    fn update_state(&self, _params: &mut [f32], _acc: &[f32], _count: usize, _updates: usize) {}
}

/// Total number of parameter values of a layer.
pub fn param_count(layer: &dyn Layer) -> usize {
    layer.param_specs().iter().map(ParamSpec::len).sum()
}
