//! The Python package (`python/`): its native module built from this checkout by cargo and put
//! beside the package's Python files in a temporary directory that comes first on `PYTHONPATH`
//! (so the suite never tests a stale install), then its pytest suite in the test environment's
//! venv (`target/venv`, made by `scripts/test-deps`, which also checks that `pip install ./python`
//! works), comparing it with this build's `wardrobe` binary.

use std::path::Path;
use std::process::Command;

/// Copies the directory `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn python_package_suite_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/venv/bin/python");
    assert!(python.exists(), "{} missing: run scripts/test-deps", python.display());
    // Without the variables cargo set for this test (build scripts that watch CARGO_MANIFEST_DIR
    // would otherwise rebuild half the dependency tree).
    let mut cargo = Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("CARGO_") && !["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&name.as_str()) {
            cargo.env_remove(name);
        }
    }
    let build = cargo
        .args(["build", "--release", "--lib", "-p", "wardrobe-python"])
        .current_dir(root)
        .output()
        .expect("cargo runs");
    assert!(build.status.success(), "building the native module failed: {}", String::from_utf8_lossy(&build.stderr));
    let site = tempfile::tempdir().unwrap();
    let package = site.path().join("wardrobe");
    copy_tree(&root.join("python/wardrobe"), &package);
    std::fs::copy(root.join("target/release/lib_native.so"), package.join("_native.so")).unwrap();
    // From the repository root, so that `import wardrobe` finds the package on PYTHONPATH, not
    // python/wardrobe without its native module.
    let suite = Command::new(&python)
        .args(["-m", "pytest", "python/tests", "-q", "-p", "no:cacheprovider"])
        .current_dir(root)
        .env("PYTHONPATH", site.path())
        .env("WARDROBE_BIN", env!("CARGO_BIN_EXE_wardrobe"))
        .output()
        .expect("pytest runs");
    let out = String::from_utf8_lossy(&suite.stdout);
    assert!(suite.status.success(), "pytest failed:\n{out}\n{}", String::from_utf8_lossy(&suite.stderr));
    assert!(out.contains(" passed") && !out.contains("skipped"), "{out}");
}
