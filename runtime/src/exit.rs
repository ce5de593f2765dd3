//! How a run ends, and the exit status each ending maps to.
//!
//! | ending                                   | status | reason              |
//! |------------------------------------------|--------|---------------------|
//! | returned from `_start` / `wasi:cli/run` ok | 0    | `Completed`         |
//! | `proc_exit(N)` (preview1)                | N      | `Completed`/`Error` |
//! | `wasi:cli/exit` (0.2: a result, so 0 or 1) | 0 / 1 | `Completed`/`Error` |
//! | `wasi:cli/run` returned `err`            | 1      | `Error`             |
//! | trap (unreachable, stack overflow, ...)  | 134    | `Error` (128+SIGABRT, as `wasmtime run`) |
//! | memory limit hit, then the guest trapped | 137    | `OOMKilled`         |
//! | killed with signal S (SIGKILL, SIGTERM…) | 128+S  | `Error` (137, 143)  |
//! | wall-clock deadline passed               | 137    | `DeadlineExceeded`  |
//!
//! WASI guests cannot catch signals, so every signal stops the guest at its
//! next epoch tick or host call; the status still says which signal it was.

use std::fmt;

/// Exit status of a trapped guest: 128 + SIGABRT, the same as `wasmtime run`.
pub const TRAP_STATUS: i32 = 128 + libc::SIGABRT;
/// Exit status when the memory limit ended the guest (as the kernel's OOM killer).
pub const OOM_STATUS: i32 = 128 + libc::SIGKILL;
/// Exit status when the wall-clock deadline ended the guest.
pub const DEADLINE_STATUS: i32 = 128 + libc::SIGKILL;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The guest finished by itself with this code.
    Exited(i32),
    /// The guest trapped; the message names the trap.
    Trapped(String),
    /// The guest hit its memory limit and then could not go on.
    OutOfMemory(String),
    /// Stopped by a signal delivered through a [`crate::KillSwitch`].
    Signaled(i32),
    /// Stopped because the run's wall-clock deadline passed.
    DeadlineExceeded,
}

impl ExitStatus {
    /// The numeric status a process would report (see the module table).
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) => *code,
            ExitStatus::Trapped(_) => TRAP_STATUS,
            ExitStatus::OutOfMemory(_) => OOM_STATUS,
            ExitStatus::Signaled(signal) => 128 + signal,
            ExitStatus::DeadlineExceeded => DEADLINE_STATUS,
        }
    }

    /// Kubernetes' container termination reason for this ending.
    pub fn reason(&self) -> &'static str {
        match self {
            ExitStatus::Exited(0) => "Completed",
            ExitStatus::OutOfMemory(_) => "OOMKilled",
            ExitStatus::DeadlineExceeded => "DeadlineExceeded",
            _ => "Error",
        }
    }

    pub fn is_oom(&self) -> bool {
        matches!(self, ExitStatus::OutOfMemory(_))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Trapped(msg) => write!(f, "trapped: {msg}"),
            ExitStatus::OutOfMemory(msg) => write!(f, "out of memory: {msg}"),
            ExitStatus::Signaled(signal) => write!(f, "stopped by signal {signal}"),
            ExitStatus::DeadlineExceeded => write!(f, "deadline exceeded"),
        }
    }
}

/// The result of a run that got as far as starting the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: ExitStatus,
    /// Values returned by an invoked export (empty for commands).
    pub results: Vec<String>,
}

impl Outcome {
    pub fn code(&self) -> i32 {
        self.status.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_documented_table() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Trapped("x".into()).code(), 134);
        assert_eq!(ExitStatus::OutOfMemory("x".into()).code(), 137);
        assert_eq!(ExitStatus::Signaled(libc::SIGKILL).code(), 137);
        assert_eq!(ExitStatus::Signaled(libc::SIGTERM).code(), 143);
        assert_eq!(ExitStatus::DeadlineExceeded.code(), 137);
        assert_eq!(ExitStatus::OutOfMemory("x".into()).reason(), "OOMKilled");
        assert_eq!(ExitStatus::Exited(0).reason(), "Completed");
        assert_eq!(ExitStatus::Exited(1).reason(), "Error");
    }
}
