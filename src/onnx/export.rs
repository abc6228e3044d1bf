//! A wardrobe model as a standard ONNX model (opset 13), for ONNX Runtime, Triton, KServe,
//! OpenVINO, browsers and phones.
//!
//! Input `images`: UINT8 `[N,H,W]` (grey) or `[N,H,W,C]` (colour), 0 = black, as the OIP server
//! takes it. The graph scales it to [0, 1] exactly as wardrobe does (`× (1/255)` in f32), moves to
//! NCHW for the convolutions, and back to NHWC before the first flatten so that the dense kernels
//! keep Keras' order. Output `probabilities`: FP32 `[N,K]`, the softmax of the logits divided by
//! the model's calibration temperature. A model with an out-of-distribution score has a second
//! output `ood_score`: FP32 `[N]`, the score as wardrobe computes it (see [`crate::ood`]): the
//! pooling outputs' channel means and deviations (`ReduceMean`), each part whitened (`MatMul`)
//! and its squared distance to the nearest whitened class mean taken as `‖z‖² − 2·z·c + ‖c‖²`
//! (`ReduceMin`), plus `−ln` of the top probability, each weighted, then summed. `metadata_props`
//! carries the class names (a JSON array), the temperature, the unknown threshold, the input
//! layout and wardrobe's version.
//!
//! A model with an int8 form is written in the QDQ form ONNX Runtime fuses into integer
//! operators: each layer's weights as INT8 per-output-channel `DequantizeLinear` (batch norm
//! folded in, as wardrobe runs it), the input and every hidden layer's output through a
//! `QuantizeLinear` / `DequantizeLinear` pair with its UINT8 activation scale.

use super::proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto, attribute_type,
    data_type,
};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::nn::activation::Activation;
use crate::nn::conv2d::Padding;
use crate::nn::int8::Int8Model;
use crate::nn::model::Model;
use crate::nn::spec::LayerSpec;
use crate::ood::Ood;
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
        let last = self.last.clone();
        let inputs: Vec<&str> = std::iter::once(last.as_str()).chain(extra.iter().map(String::as_str)).collect();
        self.last = self.side(op, &inputs, attributes);
    }

    /// Adds `op` on explicit `inputs`, leaving the last value as it was; returns its output.
    fn side(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        let output = format!("{}_{}", op.to_lowercase(), self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute: attributes,
            ..Default::default()
        });
        output
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

    /// A square convolution of `side` with `pad` zeros on every border, stride 1.
    fn conv(&mut self, kernel: String, bias: String, side: usize, pad: usize) {
        let (side, pad) = (side as i64, pad as i64);
        let attributes = vec![ints("kernel_shape", &[side, side]), ints("pads", &[pad, pad, pad, pad])];
        self.node("Conv", &[kernel, bias], attributes);
    }

    /// Max pooling with a `size × size` window, stride `size`.
    fn max_pool(&mut self, size: usize) {
        let s = size as i64;
        self.node("MaxPool", &[], vec![ints("kernel_shape", &[s, s]), ints("strides", &[s, s])]);
    }

    /// Flattens to `[N, features]` in Keras' (NHWC) order: an NCHW `image` is moved back first.
    fn flatten(&mut self, image: bool) {
        if image {
            self.node("Transpose", &[], vec![ints("perm", &[0, 2, 3, 1])]);
        }
        self.node("Flatten", &[], vec![int("axis", 1)]);
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

/// A tensor of bytes (`UINT8` or `INT8`) with `values`.
fn byte_tensor(name: &str, data_type: i32, dims: &[i64], values: Vec<u8>) -> TensorProto {
    TensorProto { name: name.into(), dims: dims.to_vec(), data_type, raw_data: values, ..Default::default() }
}

impl Builder {
    /// `QuantizeLinear` then `DequantizeLinear` of the last value with `scale` and zero point 0,
    /// as UINT8.
    fn quantise(&mut self, name: &str, scale: f32) {
        let scale = self.constant(format!("{name}.scale"), &[], &[scale]);
        self.initializers.push(byte_tensor(&format!("{name}.zero"), data_type::UINT8, &[], vec![0]));
        let zero = format!("{name}.zero");
        self.node("QuantizeLinear", &[scale.clone(), zero.clone()], vec![]);
        self.node("DequantizeLinear", &[scale, zero], vec![]);
    }
}

/// The layers of a model's int8 form in QDQ nodes, from the NCHW input on; records each
/// pooling's output in `pooled` and the last layer's input in `last_input`.
fn int8_layers(b: &mut Builder, q: &Int8Model, pooled: &mut Vec<String>, last_input: &mut String) {
    b.quantise("input", 1.0 / 255.0);
    let mut image = true;
    let layers = q.layers();
    for (j, l) in layers.iter().enumerate() {
        if j + 1 == layers.len() {
            *last_input = b.last.clone();
        }
        let (n, k) = (l.outputs as i64, l.inputs);
        let (weights, dims, axis) = match l.convolution {
            Some((side, _)) => {
                let cin = k / (side * side);
                (oihw(l.weights, side, cin, l.outputs), vec![n, cin as i64, side as i64, side as i64], 0)
            }
            None => (l.weights.to_vec(), vec![k as i64, n], 1),
        };
        let weights = weights.into_iter().map(|v| v as u8).collect();
        let name = format!("q{j}");
        b.initializers.push(byte_tensor(&format!("{name}.weights"), data_type::INT8, &dims, weights));
        b.initializers.push(byte_tensor(&format!("{name}.weights_zero"), data_type::INT8, &[n], vec![0; l.outputs]));
        let scales = b.constant(format!("{name}.weight_scales"), &[n], l.weight_scales);
        let inputs = [format!("{name}.weights"), scales, format!("{name}.weights_zero")];
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let kernel = b.side("DequantizeLinear", &inputs, vec![int("axis", axis)]);
        let bias = b.constant(format!("{name}.bias"), &[n], l.bias);
        match l.convolution {
            Some((side, pad)) => b.conv(kernel, bias, side, pad),
            None => {
                if image {
                    b.flatten(true);
                    image = false;
                }
                b.node("Gemm", &[kernel, bias], vec![]);
            }
        }
        if l.relu {
            b.node("Relu", &[], vec![]);
        }
        if let Some(scale) = l.output_scale {
            b.quantise(&name, scale);
        }
        if l.pool > 1 {
            b.max_pool(l.pool);
            pooled.push(b.last.clone());
        }
    }
}

/// The float layers of `model` as ONNX nodes, from the NCHW input on; records each pooling's
/// output in `pooled` and the last layer's input in `last_input`.
fn float_layers(b: &mut Builder, model: &Model, pooled: &mut Vec<String>, last_input: &mut String) -> Result<()> {
    let mut image = true; // NCHW image (else a [N, features] vector)
    let tensors = model.tensors();
    let param = |layer: usize, name: &str| {
        let (_, spec, range) =
            tensors.iter().find(|(n, _, _)| *n == format!("{layer}.{name}")).expect("the layer has it");
        (spec.dims.iter().map(|&d| d as i64).collect::<Vec<i64>>(), &model.params[range.clone()])
    };
    let last_layer = model.spec.layers.len().saturating_sub(1);
    for (i, layer) in model.spec.layers.iter().enumerate() {
        if i == last_layer {
            *last_input = b.last.clone();
        }
        match *layer {
            LayerSpec::Conv2d { filters, kernel, padding, activation, .. } => {
                let (dims, values) = param(i, "kernel");
                let (k, cin, cout) = (kernel, dims[2] as usize, filters);
                let kernel_name = b.constant(
                    format!("{i}.kernel"),
                    &[cout as i64, cin as i64, k as i64, k as i64],
                    &oihw(values, k, cin, cout),
                );
                let bias = b.constant(format!("{i}.bias"), &[cout as i64], param(i, "bias").1);
                b.conv(kernel_name, bias, k, if padding == Padding::Same { (k - 1) / 2 } else { 0 });
                b.activation(activation);
            }
            LayerSpec::MaxPool2d { size } => {
                b.max_pool(size);
                if i < last_layer {
                    pooled.push(b.last.clone());
                }
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
                if i < last_layer {
                    pooled.push(b.last.clone());
                }
                b.node("Flatten", &[], vec![int("axis", 1)]);
                image = false;
            }
            LayerSpec::Flatten => {
                b.flatten(image);
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
    Ok(())
}

/// A convolution kernel `[kh, kw, in, out]` (wardrobe's and Keras' order) as ONNX's
/// `[out, in, kh, kw]`.
fn oihw<T: Copy + Default>(values: &[T], side: usize, cin: usize, cout: usize) -> Vec<T> {
    let mut out = vec![T::default(); values.len()];
    for (idx, &v) in values.iter().enumerate() {
        let (o, rest) = (idx % cout, idx / cout);
        let (ci, rest) = (rest % cin, rest / cin);
        let (kx, ky) = (rest % side, rest / side);
        out[((o * cin + ci) * side + ky) * side + kx] = v;
    }
    out
}

/// Appends the nodes computing `ood`'s score, output `ood_score`, from the pooling outputs
/// `pooled` (NCHW), the last layer's input `last_input` (`[N, F]`) and the probabilities.
fn ood_nodes(b: &mut Builder, ood: &Ood, pooled: &[String], last_input: &str, classes: usize) {
    let mut parts = vec![last_input.to_string()];
    for x in pooled {
        let mean = b.side("ReduceMean", &[x], vec![ints("axes", &[2, 3]), int("keepdims", 1)]);
        let centred = b.side("Sub", &[x, &mean], vec![]);
        let square = b.side("Mul", &[&centred, &centred], vec![]);
        let variance = b.side("ReduceMean", &[&square], vec![ints("axes", &[2, 3]), int("keepdims", 0)]);
        let deviation = b.side("Sqrt", &[&variance], vec![]);
        let means = b.side("Flatten", &[&mean], vec![int("axis", 1)]);
        parts.push(b.side("Concat", &[&means, &deviation], vec![int("axis", 1)]));
    }
    let terms = (ood.score.distances().len() + 1) as f32;
    let mut summed = Vec::new();
    for (i, ((part, distance), &scale)) in parts.iter().zip(ood.score.distances()).zip(ood.score.scales()).enumerate() {
        let ((whitening, centres), d) = (distance.parts(), distance.dim());
        let transposed: Vec<f32> = (0..d * d).map(|k| whitening[(k % d) * d + k / d]).collect();
        let w = b.constant(format!("ood.part{i}.whitening_t"), &[d as i64, d as i64], &transposed);
        let z = b.side("MatMul", &[part, &w], vec![]);
        let c_t: Vec<f32> = (0..d * classes).map(|k| centres[(k % classes) * d + k / classes]).collect();
        let c = b.constant(format!("ood.part{i}.centres_t"), &[d as i64, classes as i64], &c_t);
        let norms: Vec<f32> = centres.chunks_exact(d).map(|c| c.iter().map(|v| v * v).sum()).collect();
        let cc = b.constant(format!("ood.part{i}.centre_norms"), &[1, classes as i64], &norms);
        let zz = b.side("ReduceSumSquare", &[&z], vec![ints("axes", &[1]), int("keepdims", 1)]);
        let zc = b.side("MatMul", &[&z, &c], vec![]);
        let minus_two = b.constant(format!("ood.part{i}.minus_two"), &[], &[-2.0]);
        let cross = b.side("Mul", &[&zc, &minus_two], vec![]);
        let partial = b.side("Add", &[&zz, &cross], vec![]);
        let squared = b.side("Add", &[&partial, &cc], vec![]);
        let nearest = b.side("ReduceMin", &[&squared], vec![ints("axes", &[1]), int("keepdims", 0)]);
        let weight = b.constant(format!("ood.part{i}.weight"), &[], &[1.0 / (d as f32 * scale * terms)]);
        summed.push(b.side("Mul", &[&nearest, &weight], vec![]));
    }
    let top = b.side("ReduceMax", &["probabilities"], vec![ints("axes", &[1]), int("keepdims", 0)]);
    let floor = b.constant("ood.floor".into(), &[], &[1e-30]);
    let floored = b.side("Max", &[&top, &floor], vec![]);
    let log = b.side("Log", &[&floored], vec![]);
    let doubt_scale = ood.score.scales().last().copied().unwrap_or(1.0);
    let weight = b.constant("ood.doubt.weight".into(), &[], &[-1.0 / (doubt_scale * terms)]);
    summed.push(b.side("Mul", &[&log, &weight], vec![]));
    let inputs: Vec<&str> = summed.iter().map(String::as_str).collect();
    b.side("Sum", &inputs, vec![]);
    b.nodes.last_mut().expect("the sum").output = vec![OOD_OUTPUT.into()];
}

/// The name of the out-of-distribution score output.
const OOD_OUTPUT: &str = "ood_score";

/// The ONNX model of `model` with its `class_names` (and `ood_score` output with `ood`).
pub fn to_onnx(model: &Model, class_names: &[String], ood: Option<&Ood>) -> Result<ModelProto> {
    let input = model.spec.input;
    let (h, w, c) = (input.h as i64, input.w as i64, input.c as i64);
    let mut b = Builder { nodes: Vec::new(), initializers: Vec::new(), last: "images".into() };
    b.node("Cast", &[], vec![int("to", i64::from(data_type::FLOAT))]);
    let scale = b.constant("inv_255".into(), &[], &[1.0 / 255.0]);
    b.node("Mul", &[scale], vec![]);
    let nhwc = b.shape_constant("nhwc_shape", &[-1, h, w, c]);
    b.node("Reshape", &[nhwc], vec![]);
    b.node("Transpose", &[], vec![ints("perm", &[0, 3, 1, 2])]);
    let (mut pooled, mut last_input) = (Vec::new(), String::new());
    match model.int8() {
        Some(q) => int8_layers(&mut b, q, &mut pooled, &mut last_input),
        None => float_layers(&mut b, model, &mut pooled, &mut last_input)?,
    }
    if model.temperature != 1.0 {
        let inv = b.constant("inv_temperature".into(), &[], &[1.0 / model.temperature]);
        b.node("Mul", &[inv], vec![]);
    }
    b.node("Softmax", &[], vec![int("axis", -1)]);
    b.nodes.last_mut().expect("a softmax").output = vec!["probabilities".into()];
    let classes = class_names.len() as i64;
    let mut outputs = vec![value_info("probabilities", data_type::FLOAT, &[None, Some(classes)])];
    if let Some(ood) = ood {
        ood_nodes(&mut b, ood, &pooled, &last_input, class_names.len());
        outputs.push(value_info(OOD_OUTPUT, data_type::FLOAT, &[None]));
    }
    let input_dims: Vec<Option<i64>> =
        if c == 1 { vec![None, Some(h), Some(w)] } else { vec![None, Some(h), Some(w), Some(c)] };
    let layout = if c == 1 { "NHW" } else { "NHWC" };
    let mut metadata = vec![
        ("class_names", serde_json::to_string(class_names).expect("names serialise")),
        ("temperature", model.temperature.to_string()),
        ("input", format!("images: UINT8 {layout}, 0-255, 0 = black; the graph divides by 255")),
        ("output", "probabilities: FP32 [N,K], calibrated softmax".into()),
        ("wardrobe_version", env!("CARGO_PKG_VERSION").into()),
    ];
    if let Some(ood) = ood {
        metadata.push(("ood_score", "FP32 [N], out-of-distribution score (higher = more unusual)".into()));
        metadata.push(("unknown_above", ood.threshold.to_string()));
    }
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
            output: outputs,
        }),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key: key.into(), value })
            .collect(),
    })
}

/// Writes `model` (with its out-of-distribution score, if any) as an ONNX file at `path`,
/// atomically.
pub fn write(model: &Model, class_names: &[String], ood: Option<&Ood>, path: &Path) -> Result<()> {
    let bytes = to_onnx(model, class_names, ood)?.encode_to_vec();
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
            let onnx = to_onnx(&model, &fashion_classes(), None).unwrap();
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
        let onnx = to_onnx(&model, &fashion_classes(), None).unwrap();
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
