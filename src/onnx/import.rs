//! ONNX models made by real exporters (Keras' `model.export(format="onnx")`, tf2onnx,
//! torch.onnx, wardrobe itself) as wardrobe models, for the layers wardrobe has.
//!
//! The graph is walked in order with one tensor on the main path (the image, then the feature
//! vector) and everything else constant. Shape sub-graphs (Shape, Gather, Slice, Concat, Cast,
//! Unsqueeze, Squeeze, Constant, arithmetic on constants) are folded; Transpose and Reshape only
//! move the main tensor between NHWC, NCHW and flat, which wardrobe tracks instead of running.
//! Conv, Relu, MaxPool, BatchNormalization, GlobalAveragePool, Flatten/Reshape, Gemm and
//! MatMul + Add become layers (a Relu right after a layer becomes its activation); Dropout and
//! Identity vanish; a Softmax at the end is wardrobe's own output. A multiplication by 1/255 (or
//! division by 255) of the input is wardrobe's own input scaling; one of the logits is the
//! calibration temperature. A flatten of an NCHW tensor reorders the next dense kernel's rows to
//! wardrobe's NHWC order. Anything else is an error naming the operator and the node.

use super::proto::{ModelProto, NodeProto, TensorProto, data_type};
use crate::data::dataset::fashion_classes;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::nn::activation::Activation;
use crate::nn::batchnorm::EPSILON;
use crate::nn::conv2d::Padding;
use crate::nn::init::Init;
use crate::nn::layer::Shape;
use crate::nn::model::Model;
use crate::nn::spec::{LayerSpec, ModelSpec};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// Largest ONNX file read.
const MAX_ONNX_BYTES: u64 = 1 << 30;

/// What the pixels the ONNX model takes look like, when its graph does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRange {
    /// 0–1 floats (wardrobe's own scaling), unless the graph divides by 255 itself.
    Unit,
    /// 0–255 floats: the first layer's weights take the factor 255.
    Byte,
}

impl std::str::FromStr for InputRange {
    type Err = Error;
    fn from_str(s: &str) -> Result<InputRange> {
        match s {
            "unit" => Ok(InputRange::Unit),
            "byte" => Ok(InputRange::Byte),
            other => Err(Error::Invalid(format!("input range '{other}': expected unit or byte"))),
        }
    }
}

/// A constant: dimensions and values (integers are exact in f64 up to 2^53).
#[derive(Debug, Clone, PartialEq)]
struct Const {
    dims: Vec<i64>,
    values: Vec<f64>,
}

impl Const {
    fn scalar(&self) -> Option<f64> {
        (self.values.len() == 1).then(|| self.values[0])
    }
}

/// How the main tensor is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Nhwc,
    Nchw,
    /// `[N, features]`.
    Flat,
}

/// The main tensor: its per-sample shape and layout.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Main {
    shape: Shape,
    order: Order,
}

impl Main {
    /// The ONNX dimensions, batch as -1.
    fn dims(&self) -> Vec<i64> {
        let Shape { h, w, c } = self.shape;
        match self.order {
            Order::Nhwc => vec![-1, h as i64, w as i64, c as i64],
            Order::Nchw => vec![-1, c as i64, h as i64, w as i64],
            Order::Flat => vec![-1, self.shape.size() as i64],
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    Const(Const),
    Main(Main),
}

/// A layer and its parameter tensors, in the order the layer lists them.
struct Built {
    spec: LayerSpec,
    params: Vec<Vec<f32>>,
}

/// The graph walk.
struct Importer {
    values: HashMap<String, Value>,
    layers: Vec<Built>,
    /// A Relu here may become the last layer's activation.
    fusable: bool,
    /// The last layer is a MatMul whose bias an Add may still set.
    open_bias: bool,
    /// Rows of the next dense kernel need reordering from this NCHW flatten.
    flattened_nchw: Option<Shape>,
    temperature: f32,
    /// The graph scaled the input by 1/255 itself.
    input_scaled: bool,
    /// The model takes 0–255 pixels without scaling them (`InputRange::Byte`).
    byte_input: bool,
    /// A softmax ended the graph.
    ended: bool,
}

/// The values of a tensor initializer or constant.
fn tensor_values(t: &TensorProto) -> Result<Const> {
    let count = t.dims.iter().try_fold(1i64, |n, &d| if d >= 0 { n.checked_mul(d) } else { None });
    let count = count.ok_or_else(|| Error::Invalid(format!("tensor '{}': dimensions {:?}", t.name, t.dims)))? as usize;
    let raw = &t.raw_data;
    let values: Vec<f64> = match t.data_type {
        data_type::FLOAT if !raw.is_empty() => {
            raw.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
        }
        data_type::FLOAT => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        data_type::DOUBLE if !raw.is_empty() => {
            raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
        }
        data_type::DOUBLE => t.double_data.clone(),
        data_type::INT64 if !raw.is_empty() => {
            raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64).collect()
        }
        data_type::INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
        data_type::INT32 if !raw.is_empty() => {
            raw.chunks_exact(4).map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
        }
        data_type::INT32 => t.int32_data.iter().map(|&v| f64::from(v)).collect(),
        other => return Err(Error::Invalid(format!("tensor '{}': element type {other} is not supported", t.name))),
    };
    if values.len() != count {
        return Err(Error::Invalid(format!(
            "tensor '{}': dimensions {:?} need {count} values, it has {}",
            t.name,
            t.dims,
            values.len()
        )));
    }
    Ok(Const { dims: t.dims.clone(), values })
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i)
}

fn attr_float(node: &NodeProto, name: &str, default: f32) -> f32 {
    node.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f)
}

fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute.iter().find(|a| a.name == name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

impl Importer {
    fn fail(node: &NodeProto, what: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("node '{}' ({}): {what}", node.name, node.op_type))
    }

    fn get(&self, node: &NodeProto, k: usize) -> Result<&Value> {
        let name = node.input.get(k).filter(|n| !n.is_empty());
        name.and_then(|n| self.values.get(n)).ok_or_else(|| Self::fail(node, format!("input {k} is not known")))
    }

    fn constant(&self, node: &NodeProto, k: usize) -> Result<&Const> {
        match self.get(node, k)? {
            Value::Const(c) => Ok(c),
            Value::Main(_) => Err(Self::fail(node, format!("input {k} must be a constant"))),
        }
    }

    fn optional_constant(&self, node: &NodeProto, k: usize) -> Result<Option<&Const>> {
        if node.input.get(k).is_none_or(|n| n.is_empty()) { Ok(None) } else { self.constant(node, k).map(Some) }
    }

    fn set(&mut self, node: &NodeProto, value: Value) {
        if let Some(out) = node.output.first() {
            self.values.insert(out.clone(), value);
        }
    }

    fn push(&mut self, spec: LayerSpec, params: Vec<Vec<f32>>) {
        self.layers.push(Built { spec, params });
        self.fusable = matches!(
            self.layers.last().map(|b| &b.spec),
            Some(LayerSpec::Conv2d { .. } | LayerSpec::Dense { .. } | LayerSpec::BatchNorm { .. })
        );
        self.open_bias = false;
    }

    /// Folds one node whose inputs are all constants.
    fn fold(&self, node: &NodeProto) -> Result<Const> {
        let c = |k| self.constant(node, k);
        let vector = |v: Vec<f64>| Const { dims: vec![v.len() as i64], values: v };
        Ok(match node.op_type.as_str() {
            "Identity" | "Cast" => c(0)?.clone(),
            "Shape" => vector(c(0)?.dims.iter().map(|&d| d as f64).collect()),
            "Gather" => {
                let (data, indices) = (c(0)?, c(1)?);
                if data.dims.len() != 1 || attr_int(node, "axis", 0) != 0 {
                    return Err(Self::fail(node, "only 1-D gathers of constants are folded"));
                }
                let n = data.values.len() as i64;
                let picked: Option<Vec<f64>> = indices
                    .values
                    .iter()
                    .map(|&i| {
                        let i = i as i64;
                        data.values.get(if i < 0 { i + n } else { i } as usize).copied()
                    })
                    .collect();
                let values = picked.ok_or_else(|| Self::fail(node, "index out of range"))?;
                Const { dims: indices.dims.clone(), values }
            }
            "Slice" => {
                let data = c(0)?;
                if data.dims.len() != 1 {
                    return Err(Self::fail(node, "only 1-D slices of constants are folded"));
                }
                let n = data.values.len() as i64;
                let first =
                    |t: &Const| t.values.first().map(|&v| v as i64).ok_or_else(|| Self::fail(node, "empty bound"));
                let (start, end) = (first(c(1)?)?, first(c(2)?)?);
                let step = self.optional_constant(node, 4)?.map_or(Ok(1), first)?;
                let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
                if step != 1 {
                    return Err(Self::fail(node, "only slices of step 1 are folded"));
                }
                vector(data.values[clamp(start) as usize..clamp(end).max(clamp(start)) as usize].to_vec())
            }
            "Concat" => vector(
                (0..node.input.len())
                    .map(c)
                    .collect::<Result<Vec<_>>>()?
                    .iter()
                    .flat_map(|t| t.values.clone())
                    .collect(),
            ),
            "Unsqueeze" | "Squeeze" | "Reshape" | "Flatten" => {
                let t = c(0)?;
                vector(t.values.clone())
            }
            "Mul" | "Div" | "Add" | "Sub" => {
                let (a, b) = (c(0)?, c(1)?);
                let op = |x: f64, y: f64| match node.op_type.as_str() {
                    "Mul" => x * y,
                    "Div" => x / y,
                    "Add" => x + y,
                    _ => x - y,
                };
                match (a.scalar(), b.scalar()) {
                    (_, Some(y)) => {
                        Const { dims: a.dims.clone(), values: a.values.iter().map(|&x| op(x, y)).collect() }
                    }
                    (Some(x), _) => {
                        Const { dims: b.dims.clone(), values: b.values.iter().map(|&y| op(x, y)).collect() }
                    }
                    _ if a.values.len() == b.values.len() => Const {
                        dims: a.dims.clone(),
                        values: a.values.iter().zip(&b.values).map(|(&x, &y)| op(x, y)).collect(),
                    },
                    _ => return Err(Self::fail(node, "constant shapes do not broadcast")),
                }
            }
            other => return Err(Self::fail(node, format!("operator {other} on constants is not supported"))),
        })
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        let op = node.op_type.as_str();
        if op == "Constant" {
            let t = node.attribute.iter().find_map(|a| a.t.as_ref()).ok_or_else(|| Self::fail(node, "no tensor"))?;
            let value = tensor_values(t)?;
            self.set(node, Value::Const(value));
            return Ok(());
        }
        let main_at = node.input.iter().position(|n| matches!(self.values.get(n), Some(Value::Main(_))));
        let Some(main_index) = main_at else {
            let folded = self.fold(node)?;
            self.set(node, Value::Const(folded));
            return Ok(());
        };
        if self.ended {
            return Err(Self::fail(node, "nothing may follow the softmax"));
        }
        let Value::Main(main) = self.get(node, main_index)?.clone() else { unreachable!("found above") };
        let out = self.main_op(node, op, main, main_index)?;
        self.set(node, out);
        Ok(())
    }

    /// An operator on the main tensor; the value it leaves.
    fn main_op(&mut self, node: &NodeProto, op: &str, main: Main, at: usize) -> Result<Value> {
        let flat = |features: usize| Main { shape: Shape::vector(features), order: Order::Flat };
        Ok(Value::Main(match op {
            "Identity" | "Dropout" | "Cast" => main,
            "Shape" => {
                return Ok(Value::Const(Const {
                    dims: vec![main.dims().len() as i64],
                    values: main.dims().iter().map(|&d| d as f64).collect(),
                }));
            }
            "Mul" | "Div" => {
                let c = self.constant(node, 1 - at)?.scalar().ok_or_else(|| Self::fail(node, "only scalar factors"))?;
                let factor = if op == "Div" { 1.0 / c } else { c };
                if self.layers.is_empty() && !self.input_scaled && (factor * 255.0 - 1.0).abs() < 1e-5 {
                    self.input_scaled = true;
                } else if main.order == Order::Flat
                    && matches!(
                        self.layers.last().map(|b| &b.spec),
                        Some(LayerSpec::Dense { activation: Activation::Linear, .. })
                    )
                    && factor > 0.0
                {
                    self.temperature /= factor as f32;
                } else {
                    return Err(Self::fail(
                        node,
                        format!(
                            "scaling by {factor} is only understood as the input's 1/255 or a temperature on the logits"
                        ),
                    ));
                }
                main
            }
            "Add" | "Sub" => {
                let c = self.constant(node, 1 - at)?.clone();
                let sign = if op == "Sub" { -1.0 } else { 1.0 };
                if c.values.iter().all(|&v| v == 0.0) {
                    return Ok(Value::Main(main));
                }
                let bias = self
                    .layers
                    .last_mut()
                    .filter(|_| self.open_bias)
                    .ok_or_else(|| Self::fail(node, "only a dense layer's bias may be added"))?;
                if c.values.len() != bias.params[1].len() {
                    return Err(Self::fail(
                        node,
                        format!("bias of {} values for {} units", c.values.len(), bias.params[1].len()),
                    ));
                }
                bias.params[1] = c.values.iter().map(|&v| (sign * v) as f32).collect();
                self.open_bias = false;
                main
            }
            "Transpose" => {
                let perm = attr_ints(node, "perm").unwrap_or_default();
                match (main.order, perm.as_slice()) {
                    (Order::Nhwc, [0, 3, 1, 2]) => Main { order: Order::Nchw, ..main },
                    (Order::Nchw, [0, 2, 3, 1]) => Main { order: Order::Nhwc, ..main },
                    _ => return Err(Self::fail(node, format!("transpose {perm:?} of a {:?} tensor", main.order))),
                }
            }
            "Reshape" | "Flatten" | "Squeeze" => {
                let rest: Vec<i64> = match op {
                    "Reshape" => self.constant(node, 1)?.values.iter().skip(1).map(|&v| v as i64).collect(),
                    _ => vec![-1],
                };
                let Shape { h, w, c } = main.shape;
                let (h, w, c) = (h as i64, w as i64, c as i64);
                let features = main.shape.size() as i64;
                match rest.as_slice() {
                    [_] if main.order == Order::Flat => main,
                    [n] if *n == -1 || *n == features => {
                        if main.order == Order::Nchw && c > 1 && h * w > 1 {
                            self.flattened_nchw = Some(main.shape);
                        }
                        self.push(LayerSpec::Flatten, vec![]);
                        flat(features as usize)
                    }
                    r if c == 1 && (r == [1, h, w] || r == [-1, h, w] && main.order == Order::Nhwc) => {
                        Main { order: Order::Nchw, ..main }
                    }
                    r if c == 1 && r == [h, w, 1] => Main { order: Order::Nhwc, ..main },
                    r if *r == main.dims()[1..] => main,
                    r => return Err(Self::fail(node, format!("reshape of {:?} to {r:?}", main.dims()))),
                }
            }
            "Conv" => self.conv(node, main)?,
            "Relu" => {
                match self.layers.last_mut().filter(|_| self.fusable).map(|b| &mut b.spec) {
                    Some(
                        LayerSpec::Conv2d { activation, .. }
                        | LayerSpec::Dense { activation, .. }
                        | LayerSpec::BatchNorm { activation, .. },
                    ) if *activation == Activation::Linear => {
                        *activation = Activation::Relu;
                        self.fusable = false;
                    }
                    _ => self.push(LayerSpec::Relu, vec![]),
                }
                main
            }
            "MaxPool" => {
                let k = attr_ints(node, "kernel_shape").unwrap_or_default();
                let s = attr_ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
                let pads = attr_ints(node, "pads").unwrap_or_default();
                let ok = main.order == Order::Nchw
                    && k.len() == 2
                    && k[0] == k[1]
                    && k[0] >= 1
                    && k[0] as usize <= main.shape.h.min(main.shape.w)
                    && s == k
                    && pads.iter().all(|&p| p == 0)
                    && attr_int(node, "ceil_mode", 0) == 0;
                if !ok {
                    return Err(Self::fail(
                        node,
                        format!("only square pooling with stride = size and no padding (kernel {k:?}, strides {s:?})"),
                    ));
                }
                let size = k[0] as usize;
                self.push(LayerSpec::MaxPool2d { size }, vec![]);
                Main { shape: Shape::new(main.shape.h / size, main.shape.w / size, main.shape.c), ..main }
            }
            "BatchNormalization" => {
                let eps = attr_float(node, "epsilon", 1e-5);
                let get = |k| self.constant(node, k).map(|c| c.values.clone());
                let (gamma, beta, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
                let channels = if main.order == Order::Flat { main.shape.size() } else { main.shape.c };
                if [&gamma, &beta, &mean, &var].iter().any(|v| v.len() != channels) {
                    return Err(Self::fail(node, format!("parameters are not of {channels} channels")));
                }
                let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
                if let Some(bad) = var.iter().position(|&v| (v + f64::from(eps)).is_nan() || v + f64::from(eps) <= 0.0)
                {
                    return Err(Self::fail(
                        node,
                        format!("variance {} + epsilon at channel {bad} is not positive", var[bad]),
                    ));
                }
                // wardrobe divides by sqrt(var + its own epsilon).
                let var: Vec<f32> = var.iter().map(|&v| (v + f64::from(eps) - f64::from(EPSILON)) as f32).collect();
                self.push(
                    LayerSpec::BatchNorm { momentum: 0.99, activation: Activation::Linear },
                    vec![f32s(&gamma), f32s(&beta), f32s(&mean), var],
                );
                main
            }
            "GlobalAveragePool" => {
                if main.order != Order::Nchw {
                    return Err(Self::fail(node, "needs an NCHW image"));
                }
                self.push(LayerSpec::GlobalAvgPool, vec![]);
                flat(main.shape.c)
            }
            "Gemm" | "MatMul" => self.dense(node, main)?,
            "Softmax" => {
                if main.order != Order::Flat {
                    return Err(Self::fail(node, "softmax of an image"));
                }
                self.ended = true;
                main
            }
            other => return Err(Self::fail(node, format!("operator {other} is not supported"))),
        }))
    }

    fn conv(&mut self, node: &NodeProto, main: Main) -> Result<Main> {
        if main.order != Order::Nchw && !(main.order == Order::Nhwc && main.shape.c == 1) {
            return Err(Self::fail(node, "needs an NCHW image"));
        }
        let w = self.constant(node, 1)?.clone();
        let bias = self.optional_constant(node, 2)?.map(|b| b.values.clone());
        let [out, cin, kh, kw] = w.dims[..] else { return Err(Self::fail(node, "weights must be 4-D")) };
        let ones = |name| attr_ints(node, name).is_none_or(|v| v.iter().all(|&x| x == 1));
        if kh != kw
            || cin as usize != main.shape.c
            || attr_int(node, "group", 1) != 1
            || !ones("strides")
            || !ones("dilations")
        {
            return Err(Self::fail(
                node,
                format!(
                    "only square kernels, stride 1, no dilation or groups (weights {:?}, input {} channels)",
                    w.dims, main.shape.c
                ),
            ));
        }
        let k = kh as usize;
        let pads = attr_ints(node, "pads").unwrap_or_default();
        let auto = attr_string(node, "auto_pad").unwrap_or_default();
        let padding = if auto.starts_with("SAME")
            || (!pads.is_empty() && pads.iter().all(|&p| p == (kh - 1) / 2) && kh % 2 == 1 && kh > 1)
        {
            Padding::Same
        } else if pads.iter().all(|&p| p == 0) && (auto.is_empty() || auto == "NOTSET" || auto == "VALID") {
            Padding::Valid
        } else {
            return Err(Self::fail(node, format!("padding {pads:?} is neither valid nor same")));
        };
        let (cout, cin) = (out as usize, cin as usize);
        let scale = if self.layers.is_empty() && !self.input_scaled && self.byte_input { 255.0 } else { 1.0 };
        // [out, in, kh, kw] → [kh, kw, in, out]
        let mut kernel = vec![0.0f32; w.values.len()];
        for (idx, &v) in w.values.iter().enumerate() {
            let (x, rest) = (idx % k, idx / k);
            let (y, rest) = (rest % k, rest / k);
            let (i, o) = (rest % cin, rest / cin);
            kernel[((y * k + x) * cin + i) * cout + o] = (v * scale) as f32;
        }
        let bias = bias.map_or_else(|| vec![0.0; cout], |b| b.iter().map(|&v| v as f32).collect());
        let init = Init::HeNormal;
        self.push(
            LayerSpec::Conv2d { filters: cout, kernel: k, padding, activation: Activation::Linear, init },
            vec![kernel, bias],
        );
        if k == 0 || k > main.shape.h || k > main.shape.w {
            return Err(Self::fail(
                node,
                format!("a {k}×{k} kernel does not fit a {}×{} image", main.shape.h, main.shape.w),
            ));
        }
        let (h, w) = match padding {
            Padding::Same => (main.shape.h, main.shape.w),
            Padding::Valid => (main.shape.h + 1 - k, main.shape.w + 1 - k),
        };
        Ok(Main { shape: Shape::new(h, w, cout), order: Order::Nchw })
    }

    fn dense(&mut self, node: &NodeProto, main: Main) -> Result<Main> {
        if main.order != Order::Flat {
            return Err(Self::fail(node, "needs a flat input (flatten first)"));
        }
        let gemm = node.op_type == "Gemm";
        if gemm
            && (attr_int(node, "transA", 0) != 0
                || attr_float(node, "alpha", 1.0) != 1.0
                || attr_float(node, "beta", 1.0) != 1.0)
        {
            return Err(Self::fail(node, "only Gemm without transA, alpha or beta"));
        }
        let b = self.constant(node, 1)?.clone();
        let [mut rows, mut cols] = b.dims[..] else { return Err(Self::fail(node, "weights must be 2-D")) };
        let trans = gemm && attr_int(node, "transB", 0) != 0;
        if trans {
            (rows, cols) = (cols, rows);
        }
        let (inputs, units) = (rows as usize, cols as usize);
        if inputs != main.shape.size() {
            return Err(Self::fail(
                node,
                format!("weights take {inputs} inputs, the tensor has {}", main.shape.size()),
            ));
        }
        let at = |r: usize, u: usize| if trans { b.values[u * inputs + r] } else { b.values[r * units + u] };
        // Row r of wardrobe's kernel is feature r in NHWC order.
        let source_row = |r: usize| match self.flattened_nchw {
            Some(Shape { h, w, c }) => {
                let (ch, pixel) = (r % c, r / c);
                (ch * h + pixel / w) * w + pixel % w
            }
            None => r,
        };
        let mut kernel = vec![0.0f32; inputs * units];
        for r in 0..inputs {
            let from = source_row(r);
            for u in 0..units {
                kernel[r * units + u] = at(from, u) as f32;
            }
        }
        self.flattened_nchw = None;
        let bias = match self.optional_constant(node, 2)? {
            Some(c) if gemm && c.values.len() == units => c.values.iter().map(|&v| v as f32).collect(),
            Some(c) if gemm && c.values.len() == 1 => vec![c.values[0] as f32; units],
            Some(_) => return Err(Self::fail(node, "bias does not match the units")),
            None => vec![0.0; units],
        };
        let init = Init::GlorotUniform;
        self.push(LayerSpec::Dense { units, activation: Activation::Linear, init }, vec![kernel, bias]);
        self.open_bias = !gemm;
        Ok(Main { shape: Shape::vector(units), order: Order::Flat })
    }
}

/// An imported model and its class names.
pub struct Imported {
    /// The model with the ONNX weights.
    pub model: Model,
    /// Class names.
    pub class_names: Vec<String>,
}

/// The main input's per-sample shape and layout, from the graph's input type.
fn input_main(dims: &[i64]) -> Option<Main> {
    let u = |v: i64| (v > 0).then_some(v as usize);
    Some(match dims {
        [_, h, w] => Main { shape: Shape::new(u(*h)?, u(*w)?, 1), order: Order::Nhwc },
        [_, c, h, w] if (*c == 1 || *c == 3) && *w != 1 && *w != 3 => {
            Main { shape: Shape::new(u(*h)?, u(*w)?, u(*c)?), order: Order::Nchw }
        }
        [_, h, w, c] => Main { shape: Shape::new(u(*h)?, u(*w)?, u(*c)?), order: Order::Nhwc },
        _ => return None,
    })
}

/// Reads the ONNX file at `path` as a wardrobe model; `classes` names the outputs (else the
/// model's own `class_names` metadata, else Fashion-MNIST's when there are ten).
pub fn read(path: &Path, classes: Option<Vec<String>>, range: InputRange) -> Result<Imported> {
    let bytes = fsutil::read_at_most(path, MAX_ONNX_BYTES)?;
    let model = ModelProto::decode(&bytes[..]).map_err(|e| Error::format(path, format!("not an ONNX model: {e}")))?;
    import(&model, classes, range).map_err(|e| match e {
        Error::Invalid(m) => Error::format(path, m),
        other => other,
    })
}

/// [`read`] on a decoded model.
pub fn import(onnx: &ModelProto, classes: Option<Vec<String>>, range: InputRange) -> Result<Imported> {
    let graph = onnx.graph.as_ref().ok_or_else(|| Error::Invalid("the model has no graph".into()))?;
    let mut values = HashMap::new();
    for t in &graph.initializer {
        values.insert(t.name.clone(), Value::Const(tensor_values(t)?));
    }
    let inputs: Vec<_> = graph.input.iter().filter(|i| !values.contains_key(&i.name)).collect();
    let [input] = inputs[..] else {
        return Err(Error::Invalid(format!(
            "the graph has {} inputs; wardrobe models take one image tensor",
            inputs.len()
        )));
    };
    let dims: Vec<i64> = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(super::proto::DimensionValue::DimValue(v)) => v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    let main = input_main(&dims).ok_or_else(|| {
        Error::Invalid(format!("input '{}' has shape {dims:?}; expected [N,H,W], [N,H,W,C] or [N,C,H,W]", input.name))
    })?;
    values.insert(input.name.clone(), Value::Main(main));
    let mut importer = Importer {
        values,
        layers: Vec::new(),
        fusable: false,
        open_bias: false,
        flattened_nchw: None,
        temperature: 1.0,
        input_scaled: false,
        ended: false,
        byte_input: range == InputRange::Byte,
    };
    for node in &graph.node {
        importer.node(node)?;
    }
    let output = graph.output.first().map(|o| o.name.clone()).unwrap_or_default();
    match importer.values.get(&output) {
        Some(Value::Main(Main { order: Order::Flat, .. })) => {}
        _ => return Err(Error::Invalid(format!("output '{output}' is not the class scores"))),
    }
    let spec = ModelSpec { input: main.shape, layers: importer.layers.iter().map(|b| b.spec.clone()).collect() };
    let outputs = match importer.layers.last().map(|b| &b.spec) {
        Some(LayerSpec::Dense { units, .. }) => *units,
        _ => return Err(Error::Invalid("the graph must end in a dense layer (Gemm or MatMul)".into())),
    };
    let class_names = match classes {
        Some(names) => names,
        None => match onnx.metadata_props.iter().find(|p| p.key == "class_names") {
            Some(p) => serde_json::from_str(&p.value)
                .map_err(|e| Error::Invalid(format!("metadata class_names is not a JSON list of names: {e}")))?,
            None if outputs == 10 => fashion_classes(),
            None => return Err(Error::Invalid(format!("{outputs} outputs: name the classes with --classes"))),
        },
    };
    if class_names.len() != outputs {
        return Err(Error::Invalid(format!("{} class names for {outputs} outputs", class_names.len())));
    }
    crate::data::dataset::check_classes(&class_names)?;
    let mut model = Model::new(spec, outputs)?;
    let params: Vec<&Vec<f32>> = importer.layers.iter().flat_map(|b| b.params.iter()).collect();
    let tensors = model.tensors();
    if tensors.len() != params.len() {
        return Err(Error::Invalid(format!(
            "{} weight tensors for {} in the architecture",
            params.len(),
            tensors.len()
        )));
    }
    for ((name, _, range), values) in tensors.into_iter().zip(params) {
        if range.len() != values.len() {
            return Err(Error::Invalid(format!("tensor {name}: {} values for {}", values.len(), range.len())));
        }
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("tensor {name} holds {} at index {bad}", values[bad])));
        }
        model.params[range].copy_from_slice(values);
    }
    if !(importer.temperature.is_finite() && importer.temperature > 0.0) {
        return Err(Error::Invalid(format!("the logits' scale gives a temperature of {}", importer.temperature)));
    }
    model.temperature = importer.temperature;
    Ok(Imported { model, class_names })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::infer::Predictor;
    use crate::onnx::export::{ints, to_onnx};

    fn pixels(n: usize, size: usize) -> Vec<u8> {
        (0..n * size).map(|i| ((i * 37 + i / 7) % 256) as u8).collect()
    }

    #[test]
    fn an_exported_model_imports_to_the_same_probabilities() {
        for spec in [ModelSpec::seed(), ModelSpec::default_preset()] {
            let mut model = Model::initialised(spec, 10, 3).unwrap();
            // Non-trivial batch-norm statistics and a temperature.
            for (name, _, range) in model.tensors() {
                if name.ends_with("moving_variance") {
                    model.params[range].iter_mut().enumerate().for_each(|(i, v)| *v = 0.5 + (i % 5) as f32 * 0.3);
                } else if name.ends_with("moving_mean") {
                    model.params[range].iter_mut().enumerate().for_each(|(i, v)| *v = (i % 3) as f32 * 0.1);
                }
            }
            model.temperature = 1.5;
            let onnx = to_onnx(&model, &fashion_classes(), None).unwrap();
            let back = import(&onnx, None, InputRange::Unit).unwrap();
            // The same layers, dropout gone (initialisers do not matter to trained weights).
            let comparable = |spec: &ModelSpec| {
                let mut layers = spec.layers.clone();
                layers.retain(|l| !matches!(l, LayerSpec::Dropout { .. }));
                layers.iter_mut().for_each(|l| {
                    if let LayerSpec::Conv2d { init, .. } | LayerSpec::Dense { init, .. } = l {
                        *init = Init::HeNormal;
                    }
                });
                layers
            };
            assert_eq!(comparable(&back.model.spec), comparable(&model.spec));
            assert_eq!(back.class_names, fashion_classes());
            assert!((back.model.temperature - 1.5).abs() < 1e-6);
            let x = pixels(9, 784);
            let (a, b) =
                (Predictor::new(&model, 8).probabilities(&x), Predictor::new(&back.model, 8).probabilities(&x));
            let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-5, "{worst}");
        }
    }

    #[test]
    fn a_flatten_of_nchw_as_pytorch_exports_it_reorders_the_dense_rows() {
        let model = Model::initialised(ModelSpec::seed(), 10, 5).unwrap();
        let mut onnx = to_onnx(&model, &fashion_classes(), None).unwrap();
        let graph = onnx.graph.as_mut().unwrap();
        // Drop the transpose back to NHWC: the flatten now sees NCHW (64 × 5 × 5) ...
        let t = graph.node.iter().rposition(|n| n.op_type == "Transpose").unwrap();
        let removed = graph.node.remove(t);
        graph.node[t].input[0] = removed.input[0].clone();
        // ... so the first dense kernel's rows must be in channel-major order, as torch has them.
        let (h, w, c) = (5, 5, 64);
        let kernel = graph.initializer.iter_mut().find(|i| i.name == "6.kernel").unwrap();
        let rows: Vec<&[u8]> = kernel.raw_data.chunks(128 * 4).collect();
        let mut chw = vec![0u8; kernel.raw_data.len()];
        for (nhwc, row) in rows.iter().enumerate() {
            let (ch, pixel) = (nhwc % c, nhwc / c);
            let to = (ch * h + pixel / w) * w + pixel % w;
            chw[to * 512..(to + 1) * 512].copy_from_slice(row);
        }
        kernel.raw_data = chw;
        let back = import(&onnx, None, InputRange::Unit).unwrap();
        let x = pixels(5, 784);
        let (a, b) = (Predictor::new(&model, 8).probabilities(&x), Predictor::new(&back.model, 8).probabilities(&x));
        let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn degenerate_graphs_are_errors_not_panics() {
        let model = Model::initialised(ModelSpec::seed(), 10, 3).unwrap();
        let fresh = || to_onnx(&model, &fashion_classes(), None).unwrap();
        let mut onnx = fresh();
        let graph = onnx.graph.as_mut().unwrap();
        let pool = graph.node.iter_mut().find(|n| n.op_type == "MaxPool").unwrap();
        pool.attribute = vec![ints("kernel_shape", &[0, 0]), ints("strides", &[0, 0])];
        assert!(import(&onnx, None, InputRange::Unit).is_err());
        let mut onnx = fresh();
        let kernel = onnx.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == "0.kernel").unwrap();
        kernel.dims = vec![32, 1, 40, 40];
        kernel.raw_data = vec![0; 32 * 1600 * 4];
        let err = import(&onnx, None, InputRange::Unit).err().unwrap().to_string();
        assert!(err.contains("does not fit"), "{err}");
        let mut onnx = fresh();
        let kernel = onnx.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == "6.kernel").unwrap();
        kernel.raw_data.truncate(10);
        let err = import(&onnx, None, InputRange::Unit).err().unwrap().to_string();
        assert!(err.contains("tensor '6.kernel'"), "{err}");
    }

    #[test]
    fn unsupported_operators_are_named_with_their_node() {
        let model = Model::initialised(ModelSpec::seed(), 10, 3).unwrap();
        let mut onnx = to_onnx(&model, &fashion_classes(), None).unwrap();
        let node = &mut onnx.graph.as_mut().unwrap().node[5];
        node.op_type = "LeakyRelu".into();
        let name = node.name.clone();
        let err = import(&onnx, None, InputRange::Unit).err().unwrap().to_string();
        assert!(err.contains(&format!("node '{name}' (LeakyRelu): operator LeakyRelu is not supported")), "{err}");
        let err = import(&to_onnx(&model, &fashion_classes(), None).unwrap(), Some(vec!["a".into()]), InputRange::Unit)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("1 class names for 10 outputs"), "{err}");
    }
}
