//! Batch inference with pooled workspaces: the images are split into one contiguous part per
//! thread, and each thread runs its part through its own reused workspace in sub-batches.

use crate::nn::loss::softmax_at;
use crate::nn::model::{Model, Workspace};
use rayon::prelude::*;

/// Images a thread pushes through the layers at once in inference: small enough that a batch's
/// activations stay in the core's L2 cache (measured: 8 evaluates the default preset ~30% faster
/// than 64), large enough for efficient matrix products.
pub const INFERENCE_BATCH: usize = 8;

/// Runs a model over many images without reallocating between calls.
pub struct Predictor<'m> {
    model: &'m Model,
    workspaces: Vec<Workspace>,
}

impl<'m> Predictor<'m> {
    /// A predictor with one workspace of `batch` samples per rayon thread.
    pub fn new(model: &'m Model, batch: usize) -> Predictor<'m> {
        let threads = rayon::current_num_threads().max(1);
        Predictor { model, workspaces: (0..threads).map(|_| model.workspace(batch.max(1))).collect() }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// Test-time augmentation: the mean of the probabilities of each image and of its mirror image.
    pub fn probabilities_tta(&mut self, pixels: &[u8]) -> Vec<f32> {
        let input = self.model.spec.input;
        let mirrored = mirror(pixels, input.w, input.c);
        let mut probs = self.probabilities(pixels);
        probs.iter_mut().zip(self.probabilities(&mirrored)).for_each(|(p, q)| *p = 0.5 * (*p + q));
        probs
    }

    /// Class probabilities (rows of `classes`) for images given as u8 pixels, image after image.
    pub fn probabilities(&mut self, pixels: &[u8]) -> Vec<f32> {
        self.run(pixels, false).0
    }

    /// Class probabilities and the features (rows of [`Model::features_len`]: the last layer's
    /// input and the channel means of every pooling) of images given as u8 pixels.
    pub fn probabilities_and_features(&mut self, pixels: &[u8]) -> (Vec<f32>, Vec<f32>) {
        self.run(pixels, true)
    }

    fn run(&mut self, pixels: &[u8], with_features: bool) -> (Vec<f32>, Vec<f32>) {
        let (model, input, classes) = (self.model, self.model.input_size(), self.model.classes());
        let n = pixels.len() / input;
        let width = if with_features { model.features_len() } else { 0 };
        let (mut out, mut features) = (vec![0.0; n * classes], vec![0.0; n * width]);
        if n == 0 {
            return (out, features);
        }
        // Parts of whole workspace batches: every image is computed in the same sub-batch
        // whatever the thread count, so the results do not depend on it.
        let batch = self.workspaces[0].capacity();
        let per_thread = n.div_ceil(self.workspaces.len()).next_multiple_of(batch);
        let parts = if width > 0 { features.chunks_mut(per_thread * width).collect() } else { Vec::new() };
        let mut parts: Vec<Option<&mut [f32]>> =
            parts.into_iter().map(Some).chain(std::iter::repeat_with(|| None)).take(self.workspaces.len()).collect();
        self.workspaces
            .par_iter_mut()
            .zip(pixels.par_chunks(per_thread * input))
            .zip(out.par_chunks_mut(per_thread * classes))
            .zip(parts.par_iter_mut())
            .for_each(|(((ws, part), out), features)| outputs_into(model, ws, part, out, features.as_deref_mut()));
        (out, features)
    }
}

/// Mirrors every row (of `width` pixels of `channels` values) left–right.
pub fn mirror(pixels: &[u8], width: usize, channels: usize) -> Vec<u8> {
    pixels.chunks_exact(width * channels).flat_map(|row| row.chunks_exact(channels).rev().flatten().copied()).collect()
}

/// The low-latency path for one image at a time: one reused workspace, no threads, no allocation.
pub struct SingleImage<'m> {
    model: &'m Model,
    ws: Workspace,
    probs: Vec<f32>,
}

impl<'m> SingleImage<'m> {
    /// A single-image classifier over `model`.
    pub fn new(model: &'m Model) -> SingleImage<'m> {
        SingleImage { model, ws: model.workspace(1), probs: vec![0.0; model.classes()] }
    }

    /// Class probabilities of one image given as u8 pixels.
    pub fn probabilities(&mut self, pixels: &[u8]) -> &[f32] {
        self.ws.load_images(pixels);
        let logits = self.model.forward(&mut self.ws, 1, false, 0);
        softmax_at(logits, self.model.temperature, &mut self.probs);
        &self.probs
    }
}

/// Runs `pixels` through `ws` on the calling thread, in sub-batches of its capacity, writing
/// class probabilities (one row per image) into `out`.
pub fn probabilities_into(model: &Model, ws: &mut Workspace, pixels: &[u8], out: &mut [f32]) {
    outputs_into(model, ws, pixels, out, None);
}

/// [`probabilities_into`], also writing each image's features into `features` when given
/// (rows of [`Model::features_len`], see [`Model::features_into`]).
pub fn outputs_into(
    model: &Model,
    ws: &mut Workspace,
    pixels: &[u8],
    out: &mut [f32],
    mut features: Option<&mut [f32]>,
) {
    let (input, classes, cap, width) = (model.input_size(), model.classes(), ws.capacity(), model.features_len());
    for (b, (batch, out)) in pixels.chunks(cap * input).zip(out.chunks_mut(cap * classes)).enumerate() {
        let n = batch.len() / input;
        ws.load_images(batch);
        let logits = model.forward(ws, n, false, 0);
        for (row, probs) in logits.chunks_exact(classes).zip(out.chunks_exact_mut(classes)) {
            softmax_at(row, model.temperature, probs);
        }
        if let Some(features) = features.as_deref_mut() {
            model.features_into(ws, n, &mut features[b * cap * width..][..n * width]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::spec::ModelSpec;

    #[test]
    fn results_do_not_depend_on_batch_size_or_split() {
        let model = Model::initialised(ModelSpec::seed(), 10, 8).unwrap();
        let pixels: Vec<u8> = (0..37 * 784).map(|i| ((i * 91) % 251) as u8).collect();
        let a = Predictor::new(&model, 5).probabilities(&pixels);
        let b = Predictor::new(&model, 64).probabilities(&pixels);
        assert_eq!(a.len(), 370);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
        let single = Predictor::new(&model, 1).probabilities(&pixels[36 * 784..]);
        assert!(single.iter().zip(&a[360..]).all(|(x, y)| (x - y).abs() < 1e-5));
        assert_eq!(mirror(&[1, 2, 3, 4, 5, 6], 3, 1), vec![3, 2, 1, 6, 5, 4]);
        assert_eq!(mirror(&[1, 2, 3, 4, 5, 6], 2, 3), vec![4, 5, 6, 1, 2, 3]);
        let tta = Predictor::new(&model, 8).probabilities_tta(&pixels);
        let mirrored = Predictor::new(&model, 8).probabilities(&mirror(&pixels, 28, 1));
        assert!((tta[3] - 0.5 * (a[3] + mirrored[3])).abs() < 1e-6);
        let mut one = SingleImage::new(&model);
        assert!(one.probabilities(&pixels[36 * 784..]).iter().zip(&a[360..]).all(|(x, y)| (x - y).abs() < 1e-5));
        assert!((a[..10].iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn features_hold_the_last_layers_input_and_pooled_channel_statistics() {
        let model = Model::initialised(ModelSpec::seed(), 10, 8).unwrap();
        let pixels: Vec<u8> = (0..21 * 784).map(|i| ((i * 37) % 253) as u8).collect();
        let (probs, features) = Predictor::new(&model, 4).probabilities_and_features(&pixels);
        assert_eq!(probs, Predictor::new(&model, 4).probabilities(&pixels));
        // The dense layer's 128 inputs, then the channel means and deviations of the two
        // poolings' 32 and 64 channels.
        assert_eq!(model.feature_groups(), [0..128, 128..192, 192..320]);
        assert_eq!((model.features_len(), features.len()), (320, 21 * 320));
        let stats = features.chunks_exact(320).flat_map(|f| &f[128..]);
        assert!(stats.clone().all(|&m| m >= 0.0) && stats.clone().any(|&m| m > 0.0), "statistics of ReLU outputs");
        // A channel's deviation is at most its mean's distance to the extremes: for ReLU outputs,
        // deviation² ≤ mean · max, so a zero mean has a zero deviation.
        for f in features.chunks_exact(320) {
            let (means, deviations) = f[128..192].split_at(32);
            assert!(means.iter().zip(deviations).all(|(&m, &d)| m > 0.0 || d == 0.0), "{means:?} {deviations:?}");
        }
        // The last layer (dense 128 → 10) applied to the first 128 gives the logits: softmax of
        // kernel·feature + bias equals the probabilities.
        let last = model.tensors().into_iter().rev().take(2).map(|(_, _, r)| r).collect::<Vec<_>>();
        let (bias, kernel) = (&model.params[last[0].clone()], &model.params[last[1].clone()]);
        for (f, p) in features.chunks_exact(320).zip(probs.chunks_exact(10)) {
            let logits: Vec<f32> =
                (0..10).map(|k| bias[k] + (0..128).map(|i| f[i] * kernel[i * 10 + k]).sum::<f32>()).collect();
            let mut q = vec![0.0; 10];
            softmax_at(&logits, model.temperature, &mut q);
            assert!(p.iter().zip(&q).all(|(a, b)| (a - b).abs() < 1e-4), "{p:?} {q:?}");
        }
    }
}
