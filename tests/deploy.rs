//! deploy/: the Dockerfile, Kubernetes and KServe manifests pass `deploy/validate.py` (Kubernetes'
//! JSON schemas, strict; KServe's API models; the Dockerfile's shape) from the venv at
//! `target/deploy-venv` (made by `.ci/run` from `deploy/requirements.txt`), broken copies fail
//! it, and every wardrobe flag the manifests pass exists.

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the validator on `files` (all of deploy/ when empty): success and its output.
fn validate(files: &[&Path]) -> (bool, String) {
    let python = root().join("target/deploy-venv/bin/python");
    assert!(
        python.exists(),
        "{} not found: python3 -m venv target/deploy-venv && target/deploy-venv/bin/pip install -r deploy/requirements.txt",
        python.display()
    );
    let out = std::process::Command::new(python).arg(root().join("deploy/validate.py")).args(files).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_manifests_and_the_dockerfile_validate() {
    let (ok, out) = validate(&[]);
    assert!(ok, "{out}");
    for kind in [
        "Dockerfile: multi-stage, non-root, health check",
        "Deployment/wardrobe: Kubernetes",
        "Service/wardrobe: Kubernetes",
        "HorizontalPodAutoscaler/wardrobe: Kubernetes",
        "Job/wardrobe-label: Kubernetes",
        "ServingRuntime/wardrobe: KServe API",
        "InferenceService/fashion: KServe API",
    ] {
        assert!(out.lines().any(|l| l.starts_with("ok ") && l.contains(kind)), "{kind} not validated: {out}");
    }
}

#[test]
fn broken_copies_fail_validation_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let deploy = root().join("deploy");
    let cases = [
        ("kserve/inference-service.yaml", "storageUri", "storageUrl", "storageUrl: unknown field"),
        ("kserve/inference-service.yaml", "maxReplicas: 10", "maxReplicas: \"10\"", "maxReplicas: expected int"),
        ("kserve/serving-runtime.yaml", "- name: kserve-container", "- nam: kserve-container", "nam: unknown field"),
        ("kubernetes/serve.yaml", "replicas: 2", "replicas: two", "spec.replicas: 'two' is not of type"),
        (
            "kubernetes/label-job.yaml",
            "completionMode: Indexed",
            "completionMode: Indexed\n  completion: 8",
            "'completion' was unexpected",
        ),
        ("Dockerfile", "USER 10001:10001", "USER root", "non-root USER"),
        ("Dockerfile", "HEALTHCHECK", "# HEALTHCHECK", "no HEALTHCHECK"),
    ];
    for (i, (file, from, to, needle)) in cases.into_iter().enumerate() {
        let text = std::fs::read_to_string(deploy.join(file)).unwrap();
        assert!(text.contains(from), "{file} has no {from}");
        let name = Path::new(file).file_name().unwrap();
        let broken = dir.path().join(i.to_string()).join(name);
        std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let (ok, out) = validate(&[&broken]);
        assert!(!ok && out.starts_with("error: ") && out.contains(needle), "{file} with {to}: {out}");
    }
}

/// The wardrobe command lines in a manifest's `args:` lists and a Dockerfile's `CMD`.
fn invocations(text: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "args:" {
            let mut args = Vec::new();
            while let Some(next) = lines.peek()
                && let Some(arg) = next.trim_start().strip_prefix("- ")
            {
                args.push(arg.trim().to_string());
                lines.next();
            }
            all.push(args);
        } else if let Some(json) = line.strip_prefix("CMD ") {
            all.push(serde_json::from_str(json).unwrap());
        }
    }
    all
}

#[test]
fn every_wardrobe_flag_in_the_manifests_exists() {
    let mut checked = Vec::new();
    for file in ["kubernetes/serve.yaml", "kubernetes/label-job.yaml", "kserve/serving-runtime.yaml", "Dockerfile"] {
        let text = std::fs::read_to_string(root().join("deploy").join(file)).unwrap();
        for args in invocations(&text) {
            let (ok, help, err) = common::run(&[&args[0], "--help"]);
            assert!(ok, "{file}: wardrobe {} --help: {err}", args[0]);
            for flag in args.iter().filter_map(|a| a.strip_prefix("--")).map(|a| a.split('=').next().unwrap()) {
                assert!(help.contains(&format!("--{flag} ")), "{file}: --{flag} is not a flag of wardrobe {}", args[0]);
                checked.push(format!("{} --{flag}", args[0]));
            }
        }
    }
    for expected in ["serve --models", "serve --api-key-file", "serve --log-format", "label --shard", "serve --name"] {
        assert!(checked.iter().any(|c| c == expected), "{expected} not among {checked:?}");
    }
}
