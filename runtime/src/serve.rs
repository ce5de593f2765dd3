//! Serving HTTP functions: `wasi:http/proxy` (0.2) components with one
//! fresh pooled instance per request, none while idle; `wasi:http/service`
//! (0.3) components through [`crate::service_workers`] (one per request
//! too unless [`ServeConfig::reuse`] says otherwise).
//!
//! Every request gets its own [`Store`] and instance from the component's
//! pre-linked [`ProxyPre`] and the engine's pooling allocator; the store is
//! dropped when the response body ends, which returns the instance's slot and
//! its pages beyond [`crate::PoolConfig::keep_resident`] (16 KiB). So an idle
//! server holds zero instances: scale-to-zero without restarting anything.
//!
//! Admission: at most [`ServeConfig::max_in_flight`] requests run guests at
//! once; up to [`ServeConfig::max_queued`] more wait (each until its own
//! timeout), and beyond that requests get `503` at once.
//!
//! Per request: a deadline ([`ServeConfig::request_timeout`], `504` when it
//! passes before the response starts), a request-body cap
//! ([`ServeConfig::max_body_bytes`], `413`), and the memory cap of
//! [`Limits::memory`]. A trap is a `500`; the server keeps serving.
//!
//! Stopping: the [`KillSwitch`] given to [`HttpServer::serve`]. SIGTERM or
//! SIGINT stops accepting, lets in-flight requests finish and ends with
//! status 0; SIGKILL (also after a SIGTERM) drops everything at once (137).

use crate::capabilities::{shared_output, Capabilities, StdinSource};
use crate::error::RunError;
use crate::exit::{ExitStatus, Outcome};
use crate::kill::KillSwitch;
use crate::limits::Limits;
use crate::program::{Compiled, Program, ProgramKind};
use crate::run::Runtime;
use crate::service_workers::{InstanceReuse, RequestStores, ServiceWorkers, Workers};
use crate::state::HttpState;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

/// The executor to serve on: with `threads <= 1` a current-thread runtime,
/// so a request is accepted, run and answered on one thread. Measured here,
/// waking a second thread per request (a multi-thread runtime) costs more
/// than the request: 50 vs 140 µs of CPU per request, 3× the throughput.
pub fn serve_executor(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        return tokio::runtime::Builder::new_current_thread().enable_all().build();
    }
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name("wasmlet-http").enable_all().build()
}

/// How a server admits and bounds requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Requests running a guest at once.
    pub max_in_flight: usize,
    /// Requests waiting for a slot beyond that; more get `503`.
    pub max_queued: usize,
    /// From arrival to the end of the response body.
    pub request_timeout: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: u64,
    /// How many requests a wasi:http 0.3 instance takes (0.2 functions
    /// always get one instance per request).
    pub reuse: InstanceReuse,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            max_queued: 1024,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 << 20,
            reuse: InstanceReuse::default(),
        }
    }
}

/// Counters a server keeps; cheap to read at any time.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Instances alive now: serving a request, or (wasi:http 0.3 with
    /// reuse) kept warm for the next one until their idle time passes.
    /// 0 once the server is idle.
    pub live_instances: AtomicUsize,
    /// Requests that reached a guest.
    pub requests: AtomicU64,
    /// Requests refused with 503 because the queue was full.
    pub rejected: AtomicU64,
    /// Requests that ended in a trap (500) or a timeout (504).
    pub failed: AtomicU64,
}

/// An HTTP function ready to serve.
#[derive(Clone)]
pub struct HttpServer {
    inner: Arc<Inner>,
}

struct Inner {
    handler: Handler,
    /// The grant (stdio in shared outputs), limits, counters and the
    /// SIGKILL switch every instance's store is made with.
    stores: Arc<RequestStores>,
    config: ServeConfig,
    in_flight: Semaphore,
    queued: AtomicUsize,
}

/// Who answers a request.
enum Handler {
    /// wasi:http 0.2: a fresh instance per request, made by the server.
    Proxy(ProxyPre<HttpState>),
    /// wasi:http 0.3: wasmtime-wasi-http's workers, whose instances take
    /// requests as [`ServeConfig::reuse`] allows.
    Service(Workers),
}

/// Decrements the live-instance count when a request's store is dropped.
struct LiveInstance(Arc<RequestStores>);

impl Drop for LiveInstance {
    fn drop(&mut self) {
        self.0.stats.live_instances.fetch_sub(1, Ordering::Relaxed);
    }
}

type ServeResponse = Response<HyperOutgoingBody>;

impl HttpServer {
    /// Prepare to serve `program`. `caps` are granted to every request
    /// (stdin is ignored: a request has its body instead); `limits.memory`
    /// caps each request's instance.
    pub fn new(
        runtime: Arc<Runtime>,
        program: &Program,
        caps: Capabilities,
        limits: Limits,
        config: ServeConfig,
    ) -> Result<Self, RunError> {
        let unknown = |e: wasmtime::Error| RunError::UnknownImport(format!("{e:#}"));
        let (component, kind) = match (program.compiled(), program.kind()) {
            (Compiled::Component(c), kind) if kind.is_http_function() => (c, kind),
            _ => {
                return Err(RunError::NotAnHttpFunction(format!("{} {}", kind_name(program.kind()), program.digest())))
            }
        };
        let mut caps = caps;
        caps.stdin = StdinSource::Null;
        let stdout = shared_output(std::mem::take(&mut caps.stdout));
        let stderr = shared_output(std::mem::take(&mut caps.stderr));
        // Fail at start, not per request, on an unusable preopen.
        caps.builder_without_stdio(true)?;
        let stores = Arc::new(RequestStores {
            runtime: runtime.clone(),
            engine: program.engine().clone(),
            caps,
            stdout,
            stderr,
            limits,
            stats: ServeStats::default(),
            hard_kill: KillSwitch::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        let handler = if kind == ProgramKind::HttpService {
            let pre =
                program.service_pre(runtime.http_linker_for(program.engine_kind())?, component).map_err(unknown)?;
            let workers = ServiceWorkers {
                stores: stores.clone(),
                pre,
                reuse: config.reuse,
                request_timeout: config.request_timeout,
            };
            Handler::Service(Workers::new(workers))
        } else {
            Handler::Proxy(
                program.proxy_pre(runtime.http_linker_for(program.engine_kind())?, component).map_err(unknown)?,
            )
        };
        let max_in_flight = config.max_in_flight.max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                handler,
                stores,
                in_flight: Semaphore::new(max_in_flight),
                config,
                queued: AtomicUsize::new(0),
            }),
        })
    }

    pub fn stats(&self) -> &ServeStats {
        &self.inner.stores.stats
    }

    /// [`HttpServer::serve`] on an executor of its own ([`serve_executor`]
    /// with `threads`), blocking the calling thread until `stop` fires.
    ///
    /// `socket` is bound, and listening or not: it starts listening only
    /// once [`HttpServer::check_instantiates`] passed, so a port that
    /// accepts connections can answer them. `on_listening` runs on that
    /// executor then (to print the address, signal readiness, or spawn
    /// signal forwarders).
    pub fn serve_blocking(
        &self,
        socket: std::net::TcpListener,
        threads: usize,
        stop: &KillSwitch,
        on_listening: impl FnOnce(std::net::SocketAddr),
    ) -> Result<Outcome, RunError> {
        let executor = serve_executor(threads).map_err(RunError::Serve)?;
        executor.block_on(self.check_instantiates())?;
        socket.set_nonblocking(true).map_err(RunError::Serve)?;
        // A backlog of 1024 (tokio's) so bursts of new connections are not
        // refused; on a listening socket (std binds with 128) this resizes it.
        // SAFETY: listen(2) on a socket the listener owns.
        if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&socket), 1024) } != 0 {
            let err = std::io::Error::last_os_error();
            let addr = socket.local_addr().map_or_else(|_| "its address".to_owned(), |a| a.to_string());
            return Err(RunError::Serve(std::io::Error::new(err.kind(), format!("listening on {addr}: {err}"))));
        }
        let outcome = executor.block_on(async {
            let listener = tokio::net::TcpListener::from_std(socket)?;
            on_listening(listener.local_addr()?);
            Ok(self.serve(listener, stop).await)
        });
        // Requests still streaming after a SIGKILL must not hold the exit.
        executor.shutdown_timeout(Duration::from_millis(100));
        outcome.map_err(RunError::Serve)
    }

    /// Accept HTTP/1.1 and h2c connections on `listener` until `stop` fires.
    pub async fn serve(&self, listener: tokio::net::TcpListener, stop: &KillSwitch) -> Outcome {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.signaled() => break,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, std::convert::Infallible>(server.handle(req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(err) = conn.await {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
            });
        }
        drop(listener);
        let signal = stop.signal().unwrap_or(libc::SIGTERM);
        if signal != libc::SIGKILL {
            tracing::info!(
                signal,
                // 0.3 instances kept warm for reuse count too (idle or not).
                live_instances = self.inner.stores.stats.live_instances.load(Ordering::Relaxed),
                "stopping: draining in-flight requests"
            );
            tokio::select! {
                () = graceful.shutdown() => {
                    // Idle wasi:http 0.3 instances are dropped with the executor now.
                    self.inner.stores.stopping.store(true, Ordering::Relaxed);
                    tracing::info!("drained; exiting");
                    return Outcome { status: ExitStatus::Exited(0), results: Vec::new() };
                }
                () = stop.killed_hard() => {}
            }
        }
        self.inner.stores.stopping.store(true, Ordering::Relaxed);
        self.inner.stores.hard_kill.kill(libc::SIGKILL);
        Outcome { status: ExitStatus::Signaled(libc::SIGKILL), results: Vec::new() }
    }

    /// Answer one request with a fresh instance.
    pub async fn handle<B>(&self, req: Request<B>) -> ServeResponse
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error> + std::error::Error + Send + Sync + 'static,
    {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + inner.config.request_timeout;
        let Some(_permit) = self.admit(deadline).await else {
            inner.stores.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return plain(StatusCode::SERVICE_UNAVAILABLE, "too many requests in flight; try again\n");
        };
        let max_body = inner.config.max_body_bytes;
        if content_length(&req).is_some_and(|len| len > max_body) {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, &format!("request body larger than {max_body} bytes\n"));
        }
        inner.stores.stats.requests.fetch_add(1, Ordering::Relaxed);
        let answered = match &inner.handler {
            Handler::Proxy(pre) => self.run_guest(pre, req, deadline).await,
            Handler::Service(workers) => self.hand_to_worker(workers, req, deadline).await,
        };
        match answered {
            Ok(response) => response,
            Err((status, why)) => {
                inner.stores.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%status, error = %why, "request failed");
                plain(status, &format!("{why}\n"))
            }
        }
    }

    async fn admit(&self, deadline: tokio::time::Instant) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let inner = &self.inner;
        if let Ok(permit) = inner.in_flight.try_acquire() {
            return Some(permit);
        }
        if inner.queued.fetch_add(1, Ordering::AcqRel) >= inner.config.max_queued {
            inner.queued.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = tokio::time::timeout_at(deadline, inner.in_flight.acquire()).await;
        inner.queued.fetch_sub(1, Ordering::AcqRel);
        permit.ok()?.ok()
    }

    /// A request's body, held to [`ServeConfig::max_body_bytes`]. Not boxed
    /// here: the 0.2 path hands it to wasmtime-wasi-http, which boxes it.
    fn limit_body<B>(
        &self,
        req: Request<B>,
    ) -> Request<impl hyper::body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error> + std::error::Error + Send + Sync + 'static,
    {
        let max_body = self.inner.config.max_body_bytes;
        req.map(move |body| {
            Limited::new(body, max_body as usize).map_err(move |e| match e.downcast::<B::Error>() {
                Ok(e) => (*e).into(),
                Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body)),
            })
        })
    }

    /// Answer through a wasi:http 0.3 worker, by `deadline` (which also
    /// expires the request inside the worker's instance).
    async fn hand_to_worker<B>(
        &self,
        workers: &Workers,
        req: Request<B>,
        deadline: tokio::time::Instant,
    ) -> Result<ServeResponse, (StatusCode, String)>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error> + std::error::Error + Send + Sync + 'static,
    {
        use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};
        let timeout = self.inner.config.request_timeout;
        let late = || (StatusCode::GATEWAY_TIMEOUT, format!("the function did not answer within {timeout:?}"));
        let Ok(answered) = tokio::time::timeout_at(
            deadline,
            workers.handle(deadline, self.limit_body(req).map(BodyExt::boxed_unsync)),
        )
        .await
        else {
            return Err(late());
        };
        match answered {
            Ok(response) => Ok(response.map(|body| DrainOnDrop(Some(body)).boxed_unsync())),
            // Expired, or stopped by the epoch deadline (a guest that never
            // yields): its instance's end reads as a trap.
            Err(e) if e.is::<ExpirationError>() || e.is::<crate::run::Interrupted>() => Err(late()),
            Err(e) if e.is::<TrapOrPanicError>() && tokio::time::Instant::now() >= deadline => Err(late()),
            Err(e) if e.is::<InstantiationError<tokio::time::Instant>>() => {
                // The cause is in the error it carries, not in its own text.
                let cause = e
                    .downcast_ref::<InstantiationError<tokio::time::Instant>>()
                    .map_or_else(|| format!("{e:#}"), |i| format!("{:#}", i.error));
                Err((StatusCode::INTERNAL_SERVER_ERROR, format!("the function cannot be instantiated: {cause}")))
            }
            Err(e) if e.is::<TrapOrPanicError>() => {
                Err((StatusCode::INTERNAL_SERVER_ERROR, format!("the function trapped: {e:#}")))
            }
            Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("the function failed: {e:#}"))),
        }
    }

    async fn run_guest<B>(
        &self,
        pre: &ProxyPre<HttpState>,
        req: Request<B>,
        deadline: tokio::time::Instant,
    ) -> Result<ServeResponse, (StatusCode, String)>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error> + std::error::Error + Send + Sync + 'static,
    {
        let inner = self.inner.clone();
        let internal = |what: &str, e: wasmtime::Error| (StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e:#}"));
        let mut store =
            inner.stores.store(Some(deadline)).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let req = self.limit_body(req);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut http = store.data_mut().http();
        let req = http.new_incoming_request(Scheme::Http, req).map_err(|e| internal("accepting the request", e))?;
        let out = http.new_response_outparam(tx).map_err(|e| internal("preparing the response", e))?;
        inner.stores.stats.live_instances.fetch_add(1, Ordering::Relaxed);
        let live = LiveInstance(inner.stores.clone());
        let pre = pre.clone();
        let ticking = inner.stores.runtime.ticker_running();
        // The guest may go on streaming the body after it has sent the
        // response head, so it runs in its own task, bounded by the deadline.
        let guest = tokio::spawn(async move {
            let _live = live;
            let _ticking = ticking;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
            };
            let result = tokio::time::timeout_at(deadline, run).await;
            let oom = store.data().limiter.refusal().map(str::to_owned);
            (result, oom)
        });
        let timeout = inner.config.request_timeout;
        match rx.await {
            Ok(Ok(response)) => Ok(response.map(|body| DrainOnDrop(Some(body)).boxed_unsync())),
            Ok(Err(code)) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("the function failed: {code:?}"))),
            Err(_) => {
                // No response was set: the guest returned without one, trapped,
                // or ran out of time. Its task says which.
                let (result, oom) = guest
                    .await
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("the function's task failed: {e}")))?;
                Err(match result {
                    Err(_elapsed) => {
                        (StatusCode::GATEWAY_TIMEOUT, format!("the function did not answer within {timeout:?}"))
                    }
                    Ok(Err(e)) if e.is::<crate::run::Interrupted>() => {
                        (StatusCode::GATEWAY_TIMEOUT, format!("the function did not answer within {timeout:?}"))
                    }
                    Ok(Err(e)) => match oom {
                        Some(why) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, format!("the function ran out of memory: {why}"))
                        }
                        None => (StatusCode::INTERNAL_SERVER_ERROR, format!("the function trapped: {e:#}")),
                    },
                    Ok(Ok(())) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "the function returned without setting a response".into())
                    }
                })
            }
        }
    }
}

impl HttpServer {
    /// One instance made and dropped before the port opens: a function
    /// whose instance cannot be made (its memory over the limit, a trapping
    /// start function) fails here, with the cause, instead of answering
    /// every request with a 500 behind a port that probes find open.
    pub async fn check_instantiates(&self) -> Result<(), RunError> {
        let deadline = tokio::time::Instant::now() + self.inner.config.request_timeout;
        let stores = &self.inner.stores;
        let mut store = stores.store(Some(deadline))?;
        let _ticking = stores.runtime.ticker_running();
        let made = async {
            match &self.inner.handler {
                Handler::Proxy(pre) => pre.instantiate_async(&mut store).await.map(drop),
                Handler::Service(workers) => workers.state().pre.instantiate_async(&mut store).await.map(drop),
            }
        };
        let made = tokio::time::timeout_at(deadline, made).await;
        let refused = store.data().limiter.refusal().map(str::to_owned);
        match (made, refused) {
            (Ok(Ok(())), _) => Ok(()),
            (_, Some(why)) => Err(RunError::Instantiate(format!("the function does not fit its memory limit: {why}"))),
            (Ok(Err(e)), None) => Err(RunError::Instantiate(format!("the function cannot be instantiated: {e:#}"))),
            (Err(_), None) => Err(RunError::Instantiate(format!(
                "the function's instance was not ready within {:?}",
                self.inner.config.request_timeout
            ))),
        }
    }
}

/// A response body that, dropped before its end (the client went away),
/// goes on draining the guest's body in the background: the guest's writes
/// keep succeeding and it ends as it would have, instead of failing with
/// `closed` and printing that into the container's log as an error. The
/// request's deadline still bounds the guest. A body read to its end costs
/// nothing more.
struct DrainOnDrop(Option<HyperOutgoingBody>);

impl hyper::body::Body for DrainOnDrop {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let Some(body) = self.0.as_mut() else { return std::task::Poll::Ready(None) };
        let polled = std::pin::Pin::new(body).poll_frame(cx);
        if let std::task::Poll::Ready(None | Some(Err(_))) = polled {
            self.0 = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.as_ref().map_or_else(|| hyper::body::SizeHint::with_exact(0), hyper::body::Body::size_hint)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take().filter(|b| !hyper::body::Body::is_end_stream(b)) else { return };
        if let Ok(executor) = tokio::runtime::Handle::try_current() {
            tracing::debug!("the client left before the response ended; draining the function's body");
            executor.spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
        }
    }
}

fn kind_name(kind: ProgramKind) -> &'static str {
    match kind {
        ProgramKind::Module => "module",
        ProgramKind::Command | ProgramKind::AsyncCommand => "command component",
        ProgramKind::HttpProxy | ProgramKind::HttpService | ProgramKind::OtherComponent => "component",
    }
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers().get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn plain(status: StatusCode, body: &str) -> ServeResponse {
    let body = Full::new(Bytes::from(body.to_owned())).map_err(|never| match never {}).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
