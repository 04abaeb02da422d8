//! The crate's error type and validation diagnostics.

use std::fmt;
use std::path::PathBuf;

use crate::source::Position;

/// One problem in a flow file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub position: Position,
    /// Field path, e.g. `steps[1].url`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: field: message`, the shape editors and CI annotate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.position.line, self.position.col)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Errors of the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flow file is invalid; every problem found is listed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// A template failed while rendering.
    #[error("{field}: {source}")]
    Render {
        field: String,
        #[source]
        source: crate::template::TemplateError,
    },
    /// A rendered request is not sendable (bad URL, CR/LF in a header...).
    #[error("{field}: {message}")]
    Request { field: String, message: String },
    /// A run was driven with an input it cannot take.
    #[error("run: {0}")]
    Run(String),
}

impl Error {
    pub fn request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Request { field: field.into(), message: message.into() }
    }
}
