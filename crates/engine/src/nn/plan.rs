//! A model's execution plan, made once when the model is built: the steps its forward and
//! backward passes loop over, in training and in inference. A step is one layer, or a
//! convolution and the 2×2 max pooling after it as one pass, where some algorithm of
//! `crate::nn::conv` computes the pair for that mode (in inference `conv-pool`, which never
//! writes the convolution's full output; in training a first layer's `pooled-training`).

use crate::nn::conv::{self, BackwardAlgorithm, ConvProblem, ForwardAlgorithm};
use crate::nn::conv2d;
use crate::nn::layer::Layer;
use crate::nn::spec::{LayerSpec, ModelSpec};

/// One step of a plan.
pub enum Step {
    /// Layer `i` by its own forward and backward passes.
    Layer(usize),
    /// The convolution at layer `conv` and the pooling at `conv + 1` as one pass, writing the
    /// pooling's output.
    ConvPool {
        /// Index of the convolution layer.
        conv: usize,
        /// The fused problem.
        problem: ConvProblem,
        /// Its forward algorithm.
        forward: Box<dyn ForwardAlgorithm>,
        /// Its backward algorithm (training plans only).
        backward: Option<Box<dyn BackwardAlgorithm>>,
    },
}

impl Step {
    /// The step's first layer, and the layer whose output buffer it writes.
    pub fn layers(&self) -> (usize, usize) {
        match self {
            Step::Layer(i) => (*i, *i),
            Step::ConvPool { conv, .. } => (*conv, conv + 1),
        }
    }
}

/// The steps of one mode.
pub struct Plan {
    steps: Vec<Step>,
}

impl Plan {
    /// The plan of `layers` (built from `spec`) for training or inference.
    pub fn new(spec: &ModelSpec, layers: &[Box<dyn Layer>], training: bool) -> Plan {
        let mut steps = Vec::with_capacity(layers.len());
        let mut i = 0;
        while i < layers.len() {
            match fused(spec, layers, i, training) {
                Some(step) => {
                    steps.push(step);
                    i += 2;
                }
                None => {
                    steps.push(Step::Layer(i));
                    i += 1;
                }
            }
        }
        Plan { steps }
    }

    /// The steps, first to last.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Scratch values the fused step of layer `i` needs for batches of `n`, and the values it
    /// keeps from call to call (0, 0 where layer `i` runs on its own).
    pub fn fused_scratch(&self, i: usize, n: usize) -> (usize, usize) {
        self.steps
            .iter()
            .find_map(|s| match s {
                Step::ConvPool { conv, forward, backward, .. } if *conv == i => {
                    let backward = backward.as_ref().map_or(0, |b| b.scratch_len(n));
                    Some((forward.scratch_len(n).max(backward), forward.kept_len()))
                }
                _ => None,
            })
            .unwrap_or((0, 0))
    }

    /// One line per step: layers, and for convolutions the forward and backward algorithms.
    pub fn describe(&self, layers: &[Box<dyn Layer>]) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let line = match step {
                Step::Layer(i) => match layers[*i].conv_algorithms() {
                    Some((f, b)) => format!("{i} {}: {f} / {b}", layers[*i].kind()),
                    None => format!("{i} {}", layers[*i].kind()),
                },
                Step::ConvPool { conv, forward, backward, .. } => {
                    let b = backward.as_ref().map_or(String::new(), |b| format!(" / {}", b.name()));
                    format!(
                        "{conv} {} + {} {}: {}{b}",
                        layers[*conv].kind(),
                        conv + 1,
                        layers[conv + 1].kind(),
                        forward.name()
                    )
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// The fused step of the convolution at layer `i` and a 2×2 max pooling after it, where some
/// algorithm computes the pair in this mode.
fn fused(spec: &ModelSpec, layers: &[Box<dyn Layer>], i: usize, training: bool) -> Option<Step> {
    let (LayerSpec::Conv2d { filters, kernel, padding, activation, .. }, Some(LayerSpec::MaxPool2d { size: 2 })) =
        (&spec.layers[i], spec.layers.get(i + 1))
    else {
        return None;
    };
    let unpooled = conv2d::problem(layers[i].input_shape(), *filters, *kernel, *padding, *activation);
    let problem = ConvProblem { pool: true, input_gradient: i > 0, training, ..unpooled };
    let forward = conv::select_forward(&problem)?;
    let backward = if training { Some(conv::select_backward(&problem)?) } else { None };
    Some(Step::ConvPool { conv: i, problem, forward, backward })
}
