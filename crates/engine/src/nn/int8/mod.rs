//! Post-training static int8 quantisation of a trained model, and its inference.
//!
//! Every convolution and dense layer becomes one int8 product ([`gemm`]): its weights, with any
//! batch norm that follows folded in, are quantised per output channel and symmetrically
//! (`w ≈ s_w[n] · q`, `q` in −127…127); its input is the previous layer's unsigned 8-bit
//! activations (`x ≈ s_x · q`, `q` in 0…255: every hidden layer must end in ReLU, so zero is
//! exact), and the image's own pixels for the first layer (`s_x` = 1/255, no loss at all). A
//! layer's exact 32-bit sums become `y = sum · (s_x · s_w[n]) + bias[n]`, then either the next
//! layer's activations `round(y / s_y)` clamped to 0…255 or, for the last layer, the logits.
//! A max pooling after a convolution takes the largest sum of each window before that
//! conversion, which gives the same bytes as pooling them after (the conversion is monotone)
//! at a quarter of the work; flatten and dropout are no-ops in inference.
//!
//! The activation scales `s_y` are calibrated layer by layer on a sample of training images:
//! each layer's is the largest `y` it produces from the quantised activations before it, over
//! the sample, divided by 255. The weights are a pure function of the float model, so a model
//! directory stores only the float weights and these scales.

pub mod gemm;

use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::conv2d::Padding;
use crate::nn::layer::Shape;
use crate::nn::model::{Model, channel_statistics};
use crate::nn::spec::LayerSpec;
use gemm::{Int8Kernel, Packed, depth};

/// Images a calibration pass pushes through one layer at once.
const CALIBRATION_BATCH: usize = 64;

/// A model quantised to int8, ready for inference.
#[derive(Debug, Clone)]
pub struct Int8Model {
    input: Shape,
    ops: Vec<Product>,
    calibration_images: usize,
    kernel: Int8Kernel,
}

/// One layer of an [`Int8Model`]: `y = relu?(Σ_k x[k] · weights[k][n] · weight_scales[n] + bias[n])`
/// over its input's dequantised values, max-pooled, then quantised with `output_scale`.
#[derive(Debug, Clone, Copy)]
pub struct Int8Layer<'a> {
    /// Kernel side and padding of a convolution; `None` for a dense layer.
    pub convolution: Option<(usize, usize)>,
    /// Values summed per output (kernel side² × input channels for a convolution).
    pub inputs: usize,
    /// Outputs (filters or units).
    pub outputs: usize,
    /// Weights `[inputs][outputs]` in −127…127; a convolution's inputs in (row, column,
    /// channel) order.
    pub weights: &'a [i8],
    /// Each output's weight scale.
    pub weight_scales: &'a [f32],
    /// Each output's bias (batch norm folded in).
    pub bias: &'a [f32],
    /// ReLU after the bias.
    pub relu: bool,
    /// Max-pooling window after it (1: none).
    pub pool: usize,
    /// Scale of its u8 outputs; `None` for the last layer (logits).
    pub output_scale: Option<f32>,
}

/// A convolution (a dense layer is a 1×1 convolution of a 1×1 image) with its folded batch
/// norm, activation and max pooling.
#[derive(Debug, Clone)]
struct Product {
    input: Shape,
    /// A dense layer (not a convolution).
    dense: bool,
    /// The convolution's output, before pooling.
    output: Shape,
    kernel: usize,
    pad: usize,
    /// Max-pooling window after it (1: none).
    pool: usize,
    /// What it writes: `output` pooled.
    pooled: Shape,
    weights: Packed,
    /// `s_w[n]`: the weights' scale per output channel.
    weight_scales: Vec<f32>,
    /// `s_x · s_w[n]`: what one unit of the sum is worth (set with the scales).
    multipliers: Vec<f32>,
    bias: Vec<f32>,
    relu: bool,
    /// The scale of its output activations; `None` for the last layer, whose output is logits.
    output_scale: Option<f32>,
}

impl Int8Model {
    /// The quantised form of `model` with `scales`, the output scale of every layer but the last
    /// product (as [`Int8Model::calibrate`] finds them), from a sample of `calibration_images`.
    pub fn new(model: &Model, scales: &[f32], calibration_images: usize) -> Result<Int8Model> {
        let mut q = Int8Model::unscaled(model)?;
        let hidden = q.ops.len() - 1;
        if scales.len() != hidden {
            return Err(Error::Shape(format!(
                "{} activation scales, the quantised model has {hidden} hidden layers",
                scales.len()
            )));
        }
        if let Some(i) = scales.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::Shape(format!("activation scale {i} is {}, not a positive number", scales[i])));
        }
        q.set_scales(scales);
        q.calibration_images = calibration_images;
        Ok(q)
    }

    /// `model` quantised, its activation scales measured on the images `pixels` (u8, image after
    /// image): each hidden layer's largest output over them, given the quantised layers before
    /// it, over 255.
    pub fn calibrate(model: &Model, pixels: &[u8]) -> Result<Int8Model> {
        let mut q = Int8Model::unscaled(model)?;
        let n = pixels.len() / q.input.size();
        if n == 0 {
            return Err(Error::Shape("calibration needs at least one image".into()));
        }
        let mut scales = vec![1.0; q.ops.len() - 1];
        let mut scratch = Scratch::default();
        let mut x = pixels[..n * q.input.size()].to_vec();
        for op in 0..q.ops.len() - 1 {
            let p = &q.ops[op];
            let (in_size, out) = (p.input.size(), p.pooled.size());
            let mut largest = 0.0f32;
            for b in (0..n).step_by(CALIBRATION_BATCH) {
                let m = CALIBRATION_BATCH.min(n - b);
                let sums = accumulate(p, &x[b * in_size..(b + m) * in_size], m, &mut scratch, q.kernel);
                for row in sums.chunks_exact(p.weights.n()) {
                    for ((&sum, &mult), &bias) in row.iter().zip(&p.multipliers).zip(&p.bias) {
                        largest = largest.max(dequantise(sum, mult, bias));
                    }
                }
            }
            scales[op] = if largest > 0.0 { largest / 255.0 } else { 1.0 };
            q.set_scales(&scales);
            let mut y = vec![0u8; n * out];
            for b in (0..n).step_by(CALIBRATION_BATCH) {
                let m = CALIBRATION_BATCH.min(n - b);
                let (x, y) = (&x[b * in_size..(b + m) * in_size], &mut y[b * out..(b + m) * out]);
                q.run_op(op, m, x, Output::Bytes(y), &mut scratch);
            }
            x = y;
        }
        q.calibration_images = n;
        Ok(q)
    }

    /// The quantised weights of `model`, every activation scale 1 (set by calibration).
    fn unscaled(model: &Model) -> Result<Int8Model> {
        let (spec, layers) = (&model.spec, &model.spec.layers);
        let mut ops: Vec<Product> = Vec::new();
        let mut shape = spec.input;
        let mut i = 0;
        while i < layers.len() {
            let unsupported = |what: &str| Error::Layer { index: i, message: format!("{what} cannot be quantised") };
            let output = model.layers()[i].output_shape();
            match &layers[i] {
                LayerSpec::Conv2d { kernel, padding, activation, .. } => {
                    let pad = if *padding == Padding::Same { kernel / 2 } else { 0 };
                    let (k, n) = (kernel * kernel * shape.c, output.c);
                    let (p, next) = fold(model, i, k, n, *activation);
                    ops.push(Product::new(shape, model.layers()[next - 1].output_shape(), *kernel, pad, p));
                    i = next;
                }
                LayerSpec::Dense { activation, .. } => {
                    let (k, n) = (shape.size(), output.c);
                    let (p, next) = fold(model, i, k, n, *activation);
                    let output = Shape::new(1, 1, model.layers()[next - 1].output_shape().size());
                    ops.push(Product { dense: true, ..Product::new(Shape::new(1, 1, k), output, 1, 0, p) });
                    i = next;
                }
                LayerSpec::MaxPool2d { size } => {
                    match ops.last_mut() {
                        Some(p)
                            if p.pool == 1
                                && p.output.h >= *size
                                && matches!(
                                    layers[i - 1],
                                    LayerSpec::Conv2d { .. } | LayerSpec::BatchNorm { .. } | LayerSpec::Relu
                                ) =>
                        {
                            (p.pool, p.pooled) = (*size, output);
                        }
                        _ => return Err(unsupported("max pooling not right after a convolution")),
                    }
                    i += 1;
                }
                LayerSpec::Flatten | LayerSpec::Dropout { .. } => i += 1,
                LayerSpec::BatchNorm { .. } => {
                    return Err(unsupported("batch norm not after a convolution or dense layer"));
                }
                LayerSpec::Relu => return Err(unsupported("ReLU not after a convolution or dense layer")),
                LayerSpec::GlobalAvgPool => return Err(unsupported("global average pooling")),
            }
            shape = model.layers()[i - 1].output_shape();
        }
        if !matches!(
            layers.last(),
            Some(LayerSpec::Conv2d { .. } | LayerSpec::Dense { .. } | LayerSpec::BatchNorm { .. } | LayerSpec::Relu)
        ) {
            return Err(Error::Shape("a quantised model must end in a convolution or dense layer".into()));
        }
        for (j, p) in ops.iter().enumerate().take(ops.len().saturating_sub(1)) {
            if !p.relu {
                return Err(Error::Shape(format!(
                    "operation {j} of the quantised model has no ReLU after it: int8 activations between layers are unsigned"
                )));
            }
        }
        let mut q = Int8Model { input: spec.input, ops, calibration_images: 0, kernel: Int8Kernel::chosen() };
        q.set_scales(&vec![1.0; q.ops.len() - 1]);
        Ok(q)
    }

    /// Sets every hidden layer's output scale (one per product but the last) and every
    /// product's multipliers from its input's scale.
    fn set_scales(&mut self, scales: &[f32]) {
        let last = self.ops.len() - 1;
        let mut input_scale = 1.0 / 255.0;
        for (j, p) in self.ops.iter_mut().enumerate() {
            p.multipliers = p.weight_scales.iter().map(|s| input_scale * s).collect();
            p.output_scale = (j < last).then(|| scales[j]);
            input_scale = p.output_scale.unwrap_or(1.0);
        }
    }

    /// Every hidden layer's activation scale, in order (what [`Int8Model::new`] takes).
    pub fn activation_scales(&self) -> Vec<f32> {
        self.ops.iter().filter_map(|p| p.output_scale).collect()
    }

    /// Its layers as an exporter needs them.
    pub fn layers(&self) -> Vec<Int8Layer<'_>> {
        self.ops
            .iter()
            .map(|p| Int8Layer {
                convolution: (!p.dense).then_some((p.kernel, p.pad)),
                inputs: p.weights.k(),
                outputs: p.weights.n(),
                weights: p.weights.plain(),
                weight_scales: &p.weight_scales,
                bias: &p.bias,
                relu: p.relu,
                pool: p.pool,
                output_scale: p.output_scale,
            })
            .collect()
    }

    /// One line per product: what it computes and what follows it in the same step.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (j, l) in self.layers().iter().enumerate() {
            let what = match l.convolution {
                Some((side, pad)) => {
                    format!("conv {side}×{side}{} → {}", if pad > 0 { " same" } else { "" }, l.outputs)
                }
                None => format!("dense {} → {}", l.inputs, l.outputs),
            };
            let relu = if l.relu { " + ReLU" } else { "" };
            let pool = if l.pool > 1 { format!(" + {0}×{0} max pool", l.pool) } else { String::new() };
            let output = l.output_scale.map_or("f32 logits".to_string(), |s| format!("u8 × {s:.3e}"));
            out.push_str(&format!("{j} {what}{relu}{pool}: {output}\n"));
        }
        out
    }

    /// How many images the scales were calibrated on.
    pub fn calibration_images(&self) -> usize {
        self.calibration_images
    }

    /// The kernel its products run.
    pub fn kernel(&self) -> Int8Kernel {
        self.kernel
    }

    /// Runs it with `kernel` instead (the tests compare kernels).
    #[cfg(test)]
    pub(crate) fn with_kernel(mut self, kernel: Int8Kernel) -> Int8Model {
        self.kernel = kernel;
        self
    }

    /// Buffers for batches of up to `capacity` images.
    pub fn workspace(&self, capacity: usize) -> Workspace {
        Workspace {
            pixels: vec![0; capacity * self.input.size()],
            acts: self.ops.iter().map(|p| vec![0; capacity * p.pooled.size()]).collect(),
            scratch: Scratch::default(),
            dequantised: Vec::new(),
        }
    }

    /// The logits (rows of the last layer's width) of the first `n` images in `ws.pixels`.
    pub fn forward(&self, ws: &mut Workspace, n: usize, logits: &mut [f32]) {
        // The unrolling and conversions around the products, compiled for the kernel's
        // instruction set too (one body; the compiler vectorises it for each).
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
            fn avx512(q: &Int8Model, ws: &mut Workspace, n: usize, logits: &mut [f32]) {
                q.forward_inline(ws, n, logits)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2(q: &Int8Model, ws: &mut Workspace, n: usize, logits: &mut [f32]) {
                q.forward_inline(ws, n, logits)
            }
            match self.kernel {
                // SAFETY: the kernel runs only where the CPU has its instruction set, AVX-512
                // VNNI's including AVX-512F/BW/VL (and AVX2, FMA).
                Int8Kernel::Avx512Vnni if self.kernel.runs_here() && fma() => {
                    return unsafe { avx512(self, ws, n, logits) };
                }
                // SAFETY: as above, for AVX2 and FMA.
                Int8Kernel::AvxVnni | Int8Kernel::Avx2 if self.kernel.runs_here() && fma() => {
                    return unsafe { avx2(self, ws, n, logits) };
                }
                _ => {}
            }
        }
        self.forward_inline(ws, n, logits)
    }

    #[inline(always)]
    fn forward_inline(&self, ws: &mut Workspace, n: usize, logits: &mut [f32]) {
        for op in 0..self.ops.len() {
            let (before, after) = ws.acts.split_at_mut(op);
            let x = if op == 0 { &ws.pixels[..] } else { &before[op - 1][..] };
            let output =
                if op + 1 == self.ops.len() { Output::Logits(&mut *logits) } else { Output::Bytes(&mut after[0]) };
            self.run_op(op, n, &x[..n * self.ops[op].input.size()], output, &mut ws.scratch);
        }
    }

    /// The features of [`Model::features_into`] for the images of the last [`Int8Model::forward`],
    /// from the dequantised activations: the last layer's input, then each pooling's channel
    /// means and deviations.
    pub fn features_into(&self, ws: &mut Workspace, n: usize, out: &mut [f32]) {
        let last = self.ops.len() - 1;
        let scale = |j: usize| self.ops[j].output_scale.expect("hidden layers have scales");
        let pooled: Vec<usize> = (0..last).filter(|&j| self.ops[j].pool > 1).collect();
        let last_input = self.ops[last].input.size();
        let width = last_input + pooled.iter().map(|&j| 2 * self.ops[j].pooled.c).sum::<usize>();
        for s in 0..n {
            let row = &mut out[s * width..(s + 1) * width];
            let (source, source_scale) = match last {
                0 => (&ws.pixels[..], 1.0 / 255.0),
                _ => (&ws.acts[last - 1][..], scale(last - 1)),
            };
            for (f, &q) in row[..last_input].iter_mut().zip(&source[s * last_input..(s + 1) * last_input]) {
                *f = f32::from(q) * source_scale;
            }
            let mut at = last_input;
            for &j in &pooled {
                let shape = self.ops[j].pooled;
                let image = &ws.acts[j][s * shape.size()..(s + 1) * shape.size()];
                ws.dequantised.clear();
                ws.dequantised.extend(image.iter().map(|&q| f32::from(q) * scale(j)));
                channel_statistics(&ws.dequantised, shape, &mut row[at..at + 2 * shape.c]);
                at += 2 * shape.c;
            }
        }
    }

    #[inline(always)]
    fn run_op(&self, op: usize, n: usize, x: &[u8], output: Output, scratch: &mut Scratch) {
        let p = &self.ops[op];
        let width = p.weights.n();
        let sums = accumulate(p, x, n, scratch, self.kernel);
        match output {
            Output::Bytes(y) => {
                let inverse = 1.0 / p.output_scale.expect("a hidden layer has a scale");
                let quantise = |out: &mut [u8], row: &[i32]| {
                    for (((o, &sum), &mult), &bias) in out.iter_mut().zip(row).zip(&p.multipliers).zip(&p.bias) {
                        *o = requantise(dequantise(sum, mult, bias), inverse);
                    }
                };
                if p.pool == 1 {
                    sums.chunks_exact(width).zip(y.chunks_exact_mut(width)).for_each(|(row, out)| quantise(out, row));
                    return;
                }
                let (out_shape, size) = (p.output, p.pool);
                let mut largest = vec![0i32; width];
                for b in 0..n {
                    let image = &sums[b * out_shape.h * out_shape.w * width..];
                    for oy in 0..p.pooled.h {
                        for ox in 0..p.pooled.w {
                            largest.fill(i32::MIN);
                            for dy in 0..size {
                                for dx in 0..size {
                                    let at = ((oy * size + dy) * out_shape.w + ox * size + dx) * width;
                                    largest.iter_mut().zip(&image[at..at + width]).for_each(|(m, &v)| *m = (*m).max(v));
                                }
                            }
                            let cell = ((b * p.pooled.h + oy) * p.pooled.w + ox) * width;
                            quantise(&mut y[cell..cell + width], &largest);
                        }
                    }
                }
            }
            Output::Logits(y) => {
                for (row, out) in sums.chunks_exact(width).zip(y.chunks_exact_mut(width)) {
                    for (((o, &sum), &mult), &bias) in out.iter_mut().zip(row).zip(&p.multipliers).zip(&p.bias) {
                        let v = dequantise(sum, mult, bias);
                        *o = if p.relu { v.max(0.0) } else { v };
                    }
                }
            }
        }
    }
}

/// Where an op writes.
enum Output<'a> {
    Bytes(&'a mut [u8]),
    Logits(&'a mut [f32]),
}

/// Whether the CPU has FMA (every AVX2 CPU wardrobe meets does; checked all the same).
#[cfg(target_arch = "x86_64")]
fn fma() -> bool {
    std::arch::is_x86_feature_detected!("fma")
}

/// Buffers of the int8 forward pass for a batch.
#[derive(Debug)]
pub struct Workspace {
    /// The batch's images, u8 pixels.
    pub pixels: Vec<u8>,
    acts: Vec<Vec<u8>>,
    scratch: Scratch,
    dequantised: Vec<f32>,
}

#[derive(Debug, Default)]
struct Scratch {
    columns: Vec<u8>,
    sums: Vec<i32>,
}

/// What a sum of `mult`-sized units plus `bias` is worth, the same arithmetic on every path.
#[inline(always)]
fn dequantise(sum: i32, mult: f32, bias: f32) -> f32 {
    sum as f32 * mult + bias
}

/// `y` in units of `1 / inverse`, rounded half up and clamped to 0…255 (ReLU included): a
/// clamp, an add and a truncation, which the compiler vectorises.
#[inline(always)]
fn requantise(y: f32, inverse: f32) -> u8 {
    // `max` before `min` (not `clamp`) turns a NaN into 0, which keeps the conversion below sound.
    #[allow(clippy::manual_clamp)]
    let v = (y * inverse).max(0.0).min(255.0) + 0.5;
    // SAFETY: `v` is in [0.5, 255.5], so its integer part fits an i32.
    unsafe { v.to_int_unchecked::<i32>() as u8 }
}

/// `dst = src` for the short runs of an unrolled image row: lengths up to 16 are copied inline
/// (a call to `memcpy` per run of a few bytes costs more than the copy).
#[inline(always)]
fn copy_run(dst: &mut [u8], src: &[u8]) {
    macro_rules! inline_lengths {
        ($($n:literal)*) => {
            match src.len() {
                $($n => dst[..$n].copy_from_slice(&src[..$n]),)*
                _ => dst.copy_from_slice(src),
            }
        };
    }
    inline_lengths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// Writes the rows of taps of `n` images `x` (rows of `stride` bytes, zero where a tap falls
/// outside the image) into `columns`, which starts zeroed; `RUN` is `kernel × channels` when
/// that is known when compiled (0: not).
#[inline(always)]
fn unroll<const RUN: usize>(p: &Product, x: &[u8], n: usize, stride: usize, columns: &mut [u8]) {
    let (c, side) = (p.input.c, p.kernel);
    for b in 0..n {
        let image = &x[b * p.input.size()..(b + 1) * p.input.size()];
        for oy in 0..p.output.h {
            for ox in 0..p.output.w {
                let row = ((b * p.output.h + oy) * p.output.w + ox) * stride;
                // The taps of a kernel row that fall inside the image, one run of bytes.
                let first = p.pad.saturating_sub(ox);
                let end = side.min(p.input.w + p.pad - ox);
                for ky in 0..side {
                    let iy = (oy + ky).wrapping_sub(p.pad);
                    if iy >= p.input.h {
                        continue;
                    }
                    let from = (iy * p.input.w + ox + first - p.pad) * c;
                    let at = row + (ky * side + first) * c;
                    if RUN != 0 && first == 0 && end == side {
                        columns[at..at + RUN].copy_from_slice(&image[from..from + RUN]);
                    } else {
                        let len = (end - first) * c;
                        copy_run(&mut columns[at..at + len], &image[from..from + len]);
                    }
                }
            }
        }
    }
}

/// The exact sums of a product over `n` images `x`: its input unrolled into rows of taps
/// (zero outside the image and beyond the taps), times the packed weights.
#[inline(always)]
fn accumulate<'s>(p: &Product, x: &[u8], n: usize, scratch: &'s mut Scratch, kernel: Int8Kernel) -> &'s [i32] {
    let (taps, stride) = (p.weights.k(), depth(p.weights.k()));
    let rows = n * p.output.h * p.output.w;
    let direct = p.kernel == 1 && p.pad == 0 && taps == stride;
    if !direct {
        scratch.columns.clear();
        scratch.columns.resize(rows * stride, 0);
        // A whole kernel row's run of bytes has a length known when compiled for the common
        // shapes (5×5 and 3×3 kernels over 1, 32 or 64 channels), so copying it is a few moves.
        let columns = &mut scratch.columns[..];
        match p.kernel * p.input.c {
            3 => unroll::<3>(p, x, n, stride, columns),
            5 => unroll::<5>(p, x, n, stride, columns),
            96 => unroll::<96>(p, x, n, stride, columns),
            192 => unroll::<192>(p, x, n, stride, columns),
            _ => unroll::<0>(p, x, n, stride, columns),
        }
    }
    let a = if direct { x } else { &scratch.columns[..] };
    scratch.sums.resize(rows * p.weights.n(), 0);
    gemm::product(kernel, a, &p.weights, rows, &mut scratch.sums);
    &scratch.sums[..rows * p.weights.n()]
}

/// A layer's weights `[k][n]` and bias with the batch norm and ReLU after it folded in.
struct Folded {
    weights: Vec<f32>,
    bias: Vec<f32>,
    k: usize,
    n: usize,
    relu: bool,
}

/// Layer `i` of `model` (`k × n` weights, then `n` biases, then `activation`) with the batch
/// norm and ReLU that follow it folded in, and the index of the first layer after those.
fn fold(model: &Model, i: usize, k: usize, n: usize, activation: Activation) -> (Folded, usize) {
    let params = model.layer_params(i);
    let (weights, bias) = params.split_at(k * n);
    let mut folded =
        Folded { weights: weights.to_vec(), bias: bias.to_vec(), k, n, relu: activation == Activation::Relu };
    let mut next = i + 1;
    let layers = &model.spec.layers;
    if !folded.relu
        && let Some(LayerSpec::BatchNorm { activation, .. }) = layers.get(next)
    {
        let bn = model.layer_params(next);
        let (gamma, beta, mean, variance) = (&bn[..n], &bn[n..2 * n], &bn[2 * n..3 * n], &bn[3 * n..4 * n]);
        for j in 0..n {
            let a = gamma[j] / (variance[j] + crate::nn::batchnorm::EPSILON).sqrt();
            folded.weights.iter_mut().skip(j).step_by(n).for_each(|w| *w *= a);
            folded.bias[j] = (folded.bias[j] - mean[j]) * a + beta[j];
        }
        folded.relu = *activation == Activation::Relu;
        next += 1;
    }
    if !folded.relu && layers.get(next) == Some(&LayerSpec::Relu) {
        folded.relu = true;
        next += 1;
    }
    (folded, next)
}

impl Product {
    fn new(input: Shape, output: Shape, kernel: usize, pad: usize, f: Folded) -> Product {
        let mut scales = vec![0.0f32; f.n];
        for (j, scale) in scales.iter_mut().enumerate() {
            let largest = f.weights.iter().skip(j).step_by(f.n).fold(0.0f32, |m, w| m.max(w.abs()));
            *scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        }
        let plain = f.weights.iter().enumerate().map(|(t, w)| (w / scales[t % f.n]).round().clamp(-127.0, 127.0) as i8);
        Product {
            input,
            dense: false,
            output,
            kernel,
            pad,
            pool: 1,
            pooled: output,
            weights: Packed::new(plain.collect(), f.k, f.n),
            multipliers: Vec::new(),
            weight_scales: scales,
            bias: f.bias,
            relu: f.relu,
            output_scale: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::infer::Predictor;
    use crate::nn::spec::ModelSpec;

    /// Images with structure (strokes over a gradient), not noise alone.
    fn images(n: usize) -> Vec<u8> {
        (0..n * 784).map(|i| ((i % 784 / 28 * 9 + i % 28 * (i / 784 % 7 + 1) + (i / 784) * 13) % 256) as u8).collect()
    }

    /// A model with weights from `seed` and batch-norm statistics that are not the identity.
    fn model(spec: ModelSpec, seed: u64) -> Model {
        let mut model = Model::initialised(spec, 10, seed).unwrap();
        for (name, _, range) in model.tensors() {
            if name.ends_with("moving_mean") || name.ends_with("beta") {
                model.params[range].iter_mut().enumerate().for_each(|(j, v)| *v = 0.05 * ((j % 5) as f32 - 2.0));
            } else if name.ends_with("moving_variance") {
                model.params[range].iter_mut().enumerate().for_each(|(j, v)| *v = 0.5 + 0.1 * (j % 7) as f32);
            }
        }
        model
    }

    fn quantised(model: &Model, pixels: &[u8]) -> Int8Model {
        let q = Int8Model::calibrate(model, pixels).unwrap();
        // The scales alone rebuild the same model, as a model directory stores it.
        let rebuilt = Int8Model::new(model, &q.activation_scales(), q.calibration_images()).unwrap();
        assert_eq!(rebuilt.describe(), q.describe());
        q
    }

    #[test]
    fn every_kernel_gives_the_reference_logits_and_the_float_models_classes() {
        for spec in [ModelSpec::seed(), ModelSpec::default_preset()] {
            let float = model(spec, 3);
            let pixels = images(40);
            let expected = Predictor::new(&float, 8).probabilities(&pixels);
            let q = quantised(&float, &pixels[..20 * 784]);
            assert_eq!(q.activation_scales().len(), q.ops.len() - 1);
            let mut results = Vec::new();
            for kernel in Int8Kernel::ALL.into_iter().rev() {
                let mut m = model(float.spec.clone(), 3);
                m.set_int8(Some(q.clone().with_kernel(kernel)));
                results.push(Predictor::new(&m, 8).probabilities(&pixels));
            }
            for (kernel, result) in Int8Kernel::ALL.into_iter().rev().zip(&results) {
                assert_eq!(&results[0], result, "{kernel:?} (where the CPU has it) against the reference");
            }
            let argmax = |p: &[f32]| p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            let agree = expected.chunks(10).zip(results[0].chunks(10)).filter(|(a, b)| argmax(a) == argmax(b)).count();
            let largest = expected.iter().zip(&results[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(agree >= 38 && largest < 0.05, "{agree} of 40 agree, largest difference {largest}");
        }
    }

    #[test]
    fn results_do_not_depend_on_the_batch_and_features_follow_the_float_model() {
        let mut float = model(ModelSpec::seed(), 5);
        let pixels = images(23);
        let (_, float_features) = Predictor::new(&float, 4).probabilities_and_features(&pixels);
        let q = quantised(&float, &pixels);
        let plan = q.describe();
        assert!(plan.starts_with("0 conv 5×5 → 32 + ReLU + 2×2 max pool: u8 × "), "{plan}");
        assert!(
            plan.contains("\n2 dense 1600 → 128 + ReLU: u8") && plan.ends_with("3 dense 128 → 10: f32 logits\n"),
            "{plan}"
        );
        float.set_int8(Some(q));
        let (a, features) = Predictor::new(&float, 4).probabilities_and_features(&pixels);
        let b = Predictor::new(&float, 16).probabilities(&pixels);
        let c = crate::nn::infer::SingleImage::new(&float).probabilities(&pixels[22 * 784..]).to_vec();
        assert_eq!(a, b);
        assert_eq!(&a[220..], &c[..]);
        assert_eq!(features.len(), float_features.len());
        let scale = float_features.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = features.iter().zip(&float_features).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 0.05 * scale, "features differ by {worst} (largest {scale})");
    }

    #[test]
    fn scales_are_checked_and_unsupported_layers_named() {
        let float = model(ModelSpec::seed(), 1);
        let err = Int8Model::new(&float, &[1.0], 10).unwrap_err().to_string();
        assert!(err.contains("1 activation scales, the quantised model has 3 hidden layers"), "{err}");
        let err = Int8Model::new(&float, &[1.0, f32::NAN, 1.0], 10).unwrap_err().to_string();
        assert!(err.contains("activation scale 1 is NaN"), "{err}");
        let mut spec = ModelSpec::seed();
        spec.layers.insert(4, LayerSpec::GlobalAvgPool);
        spec.layers.remove(5);
        let err = Int8Model::calibrate(&Model::initialised(spec, 10, 1).unwrap(), &images(2)).unwrap_err();
        assert!(err.to_string().contains("layer 4: global average pooling cannot be quantised"), "{err}");
    }
}
