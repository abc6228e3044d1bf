//! Shared helpers for the integration tests: the real Fashion-MNIST files, which must be
//! installed (Debian package `dataset-fashion-mnist`); tests fail, never skip, without them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use wardrobe::data::dataset::{DEFAULT_DATA_DIR, Dataset, Split};

/// The real data directory, or a panic naming the package to install.
pub fn data_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("WARDROBE_DATA").unwrap_or_else(|_| DEFAULT_DATA_DIR.into()));
    assert!(
        dir.join("t10k-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST not found in {}: install it with `apt-get install -y dataset-fashion-mnist`",
        dir.display()
    );
    dir
}

/// A real split.
pub fn load(split: Split) -> Dataset {
    Dataset::load_split(&data_dir(), split).expect("real data loads")
}

/// The wardrobe binary built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wardrobe"))
}

/// Runs the binary; returns (exit success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin()).args(args).output().expect("binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Asserts a run failed with exactly one `error:` line mentioning `needle`, and no panic.
pub fn assert_clean_failure(args: &[&str], needle: &str) {
    let (ok, _, err) = run(args);
    assert!(!ok, "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one error line, got {err}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{args:?}: '{}' lacks '{needle}'", lines[0]);
}
