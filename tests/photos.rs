//! Seller-style photos made from real test items, through `photo` conversion and `label`: the
//! model must do about as well on them as on the 28×28 originals, and `label` must survive broken
//! files, resume, and kill -9.

mod common;

use common::{bin, load, run, trained_model, write_photo};
use image::{GrayImage, Luma};
use std::path::Path;
use wardrobe::data::dataset::{CLASS_NAMES, Split, fashion_classes};
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;

/// Runs `wardrobe label --model MODEL PHOTOS --out OUT EXTRA...`.
fn label(model: &Path, photos: &Path, out: &Path, extra: &[&str]) -> (bool, String, String) {
    let (m, p, o) = (model.to_str().unwrap(), photos.to_str().unwrap(), out.to_str().unwrap());
    run(&[&["label", "--model", m, p, "--out", o], extra].concat())
}

fn labels_of(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn photos_of_test_items_are_labelled_about_as_well_as_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    let model = trained_model(&model_dir);
    let test = load(Split::Test).slice(0..1_000);
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for i in 0..test.len() {
        write_photo(test.image(i), i, &photos);
    }
    let direct = wardrobe::train::trainer::evaluate(&model, &test).accuracy;
    let out = dir.path().join("labels.csv");
    let (ok, stdout, err) = label(&model_dir, &photos, &out, &[]);
    assert!(ok, "{err}");
    assert!(stdout.contains("1000 photos: 1000 labelled now"), "{stdout}");
    let rows = labels_of(&out);
    assert_eq!(rows.len(), 1000);
    let correct = rows
        .iter()
        .filter(|(path, label)| {
            let i: usize = Path::new(path).file_stem().unwrap().to_str().unwrap()[4..].parse().unwrap();
            CLASS_NAMES[test.labels[i] as usize] == label
        })
        .count();
    let via_photos = correct as f64 / 1000.0;
    eprintln!("28×28 originals {direct:.3}, seller photos {via_photos:.3}");
    assert!(direct > 0.8, "model too weak for a meaningful comparison: {direct}");
    assert!(via_photos >= direct - 0.03, "photos {via_photos:.3} vs originals {direct:.3}");

    let (ok, stdout, _) = label(&model_dir, &photos, &out, &[]);
    assert!(ok && stdout.contains("0 labelled now, 1000 already labelled"), "{stdout}");
}

#[test]
fn broken_files_are_reported_and_good_photos_still_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    let model = Model::initialised(ModelSpec::seed(), 10, 1).unwrap();
    wardrobe::model_dir::save(&model, &fashion_classes(), None, None, &model_dir).unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(photos.join("sub")).unwrap();
    let test = load(Split::Test);
    write_photo(test.image(0), 0, &photos);
    write_photo(test.image(1), 1, &photos.join("sub"));
    std::fs::write(photos.join("empty.png"), b"").unwrap();
    let good = std::fs::read(photos.join("sub/item00001.jpg")).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &good[..good.len() / 3]).unwrap();
    std::fs::write(photos.join("notes.png"), b"this is a text file").unwrap();
    // A 30000×30000 PNG bomb: a tiny file whose header promises 900 million pixels.
    let mut bomb = Vec::new();
    GrayImage::from_pixel(1, 1, Luma([0]))
        .write_to(&mut std::io::Cursor::new(&mut bomb), image::ImageFormat::Png)
        .unwrap();
    bomb[16..20].copy_from_slice(&30_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&30_000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    std::fs::write(photos.join("bomb.png"), &bomb).unwrap();
    std::fs::write(photos.join("readme.txt"), b"not an image, not an image extension").unwrap();

    let out = dir.path().join("labels.jsonl");
    let (ok, stdout, err) = label(&model_dir, &photos, &out, &[]);
    assert!(ok, "{err}");
    assert!(stdout.contains("6 photos: 2 labelled now, 0 already labelled, 4 failed"), "{stdout}");
    let errors = std::fs::read_to_string(wardrobe::label::errors_path(&out)).unwrap();
    for (file, reason) in [
        ("empty.png", "empty file"),
        ("truncated.jpg", "truncated JPEG"),
        ("notes.png", "not an image"),
        ("bomb.png", "more than the limit"),
    ] {
        let line = errors.lines().find(|l| l.contains(file)).unwrap_or_else(|| panic!("{file} missing from {errors}"));
        assert!(line.contains(reason), "{line}");
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
}

#[test]
fn label_killed_mid_run_then_rerun_labels_every_photo_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    wardrobe::model_dir::save(
        &Model::initialised(ModelSpec::seed(), 10, 1).unwrap(),
        &fashion_classes(),
        None,
        None,
        &model_dir,
    )
    .unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let test = load(Split::Test);
    let n = 3_000;
    for i in 0..n {
        GrayImage::from_raw(28, 28, test.image(i).to_vec())
            .unwrap()
            .save(photos.join(format!("item{i:05}.png")))
            .unwrap();
    }
    let out = dir.path().join("labels.csv");
    let args = [
        "label",
        "--model",
        model_dir.to_str().unwrap(),
        photos.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--batch",
        "100",
    ];
    let mut child = std::process::Command::new(bin()).args(args).stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0) < 400 {
        assert!(std::time::Instant::now() < deadline, "labelling made no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::read_to_string(&out).unwrap().matches('\n').count() - 1;
    let (ok, stdout, err) = run(&args);
    assert!(ok, "{err}");
    assert!(stdout.contains(&format!("{} already labelled", partial.min(n))), "{stdout}");
    let mut paths: Vec<String> = labels_of(&out).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths.len(), n, "every photo exactly once");
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), n, "no photo twice");
}

#[test]
fn three_shards_label_a_folder_once() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    wardrobe::model_dir::save(
        &Model::initialised(ModelSpec::seed(), 10, 1).unwrap(),
        &fashion_classes(),
        None,
        None,
        &model_dir,
    )
    .unwrap();
    let test = load(Split::Test);
    let photos = dir.path().join("photos");
    for i in 0..300 {
        let sub = photos.join(format!("seller{}", i % 4));
        let path = sub.join(format!("p{i:03}.png"));
        std::fs::create_dir_all(&sub).unwrap();
        GrayImage::from_raw(28, 28, test.image(i).to_vec()).unwrap().save(&path).unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for i in 0..3 {
        let out = dir.path().join(format!("shard{i}.csv"));
        let shard = format!("{i}/3");
        let (ok, stdout, err) = label(&model_dir, &photos, &out, &["--shard", &shard]);
        assert!(ok, "{err}");
        let rows = labels_of(&out);
        assert!((70..130).contains(&rows.len()), "shard {shard}: {} rows; {stdout}", rows.len());
        total += rows.len();
        seen.extend(rows.into_iter().map(|(path, _)| path));
    }
    assert_eq!((total, seen.len()), (300, 300), "300 distinct rows in all");
    let (ok, _, err) = run(&[
        "label",
        "--model",
        model_dir.to_str().unwrap(),
        photos.to_str().unwrap(),
        "--out",
        "x.csv",
        "--shard",
        "3/3",
    ]);
    assert!(!ok && err.contains("shard '3/3': expected I/N with 0 ≤ I < N"), "{err}");
}
