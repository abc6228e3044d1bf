//! Faults on real data: `train` killed with SIGKILL at arbitrary moments (including while a
//! checkpoint is being written) always leaves a loadable checkpoint and resumes to the same
//! weights; a full disk gives one clear error line and leaves earlier outputs intact.

mod common;

use common::{bin, load, run, train_csv};
use image::GrayImage;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use wardrobe::data::dataset::Split;
use wardrobe::train::checkpoint;

#[test]
fn sigkill_at_any_moment_leaves_a_loadable_checkpoint_and_resume_matches() {
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 600);
    let csv = csv.to_str().unwrap();
    let epochs = "25";
    let straight = dir.path().join("straight");
    let (ok, _, err) = run(&["train", "--train-csv", csv, "--epochs", epochs, "--out", straight.to_str().unwrap()]);
    assert!(ok, "{err}");

    let killed = dir.path().join("killed");
    let ck = checkpoint::checkpoint_dir(&killed);
    let mut loaded = 0;
    // Each round waits for the run to make progress (a new checkpoint), then kills it after a
    // pseudo-random 0–90 ms: some kills land inside a checkpoint write, the rest mid-epoch.
    let stamp = || std::fs::metadata(ck.join("trainer.json")).and_then(|m| m.modified()).ok();
    for round in 0..14u64 {
        let resume = ck.exists() || ck.with_file_name("checkpoint.old").exists();
        let mut args = vec!["train", "--train-csv", csv];
        if resume {
            args.extend(["--resume", killed.to_str().unwrap()]);
        } else {
            args.extend(["--epochs", epochs, "--out", killed.to_str().unwrap()]);
        }
        let before = stamp();
        let mut child = Command::new(bin()).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while stamp() == before && child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "round {round}: no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis((round * 7919) % 90));
        assert!(child.try_wait().unwrap().is_none(), "round {round}: the run ended before it could be killed");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "round {round}: {status}");
        checkpoint::load(&ck).unwrap_or_else(|e| panic!("round {round}: checkpoint unloadable: {e}"));
        loaded += 1;
    }
    assert_eq!(loaded, 14);
    let (ok, out, err) = run(&["train", "--train-csv", csv, "--resume", killed.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("resuming"), "{out}");
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(weights(&straight) == weights(&killed), "resumed weights differ from the uninterrupted run");
}

/// A tmpfs of `kib` KiB mounted over a fresh directory; unmounted when dropped.
struct TinyDisk {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl TinyDisk {
    /// Panics, naming the fix, where mounting is not permitted (not root, or no CAP_SYS_ADMIN).
    fn mount(kib: usize) -> TinyDisk {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs", path.to_str().unwrap()])
            .output()
            .expect("mount(8) runs");
        assert!(
            output.status.success(),
            "cannot mount a {kib} KiB tmpfs to fill ({}); run the tests as root, as CI does",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        TinyDisk { path, _parent: parent }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn one_error_line(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(lines.last().is_some_and(|l| l.starts_with("error: ") && l.contains(needle)), "{stderr}");
}

fn leftover_temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(leftover_temp_files(&path));
        } else if path.to_str().unwrap().ends_with(".tmp") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_full_disk_gives_one_clear_error_and_keeps_earlier_outputs() {
    let disk = TinyDisk::mount(4096);
    let dir = tempfile::tempdir().unwrap();
    let csv = train_csv(dir.path(), 600);

    // Training: a checkpoint is ~1.9 MB and a swap briefly needs two, so a later epoch's save
    // runs out of space.
    let run_dir = disk.path.join("run");
    let (ok, _, err) =
        run(&["train", "--train-csv", csv.to_str().unwrap(), "--epochs", "5", "--out", run_dir.to_str().unwrap()]);
    assert!(!ok, "training on a full disk must fail");
    one_error_line(&err, "No space left on device");
    let ck = checkpoint::load(&checkpoint::checkpoint_dir(&run_dir)).expect("the earlier checkpoint stays loadable");
    let done = ck.resume.state.history.len();
    assert!((1..5).contains(&done), "an earlier epoch's checkpoint, not a torn one: {done} epochs");
    assert_eq!(leftover_temp_files(&disk.path), Vec::<PathBuf>::new());
    std::fs::remove_dir_all(&run_dir).unwrap();

    // Labelling: the disk fills part way; every row written before is whole, and after freeing
    // space a rerun labels the rest, each photo exactly once.
    let model = dir.path().join("model");
    common::trained_model(&model);
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let test = load(Split::Test);
    for i in 0..2000 {
        GrayImage::from_raw(28, 28, test.image(i).to_vec())
            .unwrap()
            .save(photos.join(format!("item{i:05}.png")))
            .unwrap();
    }
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![0u8; 4096 * 1024 - 40 * 1024]).unwrap();
    let out = disk.path.join("labels.csv");
    let args = ["label", "--model", model.to_str().unwrap(), photos.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (ok, _, err) = run(&args);
    assert!(!ok, "labelling onto a full disk must fail");
    one_error_line(&err, "No space left on device");
    let partial = std::fs::read_to_string(&out).unwrap();
    assert!(partial.lines().count() > 1, "some rows were written before the disk filled");
    assert!(partial.ends_with('\n') && partial.lines().skip(1).all(|l| l.split(',').count() == 8), "no torn row");
    std::fs::remove_file(&filler).unwrap();
    let (ok, stdout, err) = run(&args);
    assert!(ok, "{err}");
    assert!(stdout.contains("already labelled"), "{stdout}");
    let rows: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().skip(1).map(String::from).collect();
    let mut paths: Vec<&str> = rows.iter().map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(paths.len(), 2000);
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), 2000, "no photo twice");
}
