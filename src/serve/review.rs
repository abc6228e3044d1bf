//! The review page (`serve --review labels.csv`): the rows of a labels file that need review,
//! each with its photo and what the model saw, in two queues: `review` (one of ours, unsure
//! which; least confident first) and `unknown` (perhaps not one of ours; least unusual first). A
//! reviewer sets `reviewed_label` with one click or one key per category, or confirms "not ours".
//!
//! The file is shared: people may edit it in a spreadsheet while the server runs. The server
//! therefore never writes from a stale copy. Every list reads the file afresh; every review is a
//! read-merge-write under an advisory lock (a `.NAME.lock` file beside it, so that two servers
//! take turns): the file is read again, only the reviewed row's cells change (found by its path,
//! so rows moved or added in the spreadsheet are no trouble), and the result replaces the file
//! through a temporary file and a rename, retried if the file changed meanwhile. If the row's
//! `reviewed_label` was changed in the file since the page last saw it, nothing is written: the
//! answer is a 409 carrying both answers, which the page shows side by side until the reviewer
//! keeps one. Each review records `reviewed_by` and `reviewed_at` (UTC) in columns of their own.
//! Photos are served only by row number, never by a path from the request.

use super::api_error::ApiError;
use super::state::AppState;
use crate::data::labels::{LabelsFile, NOT_OURS};
use crate::data::photo;
use crate::error::{Error, Result};
use crate::fsutil;
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The review page, embedded in the binary.
const PAGE: &str = include_str!("review.html");

/// A handler's answer: a value or an HTTP error.
type Answer<T> = std::result::Result<T, ApiError>;

/// Largest photo file the page serves.
const MAX_PHOTO_BYTES: u64 = 64 << 20;

/// Times a review is written again when the file changed between reading and replacing it.
const WRITE_TRIES: usize = 8;

/// A labels CSV being reviewed: where it lives, and the rows the server has seen in it.
pub struct ReviewFile {
    path: PathBuf,
    lock_path: PathBuf,
    seen: Mutex<Seen>,
}

/// Rows as the server last saw them: a stable id per photo path, and each row's reviewed label.
#[derive(Default)]
struct Seen {
    paths: Vec<String>,
    ids: HashMap<String, usize>,
    reviewed: HashMap<String, String>,
}

impl Seen {
    /// The id of `path`, given one on first sight.
    fn id(&mut self, path: &str) -> usize {
        if let Some(&id) = self.ids.get(path) {
            return id;
        }
        self.paths.push(path.to_string());
        self.ids.insert(path.to_string(), self.paths.len() - 1);
        self.paths.len() - 1
    }
}

/// Positions of the columns the page uses (`verdict` and `ood_score` only in files written since
/// models carry a score).
#[derive(Clone, Copy)]
struct Columns {
    path: usize,
    label: usize,
    confidence: usize,
    needs_review: usize,
    reviewed: usize,
    verdict: Option<usize>,
    ood_score: Option<usize>,
}

impl Columns {
    fn of(file: &LabelsFile, path: &Path) -> Result<Columns> {
        let column = |name: &str| file.column(name, path);
        Ok(Columns {
            path: column("path")?,
            label: column("label")?,
            confidence: column("confidence")?,
            needs_review: column("needs_review")?,
            reviewed: column("reviewed_label")?,
            verdict: file.find_column("verdict"),
            ood_score: file.find_column("ood_score"),
        })
    }
}

/// One row on the page.
#[derive(Debug, Serialize)]
pub struct ReviewRow {
    /// The row's id: stable while the server runs, whatever the spreadsheet does to the order.
    pub id: usize,
    /// The photo's path as the CSV has it.
    pub path: String,
    /// The model's label.
    pub label: String,
    /// Its (calibrated) probability.
    pub confidence: f32,
    /// `review` or `unknown`.
    pub queue: &'static str,
    /// Its out-of-distribution score, when the file has one.
    pub ood_score: Option<f32>,
    /// What a reviewer set, if anything.
    pub reviewed_label: Option<String>,
}

/// What `POST /v1/review/{id}` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewUpdate {
    /// The reviewer's class, `(not ours)`, or null to clear it.
    pub reviewed_label: Option<String>,
    /// The reviewed label the reviewer saw before, `null` for none (absent: what the server last
    /// saw); if the file holds something else, the review is a conflict and nothing is written.
    #[serde(default, deserialize_with = "present")]
    pub previous: Option<Option<String>>,
    /// Who reviews (recorded in `reviewed_by`; default `review page`). With API keys on, the
    /// key holder's name replaces it: a reviewer cannot sign as someone else.
    #[serde(default)]
    pub reviewer: Option<String>,
}

/// A field that is present, `null` included: `Some(None)` for `null` (an absent field is `None`
/// by `#[serde(default)]`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Why a review was not written.
#[derive(Debug)]
pub enum Refusal {
    /// No row has this id, or its photo is no longer in the file.
    Missing(String),
    /// The file's reviewed label changed since it was seen: both answers.
    Conflict {
        /// What the file holds now.
        on_disk: Option<String>,
        /// What the reviewer asked for.
        yours: Option<String>,
    },
    /// The file could not be read or written.
    Failed(Error),
}

/// A file's identity and size when read: a different stamp means somebody wrote it meanwhile.
fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

impl ReviewFile {
    /// Opens a labels CSV written by `wardrobe label`, checking its columns.
    pub fn open(path: &Path) -> Result<ReviewFile> {
        let file = LabelsFile::read(path)?;
        let columns = Columns::of(&file, path)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let lock_path = path.with_file_name(format!(".{name}.lock"));
        let review = ReviewFile { path: path.to_path_buf(), lock_path, seen: Mutex::default() };
        review.remember(&file, columns);
        Ok(review)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes every row's id and reviewed label as the file has them now.
    fn remember(&self, file: &LabelsFile, c: Columns) {
        let mut seen = self.seen();
        for r in &file.records {
            let path = r.get(c.path).unwrap_or("");
            seen.id(path);
            seen.reviewed.insert(path.to_string(), r.get(c.reviewed).unwrap_or("").to_string());
        }
    }

    /// The rows that need review as the file has them now: the `review` queue least confident
    /// first, then the `unknown` queue least unusual first.
    pub fn rows(&self) -> Result<Vec<ReviewRow>> {
        let file = LabelsFile::read(&self.path)?;
        let c = Columns::of(&file, &self.path)?;
        self.remember(&file, c);
        let mut seen = self.seen();
        let field = |r: &csv::StringRecord, i: usize| r.get(i).unwrap_or("").to_string();
        let mut rows: Vec<ReviewRow> = file
            .records
            .iter()
            .filter(|r| r.get(c.needs_review) == Some("true"))
            .map(|r| ReviewRow {
                id: seen.id(r.get(c.path).unwrap_or("")),
                path: field(r, c.path),
                label: field(r, c.label),
                confidence: r.get(c.confidence).and_then(|v| v.parse().ok()).unwrap_or(0.0),
                queue: if c.verdict.and_then(|v| r.get(v)) == Some("unknown") { "unknown" } else { "review" },
                ood_score: c.ood_score.and_then(|v| r.get(v)?.parse().ok()),
                reviewed_label: Some(field(r, c.reviewed)).filter(|v| !v.is_empty()),
            })
            .collect();
        let key = |r: &ReviewRow| if r.queue == "review" { r.confidence } else { r.ood_score.unwrap_or(0.0) };
        rows.sort_by(|a, b| a.queue.cmp(b.queue).then(key(a).total_cmp(&key(b))).then(a.id.cmp(&b.id)));
        Ok(rows)
    }

    /// The photo file of row `id`, resolved against the CSV's folder.
    fn photo_path(&self, id: usize) -> Option<PathBuf> {
        let path = self.seen().paths.get(id)?.clone();
        Some(self.path.parent().unwrap_or(Path::new("")).join(path))
    }

    /// Sets (or clears) row `id`'s reviewed label: a read-merge-write of the file under its lock,
    /// refused as a conflict if the file's label is not the one `update` (or the server) last saw.
    fn set(&self, id: usize, update: &ReviewUpdate) -> std::result::Result<(), Refusal> {
        let photo = self.seen().paths.get(id).cloned().ok_or_else(|| Refusal::Missing(format!("no row {id}")))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| Refusal::Failed(Error::io(&self.lock_path, e)))?;
        lock.lock().map_err(|e| Refusal::Failed(Error::io(&self.lock_path, e)))?;
        let yours = update.reviewed_label.clone().filter(|l| !l.is_empty());
        for _ in 0..WRITE_TRIES {
            let before = stamp(&self.path);
            let mut file = LabelsFile::read(&self.path).map_err(Refusal::Failed)?;
            let c = Columns::of(&file, &self.path).map_err(Refusal::Failed)?;
            let row = file
                .records
                .iter()
                .position(|r| r.get(c.path) == Some(photo.as_str()))
                .ok_or_else(|| Refusal::Missing(format!("{photo} is no longer in {}", self.path.display())))?;
            let on_disk = Some(file.records[row].get(c.reviewed).unwrap_or("").to_string()).filter(|l| !l.is_empty());
            let expected = match &update.previous {
                Some(previous) => previous.clone().filter(|l| !l.is_empty()),
                None => self.seen().reviewed.get(&photo).cloned().filter(|l| !l.is_empty()),
            };
            if on_disk != expected && on_disk != yours {
                self.seen().reviewed.insert(photo.clone(), on_disk.clone().unwrap_or_default());
                return Err(Refusal::Conflict { on_disk, yours });
            }
            let by = update.reviewer.as_deref().unwrap_or("review page");
            let at = if yours.is_some() { crate::model_dir::now_utc() } else { String::new() };
            set_cells(
                &mut file,
                row,
                &[("reviewed_label", yours.as_deref().unwrap_or("")), ("reviewed_by", by), ("reviewed_at", &at)],
            );
            if stamp(&self.path) != before {
                continue;
            }
            fsutil::write_atomic(&self.path, |out| {
                let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(out);
                w.write_record(&file.header)?;
                file.records.iter().try_for_each(|r| w.write_record(r))?;
                w.flush()
            })
            .map_err(|e| Refusal::Failed(e.into()))?;
            self.seen().reviewed.insert(photo, yours.unwrap_or_default());
            return Ok(());
        }
        Err(Refusal::Failed(Error::Invalid(format!(
            "{} kept changing while the review was written; try again",
            self.path.display()
        ))))
    }
}

/// Sets the named cells of record `row`, adding a column at the end for a name the header lacks
/// (and padding every record to the header's width).
fn set_cells(file: &mut LabelsFile, row: usize, cells: &[(&str, &str)]) {
    let mut header: Vec<String> = file.header.iter().map(String::from).collect();
    let positions: Vec<usize> = cells
        .iter()
        .map(|(name, _)| {
            header.iter().position(|h| h == name).unwrap_or_else(|| {
                header.push(name.to_string());
                header.len() - 1
            })
        })
        .collect();
    file.header = csv::StringRecord::from(header.clone());
    for (i, record) in file.records.iter_mut().enumerate() {
        if record.len() < header.len() || i == row {
            let mut fields: Vec<String> = record.iter().map(String::from).collect();
            fields.resize(fields.len().max(header.len()), String::new());
            if i == row {
                positions.iter().zip(cells).for_each(|(&p, (_, value))| fields[p] = value.to_string());
            }
            *record = csv::StringRecord::from(fields);
        }
    }
}

/// Handles GET /review.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

fn review_file(state: &AppState) -> Answer<&ReviewFile> {
    state.review.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no labels file to review (start serve with --review FILE)")
    })
}

/// Handles GET /v1/review: the classes and the rows needing review.
pub async fn list(State(state): State<Arc<AppState>>) -> Answer<Json<serde_json::Value>> {
    let file = review_file(&state)?;
    let served = state.repository.default_model(&state.settings.model_name)?;
    let rows = file.rows().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(serde_json::json!({
        "file": file.path.display().to_string(),
        "classes": served.class_names,
        "not_ours": NOT_OURS,
        "rows": rows,
    })))
}

fn row_id(id: &str) -> Answer<usize> {
    id.parse().map_err(|_| ApiError::bad_request(format!("row id '{id}' is not a number")))
}

/// Handles POST /v1/review/{id}: sets the row's reviewed label (one of the model's classes, or
/// `(not ours)`); 409 with both answers when the file changed it meanwhile.
pub async fn set(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    holder: Option<axum::Extension<super::auth::KeyHolder>>,
    body: axum::body::Bytes,
) -> Answer<Response> {
    let path = review_file(&state)?.path.display().to_string();
    let id = row_id(&id)?;
    let mut update: ReviewUpdate =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if let Some(axum::Extension(holder)) = holder {
        update.reviewer = Some(holder.0);
    }
    if let Some(label) = &update.reviewed_label
        && label != NOT_OURS
        && !state.repository.default_model(&state.settings.model_name)?.class_names.contains(label)
    {
        return Err(ApiError::bad_request(format!(
            "reviewed_label '{label}' is not one of the model's classes (or '{NOT_OURS}')"
        )));
    }
    let shared = state.clone();
    let written = tokio::task::spawn_blocking(move || {
        let file = shared.review.as_ref().expect("checked above");
        file.set(id, &update).map(|()| update.reviewed_label)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match written {
        Ok(label) => Ok(Json(serde_json::json!({ "id": id, "reviewed_label": label })).into_response()),
        Err(Refusal::Missing(m)) => Err(ApiError::new(StatusCode::NOT_FOUND, m)),
        Err(Refusal::Conflict { on_disk, yours }) => {
            let error = format!(
                "row {id}'s reviewed_label was changed in {path} to {:?} since the page showed it; keep one of the two",
                on_disk.as_deref().unwrap_or("")
            );
            let body = serde_json::json!({ "error": error, "on_disk": on_disk, "yours": yours });
            Ok((StatusCode::CONFLICT, Json(body)).into_response())
        }
        Err(Refusal::Failed(e)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// Reads row `id`'s photo file.
async fn photo_bytes(state: &AppState, id: &str) -> Answer<(PathBuf, Vec<u8>)> {
    let id = row_id(id)?;
    let path = review_file(state)?
        .photo_path(id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no row {id}")))?;
    let read = path.clone();
    let bytes = tokio::task::spawn_blocking(move || fsutil::read_at_most(&read, MAX_PHOTO_BYTES))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok((path, bytes))
}

/// Handles GET /v1/review/{id}/photo: the photo as uploaded.
pub async fn photo(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Answer<Response> {
    let (path, bytes) = photo_bytes(&state, &id).await?;
    let kind = image::ImageFormat::from_path(&path).map(|f| f.to_mime_type()).unwrap_or("application/octet-stream");
    Ok(([(header::CONTENT_TYPE, kind)], bytes).into_response())
}

/// Handles GET /v1/review/{id}/model-input: what the model saw, as PNG.
pub async fn model_input(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Answer<Response> {
    let (path, bytes) = photo_bytes(&state, &id).await?;
    let shape = state.repository.default_model(&state.settings.model_name)?.shape;
    let limits = state.photo_limits();
    let png = tokio::task::spawn_blocking(move || {
        photo::from_bytes_as(&bytes, &path, shape, &limits).and_then(|p| photo::to_png(&p, shape))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(label: &str) -> ReviewUpdate {
        ReviewUpdate { reviewed_label: Some(label.to_string()), previous: None, reviewer: None }
    }

    fn cell(path: &Path, photo: &str, column: &str) -> String {
        let file = LabelsFile::read(path).unwrap();
        let (p, c) = (file.column("path", path).unwrap(), file.column(column, path).unwrap());
        file.records.iter().find(|r| &r[p] == photo).map(|r| r[c].to_string()).unwrap()
    }

    #[test]
    fn rows_come_in_two_queues_and_reviews_are_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(
            &path,
            "path,label,confidence,top3,needs_review,ood_score,verdict,reviewed_label\n\
             a.png,Hats,0.5000,\"Hats:0.5;Skirts:0.5\",true,0.9,review,\n\
             b.png,Hats,0.9000,Hats:0.9,false,0.8,label,\n\
             \"c, d.png\",Skirts,0.3000,Skirts:0.3,true,1.1,review,\n\
             e.png,Hats,0.9900,Hats:0.99,true,9.5,unknown,\n\
             f.png,Hats,0.9900,Hats:0.99,true,4.5,unknown,\n",
        )
        .unwrap();
        let file = ReviewFile::open(&path).unwrap();
        let rows = file.rows().unwrap();
        let order: Vec<(usize, &str)> = rows.iter().map(|r| (r.id, r.queue)).collect();
        assert_eq!(order, [(2, "review"), (0, "review"), (4, "unknown"), (3, "unknown")]);
        file.set(2, &review("Röcke")).unwrap();
        file.set(3, &review(NOT_OURS)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(
            "path,label,confidence,top3,needs_review,ood_score,verdict,reviewed_label,reviewed_by,reviewed_at\n"
        ));
        assert!(text.contains("\"c, d.png\",Skirts,0.3000,Skirts:0.3,true,1.1,review,Röcke,review page,20"), "{text}");
        assert!(
            text.contains("\na.png,Hats,0.5000,Hats:0.5;Skirts:0.5,true,0.9,review,,,\n"),
            "other rows are kept: {text}"
        );
        assert_eq!(cell(&path, "e.png", "reviewed_label"), NOT_OURS);
        let again = ReviewFile::open(&path).unwrap();
        assert_eq!(again.rows().unwrap()[0].reviewed_label.as_deref(), Some("Röcke"));
        again.set(2, &ReviewUpdate { reviewed_label: None, previous: None, reviewer: Some("ana".into()) }).unwrap();
        assert_eq!(ReviewFile::open(&path).unwrap().rows().unwrap()[0].reviewed_label, None);
        assert_eq!(cell(&path, "c, d.png", "reviewed_by"), "ana");
        assert!(matches!(again.set(7, &review("Hats")), Err(Refusal::Missing(_))));
        assert_eq!(again.photo_path(2).unwrap(), dir.path().join("c, d.png"));
    }

    #[test]
    fn edits_made_in_the_file_meanwhile_survive_and_a_clash_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        let header = "path,label,confidence,top3,needs_review,reviewed_label\n";
        std::fs::write(&path, format!("{header}a.png,Hats,0.5,,true,\nb.png,Hats,0.4,,true,\nc.png,Hats,0.3,,true,\n"))
            .unwrap();
        let file = ReviewFile::open(&path).unwrap();
        // A spreadsheet reorders the rows, reviews b and adds a row; then the page reviews a.
        std::fs::write(
            &path,
            format!("{header}c.png,Hats,0.3,,true,\nb.png,Hats,0.4,,true,Skirts\na.png,Hats,0.5,,true,\nd.png,Hats,0.2,,true,\n"),
        )
        .unwrap();
        file.set(0, &review("Coats")).unwrap();
        assert_eq!(
            (cell(&path, "a.png", "reviewed_label"), cell(&path, "b.png", "reviewed_label")),
            ("Coats".into(), "Skirts".into())
        );
        assert_eq!(LabelsFile::read(&path).unwrap().records.len(), 4, "the added row is kept");
        // The page, not having seen the spreadsheet's Skirts, reviews b too: a conflict, nothing written.
        let before = std::fs::read(&path).unwrap();
        let clash =
            file.set(1, &ReviewUpdate { reviewed_label: Some("Coats".into()), previous: Some(None), reviewer: None });
        assert!(
            matches!(clash, Err(Refusal::Conflict { on_disk: Some(ref d), yours: Some(ref y) }) if d == "Skirts" && y == "Coats")
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // Keeping the page's answer, knowing the file's, goes through.
        file.set(
            1,
            &ReviewUpdate {
                reviewed_label: Some("Coats".into()),
                previous: Some(Some("Skirts".into())),
                reviewer: None,
            },
        )
        .unwrap();
        assert_eq!(cell(&path, "b.png", "reviewed_label"), "Coats");
        // A row deleted in the spreadsheet cannot be reviewed.
        std::fs::write(&path, format!("{header}a.png,Hats,0.5,,true,Coats\n")).unwrap();
        assert!(matches!(file.set(2, &review("Hats")), Err(Refusal::Missing(m)) if m.contains("c.png is no longer")));
    }

    #[test]
    fn previous_null_means_none_was_seen_and_absent_means_ask_the_server() {
        let parse = |body: &str| serde_json::from_str::<ReviewUpdate>(body).unwrap().previous;
        assert_eq!(parse(r#"{"reviewed_label":"Hats","previous":null}"#), Some(None));
        assert_eq!(parse(r#"{"reviewed_label":"Hats","previous":"Bags"}"#), Some(Some("Bags".into())));
        assert_eq!(parse(r#"{"reviewed_label":"Hats"}"#), None);
    }

    #[test]
    fn a_file_without_the_review_column_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.csv");
        std::fs::write(&path, "path,label,confidence,top3,needs_review\na.png,Hats,0.5,,true\n").unwrap();
        let err = ReviewFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("no 'reviewed_label' column"), "{err}");
    }
}
