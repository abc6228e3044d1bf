//! The review page (`serve --review labels.csv`): the rows of a labels file that need review,
//! least confident first, each with its photo and what the model saw; a reviewer sets
//! `reviewed_label` with one click or one key per category. Every change rewrites the CSV
//! through a temporary file and a rename, so a crash leaves the old or the new file, never a torn
//! one. Photos are served only by row number, never by a path from the request.

use super::api_error::ApiError;
use super::state::AppState;
use crate::data::labels::LabelsFile;
use crate::data::photo;
use crate::error::{Error, Result};
use crate::fsutil;
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The review page, embedded in the binary.
const PAGE: &str = include_str!("review.html");

/// A handler's answer: a value or an HTTP error.
type Answer<T> = std::result::Result<T, ApiError>;

/// Largest photo file the page serves.
const MAX_PHOTO_BYTES: u64 = 64 << 20;

/// A labels CSV being reviewed: its header and records as read, and where it lives.
pub struct ReviewFile {
    path: PathBuf,
    header: csv::StringRecord,
    records: Mutex<Vec<csv::StringRecord>>,
    columns: Columns,
}

/// Positions of the columns the page uses.
#[derive(Clone, Copy)]
struct Columns {
    path: usize,
    label: usize,
    confidence: usize,
    needs_review: usize,
    reviewed: usize,
}

/// One row on the page.
#[derive(Debug, Serialize)]
pub struct ReviewRow {
    /// Record number in the CSV (0 = first row after the header).
    pub id: usize,
    /// The photo's path as the CSV has it.
    pub path: String,
    /// The model's label.
    pub label: String,
    /// Its (calibrated) probability.
    pub confidence: f32,
    /// What a reviewer set, if anything.
    pub reviewed_label: Option<String>,
}

/// What `POST /v1/review/{id}` takes: the class, or null to clear it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewUpdate {
    /// The reviewer's class.
    pub reviewed_label: Option<String>,
}

impl ReviewFile {
    /// Reads a labels CSV written by `wardrobe label`.
    pub fn open(path: &Path) -> Result<ReviewFile> {
        let file = LabelsFile::read(path)?;
        let column = |name: &str| file.column(name, path);
        let columns = Columns {
            path: column("path")?,
            label: column("label")?,
            confidence: column("confidence")?,
            needs_review: column("needs_review")?,
            reviewed: column("reviewed_label")?,
        };
        let LabelsFile { header, records } = file;
        Ok(ReviewFile { path: path.to_path_buf(), header, records: Mutex::new(records), columns })
    }

    /// The rows that need review, least confident first.
    pub fn rows(&self) -> Vec<ReviewRow> {
        let records = self.records.lock().expect("review lock");
        let c = self.columns;
        let field = |r: &csv::StringRecord, i: usize| r.get(i).unwrap_or("").to_string();
        let mut rows: Vec<ReviewRow> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.get(c.needs_review) == Some("true"))
            .map(|(id, r)| ReviewRow {
                id,
                path: field(r, c.path),
                label: field(r, c.label),
                confidence: r.get(c.confidence).and_then(|v| v.parse().ok()).unwrap_or(0.0),
                reviewed_label: Some(field(r, c.reviewed)).filter(|v| !v.is_empty()),
            })
            .collect();
        rows.sort_by(|a, b| a.confidence.total_cmp(&b.confidence).then(a.id.cmp(&b.id)));
        rows
    }

    /// The photo file of row `id`, resolved against the CSV's folder.
    fn photo_path(&self, id: usize) -> Option<PathBuf> {
        let records = self.records.lock().expect("review lock");
        let path = records.get(id)?.get(self.columns.path)?;
        Some(self.path.parent().unwrap_or(Path::new("")).join(path))
    }

    /// Sets (or clears) row `id`'s reviewed label and rewrites the file atomically.
    fn set(&self, id: usize, label: Option<&str>) -> Result<()> {
        let mut records = self.records.lock().expect("review lock");
        let record = records.get_mut(id).ok_or_else(|| Error::Invalid(format!("no row {id}")))?;
        let mut fields: Vec<String> = record.iter().map(String::from).collect();
        fields.resize(fields.len().max(self.header.len()), String::new());
        fields[self.columns.reviewed] = label.unwrap_or_default().to_string();
        let updated = csv::StringRecord::from(fields);
        let previous = std::mem::replace(record, updated);
        let written = fsutil::write_atomic(&self.path, |out| {
            let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(out);
            w.write_record(&self.header)?;
            records.iter().try_for_each(|r| w.write_record(r))?;
            w.flush()
        });
        if written.is_err() {
            records[id] = previous;
        }
        Ok(written?)
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
    Ok(Json(serde_json::json!({
        "file": file.path.display().to_string(),
        "classes": served.class_names,
        "rows": file.rows(),
    })))
}

fn row_id(id: &str) -> Answer<usize> {
    id.parse().map_err(|_| ApiError::bad_request(format!("row id '{id}' is not a number")))
}

/// Handles POST /v1/review/{id}: sets the row's reviewed label (one of the model's classes).
pub async fn set(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Answer<Json<serde_json::Value>> {
    let file = review_file(&state)?;
    let id = row_id(&id)?;
    let update: ReviewUpdate =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if let Some(label) = &update.reviewed_label
        && !state.repository.default_model(&state.settings.model_name)?.class_names.contains(label)
    {
        return Err(ApiError::bad_request(format!("reviewed_label '{label}' is not one of the model's classes")));
    }
    let label = update.reviewed_label.as_deref();
    match file.set(id, label) {
        Ok(()) => Ok(Json(serde_json::json!({ "id": id, "reviewed_label": label }))),
        Err(Error::Invalid(m)) => Err(ApiError::new(StatusCode::NOT_FOUND, m)),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
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

    #[test]
    fn rows_needing_review_come_least_confident_first_and_changes_are_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(
            &path,
            "path,label,confidence,top3,needs_review,reviewed_label\n\
             a.png,Hats,0.5000,\"Hats:0.5;Skirts:0.5\",true,\n\
             b.png,Hats,0.9000,Hats:0.9,false,\n\
             \"c, d.png\",Skirts,0.3000,Skirts:0.3,true,\n",
        )
        .unwrap();
        let file = ReviewFile::open(&path).unwrap();
        let ids: Vec<usize> = file.rows().iter().map(|r| r.id).collect();
        assert_eq!(ids, [2, 0]);
        file.set(2, Some("Röcke")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("\"c, d.png\",Skirts,0.3000,Skirts:0.3,true,Röcke\n"), "{text}");
        assert!(text.contains("\na.png,Hats,0.5000,Hats:0.5;Skirts:0.5,true,\n"), "other rows are kept: {text}");
        let again = ReviewFile::open(&path).unwrap();
        assert_eq!(again.rows()[0].reviewed_label.as_deref(), Some("Röcke"));
        again.set(2, None).unwrap();
        assert_eq!(ReviewFile::open(&path).unwrap().rows()[0].reviewed_label, None);
        assert!(again.set(7, Some("Hats")).is_err());
        assert_eq!(again.photo_path(2).unwrap(), dir.path().join("c, d.png"));
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
