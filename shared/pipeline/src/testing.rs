//! What the pipelines' tests share: an adapter error of a chosen kind.

use hookflow_core::ports::{Classify, ErrorKind, PortError};

/// An adapter failure of kind `.0`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?}")]
pub(crate) struct Fault(pub(crate) ErrorKind);

impl Classify for Fault {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

impl From<PortError> for Fault {
    fn from(_: PortError) -> Self {
        Fault(ErrorKind::Unavailable)
    }
}

impl From<hookflow_core::Error> for Fault {
    fn from(_: hookflow_core::Error) -> Self {
        Fault(ErrorKind::Other)
    }
}
