//! A sequential model: its layers, all parameters in one flat buffer (layer after layer, tensor
//! after tensor), and per-thread workspaces holding activations and scratch for a batch.

use crate::error::Result;
use crate::nn::layer::{Backward, Forward, Layer, ParamSpec, param_count};
use crate::nn::spec::ModelSpec;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// A built model with its parameters.
pub struct Model {
    /// The architecture it was built from.
    pub spec: ModelSpec,
    layers: Vec<Box<dyn Layer>>,
    ranges: Vec<Range<usize>>,
    /// All parameters, flat.
    pub params: Vec<f32>,
    classes: usize,
}

/// Activations, scratch and gradient buffers for batches of up to `capacity` samples.
pub struct Workspace {
    capacity: usize,
    /// Model input, `capacity × input size`, filled by the caller.
    pub input: Vec<f32>,
    acts: Vec<Vec<f32>>,
    scratch: Vec<Vec<f32>>,
    grad: Vec<f32>,
    grad_next: Vec<f32>,
}

impl Workspace {
    /// Largest batch this workspace holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Writes images (u8 pixels) into the input as floats in [0, 1].
    pub fn load_images(&mut self, pixels: &[u8]) {
        normalise(&mut self.input[..pixels.len()], pixels);
    }

    /// Writes one image (u8 pixels) into input slot `slot` as floats in [0, 1].
    pub fn load_image(&mut self, slot: usize, pixels: &[u8]) {
        let size = pixels.len();
        normalise(&mut self.input[slot * size..(slot + 1) * size], pixels);
    }

    /// Gradient buffer for the logits of `n` samples (written by the loss before `backward`).
    pub fn logits_and_grad(&mut self, n: usize, classes: usize) -> (&[f32], &mut [f32]) {
        let logits = &self.acts.last().expect("model has layers")[..n * classes];
        (logits, &mut self.grad[..n * classes])
    }
}

/// u8 pixels to floats in [0, 1].
fn normalise(dst: &mut [f32], pixels: &[u8]) {
    dst.iter_mut().zip(pixels).for_each(|(x, &p)| *x = f32::from(p) * (1.0 / 255.0));
}

/// Mixes two numbers into a well-spread seed (SplitMix64 finaliser).
pub fn mix_seed(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Model {
    /// Builds the architecture with all parameters zero.
    pub fn new(spec: ModelSpec, classes: usize) -> Result<Model> {
        let layers = spec.build(classes)?;
        let mut ranges = Vec::with_capacity(layers.len());
        let mut offset = 0;
        for layer in &layers {
            let len = param_count(layer.as_ref());
            ranges.push(offset..offset + len);
            offset += len;
        }
        Ok(Model { spec, layers, ranges, params: vec![0.0; offset], classes })
    }

    /// Builds the architecture and initialises its parameters from `seed`.
    pub fn initialised(spec: ModelSpec, classes: usize, seed: u64) -> Result<Model> {
        let mut model = Model::new(spec, classes)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (layer, range) in model.layers.iter().zip(&model.ranges) {
            layer.init_params(&mut model.params[range.clone()], &mut rng);
        }
        Ok(model)
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Values per input sample.
    pub fn input_size(&self) -> usize {
        self.spec.input.size()
    }

    /// The layers.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Named parameter tensors with their place in the flat buffer: `(name, spec, range)`, named
    /// `<layer index>.<tensor>`.
    pub fn tensors(&self) -> Vec<(String, ParamSpec, Range<usize>)> {
        let mut out = Vec::new();
        for (i, (layer, range)) in self.layers.iter().zip(&self.ranges).enumerate() {
            let mut offset = range.start;
            for spec in layer.param_specs() {
                let len = spec.len();
                out.push((format!("{i}.{}", spec.name), spec, offset..offset + len));
                offset += len;
            }
        }
        out
    }

    /// True when some parameters are statistics updated outside the optimiser (batch norm).
    pub fn has_state(&self) -> bool {
        self.tensors().iter().any(|(_, spec, _)| !spec.trainable)
    }

    /// Adds the statistics of the last training forward over `n` samples in `ws` into `acc`
    /// (laid out like `params`).
    pub fn accumulate_state(&self, ws: &Workspace, n: usize, acc: &mut [f32]) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.accumulate_state(&ws.scratch[i], n, &mut acc[self.ranges[i].clone()]);
        }
    }

    /// Updates the non-trainable parameters from statistics summed over `count` forward calls,
    /// after `updates` earlier updates (see `Layer::update_state`).
    pub fn update_state(&mut self, acc: &[f32], count: usize, updates: usize) {
        for (i, layer) in self.layers.iter().enumerate() {
            let range = self.ranges[i].clone();
            layer.update_state(&mut self.params[range.clone()], &acc[range], count, updates);
        }
    }

    /// Forward multiply-adds per sample.
    pub fn macs_per_sample(&self) -> usize {
        self.layers.iter().map(|l| l.macs()).sum()
    }

    /// A workspace for batches of up to `capacity` samples.
    pub fn workspace(&self, capacity: usize) -> Workspace {
        let max_act = self.layers.iter().map(|l| l.output_shape().size()).chain([self.input_size()]).max().unwrap_or(0);
        Workspace {
            capacity,
            input: vec![0.0; capacity * self.input_size()],
            acts: self.layers.iter().map(|l| vec![0.0; capacity * l.output_shape().size()]).collect(),
            scratch: self.layers.iter().map(|l| vec![0.0; l.scratch_len(capacity)]).collect(),
            grad: vec![0.0; capacity * max_act],
            grad_next: vec![0.0; capacity * max_act],
        }
    }

    /// Runs the first `n` samples of `ws.input` through the model and returns their logits.
    /// `seed` drives dropout in training mode. In inference, a layer followed by 2×2 max pooling
    /// writes the pooled output directly where it can (`Layer::forward_pooled`); its own output
    /// buffer is then left as it was. In training, so does a first layer that
    /// `Layer::trains_pooled`.
    pub fn forward<'w>(&self, ws: &'w mut Workspace, n: usize, train: bool, seed: u64) -> &'w [f32] {
        assert!(n <= ws.capacity, "batch of {n} exceeds workspace capacity {}", ws.capacity);
        let mut i = 0;
        while i < self.layers.len() {
            let pooled_next = if train { i == 0 && self.first_trains_pooled() } else { self.pooled_next(i) };
            if pooled_next && self.layers[i].forward_pooled(self.forward_args(ws, i, i + 1, n, train, seed)) {
                i += 2;
                continue;
            }
            self.layers[i].forward(self.forward_args(ws, i, i, n, train, seed));
            i += 1;
        }
        &ws.acts.last().expect("model has layers")[..n * self.classes]
    }

    /// Whether layer `i + 1` is 2×2 max pooling.
    fn pooled_next(&self, i: usize) -> bool {
        self.layers.get(i + 1).is_some_and(|l| l.max_pool_window() == Some(2))
    }

    /// Whether the first layer trains together with the 2×2 max pooling after it
    /// (`Layer::trains_pooled`).
    fn first_trains_pooled(&self) -> bool {
        self.pooled_next(0) && self.layers[0].trains_pooled()
    }

    /// The forward arguments of layer `i` writing into the output buffer of layer `out` (`≥ i`).
    fn forward_args<'a>(
        &'a self,
        ws: &'a mut Workspace,
        i: usize,
        out: usize,
        n: usize,
        train: bool,
        seed: u64,
    ) -> Forward<'a> {
        let (before, after) = ws.acts.split_at_mut(out);
        Forward {
            n,
            params: &self.params[self.ranges[i].clone()],
            x: if i == 0 { &ws.input[..] } else { &before[i - 1][..] },
            y: &mut after[0],
            scratch: &mut ws.scratch[i],
            train,
            seed: mix_seed(seed, i as u64),
        }
    }

    /// Back-propagates the logits gradient left in the workspace by the loss, accumulating
    /// parameter gradients into `grads` (same layout as `params`).
    ///
    /// A first layer that trained together with its pooling (`Layer::trains_pooled`) takes the
    /// pooled output's gradient itself, and the pooling layer's own backward pass is skipped.
    pub fn backward(&self, ws: &mut Workspace, n: usize, grads: &mut [f32]) {
        let first_pooled = self.first_trains_pooled();
        let last_separate = if first_pooled { 2 } else { 0 };
        for i in (last_separate..self.layers.len()).rev() {
            let x = if i == 0 { &ws.input[..] } else { &ws.acts[i - 1][..] };
            self.layers[i].backward(Backward {
                n,
                params: &self.params[self.ranges[i].clone()],
                x,
                y: &ws.acts[i],
                dy: &mut ws.grad,
                dx: (i > 0).then_some(&mut ws.grad_next[..]),
                dparams: &mut grads[self.ranges[i].clone()],
                scratch: &mut ws.scratch[i],
            });
            std::mem::swap(&mut ws.grad, &mut ws.grad_next);
        }
        if first_pooled {
            self.layers[0].backward_pooled(Backward {
                n,
                params: &self.params[self.ranges[0].clone()],
                x: &ws.input,
                y: &ws.acts[1],
                dy: &mut ws.grad,
                dx: None,
                dparams: &mut grads[self.ranges[0].clone()],
                scratch: &mut ws.scratch[0],
            });
        }
    }

    /// A Keras-style summary table: layer, output shape, parameters, and totals.
    pub fn summary(&self) -> String {
        let mut s = format!("{:<28}{:<24}{:>10}\n", "Layer (type)", "Output Shape", "Param #");
        s.push_str(&"=".repeat(62));
        s.push('\n');
        for (i, layer) in self.layers.iter().enumerate() {
            let name = format!("{} ({})", i, layer.kind());
            let params = param_count(layer.as_ref());
            s.push_str(&format!("{name:<28}{:<24}{params:>10}\n", layer.output_shape().describe()));
        }
        s.push_str(&"=".repeat(62));
        let total = self.params.len();
        let fixed: usize =
            self.tensors().iter().filter(|(_, spec, _)| !spec.trainable).map(|(_, spec, _)| spec.len()).sum();
        s.push_str(&format!(
            "\nTotal params: {total}\nTrainable params: {}\nNon-trainable params: {fixed}\n",
            total - fixed
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::loss::softmax_cross_entropy;

    #[test]
    fn same_seed_same_parameters_and_different_seed_differs() {
        let a = Model::initialised(ModelSpec::seed(), 10, 1).unwrap();
        let b = Model::initialised(ModelSpec::seed(), 10, 1).unwrap();
        let c = Model::initialised(ModelSpec::seed(), 10, 2).unwrap();
        assert_eq!(a.params, b.params);
        assert_ne!(a.params, c.params);
    }

    #[test]
    fn inference_with_fused_pooling_equals_the_layers_one_by_one() {
        // Without dropout, training mode computes the same function (the second convolution and
        // its pooling layer by layer, the first by its full output), while inference pools inside
        // both convolutions where the CPU allows it.
        let mut spec = ModelSpec::seed();
        spec.layers.retain(|l| !matches!(l, crate::nn::spec::LayerSpec::Dropout { .. }));
        let model = Model::initialised(spec, 10, 5).unwrap();
        let n = 3;
        let mut ws = model.workspace(n);
        let pixels: Vec<u8> = (0..n * 784).map(|i| ((i * 53) % 256) as u8).collect();
        ws.load_images(&pixels);
        let layer_by_layer = model.forward(&mut ws, n, true, 0).to_vec();
        let inference = model.forward(&mut ws, n, false, 0);
        for (a, b) in inference.iter().zip(&layer_by_layer) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn tensors_are_named_by_layer_and_cover_the_buffer() {
        let m = Model::new(ModelSpec::seed(), 10).unwrap();
        let t = m.tensors();
        let names: Vec<&str> = t.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["0.kernel", "0.bias", "2.kernel", "2.bias", "6.kernel", "6.bias", "8.kernel", "8.bias"]);
        assert_eq!(t.last().unwrap().2.end, m.params.len());
        assert_eq!(m.macs_per_sample(), 460_800 + 1_843_200 + 204_800 + 1_280);
    }

    #[test]
    fn whole_model_gradient_matches_finite_difference_on_sampled_parameters() {
        let model = Model::initialised(ModelSpec::seed(), 10, 3).unwrap();
        let n = 2;
        let mut ws = model.workspace(n);
        let pixels: Vec<u8> = (0..n * 784).map(|i| ((i * 37) % 256) as u8).collect();
        ws.load_images(&pixels);
        let labels = [3u8, 7];
        let loss_of = |m: &Model, ws: &mut Workspace| {
            m.forward(ws, n, true, 0);
            let (logits, grad) = ws.logits_and_grad(n, 10);
            let logits = logits.to_vec();
            softmax_cross_entropy(&logits, &labels, 10, 1.0, grad).loss_sum
        };
        loss_of(&model, &mut ws);
        let mut grads = vec![0.0; model.params.len()];
        model.backward(&mut ws, n, &mut grads);
        let mut probe = Model::new(ModelSpec::seed(), 10).unwrap();
        probe.params = model.params.clone();
        for idx in (0..grads.len()).step_by(7919) {
            let orig = probe.params[idx];
            probe.params[idx] = orig + 2e-3;
            let up = loss_of(&probe, &mut ws);
            probe.params[idx] = orig - 2e-3;
            let down = loss_of(&probe, &mut ws);
            probe.params[idx] = orig;
            let numeric = (up - down) / 4e-3;
            let err = (numeric - grads[idx] as f64).abs();
            assert!(err < 2e-3 + 5e-2 * numeric.abs(), "param {idx}: {numeric} vs {}", grads[idx]);
        }
    }
}
