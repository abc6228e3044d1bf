//! A sequential model: its layers, all parameters in one flat buffer (layer after layer, tensor
//! after tensor), its training and inference plans (`crate::nn::plan`), and per-thread
//! workspaces holding activations and scratch for a batch. Forward and backward are loops over
//! a plan's steps.

use crate::error::Result;
use crate::nn::conv::{ConvBackward, ConvForward};
use crate::nn::int8::{self, Int8Model};
use crate::nn::layer::{Backward, Forward, Layer, ParamSpec, Shape, param_count};
use crate::nn::plan::{Plan, Step};
use crate::nn::spec::ModelSpec;
use crate::seed::mix_seed;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// A built model with its parameters.
pub struct Model {
    /// The architecture it was built from.
    pub spec: ModelSpec,
    layers: Vec<Box<dyn Layer>>,
    ranges: Vec<Range<usize>>,
    /// Per layer, its parameters' place in a statistics buffer (empty for layers without
    /// non-trainable parameters).
    state_ranges: Vec<Range<usize>>,
    /// All parameters, flat.
    pub params: Vec<f32>,
    classes: usize,
    /// Softmax temperature of inference (1 = the raw softmax; fitted on validation data it
    /// makes the probabilities calibrated). Training ignores it.
    pub temperature: f32,
    train_plan: Plan,
    infer_plan: Plan,
    /// Its int8 form, which inference runs instead when present (see `crate::nn::int8`).
    int8: Option<Int8Model>,
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
    /// The int8 model's buffers, when the model has an int8 form.
    int8: Option<int8::Workspace>,
}

impl Workspace {
    /// Largest batch this workspace holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Writes images (u8 pixels) into the input as floats in [0, 1].
    pub fn load_images(&mut self, pixels: &[u8]) {
        match &mut self.int8 {
            Some(q) => q.pixels[..pixels.len()].copy_from_slice(pixels),
            None => normalise(&mut self.input[..pixels.len()], pixels),
        }
    }

    /// Writes one image (u8 pixels) into input slot `slot` as floats in [0, 1].
    pub fn load_image(&mut self, slot: usize, pixels: &[u8]) {
        let size = pixels.len();
        match &mut self.int8 {
            Some(q) => q.pixels[slot * size..(slot + 1) * size].copy_from_slice(pixels),
            None => normalise(&mut self.input[slot * size..(slot + 1) * size], pixels),
        }
    }

    /// Gradient buffer for the logits of `n` samples (written by the loss before `backward`).
    pub fn logits_and_grad(&mut self, n: usize, classes: usize) -> (&[f32], &mut [f32]) {
        let logits = &self.acts.last().expect("model has layers")[..n * classes];
        (logits, &mut self.grad[..n * classes])
    }
}

/// Each channel's mean and then each channel's standard deviation (`out`: 2 × channels) over
/// the pixels of one NHWC `image` of `shape`.
pub(crate) fn channel_statistics(image: &[f32], shape: Shape, out: &mut [f32]) {
    let (means, deviations) = out.split_at_mut(shape.c);
    means.fill(0.0);
    deviations.fill(0.0);
    image.chunks_exact(shape.c).for_each(|px| means.iter_mut().zip(px).for_each(|(m, v)| *m += v));
    means.iter_mut().for_each(|m| *m /= (shape.h * shape.w) as f32);
    image
        .chunks_exact(shape.c)
        .for_each(|px| deviations.iter_mut().zip(px).zip(&*means).for_each(|((d, v), m)| *d += (v - m) * (v - m)));
    deviations.iter_mut().for_each(|d| *d = (*d / (shape.h * shape.w) as f32).sqrt());
}

/// u8 pixels to floats in [0, 1].
fn normalise(dst: &mut [f32], pixels: &[u8]) {
    dst.iter_mut().zip(pixels).for_each(|(x, &p)| *x = f32::from(p) * (1.0 / 255.0));
}

impl Model {
    /// Builds the architecture with all parameters zero.
    pub fn new(spec: ModelSpec, classes: usize) -> Result<Model> {
        let layers = spec.build(classes)?;
        let (mut ranges, mut state_ranges) = (Vec::with_capacity(layers.len()), Vec::with_capacity(layers.len()));
        let (mut offset, mut state_offset) = (0, 0);
        for layer in &layers {
            let len = param_count(layer.as_ref());
            ranges.push(offset..offset + len);
            offset += len;
            let state = if layer.param_specs().iter().any(|p| !p.trainable) { len } else { 0 };
            state_ranges.push(state_offset..state_offset + state);
            state_offset += state;
        }
        let (train_plan, infer_plan) = (Plan::new(&spec, &layers, true), Plan::new(&spec, &layers, false));
        Ok(Model {
            spec,
            layers,
            ranges,
            state_ranges,
            params: vec![0.0; offset],
            classes,
            temperature: 1.0,
            train_plan,
            infer_plan,
            int8: None,
        })
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

    /// Copies the parameters of the first `count` layers from `from`, whose architecture must
    /// agree up to there (input shape and those layers).
    pub fn copy_layers_from(&mut self, from: &Model, count: usize) -> Result<()> {
        let same = self.spec.input == from.spec.input
            && count <= self.layers.len().min(from.layers.len())
            && self.spec.layers[..count] == from.spec.layers[..count];
        if !same {
            return Err(crate::Error::Shape(format!(
                "the architectures differ before layer {count} (inputs {} and {})",
                self.spec.input.hwc(),
                from.spec.input.hwc()
            )));
        }
        let end = self.ranges.get(count.wrapping_sub(1)).map_or(0, |r| r.end);
        self.params[..end].copy_from_slice(&from.params[..end]);
        Ok(())
    }

    /// Length of a statistics buffer for [`Model::accumulate_state`]: the parameters of the
    /// layers that have statistics updated outside the optimiser (batch norm); 0 when none do.
    pub fn state_len(&self) -> usize {
        self.state_ranges.last().map_or(0, |r| r.end)
    }

    /// Adds the statistics of the last training forward over `n` samples in `ws` into `acc`
    /// ([`Model::state_len`] values: each such layer's laid out like its parameters).
    pub fn accumulate_state(&self, ws: &Workspace, n: usize, acc: &mut [f32]) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.accumulate_state(&ws.scratch[i], n, &mut acc[self.state_ranges[i].clone()]);
        }
    }

    /// Updates the non-trainable parameters from statistics summed over `count` forward calls,
    /// after `updates` earlier updates (see `Layer::update_state`).
    pub fn update_state(&mut self, acc: &[f32], count: usize, updates: usize) {
        for (i, layer) in self.layers.iter().enumerate() {
            let (range, state) = (self.ranges[i].clone(), self.state_ranges[i].clone());
            layer.update_state(&mut self.params[range], &acc[state], count, updates);
        }
    }

    /// Forward multiply-adds per sample.
    pub fn macs_per_sample(&self) -> usize {
        self.layers.iter().map(|l| l.macs()).sum()
    }

    /// The plan of a mode (training or inference).
    pub fn plan(&self, train: bool) -> &Plan {
        if train { &self.train_plan } else { &self.infer_plan }
    }

    /// The plan of a mode as text: one line per step, with each convolution's algorithms.
    pub fn describe_plan(&self, train: bool) -> String {
        self.plan(train).describe(&self.layers)
    }

    /// A workspace for batches of up to `capacity` samples, in either mode. Each layer's scratch
    /// serves its own passes and any fused step it leads; values a fused step keeps from call to
    /// call lie at the end, where nothing else writes.
    pub fn workspace(&self, capacity: usize) -> Workspace {
        let max_act = self.layers.iter().map(|l| l.output_shape().size()).chain([self.input_size()]).max().unwrap_or(0);
        let scratch_len = |i: usize, l: &dyn Layer| {
            let (train, train_kept) = self.train_plan.fused_scratch(i, capacity);
            let (infer, infer_kept) = self.infer_plan.fused_scratch(i, capacity);
            l.scratch_len(capacity).max(train).max(infer) + train_kept.max(infer_kept)
        };
        Workspace {
            capacity,
            input: vec![0.0; capacity * self.input_size()],
            acts: self.layers.iter().map(|l| vec![0.0; capacity * l.output_shape().size()]).collect(),
            scratch: self.layers.iter().enumerate().map(|(i, l)| vec![0.0; scratch_len(i, l.as_ref())]).collect(),
            grad: vec![0.0; capacity * max_act],
            grad_next: vec![0.0; capacity * max_act],
            int8: self.int8.as_ref().map(|q| q.workspace(capacity)),
        }
    }

    /// Runs the first `n` samples of `ws.input` through the model's plan for the mode and returns
    /// their logits. `seed` drives dropout in training mode. A fused convolution and pooling step
    /// writes the pooling's output; the convolution's own output buffer is then left as it was.
    pub fn forward<'w>(&self, ws: &'w mut Workspace, n: usize, train: bool, seed: u64) -> &'w [f32] {
        assert!(n <= ws.capacity, "batch of {n} exceeds workspace capacity {}", ws.capacity);
        if let (Some(q), Some(qws)) = (&self.int8, &mut ws.int8) {
            assert!(!train, "a model in its int8 form only runs inference");
            let logits = ws.acts.last_mut().expect("model has layers");
            q.forward(qws, n, &mut logits[..n * self.classes]);
            return &ws.acts.last().expect("model has layers")[..n * self.classes];
        }
        for step in self.plan(train).steps() {
            let (i, out) = step.layers();
            let (before, after) = ws.acts.split_at_mut(out);
            let (x, y) = (if i == 0 { &ws.input[..] } else { &before[i - 1][..] }, &mut after[0][..]);
            let params = &self.params[self.ranges[i].clone()];
            match step {
                Step::Layer(_) => self.layers[i].forward(Forward {
                    n,
                    params,
                    x,
                    y,
                    scratch: &mut ws.scratch[i],
                    train,
                    seed: mix_seed(seed, i as u64),
                }),
                Step::ConvPool { problem, forward, .. } => {
                    let (kernel, bias) = params.split_at(problem.kernel_len());
                    let scratch = &mut ws.scratch[i];
                    let work = scratch.len() - forward.kept_len();
                    let (scratch, kept) = scratch.split_at_mut(work);
                    forward.forward(ConvForward { n, x, kernel, bias, y, scratch, kept });
                }
            }
        }
        &ws.acts.last().expect("model has layers")[..n * self.classes]
    }

    /// The layers whose outputs are summarised by their channel means in the features: every
    /// pooling layer (their outputs are written by every plan, fused or not).
    fn summarised(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.layers.len().saturating_sub(1)).filter(|&i| self.layers[i].kind().contains("Pooling"))
    }

    /// Values per sample of [`Model::features_into`].
    pub fn features_len(&self) -> usize {
        self.feature_groups().last().map_or(0, |g| g.end)
    }

    /// Where each layer's part lies in a row of [`Model::features_into`]: the last layer's
    /// input first, then one part per pooling layer (its channel means and deviations).
    pub fn feature_groups(&self) -> Vec<std::ops::Range<usize>> {
        let last_input = match self.layers.len() {
            0 | 1 => self.input_size(),
            l => self.layers[l - 2].output_shape().size(),
        };
        let mut groups = Vec::with_capacity(3);
        groups.push(0..last_input);
        for i in self.summarised() {
            let start = groups.last().map_or(0, |g| g.end);
            groups.push(start..start + 2 * self.layers[i].output_shape().c);
        }
        groups
    }

    /// The features of the first `n` samples of the last [`Model::forward`] on `ws`: the last
    /// layer's input (the penultimate features), then for every pooling layer's output the
    /// mean and the standard deviation of each channel over the image; `n × features_len()`
    /// values into `out`.
    pub fn features_into(&self, ws: &mut Workspace, n: usize, out: &mut [f32]) {
        if let (Some(q), Some(qws)) = (&self.int8, &mut ws.int8) {
            return q.features_into(qws, n, out);
        }
        let width = self.features_len();
        let (last, size) = match self.layers.len() {
            0 | 1 => (&ws.input, self.input_size()),
            l => (&ws.acts[l - 2], self.layers[l - 2].output_shape().size()),
        };
        for (s, row) in out[..n * width].chunks_exact_mut(width).enumerate() {
            row[..size].copy_from_slice(&last[s * size..][..size]);
            let mut at = size;
            for i in self.summarised() {
                let shape = self.layers[i].output_shape();
                let image = &ws.acts[i][s * shape.size()..][..shape.size()];
                channel_statistics(image, shape, &mut row[at..at + 2 * shape.c]);
                at += 2 * shape.c;
            }
        }
    }

    /// Its int8 form, when it has one.
    pub fn int8(&self) -> Option<&Int8Model> {
        self.int8.as_ref()
    }

    /// Gives it an int8 form that inference runs instead (`None`: back to f32); workspaces made
    /// before do not follow.
    pub fn set_int8(&mut self, int8: Option<Int8Model>) {
        self.int8 = int8;
    }

    /// The parameters of layer `i`.
    pub(crate) fn layer_params(&self, i: usize) -> &[f32] {
        &self.params[self.ranges[i].clone()]
    }

    /// Back-propagates the logits gradient left in the workspace by the loss through the training
    /// plan, accumulating parameter gradients into `grads` (same layout as `params`). The first
    /// layer computes no input gradient.
    pub fn backward(&self, ws: &mut Workspace, n: usize, grads: &mut [f32]) {
        for step in self.train_plan.steps().iter().rev() {
            let (i, out) = step.layers();
            let x = if i == 0 { &ws.input[..] } else { &ws.acts[i - 1][..] };
            let (params, dparams) = (&self.params[self.ranges[i].clone()], &mut grads[self.ranges[i].clone()]);
            let dx = (i > 0).then_some(&mut ws.grad_next[..]);
            match step {
                Step::Layer(_) => self.layers[i].backward(Backward {
                    n,
                    params,
                    x,
                    y: &ws.acts[out],
                    dy: &mut ws.grad,
                    dx,
                    dparams,
                    scratch: &mut ws.scratch[i],
                }),
                Step::ConvPool { problem, backward, .. } => {
                    let backward = backward.as_ref().expect("a training plan's fused steps have a backward pass");
                    let (dkernel, dbias) = dparams.split_at_mut(problem.kernel_len());
                    backward.backward(ConvBackward {
                        n,
                        x,
                        y: &ws.acts[out],
                        dy: &mut ws.grad,
                        kernel: &params[..problem.kernel_len()],
                        dkernel,
                        dbias,
                        dx,
                        scratch: &mut ws.scratch[i],
                    });
                }
            }
            std::mem::swap(&mut ws.grad, &mut ws.grad_next);
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
    use crate::nn::layer::Shape;
    use crate::nn::loss::softmax_cross_entropy;

    #[test]
    fn copying_layers_takes_their_parameters_and_leaves_the_rest() {
        let from = Model::initialised(ModelSpec::seed(), 10, 1).unwrap();
        let mut to = Model::initialised(ModelSpec::seed().fitted_to(from.spec.input, 7), 7, 2).unwrap();
        let fresh = to.params.clone();
        to.copy_layers_from(&from, 8).unwrap();
        let last = to.ranges[8].clone();
        assert_eq!(to.params[..last.start], from.params[..last.start]);
        assert_eq!(to.params[last.clone()], fresh[last]);
        assert!(to.copy_layers_from(&from, 9).is_err(), "the last layers differ");
        let other = Model::initialised(ModelSpec::seed().fitted_to(Shape::new(32, 32, 3), 10), 10, 1).unwrap();
        assert!(to.copy_layers_from(&other, 1).unwrap_err().to_string().contains("architectures differ"));
    }

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

    /// Checks the gradient of a two-image loss through the training plan against central
    /// finite differences, for every trainable tensor: all its values, or 200 spread over it.
    /// A step that crosses a ReLU kink or switches a pooling maximum makes the loss visibly
    /// non-linear over the step (the two one-sided slopes disagree); such values are counted
    /// but not compared. Returns (values compared, values skipped as non-smooth).
    fn check_model_gradient(spec: ModelSpec) -> (usize, usize) {
        let model = Model::initialised(spec.clone(), 10, 3).unwrap();
        let n = 2;
        let mut ws = model.workspace(n);
        let pixels: Vec<u8> = (0..n * model.input_size()).map(|i| ((i * 37) % 256) as u8).collect();
        ws.load_images(&pixels);
        let labels = [3u16, 7];
        let loss_of = |m: &Model, ws: &mut Workspace| {
            m.forward(ws, n, true, 11);
            let (logits, grad) = ws.logits_and_grad(n, 10);
            let logits = logits.to_vec();
            softmax_cross_entropy(&logits, &labels, 10, 0.0, 1.0, grad).loss_sum
        };
        let centre = loss_of(&model, &mut ws);
        let mut grads = vec![0.0; model.params.len()];
        model.backward(&mut ws, n, &mut grads);
        let mut probe = Model::new(spec, 10).unwrap();
        probe.params = model.params.clone();
        // The loss's own rounding: logits come out of long f32 sums, so the loss moves by some
        // units in the last place of an f32 when a parameter moves by nothing it can see.
        let noise = 16.0 * f64::from(f32::EPSILON) * centre.abs().max(1.0);
        // The step of the central differences, and the difference the loss's rounding alone can
        // make to a slope measured with it.
        let step = 1e-3_f32;
        let h = f64::from(step);
        let slack = 2.0 * noise / h;
        let (mut compared, mut skipped, mut off) = (0, 0, Vec::new());
        for (name, tensor, range) in model.tensors().into_iter().filter(|(_, t, _)| t.trainable) {
            // Per tensor: squared norms of the numeric gradient and of its difference to the
            // analytic one, over the values compared.
            let (mut norm, mut error, mut values) = (0.0, 0.0, 0.0);
            let stride = (range.len() / 200).max(1);
            for idx in range.clone().step_by(stride).take(200) {
                let orig = probe.params[idx];
                probe.params[idx] = orig + step;
                let up = loss_of(&probe, &mut ws);
                probe.params[idx] = orig - step;
                let down = loss_of(&probe, &mut ws);
                probe.params[idx] = orig;
                let (numeric, curvature) = ((up - down) / (2.0 * h), (up - 2.0 * centre + down).abs() / h);
                if curvature > 2e-2 * numeric.abs() + 4.0 * noise / h {
                    skipped += 1;
                    continue;
                }
                compared += 1;
                let analytic = f64::from(grads[idx]);
                let what = format!("{name}{:?}[{}]: {numeric} vs {analytic}", tensor.dims, idx - range.start);
                if (numeric - analytic).abs() > slack + 2e-2 * numeric.abs() {
                    off.push(what);
                }
                norm += numeric * numeric;
                error += (numeric - analytic).powi(2);
                values += 1.0;
            }
            // A wrong gradient moves the whole tensor; a kink moves one value.
            assert!(
                error <= 1e-3 * norm + values * slack * slack,
                "{name}: relative error {:.4}",
                (error / norm).sqrt()
            );
        }
        // Kinks the curvature test cannot see leave a few values off, by a few percent or (a
        // probe sitting on the kink) more.
        assert!(off.len() * 100 <= compared, "{} of {compared} values more than 2% off: {off:?}", off.len());
        (compared, skipped)
    }

    #[test]
    fn whole_model_gradient_of_the_seed_preset_matches_finite_differences() {
        let (compared, skipped) = check_model_gradient(ModelSpec::seed());
        assert_eq!(compared + skipped, 4 * 200 + 32 + 64 + 128 + 10, "every tensor of the seed CNN, every bias whole");
        assert!(skipped * 20 <= compared, "{skipped} values skipped as non-smooth");
    }

    #[test]
    fn whole_model_gradient_of_the_conv_batch_norm_net_matches_finite_differences() {
        // The default preset: four convolutions and two dense layers (kernels: 200 values
        // each; biases: all, but 200 of the first dense layer's 256), five batch norms (gamma
        // and beta: all of their 32, 32, 64 and 64, 200 of the last one's 256).
        let (compared, skipped) = check_model_gradient(ModelSpec::default_preset());
        assert_eq!(compared + skipped, 6 * 200 + 32 + 32 + 64 + 64 + 200 + 10 + 2 * (32 + 32 + 64 + 64 + 200));
        assert!(skipped * 10 <= compared, "{skipped} values skipped as non-smooth");
    }
}
