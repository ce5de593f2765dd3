//! A Wasm HTTP function (`wasi:http/incoming-handler`): at Start the shim
//! binds its socket in the pod's network namespace (so a port below 1024
//! needs no capability in the guest), then hands it to a confined guest
//! process that listens once it has made an instance of the function, tells
//! the shim so, and serves every request with a fresh instance until killed
//! (SIGTERM drains in-flight requests: status 0). Start returns only then:
//! a readiness probe never finds the port open while it cannot answer, and
//! a function that cannot be instantiated fails Start with the cause.

use super::wasm::{guest_memory_cap, WasmGuest};
use super::{Started, Workload};
use crate::shim::confine::Confinement;
use crate::shim::guest::protocol::Serve;
use crate::shim::guest::GuestProcess;
use crate::shim::netns;
use crate::shim::spec::{HttpSettings, Network};
use crate::shim::task::error::{blocking, TaskError, TaskResult};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

pub struct HttpFunction {
    guest: WasmGuest,
    confinement: Mutex<Option<Confinement>>,
    process: Mutex<Option<Arc<GuestProcess>>>,
    /// The shim's, until Start reports the guest process's (see `start`).
    pid: u32,
}

impl HttpFunction {
    pub fn new(guest: WasmGuest, confinement: Confinement) -> Self {
        Self { guest, confinement: Mutex::new(Some(confinement)), process: Mutex::new(None), pid: std::process::id() }
    }

    fn process(&self) -> Option<Arc<GuestProcess>> {
        self.process.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Bind the function's socket in the namespace the spec names.
fn bind(http: &HttpSettings) -> TaskResult<(std::os::fd::OwnedFd, std::net::SocketAddr)> {
    let ns = match &http.network {
        Network::Host => netns::Namespace::Current,
        Network::Path(path) => netns::Namespace::Path(path),
        Network::New => netns::Namespace::New,
    };
    // A port already taken fails Start with the cause.
    netns::bind(ns, http.listen).map_err(|err| TaskError::FailedPrecondition(format!("HTTP function: {err}")))
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
        let confinement = self
            .confinement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| TaskError::FailedPrecondition("the function was already started".into()))?;
        let http = task.http.clone();
        let serve = Serve {
            max_in_flight: http.serve.max_in_flight,
            max_queued: http.serve.max_queued,
            request_timeout_ms: http.serve.request_timeout.as_millis() as u64,
            max_body_bytes: http.serve.max_body_bytes,
            instance_requests: http.serve.reuse.max_requests,
            instance_concurrency: http.serve.reuse.max_concurrent,
        };
        let launch = self.guest.launch(&task, Some(serve));
        let (socket, addr) = blocking(move || bind(&http)).await?;
        // Forked on the executor's thread, which lives as long as the shim:
        // the guest's parent-death signal follows the thread that forked it.
        let process = GuestProcess::spawn(launch, confinement, stdio, Some(socket))
            .map_err(|e| TaskError::Internal(format!("starting the guest process: {e}")))?;
        let process = Arc::new(process);
        *self.process.lock().unwrap_or_else(|p| p.into_inner()) = Some(process.clone());
        process.start().map_err(|e| TaskError::Internal(format!("starting guest {}: {e}", self.guest.id)))?;
        let serving = process.clone();
        blocking(move || {
            serving.wait_serving().map_err(|why| TaskError::FailedPrecondition(format!("HTTP function: {why}")))
        })
        .await?;
        tracing::info!(%addr, "serving HTTP");
        // The task's pid from now on: its namespaces are the container's
        // (`kubectl debug --target` joins them), not the shim's.
        Ok(Started { pid: process.pid(), finished: process.finished() })
    }

    async fn kill(&self, signal: i32, _all: bool) -> TaskResult<()> {
        self.guest.output.killing();
        if let Some(process) = self.process() {
            process.signal(signal);
        }
        Ok(())
    }

    async fn stopped(&self) {
        self.guest.discard_prepared();
        // One that reported its end is exiting by itself (reaped at Delete).
        if let Some(process) = self.process().filter(|p| !p.reported_end()) {
            process.discard_off_executor().await;
        }
        self.guest.output.close().await;
    }

    async fn delete(&self) {
        if let Some(process) = self.process() {
            process.discard_off_executor().await;
        }
    }

    fn update(&self, resources: &oci_spec::runtime::LinuxResources) {
        if let (Some(process), Some(limit)) = (self.process(), guest_memory_cap(resources)) {
            process.set_memory(limit);
            tracing::info!(id = %self.guest.id, guest_memory_limit = ?limit, "memory limit updated");
        }
    }
}
