//! Serving `wasi:http/service` (wasi:http 0.3) components: instances that
//! may take more than one request, as the component model's concurrency
//! allows, through wasmtime-wasi-http's [`ProxyHandler`] workers.
//!
//! [`InstanceReuse`] says how far an instance is shared. The default, one
//! request per instance, isolates requests as wasi:http 0.2 functions are
//! isolated (nothing a request leaves in memory reaches the next). Reuse
//! (`wasmtime serve` takes up to 128 requests per instance, 16 at a time)
//! saves an instantiation per request, but requests then share the
//! instance's memory: one request's data, or a bug it triggers, can be seen
//! by the next. A reusing instance left idle is dropped after
//! [`InstanceReuse::idle`], so an idle function still holds none.

use crate::capabilities::{set_output, Capabilities, SharedOutput, Stream};
use crate::error::RunError;
use crate::kill::KillSwitch;
use crate::limits::{Limits, MemoryLimiter};
use crate::run::Runtime;
use crate::serve::ServeStats;
use crate::state::{HttpHooks, HttpState};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::{GuestTaskId, ResourceTable};
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

/// How many requests one instance of a wasi:http 0.3 function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    /// Requests an instance handles in its life (1: a fresh instance each).
    pub max_requests: usize,
    /// Requests an instance handles at once.
    pub max_concurrent: usize,
    /// How long a reusing instance waits idle for another request.
    pub idle: Duration,
}

impl InstanceReuse {
    /// One instance per request, as for wasi:http 0.2 functions.
    pub const PER_REQUEST: Self = Self { max_requests: 1, max_concurrent: 1, idle: Duration::ZERO };

    /// `wasmtime serve`'s sharing: up to 128 requests, 16 at a time.
    pub const WASMTIME_SERVE: Self = Self::new(128, 16);

    /// Up to `max_requests` per instance, `max_concurrent` at once (both at
    /// least 1); a reusing instance waits a second idle for more.
    pub const fn new(max_requests: usize, max_concurrent: usize) -> Self {
        let max_requests = if max_requests == 0 { 1 } else { max_requests };
        let max_concurrent = if max_concurrent == 0 { 1 } else { max_concurrent };
        let idle = if max_requests > 1 { Duration::from_secs(1) } else { Duration::ZERO };
        Self { max_requests, max_concurrent, idle }
    }

    /// [`InstanceReuse::new`] of settings a user gave: refused, not
    /// clamped, when they cannot mean anything.
    pub fn checked(max_requests: usize, max_concurrent: usize) -> Result<Self, ReuseError> {
        if max_requests == 0 || max_concurrent == 0 {
            return Err(ReuseError::Zero);
        }
        if max_concurrent > 1 && max_requests == 1 {
            return Err(ReuseError::ConcurrencyWithoutReuse);
        }
        Ok(Self::new(max_requests, max_concurrent))
    }
}

/// Why instance-reuse settings were refused ([`InstanceReuse::checked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReuseError {
    #[error("requests per instance and requests at once must be at least 1")]
    Zero,
    #[error(
        "more than one request at once needs more than one request per instance (an instance that takes one \
         request has nothing to run at once)"
    )]
    ConcurrencyWithoutReuse,
}

impl Default for InstanceReuse {
    fn default() -> Self {
        Self::PER_REQUEST
    }
}

/// What every request's store is made of: the grant, the shared stdio, the
/// limits, and the switch a SIGKILL fires.
pub(crate) struct RequestStores {
    pub(crate) runtime: Arc<Runtime>,
    /// The program's engine.
    pub(crate) engine: wasmtime::Engine,
    pub(crate) caps: Capabilities,
    pub(crate) stdout: SharedOutput,
    pub(crate) stderr: SharedOutput,
    pub(crate) limits: Limits,
    pub(crate) stats: ServeStats,
    pub(crate) hard_kill: KillSwitch,
    /// Set once the server stops: instances dropped then end by design.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

impl RequestStores {
    /// A store for one instance, stopped at `deadline` when there is one.
    pub(crate) fn store(&self, deadline: Option<tokio::time::Instant>) -> Result<Store<HttpState>, RunError> {
        let mut builder = self.caps.builder_without_stdio(true)?;
        set_output(&mut builder, Stream::Stdout, self.stdout.clone());
        set_output(&mut builder, Stream::Stderr, self.stderr.clone());
        let state = HttpState {
            ctx: builder.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::for_limits(&self.limits),
            hooks: HttpHooks { network: self.caps.network },
        };
        let limits = Limits {
            memory: self.limits.memory,
            memory_cap: self.limits.memory_cap.clone(),
            deadline: deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now())),
        };
        let mut store =
            Runtime::new_store(&self.engine, state, &limits, &self.hard_kill, crate::run::Yielding::ToExecutor);
        store.limiter(|s| &mut s.limiter);
        Ok(store)
    }
}

/// The workers of one wasi:http 0.3 function.
pub(crate) type Workers = ProxyHandler<ServiceWorkers>;

/// Makes the instances ([`HandlerState`]) [`Workers`] hand requests to.
pub(crate) struct ServiceWorkers {
    pub(crate) stores: Arc<RequestStores>,
    pub(crate) pre: ServicePre<HttpState>,
    pub(crate) reuse: InstanceReuse,
    pub(crate) request_timeout: Duration,
}

impl HandlerState for ServiceWorkers {
    type StoreData = HttpState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HttpState, Expiration, Worker>> {
        // An instance for one request is stopped at that request's deadline,
        // as a 0.2 function's is; a shared one by each request's expiry.
        let deadline = (self.reuse.max_requests <= 1).then(|| tokio::time::Instant::now() + self.request_timeout);
        let mut store = self.stores.store(deadline).map_err(wasmtime::Error::new)?;
        let ticking = self.stores.runtime.ticker_running();
        let made = tokio::time::timeout(self.request_timeout, self.pre.instantiate_async(&mut store)).await;
        let service = match made {
            Ok(made) => made?,
            Err(_) => wasmtime::bail!("the function's instance was not ready within {:?}", self.request_timeout),
        };
        self.stores.stats.live_instances.fetch_add(1, Ordering::Relaxed);
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <HttpState as WasiHttpView>::http,
            expiration: Expiration { reuse: self.reuse, request_timeout: self.request_timeout, timer: None },
            state: Worker { stores: self.stores.clone(), reuse: self.reuse, _ticking: ticking },
        })
    }
}

/// One instance's admission and end ([`WorkerState`]).
pub(crate) struct Worker {
    stores: Arc<RequestStores>,
    reuse: InstanceReuse,
    /// Epoch ticks while the instance lives: kills, deadlines, yields.
    _ticking: crate::ticker::Running,
}

impl WorkerState for Worker {
    type StoreData = HttpState;
    /// The request's deadline, set when it arrived.
    type RequestData = tokio::time::Instant;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse.max_requests.max(1) {
            ShouldAccept::Never
        } else if concurrent >= self.reuse.max_concurrent.max(1) {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HttpState>,
        deadline: tokio::time::Instant,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // The request expires (504) when its time, counted from its
        // arrival, is up.
        Box::pin(tokio::time::sleep_until(deadline))
    }

    fn drop(&self, store: Store<HttpState>, result: wasmtime::Result<()>) {
        self.stores.stats.live_instances.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = result {
            if self.stores.stopping.load(Ordering::Relaxed) {
                tracing::debug!(error = %format!("{e:#}"), "instance dropped as the server stopped");
                return;
            }
            match store.data().limiter.refusal() {
                Some(why) => tracing::warn!(error = %why, "the function's instance ran out of memory"),
                None => tracing::warn!(error = %format!("{e:#}"), "the function's instance ended with an error"),
            }
        }
    }
}

/// When an instance is dropped ([`WorkerExpiration`]): once idle past
/// [`InstanceReuse::idle`], or when its newest request is past its time
/// (a guest that never yields to the event loop cannot expire its requests
/// from inside).
pub(crate) struct Expiration {
    reuse: InstanceReuse,
    request_timeout: Duration,
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl WorkerExpiration for Expiration {
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>, status: WorkerStatus, since: Instant) -> Poll<()> {
        let due = since
            + match status {
                WorkerStatus::Idle => self.reuse.idle,
                WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
            };
        if Instant::now() >= due {
            return Poll::Ready(());
        }
        let timer = match &mut self.timer {
            Some((at, timer)) if *at == due => timer,
            slot => &mut slot.insert((due, Box::pin(tokio::time::sleep_until(due.into())))).1,
        };
        timer.as_mut().poll(cx)
    }
}
