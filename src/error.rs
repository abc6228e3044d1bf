//! The one error type of the library. Every message names the file, field or line at fault so the
//! command line can print it as a single line.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in wardrobe, each with enough context for a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model directory is missing a file or its files disagree.
    #[error("model {path}: {message}")]
    Model {
        /// The model directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A command-line flag or a setting has a value that cannot be used.
    #[error("{flag} '{value}': {expected}")]
    Flag {
        /// The flag or setting (`--augment`, `--val-split`, …).
        flag: &'static str,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A request or a combination of inputs cannot be carried out (the message says why and what
    /// to do instead).
    #[error("{0}")]
    Invalid(String),
    /// The operating system or the runtime failed at something other than a file (listening,
    /// starting threads or a process, installing a signal handler).
    #[error("{0}")]
    System(String),
    /// A file could not be read or written, or does not follow its format; or the engine refused
    /// (an architecture, a named value).
    #[error(transparent)]
    Engine(#[from] wardrobe_engine::Error),
    /// The run was interrupted by the user (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
    /// A shared limit (the decoding memory budget) stayed spent for longer than the caller waits;
    /// trying again later may succeed.
    #[error("{0}")]
    Busy(String),
}

/// Result with the library's error type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O failure on `path` (the engine's error, which file helpers of both crates share).
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Engine(wardrobe_engine::Error::io(path, source))
    }

    /// A format violation in `path`.
    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        Error::Engine(wardrobe_engine::Error::format(path, message))
    }

    /// The value `value` of `flag`, which is not one of those accepted.
    pub fn flag(flag: &'static str, value: impl ToString, expected: impl Into<String>) -> Self {
        Error::Flag { flag, value: value.to_string(), expected: expected.into() }
    }

    /// A problem with the model stored at `path`.
    pub fn model(path: &Path, message: impl Into<String>) -> Self {
        Error::Model { path: path.to_path_buf(), message: message.into() }
    }
}
