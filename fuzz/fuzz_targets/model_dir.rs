//! A whole model directory (model.json + model.safetensors), or a checkpoint (those two plus
//! trainer.json and optimizer.safetensors): an error, or a model with finite weights that runs
//! one image forward to one probability per class. (Finite weights can still overflow f32 in
//! the forward pass, so the probabilities themselves may not be finite.)
//!
//! Input: a mode byte (even: model directory, odd: checkpoint), then each file as a 4-byte
//! little-endian length and that many bytes (cut short where the input ends).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use wardrobe::nn::infer::SingleImage;
use wardrobe::nn::model::Model;

const FILES: [&str; 4] = ["model.json", "model.safetensors", "trainer.json", "optimizer.safetensors"];

/// This process's scratch directory (in memory where /dev/shm exists).
fn scratch() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let dir = base.join(format!("wardrobe-fuzz-model-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_one_image(model: &Model) {
    let pixels = vec![77u8; model.input_size()];
    let probs = SingleImage::new(model).probabilities(&pixels).to_vec();
    assert_eq!(probs.len(), model.classes());
    assert!(model.params.iter().all(|w| w.is_finite()), "a loaded model holds a non-finite weight");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let dir = scratch();
    for name in FILES {
        let len = rest.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
        let body = rest.get(4..).unwrap_or(&[]);
        let (file, after) = body.split_at(len.min(body.len()));
        std::fs::write(dir.join(name), file).unwrap();
        rest = after;
    }
    if mode % 2 == 0 {
        if let Ok(loaded) = wardrobe::model_dir::load(&dir) {
            run_one_image(&loaded.model);
        }
    } else if let Ok(checkpoint) = wardrobe::train::checkpoint::load(&dir) {
        assert!(checkpoint.resume.state.epoch >= 1);
        run_one_image(&checkpoint.model);
    }
});
