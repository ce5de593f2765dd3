//! The init process's lifecycle as a state machine, with the answers runc's
//! shim gives to a verb in the wrong phase (`pkg/process/init_state.go`):
//!
//! ```text
//! Created --start--> Running --exit claimed--> Stopping --stdio closed--> Stopped
//!    |                                                                       ^
//!    +---------------- kill before start (the task ends at once) ------------+
//! ```
//!
//! Deleted is the end of the record itself (Delete from Created or Stopped).
//! `Stopping` exists because the exit is reported only once the guest's
//! output is passed on and its FIFOs are closed (containerd waits for their
//! end-of-file once it sees the exit); it still reads as running.

use super::error::TaskError;
use containerd_shim::protos::api;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Created,
    Running,
    Stopping,
    Stopped,
}

/// What a kill does in the current phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillAction {
    /// Never started: the task ends now, with 128 + signal.
    EndUnstarted,
    /// Deliver the signal to the running workload.
    Signal,
}

impl Phase {
    /// Created → Running.
    pub fn start(&mut self) -> Result<(), TaskError> {
        match self {
            Self::Created => {
                *self = Self::Running;
                Ok(())
            }
            Self::Running | Self::Stopping => {
                Err(TaskError::FailedPrecondition("cannot start a running process".into()))
            }
            Self::Stopped => Err(TaskError::FailedPrecondition("cannot start a stopped process".into())),
        }
    }

    pub fn kill(&self) -> Result<KillAction, TaskError> {
        match self {
            Self::Created => Ok(KillAction::EndUnstarted),
            Self::Running => Ok(KillAction::Signal),
            Self::Stopping | Self::Stopped => Err(TaskError::NotFound("process already finished".into())),
        }
    }

    /// The first exit wins: true (and Stopping) for it, false for any later one.
    pub fn claim_exit(&mut self) -> bool {
        match self {
            Self::Created | Self::Running => {
                *self = Self::Stopping;
                true
            }
            Self::Stopping | Self::Stopped => false,
        }
    }

    /// The claimed exit is recorded: Stopping → Stopped.
    pub fn stopped(&mut self) {
        debug_assert_eq!(*self, Self::Stopping, "stopped without a claimed exit");
        *self = Self::Stopped;
    }

    pub fn check_delete(&self) -> Result<(), TaskError> {
        match self {
            Self::Created | Self::Stopped => Ok(()),
            Self::Running | Self::Stopping => {
                Err(TaskError::FailedPrecondition("cannot delete a running process; stop it first".into()))
            }
        }
    }

    pub fn check_exec(&self) -> Result<(), TaskError> {
        match self {
            Self::Running => Ok(()),
            _ => Err(TaskError::FailedPrecondition("container is not running".into())),
        }
    }

    /// The status State reports.
    pub fn status(&self) -> api::Status {
        match self {
            Self::Created => api::Status::CREATED,
            Self::Running | Self::Stopping => api::Status::RUNNING,
            Self::Stopped => api::Status::STOPPED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_through_its_phases_once() {
        let mut phase = Phase::Created;
        assert_eq!(phase.status(), api::Status::CREATED);
        phase.start().unwrap();
        assert_eq!(phase.status(), api::Status::RUNNING);
        assert_eq!(phase.kill(), Ok(KillAction::Signal));
        assert!(phase.claim_exit());
        assert!(!phase.claim_exit(), "a second exit is ignored");
        assert_eq!(phase.status(), api::Status::RUNNING, "stopping still reads as running");
        phase.stopped();
        assert_eq!(phase.status(), api::Status::STOPPED);
        assert!(!phase.claim_exit());
    }

    #[test]
    fn wrong_transitions_answer_as_runc_shim_does() {
        let mut running = Phase::Running;
        assert!(matches!(running.start(), Err(TaskError::FailedPrecondition(m)) if m.contains("running")));
        assert!(matches!(running.check_delete(), Err(TaskError::FailedPrecondition(_))));
        let mut stopped = Phase::Stopped;
        assert!(matches!(stopped.start(), Err(TaskError::FailedPrecondition(m)) if m.contains("stopped")));
        assert!(matches!(stopped.kill(), Err(TaskError::NotFound(_))));
        assert!(matches!(Phase::Stopping.kill(), Err(TaskError::NotFound(_))));
        assert!(matches!(Phase::Stopping.check_delete(), Err(TaskError::FailedPrecondition(_))));
        assert!(matches!(Phase::Created.check_exec(), Err(TaskError::FailedPrecondition(_))));
        assert!(Phase::Stopped.check_delete().is_ok());
        assert!(Phase::Created.check_delete().is_ok());
    }

    #[test]
    fn a_kill_before_start_ends_the_task() {
        let mut phase = Phase::Created;
        assert_eq!(phase.kill(), Ok(KillAction::EndUnstarted));
        assert!(phase.claim_exit());
        phase.stopped();
        assert!(phase.start().is_err());
    }
}
