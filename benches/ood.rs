//! What the out-of-distribution score costs beside inference: 256 real test images through the
//! default preset, probabilities alone against probabilities, features and the score (fitted
//! on 2,000 training images).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wardrobe::data::dataset::{DEFAULT_DATA_DIR, Dataset, Split};
use wardrobe::nn::infer::Predictor;
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;
use wardrobe::train::session::fit_ood;

fn bench_score(c: &mut Criterion) {
    let dir = std::path::Path::new(DEFAULT_DATA_DIR);
    let (train, test) =
        (Dataset::load_split(dir, Split::Train).unwrap(), Dataset::load_split(dir, Split::Test).unwrap());
    let model = Model::initialised(ModelSpec::default_preset(), 10, 1).unwrap();
    let ood = fit_ood(&model, (&train.slice(0..2_000), &train.slice(2_000..3_000))).unwrap();
    let images = &test.slice(0..256).images;
    let mut predictor = Predictor::new(&model, 256);
    c.bench_function("inference/default/256 images", |b| b.iter(|| black_box(predictor.probabilities(images))));
    c.bench_function("inference/default/256 images with ood score", |b| {
        b.iter(|| {
            let (probs, features) = predictor.probabilities_and_features(images);
            black_box(ood.score.scores(&features, &probs, 10))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5)).without_plots();
    targets = bench_score
}
criterion_main!(benches);
