//! The HTTP server as a library: a fresh instance per request and none left
//! alive when idle, counted by the server itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use wasmlet_runtime::{Capabilities, HttpServer, Limits, Runtime, RuntimeConfig, ServeConfig};

fn http_guest(name: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../target/guests/wasm32-wasip2/release")
    .join(format!("http_{name}.wasm"));
    assert!(path.exists(), "{} missing: run scripts/build-guests", path.display());
    path
}

#[test]
fn instances_live_only_while_requests_run() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig { cache_dir: cache.path().to_owned(), ..RuntimeConfig::default() }).unwrap(),
    );
    let (program, _) = runtime.load_file(&http_guest("echo"), false).unwrap();
    let server =
        HttpServer::new(runtime, &program, Capabilities::default(), Limits::default(), ServeConfig::default()).unwrap();
    let executor = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    executor.block_on(async {
        assert_eq!(server.stats().live_instances.load(Ordering::Relaxed), 0);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let req = http::Request::builder()
                    .method("POST")
                    .uri(format!("http://localhost/sleep/200?{i}"))
                    .body(Full::new(Bytes::from(format!("body {i}"))))
                    .unwrap();
                let response = server.handle(req).await;
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            }));
        }
        // While they sleep inside the guest, each holds its own instance.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let live = server.stats().live_instances.load(Ordering::Relaxed);
        let early = live;
        for (i, task) in tasks.into_iter().enumerate() {
            let (status, body) = task.await.unwrap();
            let text = String::from_utf8_lossy(&body);
            assert_eq!(status, 200, "{text}");
            assert!(text.starts_with(&format!("POST /sleep/200?{i}\n")), "{text}");
            assert!(text.ends_with(&format!("\n\nbody {i}")), "{text}");
        }
        assert!(early > 1, "expected concurrent instances, saw {early}");
        assert_eq!(server.stats().live_instances.load(Ordering::Relaxed), 0, "instances alive while idle");
        assert_eq!(server.stats().requests.load(Ordering::Relaxed), 16);
    });
}
