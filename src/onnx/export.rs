//! A wardrobe model as a standard ONNX model (opset 13), for ONNX Runtime, Triton, KServe,
//! OpenVINO, browsers and phones.
//!
//! Input `images`: UINT8 `[N,H,W]` (grey) or `[N,H,W,C]` (colour), 0 = black, as the OIP server
//! takes it. The graph scales it to [0, 1] exactly as wardrobe does (`× (1/255)` in f32), moves to
//! NCHW for the convolutions, and back to NHWC before the first flatten so that the dense kernels
//! keep Keras' order. Output `probabilities`: FP32 `[N,K]`, the softmax of the logits divided by
//! the model's calibration temperature. `metadata_props` carries the class names (a JSON array),
//! the temperature, the input layout and wardrobe's version.

use super::proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto, attribute_type,
    data_type,
};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::nn::activation::Activation;
use crate::nn::conv2d::Padding;
use crate::nn::model::Model;
use crate::nn::spec::LayerSpec;
use prost::Message;
use std::path::Path;

/// The opset the exported graphs use.
pub const OPSET: i64 = 13;
/// The ONNX IR version written (ONNX 1.10+).
const IR_VERSION: i64 = 8;

/// Builds the graph node by node, naming each value.
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    last: String,
}

/// An integer-list attribute.
pub(crate) fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: values.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: value, r#type: attribute_type::INT, ..Default::default() }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: value, r#type: attribute_type::FLOAT, ..Default::default() }
}

/// A float tensor with `values` (little-endian raw data).
fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

impl Builder {
    /// Adds `op` on the last value and `extra` inputs; its output becomes the last value.
    fn node(&mut self, op: &str, extra: &[String], attributes: Vec<AttributeProto>) {
        let output = format!("{}_{}", op.to_lowercase(), self.nodes.len());
        let mut input = vec![self.last.clone()];
        input.extend_from_slice(extra);
        self.nodes.push(NodeProto {
            input,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute: attributes,
            ..Default::default()
        });
        self.last = output;
    }

    /// Adds a constant and returns its name.
    fn constant(&mut self, name: String, dims: &[i64], values: &[f32]) -> String {
        self.initializers.push(float_tensor(&name, dims, values));
        name
    }

    /// An int64 constant (shapes).
    fn shape_constant(&mut self, name: &str, values: &[i64]) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            dims: vec![values.len() as i64],
            data_type: data_type::INT64,
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name.into()
    }

    fn activation(&mut self, activation: Activation) {
        if activation == Activation::Relu {
            self.node("Relu", &[], vec![]);
        }
    }
}

/// A tensor type of `elem` with these dimensions (`None` = the batch, named `N`).
fn value_info(name: &str, elem: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(d.map_or_else(|| DimensionValue::DimParam("N".into()), DimensionValue::DimValue)),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto { elem_type: elem, shape: Some(TensorShapeProto { dim }) }),
        }),
    }
}

/// The ONNX model of `model` with its `class_names`.
pub fn to_onnx(model: &Model, class_names: &[String]) -> Result<ModelProto> {
    let input = model.spec.input;
    let (h, w, c) = (input.h as i64, input.w as i64, input.c as i64);
    let mut b = Builder { nodes: Vec::new(), initializers: Vec::new(), last: "images".into() };
    b.node("Cast", &[], vec![int("to", i64::from(data_type::FLOAT))]);
    let scale = b.constant("inv_255".into(), &[], &[1.0 / 255.0]);
    b.node("Mul", &[scale], vec![]);
    let nhwc = b.shape_constant("nhwc_shape", &[-1, h, w, c]);
    b.node("Reshape", &[nhwc], vec![]);
    b.node("Transpose", &[], vec![ints("perm", &[0, 3, 1, 2])]);
    let mut image = true; // NCHW image (else a [N, features] vector)
    let tensors = model.tensors();
    let param = |layer: usize, name: &str| {
        let (_, spec, range) =
            tensors.iter().find(|(n, _, _)| *n == format!("{layer}.{name}")).expect("the layer has it");
        (spec.dims.iter().map(|&d| d as i64).collect::<Vec<i64>>(), &model.params[range.clone()])
    };
    for (i, layer) in model.spec.layers.iter().enumerate() {
        match *layer {
            LayerSpec::Conv2d { filters, kernel, padding, activation, .. } => {
                let (dims, values) = param(i, "kernel");
                let (k, cin, cout) = (kernel, dims[2] as usize, filters);
                // [kh, kw, in, out] → [out, in, kh, kw]
                let mut oihw = vec![0.0; values.len()];
                for (idx, &v) in values.iter().enumerate() {
                    let (o, rest) = (idx % cout, idx / cout);
                    let (ci, rest) = (rest % cin, rest / cin);
                    let (kx, ky) = (rest % k, rest / k);
                    oihw[((o * cin + ci) * k + ky) * k + kx] = v;
                }
                let kernel_name =
                    b.constant(format!("{i}.kernel"), &[cout as i64, cin as i64, k as i64, k as i64], &oihw);
                let bias = b.constant(format!("{i}.bias"), &[cout as i64], param(i, "bias").1);
                let pad = if padding == Padding::Same { (k as i64 - 1) / 2 } else { 0 };
                let attributes = vec![ints("kernel_shape", &[k as i64, k as i64]), ints("pads", &[pad, pad, pad, pad])];
                b.node("Conv", &[kernel_name, bias], attributes);
                b.activation(activation);
            }
            LayerSpec::MaxPool2d { size } => {
                let s = size as i64;
                b.node("MaxPool", &[], vec![ints("kernel_shape", &[s, s]), ints("strides", &[s, s])]);
            }
            LayerSpec::Relu => b.node("Relu", &[], vec![]),
            LayerSpec::BatchNorm { activation, .. } => {
                let names = ["gamma", "beta", "moving_mean", "moving_variance"];
                let inputs: Vec<String> = names
                    .iter()
                    .map(|n| {
                        let (dims, values) = param(i, n);
                        b.constant(format!("{i}.{n}"), &dims, values)
                    })
                    .collect();
                b.node("BatchNormalization", &inputs, vec![float("epsilon", crate::nn::batchnorm::EPSILON)]);
                b.activation(activation);
            }
            LayerSpec::GlobalAvgPool => {
                b.node("GlobalAveragePool", &[], vec![]);
                b.node("Flatten", &[], vec![int("axis", 1)]);
                image = false;
            }
            LayerSpec::Flatten => {
                if image {
                    b.node("Transpose", &[], vec![ints("perm", &[0, 2, 3, 1])]);
                }
                b.node("Flatten", &[], vec![int("axis", 1)]);
                image = false;
            }
            LayerSpec::Dropout { .. } => {}
            LayerSpec::Dense { activation, .. } => {
                if image {
                    return Err(Error::Invalid(format!("layer {i}: a dense layer on an image needs a flatten first")));
                }
                let (dims, values) = param(i, "kernel");
                let kernel_name = b.constant(format!("{i}.kernel"), &dims, values);
                let bias = b.constant(format!("{i}.bias"), &[dims[1]], param(i, "bias").1);
                b.node("Gemm", &[kernel_name, bias], vec![]);
                b.activation(activation);
            }
        }
    }
    if model.temperature != 1.0 {
        let inv = b.constant("inv_temperature".into(), &[], &[1.0 / model.temperature]);
        b.node("Mul", &[inv], vec![]);
    }
    b.node("Softmax", &[], vec![int("axis", -1)]);
    b.nodes.last_mut().expect("a softmax").output = vec!["probabilities".into()];
    let input_dims: Vec<Option<i64>> =
        if c == 1 { vec![None, Some(h), Some(w)] } else { vec![None, Some(h), Some(w), Some(c)] };
    let layout = if c == 1 { "NHW" } else { "NHWC" };
    let metadata = [
        ("class_names", serde_json::to_string(class_names).expect("names serialise")),
        ("temperature", model.temperature.to_string()),
        ("input", format!("images: UINT8 {layout}, 0-255, 0 = black; the graph divides by 255")),
        ("output", "probabilities: FP32 [N,K], calibrated softmax".into()),
        ("wardrobe_version", env!("CARGO_PKG_VERSION").into()),
    ];
    Ok(ModelProto {
        ir_version: IR_VERSION,
        producer_name: "wardrobe".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        doc_string: format!("wardrobe clothing classifier: {} classes", class_names.len()),
        graph: Some(GraphProto {
            node: b.nodes,
            name: "wardrobe".into(),
            initializer: b.initializers,
            input: vec![value_info("images", data_type::UINT8, &input_dims)],
            output: vec![value_info("probabilities", data_type::FLOAT, &[None, Some(class_names.len() as i64)])],
        }),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key: key.into(), value })
            .collect(),
    })
}

/// Writes `model` as an ONNX file at `path`, atomically.
pub fn write(model: &Model, class_names: &[String], path: &Path) -> Result<()> {
    let bytes = to_onnx(model, class_names)?.encode_to_vec();
    Ok(fsutil::write_atomic(path, |out| out.write_all(&bytes))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::fashion_classes;
    use crate::nn::spec::ModelSpec;

    #[test]
    fn the_seed_and_default_graphs_have_the_expected_operators() {
        for (spec, first_ops) in [
            (ModelSpec::seed(), vec!["Cast", "Mul", "Reshape", "Transpose", "Conv", "Relu", "MaxPool"]),
            (ModelSpec::default_preset(), vec!["Cast", "Mul", "Reshape", "Transpose", "Conv", "BatchNormalization"]),
        ] {
            let mut model = Model::initialised(spec, 10, 1).unwrap();
            model.temperature = 2.0;
            let onnx = to_onnx(&model, &fashion_classes()).unwrap();
            let round_trip = ModelProto::decode(&onnx.encode_to_vec()[..]).unwrap();
            assert_eq!(round_trip, onnx);
            let graph = onnx.graph.unwrap();
            let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
            assert_eq!(ops[..first_ops.len()], first_ops[..]);
            assert_eq!(ops[ops.len() - 2..], ["Mul", "Softmax"], "temperature, then softmax");
            assert_eq!(graph.node.last().unwrap().output, ["probabilities"]);
            let names = &onnx.metadata_props.iter().find(|p| p.key == "class_names").unwrap().value;
            assert!(names.contains("\"Ankle boot\""), "{names}");
        }
    }

    #[test]
    fn conv_kernels_are_reordered_to_out_in_height_width() {
        let model = Model::initialised(ModelSpec::seed(), 10, 1).unwrap();
        let onnx = to_onnx(&model, &fashion_classes()).unwrap();
        let kernel = onnx.graph.unwrap().initializer.into_iter().find(|t| t.name == "2.kernel").unwrap();
        assert_eq!(kernel.dims, [64, 32, 3, 3]);
        let at = |o: usize, i: usize, y: usize, x: usize| {
            let k = (((o * 32 + i) * 3 + y) * 3 + x) * 4;
            f32::from_le_bytes(kernel.raw_data[k..k + 4].try_into().unwrap())
        };
        let ours = |o: usize, i: usize, y: usize, x: usize| {
            let range = model.tensors().into_iter().find(|(n, _, _)| n == "2.kernel").unwrap().2;
            model.params[range][((y * 3 + x) * 32 + i) * 64 + o]
        };
        for (o, i, y, x) in [(0, 0, 0, 0), (5, 7, 1, 2), (63, 31, 2, 1)] {
            assert_eq!(at(o, i, y, x), ours(o, i, y, x));
        }
    }
}
