//! A Wasm HTTP function (`wasi:http/incoming-handler`): it listens before
//! Start returns, so readiness probes pass at once, in the pod's network
//! namespace, and serves every request with a fresh instance until killed
//! (SIGTERM drains in-flight requests: status 0).

use super::wasm::{finished, WasmGuest};
use super::{Finished, Started, Workload};
use crate::shim::netns;
use crate::shim::spec::{HttpSettings, Network, WasmTask};
use crate::shim::task::error::{blocking, TaskError, TaskResult};
use async_trait::async_trait;
use std::sync::Arc;
use wasmlet_runtime::{Capabilities, HttpServer, KillSwitch, Limits, Outcome, Program, Runtime, ServeConfig};

pub struct HttpFunction {
    guest: WasmGuest,
    pid: u32,
}

impl HttpFunction {
    pub fn new(guest: WasmGuest) -> Self {
        Self { guest, pid: std::process::id() }
    }
}

/// Bind the function's listener in the namespace the spec names.
fn listen(http: &HttpSettings) -> TaskResult<std::net::TcpListener> {
    let ns = match &http.network {
        Network::Host => netns::Namespace::Current,
        Network::Path(path) => netns::Namespace::Path(path),
        Network::New => netns::Namespace::New,
    };
    // A port already taken fails Start with the cause.
    netns::bind(ns, http.listen).map_err(|err| TaskError::FailedPrecondition(format!("HTTP function: {err}")))
}

/// Serve until `kill` stops it.
fn serve(
    runtime: Arc<Runtime>,
    program: &Program,
    (caps, limits, config): (Capabilities, Limits, ServeConfig),
    listener: std::net::TcpListener,
    kill: &KillSwitch,
) -> Result<Outcome, String> {
    let server = HttpServer::new(runtime, program, caps, limits, config).map_err(|e| e.to_string())?;
    server
        .serve_blocking(listener, 1, kill, |addr| tracing::info!(%addr, "serving HTTP"))
        .map_err(|e| format!("serving HTTP: {e}"))
}

#[async_trait]
impl Workload for HttpFunction {
    fn kind(&self) -> &'static str {
        "Wasm HTTP function"
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    async fn start(&self) -> TaskResult<Started> {
        let (task, stdio) = self.guest.take_prepared()?;
        let WasmTask { mut caps, limits, http, .. } = task;
        let listener = {
            let http = http.clone();
            blocking(move || listen(&http)).await?
        };
        caps.stdin = stdio.stdin;
        caps.stdout = stdio.stdout;
        caps.stderr = stdio.stderr;
        let (runtime, program, kill, id) =
            (self.guest.runtime.clone(), self.guest.program.clone(), self.guest.kill.clone(), self.guest.id.clone());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("wasmlet-http".into())
            .spawn(move || {
                let _ = done_tx.send(serve(runtime, &program, (caps, limits, http.serve), listener, &kill));
            })
            .map_err(|e| TaskError::Internal(format!("starting the server thread: {e}")))?;
        let finished = Box::pin(async move {
            match done_rx.await {
                Ok(result) => finished(&id, result),
                Err(_) => Finished::status(128 + libc::SIGKILL as u32),
            }
        });
        Ok(Started { pid: self.pid, finished })
    }

    async fn kill(&self, signal: i32, _all: bool) -> TaskResult<()> {
        self.guest.kill.kill(signal);
        Ok(())
    }

    async fn stopped(&self) {
        self.guest.close_stdio().await;
    }

    fn update(&self, resources: &oci_spec::runtime::LinuxResources) {
        self.guest.update(resources);
    }
}
