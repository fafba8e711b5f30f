//! The library's one error type. Messages are lowercase fragments that read
//! after "failed to …" or stand alone, and name the file, host or key involved.
//! They are rendered, with their cause chain, in exactly one place (`main.rs`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}:{line}: {key}: {message}")]
    Profile {
        file: PathBuf,
        line: u64,
        key: String,
        message: String,
    },

    #[error("read profile {}", .file.display())]
    ProfileRead {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("state directory {}: {message}", .dir.display())]
    StateDir { dir: PathBuf, message: String },

    #[error("lock {}: {message}", .path.display())]
    Lock { path: PathBuf, message: String },

    #[error("write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Usage(String),

    #[error("interrupted by {0}")]
    Interrupted(&'static str),

    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Render the error and its cause chain on one line.
    pub fn render(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}
