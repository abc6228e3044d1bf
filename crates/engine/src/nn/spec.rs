//! The architecture as data: a serialisable list of layer specs that builds a model, plus the
//! named presets. Stored as `model.json` beside the weights.

use crate::error::{Error, Result};
use crate::nn::activation::{Activation, Relu};
use crate::nn::batchnorm::BatchNorm;
use crate::nn::conv2d::{Conv2d, Padding};
use crate::nn::dense::Dense;
use crate::nn::dropout::Dropout;
use crate::nn::flatten::Flatten;
use crate::nn::global_pool::GlobalAvgPool;
use crate::nn::init::Init;
use crate::nn::layer::{Layer, Shape};
use crate::nn::pool::MaxPool2d;
use serde::{Deserialize, Serialize};

fn he_normal() -> Init {
    Init::HeNormal
}

fn bn_momentum() -> f32 {
    0.99
}

fn glorot_uniform() -> Init {
    Init::GlorotUniform
}

/// One layer of an architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// Square convolution, stride 1.
    Conv2d {
        /// Output channels.
        filters: usize,
        /// Kernel side.
        kernel: usize,
        /// Border handling.
        #[serde(default)]
        padding: Padding,
        /// Fused activation.
        #[serde(default)]
        activation: Activation,
        /// Kernel initialiser.
        #[serde(default = "he_normal")]
        init: Init,
    },
    /// Max pooling, stride = window.
    MaxPool2d {
        /// Window side.
        size: usize,
    },
    /// Standalone ReLU.
    Relu,
    /// Batch normalisation per channel (2-D after convolutions, 1-D after dense layers).
    BatchNorm {
        /// Decay of the moving averages (Keras: 0.99).
        #[serde(default = "bn_momentum")]
        momentum: f32,
        /// Fused activation after the normalisation.
        #[serde(default)]
        activation: Activation,
    },
    /// Mean of each channel over the image.
    GlobalAvgPool,
    /// Reshape to a vector.
    Flatten,
    /// Inverted dropout.
    Dropout {
        /// Probability of dropping a value.
        rate: f32,
    },
    /// Fully connected layer.
    Dense {
        /// Outputs.
        units: usize,
        /// Fused activation.
        #[serde(default)]
        activation: Activation,
        /// Kernel initialiser.
        #[serde(default = "glorot_uniform")]
        init: Init,
    },
}

/// A whole architecture: input shape and layers; the last layer's outputs are the class logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Shape of one input sample (28×28×1).
    pub input: Shape,
    /// The layers in order.
    pub layers: Vec<LayerSpec>,
}

/// Checks a condition of layer `index`, or explains which layer is wrong.
fn require(ok: bool, index: usize, what: &str) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::Layer { index, message: what.to_string() }) }
}

impl LayerSpec {
    /// Builds this layer for samples of `input`, checking its settings.
    pub fn build(&self, input: Shape, index: usize) -> Result<Box<dyn Layer>> {
        Ok(match *self {
            LayerSpec::Conv2d { filters, kernel, padding, activation, init } => {
                require(filters > 0 && kernel > 0, index, "conv2d needs filters > 0 and kernel > 0")?;
                let patch = kernel.checked_mul(kernel).and_then(|k| k.checked_mul(input.c));
                require(patch.is_some_and(|p| p <= MAX_VALUES_PER_SAMPLE), index, "conv2d patch is too large")?;
                let fits = kernel <= input.h && kernel <= input.w;
                require(
                    fits && (padding == Padding::Valid || kernel % 2 == 1),
                    index,
                    "conv2d kernel must fit the input (and be odd for same padding)",
                )?;
                let conv = Conv2d::new(input, filters, kernel, padding, activation, init);
                // A model's first layer needs no input gradient.
                Box::new(if index == 0 { conv.without_input_gradient() } else { conv })
            }
            LayerSpec::MaxPool2d { size } => {
                require(size > 0 && size <= input.h && size <= input.w, index, "max_pool2d size must fit the input")?;
                Box::new(MaxPool2d::new(input, size))
            }
            LayerSpec::Relu => Box::new(Relu::new(input)),
            LayerSpec::BatchNorm { momentum, activation } => {
                require((0.0..1.0).contains(&momentum), index, "batch_norm momentum must be in [0, 1)")?;
                Box::new(BatchNorm::new(input, momentum, activation))
            }
            LayerSpec::GlobalAvgPool => Box::new(GlobalAvgPool::new(input)),
            LayerSpec::Flatten => Box::new(Flatten::new(input)),
            LayerSpec::Dropout { rate } => {
                require((0.0..1.0).contains(&rate), index, "dropout rate must be in [0, 1)")?;
                Box::new(Dropout::new(input, rate))
            }
            LayerSpec::Dense { units, activation, init } => {
                require(units > 0, index, "dense needs units > 0")?;
                require(input.h == 1 && input.w == 1, index, "dense needs a vector input (add a flatten layer)")?;
                Box::new(Dense::new(input.c, units, activation, init))
            }
        })
    }
}

/// Most values one sample's activation may hold in any layer (guards against absurd specs).
pub const MAX_VALUES_PER_SAMPLE: usize = 1 << 22;
/// Most values all layers' activations and scratch may hold for one sample.
pub const MAX_WORKSPACE_PER_SAMPLE: usize = 1 << 24;
/// Most parameters an architecture may have.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// Values in a shape, if within [`MAX_VALUES_PER_SAMPLE`].
fn bounded_size(shape: Shape) -> Option<usize> {
    shape.h.checked_mul(shape.w)?.checked_mul(shape.c).filter(|&n| n <= MAX_VALUES_PER_SAMPLE)
}

/// Parameters of a layer, if countable without overflow.
fn checked_params(layer: &dyn Layer) -> Option<usize> {
    layer
        .param_specs()
        .iter()
        .try_fold(0usize, |sum, p| sum.checked_add(p.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?))
}

impl ModelSpec {
    /// Builds every layer, checking sizes stay within [`MAX_VALUES_PER_SAMPLE`] and
    /// [`MAX_PARAMETERS`] and that the output is a vector of `classes` logits.
    pub fn build(&self, classes: usize) -> Result<Vec<Box<dyn Layer>>> {
        let mut shape = self.input;
        let too_big = |what: &str| {
            Error::Shape(format!(
                "{what} is too large (limits per sample: {MAX_VALUES_PER_SAMPLE} values per layer, \
                 {MAX_WORKSPACE_PER_SAMPLE} in all; {MAX_PARAMETERS} parameters)"
            ))
        };
        if shape.h == 0 || shape.w == 0 || shape.c == 0 || bounded_size(shape).is_none() {
            return Err(Error::Shape(format!("input shape {} must be non-empty and bounded", shape.describe())));
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        let (mut parameters, mut workspace) = (0usize, 0usize);
        for (i, spec) in self.layers.iter().enumerate() {
            let layer = spec.build(shape, i)?;
            shape = layer.output_shape();
            let values = bounded_size(shape).ok_or_else(|| too_big(&format!("layer {i}'s output")))?;
            workspace += values + layer.scratch_len(1);
            if workspace > MAX_WORKSPACE_PER_SAMPLE {
                return Err(too_big(&format!("the workspace at layer {i}")));
            }
            parameters = checked_params(layer.as_ref())
                .and_then(|n| parameters.checked_add(n))
                .filter(|&n| n <= MAX_PARAMETERS)
                .ok_or_else(|| too_big(&format!("the parameter count at layer {i}")))?;
            layers.push(layer);
        }
        if shape != Shape::vector(classes) {
            return Err(Error::Shape(format!(
                "the last layer must output {classes} class logits, not {}",
                shape.describe()
            )));
        }
        Ok(layers)
    }

    /// The notebook's CNN: Conv 32 5×5 → pool → Conv 64 3×3 → pool → flatten → dropout .25 →
    /// dense 128 → dropout .5 → dense 10.
    pub fn seed() -> ModelSpec {
        let conv = |filters, kernel| LayerSpec::Conv2d {
            filters,
            kernel,
            padding: Padding::Valid,
            activation: Activation::Relu,
            init: Init::HeNormal,
        };
        ModelSpec {
            input: Shape::new(28, 28, 1),
            layers: vec![
                conv(32, 5),
                LayerSpec::MaxPool2d { size: 2 },
                conv(64, 3),
                LayerSpec::MaxPool2d { size: 2 },
                LayerSpec::Flatten,
                LayerSpec::Dropout { rate: 0.25 },
                LayerSpec::Dense { units: 128, activation: Activation::Relu, init: Init::GlorotUniform },
                LayerSpec::Dropout { rate: 0.5 },
                LayerSpec::Dense { units: 10, activation: Activation::Linear, init: Init::GlorotUniform },
            ],
        }
    }

    /// A stronger network: two blocks of two 3×3 "same" convolutions (32 then 64 filters), each
    /// convolution followed by batch norm and ReLU, each block by max pooling and dropout .1;
    /// then dense 256 with batch norm, ReLU and dropout .3 (light dropout: its recipe is short).
    pub fn default_preset() -> ModelSpec {
        ModelSpec::conv_bn_net(256, 0.1, 0.3)
    }

    /// The strongest preset within reason on two cores: the default network with a dense layer
    /// of 1,024 (its recipe adds random erasing to a longer run).
    pub fn best_preset() -> ModelSpec {
        ModelSpec::conv_bn_net(1024, 0.1, 0.3)
    }

    /// Two blocks of conv → batch norm with fused ReLU (32 then 64 filters), each followed by
    /// pooling and dropout `block_dropout`, and a dense layer of `dense` units with dropout
    /// `dense_dropout`.
    pub(crate) fn conv_bn_net(dense: usize, block_dropout: f32, dense_dropout: f32) -> ModelSpec {
        let conv_bn_relu = |filters| {
            [
                LayerSpec::Conv2d {
                    filters,
                    kernel: 3,
                    padding: Padding::Same,
                    activation: Activation::Linear,
                    init: Init::HeNormal,
                },
                LayerSpec::BatchNorm { momentum: 0.99, activation: Activation::Relu },
            ]
        };
        let pool_and_drop = [LayerSpec::MaxPool2d { size: 2 }, LayerSpec::Dropout { rate: block_dropout }];
        let mut layers = Vec::new();
        for filters in [32, 64] {
            layers.extend(conv_bn_relu(filters));
            layers.extend(conv_bn_relu(filters));
            layers.extend(pool_and_drop.clone());
        }
        layers.extend([
            LayerSpec::Flatten,
            LayerSpec::Dense { units: dense, activation: Activation::Linear, init: Init::HeNormal },
            LayerSpec::BatchNorm { momentum: 0.99, activation: Activation::Relu },
            LayerSpec::Dropout { rate: dense_dropout },
            LayerSpec::Dense { units: 10, activation: Activation::Linear, init: Init::GlorotUniform },
        ]);
        ModelSpec { input: Shape::new(28, 28, 1), layers }
    }

    /// This architecture for images of `input` and `classes` classes: the input shape is
    /// replaced, and so is the unit count of the last layer when it is dense.
    pub fn fitted_to(mut self, input: Shape, classes: usize) -> ModelSpec {
        self.input = input;
        if let Some(LayerSpec::Dense { units, .. }) = self.layers.last_mut() {
            *units = classes;
        }
        self
    }

    /// A named preset.
    pub fn preset(name: &str) -> Result<ModelSpec> {
        match name {
            "seed" => Ok(ModelSpec::seed()),
            "default" => Ok(ModelSpec::default_preset()),
            "best" => Ok(ModelSpec::best_preset()),
            other => Err(Error::value("preset", other, "no such preset (available: seed, default, best)")),
        }
    }

    /// Reads an architecture from a JSON file.
    pub fn from_file(path: &std::path::Path) -> Result<ModelSpec> {
        let text = crate::fsutil::read_at_most(path, crate::fsutil::MAX_JSON_BYTES)?;
        serde_json::from_slice(&text).map_err(|e| Error::format(path, format!("invalid model spec: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layer::param_count;

    #[test]
    fn absurd_sizes_are_refused_not_allocated() {
        let huge_conv =
            r#"{"input":{"h":28,"w":28,"c":1},"layers":[{"type":"conv2d","filters":4000000000,"kernel":3}]}"#;
        let spec: ModelSpec = serde_json::from_str(huge_conv).unwrap();
        assert!(spec.build(10).err().unwrap().to_string().contains("too large"));
        let huge_input = r#"{"input":{"h":4294967296,"w":4294967296,"c":4294967296},"layers":[]}"#;
        let spec: ModelSpec = serde_json::from_str(huge_input).unwrap();
        assert!(spec.build(10).err().unwrap().to_string().contains("must be non-empty and bounded"));
        let empty = r#"{"input":{"h":0,"w":28,"c":1},"layers":[]}"#;
        assert!(serde_json::from_str::<ModelSpec>(empty).unwrap().build(10).is_err());
        let big_same =
            r#"{"input":{"h":3,"w":3,"c":1},"layers":[{"type":"conv2d","filters":2,"kernel":9,"padding":"same"}]}"#;
        let e = serde_json::from_str::<ModelSpec>(big_same).unwrap().build(10).err().unwrap().to_string();
        assert!(e.contains("kernel must fit"), "{e}");
        let wide_dense = r#"{"input":{"h":1,"w":1,"c":4096},"layers":[{"type":"dense","units":100000000}]}"#;
        let e = serde_json::from_str::<ModelSpec>(wide_dense).unwrap().build(10).err().unwrap().to_string();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn seed_preset_has_the_notebooks_shapes_and_parameter_count() {
        let layers = ModelSpec::seed().build(10).unwrap();
        let shapes: Vec<Shape> = layers.iter().map(|l| l.output_shape()).collect();
        assert_eq!(shapes[0], Shape::new(24, 24, 32));
        assert_eq!(shapes[3], Shape::new(5, 5, 64));
        assert_eq!(shapes[4], Shape::vector(1600));
        let params: usize = layers.iter().map(|l| param_count(l.as_ref())).sum();
        assert_eq!(params, 832 + 18_496 + 204_928 + 1_290);
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let spec = ModelSpec::seed();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
        let short = r#"{"input":{"h":28,"w":28,"c":1},"layers":[{"type":"flatten"},{"type":"dense","units":10}]}"#;
        let spec: ModelSpec = serde_json::from_str(short).unwrap();
        assert!(spec.build(10).is_ok());
    }

    #[test]
    fn invalid_architectures_name_the_layer() {
        let mut spec = ModelSpec::seed();
        spec.layers.remove(4);
        assert!(spec.build(10).err().unwrap().to_string().contains("layer 5: dense needs a vector input"));
        let mut spec = ModelSpec::seed();
        spec.layers.pop();
        assert!(spec.build(10).err().unwrap().to_string().contains("10 class logits"));
        spec.layers[0] = LayerSpec::Conv2d {
            filters: 1,
            kernel: 40,
            padding: Padding::Valid,
            activation: Activation::Relu,
            init: Init::HeNormal,
        };
        assert!(spec.build(10).err().unwrap().to_string().starts_with("layer 0:"));
        assert!(ModelSpec::preset("huge").is_err());
        assert!(ModelSpec::preset("default").unwrap().build(10).is_ok());
    }
}
