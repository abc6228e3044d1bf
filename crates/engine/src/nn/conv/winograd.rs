//! The forward algorithm of an unpooled 3×3 convolution by Winograd's minimal filtering: the
//! tiles of `winograd_tiles`, writing the whole output.

use crate::nn::activation::Activation;
use crate::nn::conv::winograd_tiles::{Output, Winograd, covering_problem};
use crate::nn::conv::{ConvForward, ConvProblem, ForwardAlgorithm};

/// The forward pass of an unpooled 3×3 problem, valid or same-padded, whose output tiles cover
/// the output (channels and filters whole vectors, even output sides), where this CPU runs it.
pub fn forward_for(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    covering_problem(p).map(|winograd| {
        Box::new(Full { winograd, relu: p.activation == Activation::Relu }) as Box<dyn ForwardAlgorithm>
    })
}

/// Winograd writing the whole output.
struct Full {
    winograd: Winograd,
    relu: bool,
}

impl ForwardAlgorithm for Full {
    fn name(&self) -> &'static str {
        "winograd"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        self.winograd.scratch_len()
    }

    fn forward(&self, f: ConvForward) {
        let settings = (f.bias, self.relu, Output::Full);
        self.winograd.forward(f.x, f.n, f.kernel, settings, f.y, f.scratch);
    }
}
