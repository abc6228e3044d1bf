//! Property tests: round trips of the file formats, the batcher's epoch coverage, augmentation,
//! softmax, and the photo pipeline, each over many generated inputs.

use image::{ImageFormat, Rgb, RgbImage};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use wardrobe::data::augment::{Augment, Visit};
use wardrobe::data::batch::Batcher;
use wardrobe::data::dataset::Dataset;
use wardrobe::data::decode;
use wardrobe::data::idx::{self, IdxArray, LABELS_MAGIC};
use wardrobe::data::photo;
use wardrobe::nn::loss::{argmax, softmax};

fn idx_array() -> impl Strategy<Value = IdxArray> {
    prop::collection::vec(1usize..6, 1..4).prop_flat_map(|dims| {
        let len: usize = dims.iter().product();
        prop::collection::vec(any::<u8>(), len).prop_map(move |data| IdxArray { dims: dims.clone(), data })
    })
}

fn dataset() -> impl Strategy<Value = Dataset> {
    (1usize..5).prop_flat_map(|n| {
        (prop::collection::vec(0u16..10, n), prop::collection::vec(any::<u8>(), n * 784))
            .prop_map(|(labels, images)| Dataset::fashion(images, labels, 28, 28).unwrap())
    })
}

fn augment() -> impl Strategy<Value = Augment> {
    (0u8..=8, any::<bool>(), any::<bool>(), 0.0f32..=45.0, 0.0f32..=1.0).prop_map(
        |(shift, flip, alternate, rotate, erase)| Augment { shift, flip, alternate: flip && alternate, rotate, erase },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn idx_encode_then_parse_is_identity(array in idx_array()) {
        let magic = 0x0800 + array.dims.len() as u32;
        prop_assert_eq!(idx::parse(idx::encode(&array), magic, Path::new("p")).unwrap(), array);
    }

    #[test]
    fn idx_parse_never_panics_and_accepts_only_consistent_arrays(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(a) = idx::parse(bytes, LABELS_MAGIC, Path::new("p")) {
            prop_assert_eq!(a.dims.iter().product::<usize>(), a.data.len());
        }
    }

    #[test]
    fn csv_write_then_read_is_identity(data in dataset()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        wardrobe::data::csv::write(&path, &data).unwrap();
        let back = wardrobe::data::csv::read(&path).unwrap();
        prop_assert_eq!((back.images, back.labels), (data.images, data.labels));
    }

    #[test]
    fn batcher_covers_every_sample_once_per_epoch(samples in 1usize..3000, batch in 1usize..300, seed: u64, epoch in 0usize..50) {
        let mut b = Batcher::new(samples, batch, seed);
        let expected_batches = b.batches_per_epoch();
        let batches: Vec<Vec<u32>> = b.epoch(epoch).map(|c| c.to_vec()).collect();
        prop_assert_eq!(batches.len(), expected_batches);
        prop_assert!(batches[..batches.len() - 1].iter().all(|c| c.len() == batch));
        let mut all: Vec<u32> = batches.concat();
        all.sort_unstable();
        prop_assert_eq!(all, (0..samples as u32).collect::<Vec<_>>());
    }

    /// Augmentation sees only pixels (labels stay with their sample index), keeps the image's
    /// shape, never creates brightness the image did not have, and is a function of its seed
    /// and visit.
    #[test]
    fn augmentation_keeps_shape_and_is_seeded(aug in augment(), src in prop::collection::vec(any::<u8>(), 784), seed: u64, image: u32, epoch in 1usize..100) {
        let (mut a, mut b) = (vec![0u8; 784], vec![0u8; 784]);
        let visit = Visit { seed, image, epoch };
        aug.apply(&src, &mut a, (28, 28, 1), visit, &mut ChaCha8Rng::seed_from_u64(seed));
        aug.apply(&src, &mut b, (28, 28, 1), visit, &mut ChaCha8Rng::seed_from_u64(seed));
        prop_assert_eq!(&a, &b);
        prop_assert!(a.iter().max() <= src.iter().max());
        let mut off = vec![0u8; 784];
        Augment::default().apply(&src, &mut off, (28, 28, 1), visit, &mut ChaCha8Rng::seed_from_u64(seed));
        prop_assert_eq!(off, src);
    }

    #[test]
    fn softmax_is_a_distribution_with_the_logits_argmax(logits in prop::collection::vec(-1000.0f32..1000.0, 1..20)) {
        let mut probs = vec![0.0; logits.len()];
        softmax(&logits, &mut probs);
        prop_assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        prop_assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
        prop_assert_eq!(logits[argmax(&probs)], logits[argmax(&logits)]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// Any picture with a product on it, whatever its size, background or product colour,
    /// becomes 28×28 pixels. (A picture of nothing but background is refused with an error.)
    #[test]
    fn photo_pipeline_always_gives_28_by_28(w in 8u32..300, h in 8u32..300, bg: [u8; 3], seed: u64, jpeg: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let light_background = bg.iter().map(|&c| u32::from(c)).sum::<u32>() > 382;
        let img = RgbImage::from_fn(w, h, |x, y| {
            let inside = x > w / 4 && x < 3 * w / 4 && y > h / 5 && y < 4 * h / 5;
            let product = if light_background { Rgb([rng.random_range(0..60), 30, 30]) } else { Rgb([rng.random_range(195..=255), 220, 220]) };
            if inside { product } else { Rgb(bg) }
        });
        let mut bytes = Vec::new();
        let format = if jpeg { ImageFormat::Jpeg } else { ImageFormat::Png };
        img.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
        let pixels = photo::from_bytes(&bytes, Path::new("p"), decode::DEFAULT_MAX_PIXELS).unwrap();
        prop_assert_eq!(pixels.len(), 784);
    }

    #[test]
    fn a_picture_of_nothing_is_refused_cleanly(w in 1u32..100, h in 1u32..100, bg: [u8; 3]) {
        let mut bytes = Vec::new();
        RgbImage::from_pixel(w, h, Rgb(bg)).write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
        let err = photo::from_bytes(&bytes, Path::new("p"), decode::DEFAULT_MAX_PIXELS).unwrap_err().to_string();
        prop_assert!(err.contains("nothing but background"), "{}", err);
    }

    #[test]
    fn photo_pipeline_refuses_garbage_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(pixels) = photo::from_bytes(&bytes, Path::new("p"), decode::DEFAULT_MAX_PIXELS) {
            prop_assert_eq!(pixels.len(), 784);
        }
    }
}
