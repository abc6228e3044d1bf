//! The model repository, in Triton's layout: `ROOT/<name>/<version>/` is one run directory per
//! version (a positive integer). Every version found is loaded and served, each with its own
//! batching workers; a request that names no version gets the highest. `--model DIR` is the
//! one-model case: `DIR` served as version 1 under `--name`.
//!
//! Loading happens beside serving: a new or changed version is loaded first and then swapped
//! in, and a request holds the version it started with (an `Arc`), so swapping or unloading
//! never fails a request in flight; the old version's workers finish its queue and stop when
//! the last request lets go. A version that fails to load keeps the one it would replace and
//! is listed in the index with the reason; it is tried again once its files change.

use super::api_error::ApiError;
use super::batcher::{BatchSettings, Batcher};
use super::metrics::Metrics;
use crate::data::photo::PhotoShape;
use crate::error::{Error, Result};
use crate::model_dir;
use axum::http::StatusCode;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// Where the served models come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--models DIR`: one folder per model name holding one numbered folder per version.
    Directory(PathBuf),
    /// `--model DIR`: one run directory, served as version 1 of `name`.
    Single {
        /// The name it is served under.
        name: String,
        /// The run directory.
        dir: PathBuf,
    },
}

/// One loaded version of a model: what a request needs.
pub struct Served {
    /// The model's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// Class names by index.
    pub class_names: Vec<String>,
    /// Its input: square images of this side and channel count.
    pub shape: PhotoShape,
    /// Its batching workers.
    pub batcher: Batcher,
    /// Scores above this are `unknown` (none when the model has no out-of-distribution score).
    pub unknown_above: Option<f32>,
    stamp: Stamp,
}

/// When a version's files last changed and how large they are: a different stamp means the
/// version was rewritten and is loaded again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    bytes: u64,
}

/// A model name's versions as served.
#[derive(Default)]
struct Entry {
    versions: BTreeMap<u64, Arc<Served>>,
    /// Versions whose files did not load, with the stamp they had and why.
    failures: BTreeMap<u64, (Stamp, String)>,
    /// Unloaded by request: polling leaves it alone until it is loaded again.
    unloaded: bool,
}

/// One row of the repository index (`POST /v2/repository/index`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexEntry {
    /// The model's name.
    pub name: String,
    /// The version, for a version's row (a model with none loaded has one row without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `READY` or `UNAVAILABLE`.
    pub state: &'static str,
    /// Why it is unavailable.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The models being served and where they come from.
pub struct Repository {
    source: Source,
    batch: BatchSettings,
    metrics: Arc<Metrics>,
    models: RwLock<BTreeMap<String, Entry>>,
    /// Held while the served set is brought in line with the disk, one change at a time.
    syncing: Mutex<()>,
}

impl Repository {
    /// Loads every model `source` holds. A single model that does not load is an error; in a
    /// repository directory, a model that does not load is listed as unavailable.
    pub fn open(source: Source, batch: BatchSettings, metrics: Arc<Metrics>) -> Result<Repository> {
        if let Source::Directory(root) = &source {
            std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
        }
        let repository = Repository { source, batch, metrics, models: RwLock::default(), syncing: Mutex::default() };
        match &repository.source {
            Source::Single { name, dir } => {
                let served = repository.load_version(name, 1, dir)?;
                tracing::info!("loaded model {name} version 1 from {}", dir.display());
                let entry = Entry { versions: BTreeMap::from([(1, Arc::new(served))]), ..Entry::default() };
                repository.write().insert(name.clone(), entry);
            }
            Source::Directory(_) => repository.poll()?,
        }
        Ok(repository)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.models.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.models.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_syncing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.syncing.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Brings the served set in line with the disk: new and changed versions are loaded,
    /// versions and models whose folders are gone are dropped. Models unloaded by request stay
    /// unloaded.
    pub fn poll(&self) -> Result<()> {
        let _syncing = self.lock_syncing();
        let names = self.names_on_disk()?;
        let gone: Vec<String> = self.read().keys().filter(|n| !names.contains(*n)).cloned().collect();
        for name in gone {
            if let Some(entry) = self.write().remove(&name) {
                for version in entry.versions.keys() {
                    tracing::info!("unloaded model {name} version {version}: its folder is gone");
                }
            }
        }
        for name in &names {
            if !self.read().get(name).is_some_and(|e| e.unloaded) {
                self.sync_model(name)?;
            }
        }
        Ok(())
    }

    /// Loads (or reloads) the model `name` from the disk, also after an unload.
    pub fn load(&self, name: &str) -> std::result::Result<(), ApiError> {
        let _syncing = self.lock_syncing();
        if !self.names_on_disk().map_err(ApiError::internal)?.contains(name) {
            return Err(not_found(format!("no model '{name}' in the repository")));
        }
        self.write().entry(name.to_string()).or_default().unloaded = false;
        self.sync_model(name).map_err(ApiError::internal)?;
        let models = self.read();
        let entry = models.get(name).expect("synced above");
        match entry.failures.values().next() {
            Some((_, reason)) if entry.versions.is_empty() => {
                Err(ApiError::bad_request(format!("model '{name}' did not load: {reason}")))
            }
            _ if entry.versions.is_empty() => Err(ApiError::bad_request(format!("model '{name}' has no versions"))),
            _ => Ok(()),
        }
    }

    /// Stops serving the model `name` (requests in flight finish) until it is loaded again.
    pub fn unload(&self, name: &str) -> std::result::Result<(), ApiError> {
        let _syncing = self.lock_syncing();
        let mut models = self.write();
        let entry = models.get_mut(name).ok_or_else(|| not_found(format!("no model '{name}' in the repository")))?;
        for version in std::mem::take(&mut entry.versions).keys() {
            tracing::info!("unloaded model {name} version {version} on request");
        }
        entry.failures.clear();
        entry.unloaded = true;
        Ok(())
    }

    /// The version of `name` to serve: `version` if given, else the highest.
    pub fn get(&self, name: &str, version: Option<&str>) -> std::result::Result<Arc<Served>, ApiError> {
        let models = self.read();
        let entry = models.get(name).filter(|e| !e.versions.is_empty()).ok_or_else(|| {
            let serving: Vec<&str> =
                models.iter().filter(|(_, e)| !e.versions.is_empty()).map(|(n, _)| n.as_str()).collect();
            not_found(format!("unknown model '{name}'; this server serves {}", quoted_list(&serving)))
        })?;
        match version {
            None => Ok(entry.versions.values().next_back().expect("not empty").clone()),
            Some(v) => {
                let number: u64 =
                    v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        ApiError::bad_request(format!("version must be a positive integer, got '{v}'"))
                    })?;
                entry.versions.get(&number).cloned().ok_or_else(|| {
                    let loaded: Vec<String> = entry.versions.keys().map(u64::to_string).collect();
                    not_found(format!("model '{name}' has no version {v}; loaded: {}", loaded.join(", ")))
                })
            }
        }
    }

    /// The loaded versions of `name`, lowest first.
    pub fn versions(&self, name: &str) -> Vec<u64> {
        self.read().get(name).map(|e| e.versions.keys().copied().collect()).unwrap_or_default()
    }

    /// The model the page, `/v1/label` and the review page use when no model is named:
    /// `preferred` if it is served, else the only model served.
    pub fn default_model(&self, preferred: &str) -> std::result::Result<Arc<Served>, ApiError> {
        if let Ok(served) = self.get(preferred, None) {
            return Ok(served);
        }
        let names: Vec<String> =
            self.read().iter().filter(|(_, e)| !e.versions.is_empty()).map(|(n, _)| n.clone()).collect();
        match names.as_slice() {
            [only] => self.get(only, None),
            [] => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no model is loaded")),
            _ => Err(ApiError::bad_request(format!(
                "several models are served ({}): name one with ?model=NAME",
                quoted_list(&names.iter().map(String::as_str).collect::<Vec<_>>())
            ))),
        }
    }

    /// Every model in the repository and its versions: loaded ones `READY`, the rest
    /// `UNAVAILABLE` with the reason. With `ready_only`, the loaded ones only.
    pub fn index(&self, ready_only: bool) -> Result<Vec<IndexEntry>> {
        let mut names = self.names_on_disk()?;
        let models = self.read();
        names.extend(models.keys().cloned());
        let mut rows = Vec::new();
        for name in names {
            let entry = models.get(&name);
            let row = |version: Option<u64>, state, reason: &str| IndexEntry {
                name: name.clone(),
                version: version.map(|v| v.to_string()),
                state,
                reason: reason.to_string(),
            };
            let mut own = Vec::new();
            if let Some(e) = entry {
                own.extend(e.versions.keys().map(|&v| row(Some(v), "READY", "")));
                let failed = e.failures.iter().filter(|(v, _)| !e.versions.contains_key(v));
                own.extend(failed.map(|(&v, (_, why))| row(Some(v), "UNAVAILABLE", why)));
            }
            if own.is_empty() {
                let reason = if entry.is_some_and(|e| e.unloaded) { "unloaded" } else { "not loaded" };
                own.push(row(None, "UNAVAILABLE", reason));
            }
            rows.extend(own.into_iter().filter(|r| !ready_only || r.state == "READY"));
        }
        Ok(rows)
    }

    /// The model names the source holds now.
    fn names_on_disk(&self) -> Result<BTreeSet<String>> {
        match &self.source {
            Source::Single { name, .. } => Ok(BTreeSet::from([name.clone()])),
            Source::Directory(root) => Ok(subdirectories(root)?.into_iter().map(|(name, _)| name).collect()),
        }
    }

    /// The versions of `name` on disk now: number → run directory.
    fn versions_on_disk(&self, name: &str) -> Result<BTreeMap<u64, PathBuf>> {
        match &self.source {
            Source::Single { dir, .. } => Ok(BTreeMap::from([(1, dir.clone())])),
            Source::Directory(root) => Ok(subdirectories(&root.join(name))?
                .into_iter()
                .filter_map(|(v, dir)| Some((v.parse::<u64>().ok().filter(|&n| n > 0)?, dir)))
                .collect()),
        }
    }

    /// Loads the new and changed versions of `name` and drops the ones gone from the disk.
    fn sync_model(&self, name: &str) -> Result<()> {
        let on_disk = self.versions_on_disk(name)?;
        let (current, old_failures) = match self.read().get(name) {
            Some(e) => (e.versions.clone(), e.failures.clone()),
            None => Default::default(),
        };
        let (mut versions, mut failures) = (BTreeMap::new(), BTreeMap::new());
        for (version, dir) in on_disk {
            let Ok(stamp) = stamp(&dir) else { continue };
            let old = current.get(&version);
            if let Some(served) = old.filter(|s| s.stamp == stamp) {
                versions.insert(version, served.clone());
                continue;
            }
            if let Some(failure) = old_failures.get(&version).filter(|(s, _)| *s == stamp) {
                failures.insert(version, failure.clone());
                old.map(|served| versions.insert(version, served.clone()));
                continue;
            }
            match self.load_version(name, version, &dir) {
                Ok(served) => {
                    let verb = if old.is_some() { "reloaded" } else { "loaded" };
                    tracing::info!("{verb} model {name} version {version} from {}", dir.display());
                    versions.insert(version, Arc::new(served));
                }
                Err(e) => {
                    tracing::warn!("model {name} version {version} did not load: {e}");
                    failures.insert(version, (stamp, e.to_string()));
                    old.map(|served| versions.insert(version, served.clone()));
                }
            }
        }
        for version in current.keys().filter(|v| !versions.contains_key(v)) {
            tracing::info!("unloaded model {name} version {version}: its folder is gone");
        }
        let mut models = self.write();
        let entry = models.entry(name.to_string()).or_default();
        entry.versions = versions;
        entry.failures = failures;
        Ok(())
    }

    /// Loads the run directory `dir` as `version` of `name`, stamped as its files were before
    /// they were read (a version rewritten meanwhile loads again on the next poll).
    fn load_version(&self, name: &str, version: u64, dir: &Path) -> Result<Served> {
        let before = stamp(dir);
        let loaded = model_dir::load(dir)?;
        let stamp = before?;
        let shape = loaded.photo_shape()?;
        let unknown_above = loaded.ood.as_ref().map(|o| o.threshold);
        let ood = loaded.ood.map(Arc::new);
        let batcher = Batcher::start(Arc::new(loaded.model), ood, self.batch, self.metrics.clone());
        let class_names = loaded.class_names;
        Ok(Served { name: name.to_string(), version, class_names, shape, batcher, unknown_above, stamp })
    }
}

/// The folders directly in `dir` whose names are UTF-8, by name.
fn subdirectories(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.is_dir()
            && let Ok(name) = entry.file_name().into_string()
            && !name.starts_with('.')
        {
            found.push((name, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The latest modification time and the total size of the files directly in `dir`.
fn stamp(dir: &Path) -> Result<Stamp> {
    let mut stamp = Stamp { modified: SystemTime::UNIX_EPOCH, bytes: 0 };
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let meta = entry.and_then(|e| e.metadata()).map_err(|e| Error::io(dir, e))?;
        if meta.is_file() {
            stamp.modified = stamp.modified.max(meta.modified().map_err(|e| Error::io(dir, e))?);
            stamp.bytes += meta.len();
        }
    }
    Ok(stamp)
}

fn not_found(message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, message)
}

/// `'a', 'b'`, or `no model` when empty.
fn quoted_list(names: &[&str]) -> String {
    if names.is_empty() {
        return "no model".to_string();
    }
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::Model;
    use crate::nn::spec::ModelSpec;
    use std::time::Duration;

    const BATCH: BatchSettings = BatchSettings { max_batch: 8, max_wait: Duration::ZERO, workers: 1 };

    /// Writes a small model with `classes` classes as `root/name/version`.
    fn write_version(root: &Path, name: &str, version: &str, classes: usize, seed: u64) {
        let spec = ModelSpec::seed().fitted_to(crate::nn::layer::Shape::new(28, 28, 1), classes);
        let model = Model::initialised(spec, classes, seed).unwrap();
        let names: Vec<String> = (0..classes).map(|c| format!("class{c}")).collect();
        model_dir::save(&model, &names, None, None, &root.join(name).join(version)).unwrap();
    }

    fn open(root: &Path) -> Repository {
        Repository::open(Source::Directory(root.to_path_buf()), BATCH, Arc::new(Metrics::default())).unwrap()
    }

    fn states(repository: &Repository) -> Vec<(String, Option<String>, &'static str)> {
        repository.index(false).unwrap().into_iter().map(|r| (r.name, r.version, r.state)).collect()
    }

    #[test]
    fn versions_are_served_the_highest_by_default_and_follow_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        write_version(dir.path(), "shirts", "1", 3, 1);
        write_version(dir.path(), "shirts", "2", 4, 2);
        write_version(dir.path(), "shoes", "7", 5, 3);
        std::fs::create_dir_all(dir.path().join("shirts/notes")).unwrap();
        let repository = open(dir.path());
        assert_eq!(repository.get("shirts", None).unwrap().version, 2);
        assert_eq!(repository.get("shirts", Some("1")).unwrap().class_names.len(), 3);
        assert_eq!(repository.get("shirts", Some("3")).err().unwrap().status, StatusCode::NOT_FOUND);
        assert_eq!(repository.get("shirts", Some("x")).err().unwrap().status, StatusCode::BAD_REQUEST);
        let unknown = repository.get("hats", None).err().unwrap();
        assert_eq!(unknown.message, "unknown model 'hats'; this server serves 'shirts', 'shoes'");
        assert_eq!(repository.versions("shirts"), [1, 2]);

        let held = repository.get("shirts", Some("2")).unwrap();
        std::fs::remove_dir_all(dir.path().join("shirts/2")).unwrap();
        write_version(dir.path(), "shirts", "3", 6, 4);
        repository.poll().unwrap();
        assert_eq!(repository.versions("shirts"), [1, 3]);
        assert_eq!(repository.get("shirts", None).unwrap().class_names.len(), 6);
        let pixels = vec![0u8; 784];
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let probs = rt.block_on(held.batcher.infer(pixels)).unwrap().probabilities;
        assert_eq!(probs.len(), 4, "a version removed while held still answers");
        drop(held);

        std::fs::remove_dir_all(dir.path().join("shoes")).unwrap();
        repository.poll().unwrap();
        assert!(repository.get("shoes", None).is_err());
        assert_eq!(
            states(&repository),
            [("shirts".into(), Some("1".into()), "READY"), ("shirts".into(), Some("3".into()), "READY")]
        );
    }

    #[test]
    fn unload_holds_until_load_and_broken_versions_are_listed_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        write_version(dir.path(), "shirts", "1", 3, 1);
        write_version(dir.path(), "bags", "1", 3, 1);
        std::fs::write(dir.path().join("bags/1/model.json"), "{ not json").unwrap();
        let repository = open(dir.path());
        let rows = repository.index(false).unwrap();
        assert_eq!((rows[0].name.as_str(), rows[0].state), ("bags", "UNAVAILABLE"));
        assert!(rows[0].reason.contains("invalid JSON"), "{}", rows[0].reason);
        assert_eq!(repository.index(true).unwrap().len(), 1);
        assert_eq!(repository.load("bags").err().unwrap().status, StatusCode::BAD_REQUEST);

        repository.unload("shirts").unwrap();
        assert!(repository.get("shirts", None).is_err());
        repository.poll().unwrap();
        assert!(repository.get("shirts", None).is_err(), "polling leaves an unloaded model alone");
        assert!(states(&repository).contains(&("shirts".into(), None, "UNAVAILABLE")));
        assert_eq!(repository.index(false).unwrap()[1].reason, "unloaded");
        repository.load("shirts").unwrap();
        assert_eq!(repository.get("shirts", None).unwrap().version, 1);
        assert_eq!(repository.load("hats").err().unwrap().status, StatusCode::NOT_FOUND);
        assert_eq!(repository.unload("hats").err().unwrap().status, StatusCode::NOT_FOUND);

        write_version(dir.path(), "bags", "1", 3, 1);
        repository.poll().unwrap();
        assert_eq!(repository.get("bags", None).unwrap().version, 1, "a fixed version loads on the next poll");
        assert_eq!(repository.default_model("wardrobe").err().unwrap().status, StatusCode::BAD_REQUEST);
        assert_eq!(repository.default_model("bags").unwrap().name, "bags");
    }
}
