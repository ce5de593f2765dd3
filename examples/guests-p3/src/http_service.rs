//! A `wasi:http/service` (wasi:http 0.3) function for tests and examples.
//!   /              a fixed greeting
//!   /served        how many requests this instance has handled (shows reuse)
//!   /stream?n=K    K chunks, each written 2 ms after the last (a streamed body)
//!   /echo          the request body, streamed back as it arrives
//!   /fetch?port=P&path=/x
//!                  an outgoing GET to 127.0.0.1:P/x; answers with its status and body
//!   /sleep?ms=N    answers after N ms
//!   /trap          traps (a Rust panic aborts)
//!   /spin          computes forever, never calling the host
use std::sync::atomic::{AtomicU32, Ordering};
use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Service);

struct Service;

/// Requests this instance has handled: an instance serving many requests
/// keeps its memory between them, which `/served` makes visible.
static SERVED: AtomicU32 = AtomicU32::new(0);

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        let target = request.get_path_with_query().unwrap_or_default();
        let (route, query) = target.split_once('?').unwrap_or((&target, ""));
        let param = |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
        match route {
            "/" => Ok(respond(200, vec![b"hello from a WASI 0.3 service\n".to_vec()], 0)),
            "/served" => Ok(respond(200, vec![format!("{served}\n").into_bytes()], 0)),
            "/stream" => {
                let n: u32 = param("n").and_then(|n| n.parse().ok()).unwrap_or(3);
                Ok(respond(200, (1..=n).map(|i| format!("chunk {i}\n").into_bytes()).collect(), 2))
            }
            "/echo" => {
                let (done_tx, done_rx) = wit_future::new(|| Ok(()));
                let (body, trailers) = Request::consume_body(request, done_rx);
                drop(done_tx);
                let (response, _sent) = Response::new(Fields::new(), Some(body), trailers);
                Ok(response)
            }
            "/fetch" => {
                let port = param("port").ok_or(ErrorCode::InternalError(Some("no port".into())))?;
                let path = param("path").unwrap_or("/");
                fetch(port, path).await
            }
            "/sleep" => {
                let ms: u64 = param("ms").and_then(|n| n.parse().ok()).unwrap_or(100);
                wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
                Ok(respond(200, vec![format!("slept {ms} ms\n").into_bytes()], 0))
            }
            "/trap" => panic!("asked to trap"),
            "/spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => Ok(respond(404, vec![format!("no route {route}\n").into_bytes()], 0)),
        }
    }
}

/// A response whose body is `chunks`, written by a task of the guest's own
/// after the handler returned, `gap_ms` apart.
fn respond(status: u16, chunks: Vec<Vec<u8>>, gap_ms: u64) -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers_tx);
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())]).unwrap_or_else(|_| Fields::new());
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    let _ = response.set_status_code(status);
    wit_bindgen::spawn(async move {
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i > 0 && gap_ms > 0 {
                wasip3::clocks::monotonic_clock::wait_for(gap_ms * 1_000_000).await;
            }
            if !body_tx.write_all(chunk).await.is_empty() {
                return; // the reader went away
            }
        }
    });
    response
}

async fn fetch(port: &str, path: &str) -> Result<Response, ErrorCode> {
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers_tx);
    let (outgoing, _sent) = Request::new(Fields::new(), None, trailers_rx, None);
    let _ = outgoing.set_scheme(Some(&Scheme::Http));
    let _ = outgoing.set_authority(Some(&format!("127.0.0.1:{port}")));
    let _ = outgoing.set_path_with_query(Some(path));
    let upstream = wasip3::http::client::send(outgoing).await?;
    let status = upstream.get_status_code();
    let (done_tx, done_rx) = wit_future::new(|| Ok(()));
    let (body, _trailers) = Response::consume_body(upstream, done_rx);
    drop(done_tx);
    let body = body.collect().await;
    Ok(respond(200, vec![format!("upstream {status}: {}", String::from_utf8_lossy(&body)).into_bytes()], 0))
}
