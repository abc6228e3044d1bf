//! The Python package (`python/`): `pip install ./python` into the test environment's venv
//! (`target/venv`, made by `scripts/test-deps`) from this checkout — maturin reuses what a cargo
//! build of the module just compiled — then its pytest suite, which compares the package with
//! this build's `wardrobe` binary.

use std::path::Path;
use std::process::Command;

/// A command without the variables cargo set for this test (build scripts that watch
/// `CARGO_MANIFEST_DIR` would otherwise rebuild half the dependency tree).
fn without_cargo_env(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("CARGO_") && !["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&name.as_str()) {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn python_package_installs_and_its_suite_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/venv/bin/python");
    assert!(python.exists(), "{} missing: run scripts/test-deps", python.display());
    let build = without_cargo_env(Path::new(env!("CARGO")))
        .args(["build", "--release", "--lib", "-p", "wardrobe-python"])
        .current_dir(root)
        .output()
        .expect("cargo runs");
    assert!(build.status.success(), "building the native module failed: {}", String::from_utf8_lossy(&build.stderr));
    // The venv's maturin builds it (its bin directory first on PATH).
    let path = format!("{}:{}", root.join("target/venv/bin").display(), std::env::var("PATH").unwrap_or_default());
    let install = without_cargo_env(&python)
        .args(["-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", "--no-build-isolation", "./python"])
        .current_dir(root)
        .env("PATH", path)
        .output()
        .expect("pip runs");
    assert!(install.status.success(), "pip install ./python failed: {}", String::from_utf8_lossy(&install.stderr));
    // From the repository root, so that `import wardrobe` finds the installed package, not
    // python/wardrobe without its native module.
    let suite = Command::new(&python)
        .args(["-m", "pytest", "python/tests", "-q", "-p", "no:cacheprovider"])
        .current_dir(root)
        .env("WARDROBE_BIN", env!("CARGO_BIN_EXE_wardrobe"))
        .output()
        .expect("pytest runs");
    let out = String::from_utf8_lossy(&suite.stdout);
    assert!(suite.status.success(), "pytest failed:\n{out}\n{}", String::from_utf8_lossy(&suite.stderr));
    assert!(out.contains(" passed") && !out.contains("skipped"), "{out}");
}
