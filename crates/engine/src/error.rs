//! The engine's one error type. Every message names the file, layer or value at fault, so that
//! whatever sits above the engine can print it as a single line.

use std::path::{Path, PathBuf};

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused a file operation.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file's contents do not follow its format.
    #[error("{path}: {message}")]
    Format {
        /// The malformed file.
        path: PathBuf,
        /// What is wrong, including the offending field or tensor.
        message: String,
    },
    /// A layer of an architecture cannot be built as described.
    #[error("layer {index}: {message}")]
    Layer {
        /// The layer's position in the architecture, from 0.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor, input or architecture has a shape the operation cannot take.
    #[error("{0}")]
    Shape(String),
    /// A named value (a kernel set, an optimiser, a schedule, a preset) cannot be used.
    #[error("{name} '{value}': {expected}")]
    Value {
        /// What the value is for (`kernels`, `optimizer`, …).
        name: &'static str,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// Saved optimiser state does not fit the optimiser it is restored into.
    #[error("{0}")]
    State(String),
}

/// Result with the engine's error type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }

    /// A format violation in `path`.
    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        Error::Format { path: path.to_path_buf(), message: message.into() }
    }

    /// A value named `name` that is not one of those accepted.
    pub fn value(name: &'static str, value: &str, expected: impl Into<String>) -> Self {
        Error::Value { name, value: value.to_string(), expected: expected.into() }
    }
}
