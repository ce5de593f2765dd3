//! Signals to a process that runs a guest (`wasmlet run`/`serve`, a
//! container's guest process) become kills of that guest.

use wasmlet_runtime::KillSwitch;

/// SIGINT/SIGTERM/SIGHUP stop the guest with that signal's status
/// (a server drains first); call on a tokio executor; a second one stops it as SIGKILL.
pub(crate) fn forward_to(kill: KillSwitch) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, number) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
    ] {
        let kill = kill.clone();
        if let Ok(mut stream) = signal(kind) {
            tokio::spawn(async move {
                // A second signal (Ctrl-C twice) stops at once, as SIGKILL.
                while stream.recv().await.is_some() {
                    let signal = if kill.signal().is_some() { libc::SIGKILL } else { number };
                    kill.kill(signal);
                }
            });
        }
    }
}
