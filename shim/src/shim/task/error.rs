//! The Task API's errors, typed inside the shim and turned into the ttrpc
//! status codes containerd's client maps to its `errdefs` (NotFound for a
//! finished process, FailedPrecondition for a wrong transition, as runc's
//! shim answers).

use containerd_shim::protos::ttrpc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

pub type TaskResult<T> = Result<T, TaskError>;

impl TaskError {
    pub fn code(&self) -> ttrpc::Code {
        match self {
            Self::NotFound(_) => ttrpc::Code::NOT_FOUND,
            Self::FailedPrecondition(_) => ttrpc::Code::FAILED_PRECONDITION,
            Self::AlreadyExists(_) => ttrpc::Code::ALREADY_EXISTS,
            Self::InvalidArgument(_) => ttrpc::Code::INVALID_ARGUMENT,
            Self::Unimplemented(_) => ttrpc::Code::UNIMPLEMENTED,
            Self::Unavailable(_) => ttrpc::Code::UNAVAILABLE,
            Self::Internal(_) => ttrpc::Code::INTERNAL,
        }
    }

    /// An internal error from a blocking task that panicked or was cancelled.
    pub fn joined(err: tokio::task::JoinError) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<TaskError> for ttrpc::Error {
    fn from(err: TaskError) -> Self {
        let code = err.code();
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, err.to_string()))
    }
}

/// Run blocking `f` off the executor; its error (or a panic) as a [`TaskError`].
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> TaskResult<T> + Send + 'static) -> TaskResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(TaskError::joined)?
}
