//! `wasmlet serve` end to end: the real binary serving the HTTP functions of
//! examples/http on loopback, driven by raw HTTP/1.1 and by curl for h2c.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmlet_tests::{guest, http_guest, http_request, seen, Wasmlet};

/// A running `wasmlet serve` on an ephemeral loopback port.
struct Server {
    child: Child,
    addr: String,
    stderr_tail: std::sync::mpsc::Receiver<String>,
    _wasmlet: Wasmlet,
}

impl Server {
    fn start(file: &std::path::Path, extra: &[&str]) -> Server {
        let wasmlet = Wasmlet::new();
        let mut child = wasmlet
            .command()
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wasmlet serve");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            let n = stderr.read_line(&mut line).expect("read stderr");
            assert!(n > 0, "wasmlet serve exited before listening: {:?}", child.wait());
            if let Some(rest) = line.trim().strip_prefix("wasmlet: serving http://") {
                break rest.trim_end_matches('/').to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Server { child, addr, stderr_tail: rx, _wasmlet: wasmlet }
    }

    fn get(&self, path: &str) -> wasmlet_tests::HttpResponse {
        http_request(&self.addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stderr_lines(&self) -> Vec<String> {
        self.stderr_tail.try_iter().collect()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), signal) };
    }

    fn wait(mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!("wasmlet serve did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn hello_function_answers_every_request_with_a_fresh_instance() {
    let server = Server::start(&http_guest("hello"), &[]);
    for i in 0..20 {
        let response = server.get(&format!("/greet?n={i}"));
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), format!("Hello from wasmlet! You asked for /greet?n={i}\n"));
        assert!(response.headers.contains(&("content-type".into(), "text/plain".into())));
    }
}

#[test]
fn echo_streams_body_and_headers_back_byte_for_byte() {
    let server = Server::start(&http_guest("echo"), &[]);
    let body: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let response = http_request(&server.addr, "POST", "/upload?x=1", &[("x-wasmlet-test", "abc def")], &body).unwrap();
    assert_eq!(response.status, 200);
    let split = response.body.windows(2).position(|w| w == b"\n\n").expect("blank line after the head") + 2;
    let head = String::from_utf8_lossy(&response.body[..split]);
    assert!(head.starts_with("POST /upload?x=1\n"), "{head}");
    assert!(head.contains("x-wasmlet-test: abc def\n"), "{head}");
    assert!(head.contains(&format!("content-length: {}\n", body.len())), "{head}");
    assert_eq!(response.body.len() - split, body.len());
    assert!(response.body[split..] == body[..], "body differs");
}

#[test]
fn h2c_prior_knowledge_is_served() {
    let server = Server::start(&http_guest("hello"), &[]);
    let out = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_version} %{http_code}"])
        .arg(format!("http://{}/h2", server.addr))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text, "Hello from wasmlet! You asked for /h2\n\n2 200");
}

#[test]
fn a_trap_is_a_500_and_the_server_keeps_serving() {
    let server = Server::start(&http_guest("echo"), &[]);
    let response = server.get("/trap");
    assert_eq!(response.status, 500);
    assert!(response.text().contains("trapped"), "{}", response.text());
    let ok = server.get("/after");
    assert_eq!(ok.status, 200);
    assert!(ok.text().starts_with("GET /after\n"));
}

#[test]
fn a_request_past_its_timeout_is_a_504_even_in_a_tight_loop() {
    let server = Server::start(&http_guest("echo"), &["--timeout", "500ms"]);
    for path in ["/spin", "/sleep/10000"] {
        let start = Instant::now();
        let response = server.get(path);
        let took = start.elapsed();
        assert_eq!(response.status, 504, "{path}: {}", response.text());
        assert!(took >= Duration::from_millis(450), "{path}: answered after {took:?}");
        assert!(took < Duration::from_secs(8), "{path}: answered after {took:?}");
    }
    assert_eq!(server.get("/fine").status, 200);
}

#[test]
fn bodies_over_the_cap_are_refused_with_413() {
    let server = Server::start(&http_guest("echo"), &["--max-body", "1Ki"]);
    let small = http_request(&server.addr, "POST", "/", &[], &[b'a'; 1000]).unwrap();
    assert_eq!(small.status, 200);
    let big = http_request(&server.addr, "POST", "/", &[], &[b'a'; 2048]).unwrap();
    assert_eq!(big.status, 413, "{}", big.text());
}

#[test]
fn beyond_in_flight_and_queue_requests_get_503() {
    let server = Server::start(&http_guest("echo"), &["--max-in-flight", "1", "--max-queued", "0"]);
    let addr = server.addr.clone();
    let slow = std::thread::spawn(move || http_request(&addr, "GET", "/sleep/1500", &[], b"").unwrap().status);
    // Wait until the slow request holds the only slot.
    std::thread::sleep(Duration::from_millis(500));
    let refused = server.get("/now");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(server.get("/later").status, 200);
}

#[test]
fn queued_requests_wait_for_a_slot() {
    let server = Server::start(&http_guest("echo"), &["--max-in-flight", "1", "--max-queued", "8"]);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || http_request(&addr, "GET", &format!("/sleep/200?{i}"), &[], b"").unwrap().status)
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 200);
    }
}

#[test]
fn guest_output_goes_to_the_servers_stdout_and_stderr() {
    let mut server = Server::start(&http_guest("echo"), &[]);
    assert_eq!(server.get("/log").status, 200);
    server.signal(libc::SIGTERM);
    let mut stdout = String::new();
    server.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(stdout.contains("echo: to stdout\n"), "{stdout:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stderr = Vec::new();
    while Instant::now() < deadline && !stderr.iter().any(|l: &String| l.contains("echo: to stderr")) {
        stderr.extend(server.stderr_lines());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stderr.iter().any(|l| l.contains("echo: to stderr")), "{stderr:?}");
}

#[test]
fn memory_cap_applies_per_request() {
    let server = Server::start(&http_guest("echo"), &["--memory", "16Mi"]);
    let response = server.get("/grow/64");
    assert_eq!(response.status, 500);
    assert!(response.text().contains("out of memory"), "{}", response.text());
    assert_eq!(server.get("/grow/4").status, 200);
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let server = Server::start(&http_guest("echo"), &[]);
    let addr = server.addr.clone();
    let in_flight = std::thread::spawn(move || http_request(&addr, "GET", "/sleep/1500", &[], b"").unwrap());
    std::thread::sleep(Duration::from_millis(500));
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    assert!(std::net::TcpStream::connect(&server.addr).is_err(), "the listener is still open after SIGTERM");
    let response = in_flight.join().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().starts_with("GET /sleep/1500\n"));
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
}

#[test]
fn sigkill_style_second_signal_stops_a_draining_server() {
    let server = Server::start(&http_guest("echo"), &["--timeout", "60s"]);
    let addr = server.addr.clone();
    let _stuck = std::thread::spawn(move || http_request(&addr, "GET", "/spin", &[], b""));
    std::thread::sleep(Duration::from_millis(500));
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGINT);
    assert_eq!(server.wait(Duration::from_secs(10)), Some(137));
}

#[test]
fn idle_server_returns_burst_memory() {
    let server = Server::start(&http_guest("echo"), &["--max-in-flight", "16"]);
    assert_eq!(server.get("/warm").status, 200);
    let before = rss_kib(server.pid());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || http_request(&addr, "GET", &format!("/grow/24?{i}"), &[], b"").unwrap().status)
        })
        .collect();
    let mut peak = 0;
    while !handles.iter().all(|h| h.is_finished()) {
        peak = peak.max(rss_kib(server.pid()));
        std::thread::sleep(Duration::from_millis(2));
    }
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 200);
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib(server.pid());
    eprintln!("RSS before {before} KiB, peak {peak} KiB, after {after} KiB");
    assert!(after < before + 16 * 1024, "memory not returned: before {before} KiB, after {after} KiB (peak {peak})");
}

#[test]
fn serving_something_that_is_not_an_http_function_fails_clearly() {
    let w = Wasmlet::new();
    let s =
        seen(&w.run(["serve".as_ref(), "--addr".as_ref(), "127.0.0.1:0".as_ref(), guest("hello", true).as_os_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("is not an HTTP function"), "{s:?}");
    assert!(s.stderr.contains("command component"), "{s:?}");
    let s = seen(&w.run(["run".as_ref(), http_guest("hello").as_os_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("wasi:http/proxy"), "{s:?}");
}

/// The port opens only once an instance of the function could be made: one
/// whose initial memory (160 MiB) is over `--memory` fails to start naming
/// the cause, and no connection attempt made meanwhile is ever accepted;
/// with room it serves.
#[test]
fn a_function_that_cannot_be_instantiated_never_opens_its_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (addr, done) = (addr.clone(), done.clone());
        std::thread::spawn(move || {
            let mut accepted = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                accepted += usize::from(std::net::TcpStream::connect(&addr).is_ok());
                std::thread::sleep(Duration::from_millis(1));
            }
            accepted
        })
    };
    let w = Wasmlet::new();
    let hefty = http_guest("hefty");
    let s = seen(&w.run([
        "serve".as_ref(),
        "--addr".as_ref(),
        addr.as_ref(),
        "--memory".as_ref(),
        "64Mi".as_ref(),
        hefty.as_os_str(),
    ]));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("the function does not fit its memory limit"), "{s:?}");
    assert!(!s.stderr.contains("serving http://"), "{s:?}");
    assert_eq!(prober.join().unwrap(), 0, "a connection was accepted before the function could serve");

    let server = Server::start(&hefty, &["--memory", "256Mi"]);
    assert_eq!(server.get("/").text(), "seen 0\n");
}

/// A client that leaves mid-response is not an error for the function: the
/// host drains the rest of its body, so its checked writes succeed and it
/// ends normally (nothing but its own last line in the log).
#[test]
fn a_client_leaving_mid_response_is_not_an_error_in_the_functions_log() {
    use std::io::Write as _;
    let server = Server::start(&http_guest("echo"), &[]);
    let mut client = std::net::TcpStream::connect(&server.addr).unwrap();
    client.write_all(b"GET /stream/500 HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut start = [0u8; 4096];
    let n = client.read(&mut start).unwrap();
    assert!(start[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&start[..n]));
    drop(client); // 32 MiB still to come
    let mut lines = Vec::new();
    let started = Instant::now();
    while !lines.iter().any(|l: &String| l.contains("echo: streamed")) && started.elapsed() < Duration::from_secs(20) {
        lines.extend(server.stderr_lines());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    lines.extend(server.stderr_lines());
    assert!(lines.iter().any(|l| l == "echo: streamed 500 chunks"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("panicked") || l.contains("error")), "{lines:?}");
    assert_eq!(server.get("/after").status, 200, "still serving");
}

/// A one-shot HTTP server on the host's loopback for a function's outgoing
/// request: answers each connection with `body`, counts connections.
fn upstream(body: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    (port, hits)
}

/// A wasi:http 0.3 `service` component (examples/guests-p3, built with the
/// `wasip3` bindings) is detected from its bytes and served: a streamed
/// body written by a guest task after the handler returned, the request
/// body streamed back, and an outgoing request through `wasi:http/client`
/// 0.3 to a server on the host's loopback (granted with --net).
#[test]
fn a_wasi_0_3_service_streams_bodies_and_makes_outgoing_requests() {
    let (port, hits) = upstream("from upstream");
    let server = Server::start(&wasmlet_tests::p3_guest("http_service_p3"), &["--net"]);
    let hello = server.get("/");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello from a WASI 0.3 service\n"));
    let streamed = server.get("/stream?n=5");
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.text(), (1..=5).map(|i| format!("chunk {i}\n")).collect::<String>());
    assert!(
        streamed.headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked"),
        "a streamed body has no length up front: {:?}",
        streamed.headers
    );
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let echoed = http_request(&server.addr, "POST", "/echo", &[], &body).unwrap();
    assert_eq!(echoed.status, 200);
    assert!(echoed.body == body, "echo returned {} bytes, not the 200000 sent", echoed.body.len());
    let fetched = server.get(&format!("/fetch?port={port}&path=/x"));
    assert_eq!((fetched.status, fetched.text().as_str()), (200, "upstream 200: from upstream"));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let trapped = server.get("/trap");
    assert_eq!(trapped.status, 500, "{}", trapped.text());
    assert_eq!(server.get("/").status, 200, "the server keeps serving after a trap");
}

/// Without --net the function's outgoing request is refused by the host
/// (a 500 naming it), and nothing reaches the server.
#[test]
fn a_wasi_0_3_service_without_network_cannot_send_requests() {
    let (port, hits) = upstream("must not be reached");
    let server = Server::start(&wasmlet_tests::p3_guest("http_service_p3"), &[]);
    let fetched = server.get(&format!("/fetch?port={port}&path=/x"));
    assert_eq!(fetched.status, 500, "{}", fetched.text());
    assert!(fetched.text().contains("HttpRequestDenied"), "{}", fetched.text());
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// One instance per request by default (nothing a request leaves in memory
/// reaches the next); with --instance-requests 3 an instance takes three
/// requests in turn, then a fresh one starts. A shared instance's request
/// that waits past its time is a 504.
#[test]
fn wasi_0_3_instances_serve_one_request_unless_reuse_is_allowed() {
    let served = |server: &Server| (0..5).map(|_| server.get("/served").text().trim().to_owned()).collect::<Vec<_>>();
    let isolated = Server::start(&wasmlet_tests::p3_guest("http_service_p3"), &[]);
    assert_eq!(served(&isolated), ["1", "1", "1", "1", "1"]);
    let reusing =
        Server::start(&wasmlet_tests::p3_guest("http_service_p3"), &["--instance-requests", "3", "--timeout", "1s"]);
    assert_eq!(served(&reusing), ["1", "2", "3", "1", "2"]);
    let late = reusing.get("/sleep?ms=5000");
    assert_eq!(late.status, 504, "{}", late.text());
    assert_eq!(reusing.get("/").status, 200, "the server keeps serving after a request expired");
}

/// With --instance-concurrency 4, one warm instance takes four requests at
/// once: after a first request, four concurrent slow ones and a last one
/// are all served by that instance (its count reaches 6), none by another.
#[test]
fn a_wasi_0_3_instance_takes_concurrent_requests_when_allowed() {
    let server = Server::start(
        &wasmlet_tests::p3_guest("http_service_p3"),
        &["--instance-requests", "100", "--instance-concurrency", "4"],
    );
    assert_eq!(server.get("/served").text(), "1\n");
    // Until the guest's own task that wrote the body ends, the instance is
    // busy with post-return work and takes nothing new (a request arriving
    // then starts another instance): let it become idle.
    std::thread::sleep(Duration::from_millis(200));
    let addr = server.addr.clone();
    // Staggered a little: wasmtime-wasi-http's dispatcher starts a new
    // instance for a request that arrives while the warm one is between
    // accepting one request and the next.
    let slow: Vec<_> = (0..4)
        .map(|i| {
            let addr = addr.clone();
            std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 30 }));
            std::thread::spawn(move || http_request(&addr, "GET", "/sleep?ms=500", &[], b"").unwrap().status)
        })
        .collect();
    let statuses: Vec<u16> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 200, 200]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.get("/served").text(), "6\n", "the four went to the one warm instance");
}

/// A wasi:http 0.3 request that computes past its deadline without ever
/// calling the host is a 504 (the epoch deadline stops it), shared instance
/// or not, and the server keeps serving.
#[test]
fn a_wasi_0_3_request_spinning_past_its_deadline_is_a_504() {
    for reuse in [&[][..], &["--instance-requests", "8", "--instance-concurrency", "2"][..]] {
        let mut args = vec!["--timeout", "700ms"];
        args.extend_from_slice(reuse);
        let server = Server::start(&wasmlet_tests::p3_guest("http_service_p3"), &args);
        let spun = server.get("/spin");
        assert_eq!(spun.status, 504, "{reuse:?}: {}", spun.text());
        assert_eq!(server.get("/").status, 200, "{reuse:?}: the server keeps serving");
    }
}

/// Reuse flags that cannot mean anything are usage errors, not ignored.
#[test]
fn instance_reuse_flags_that_mean_nothing_are_refused() {
    let w = Wasmlet::new();
    let service = wasmlet_tests::p3_guest("http_service_p3");
    for flags in [&["--instance-concurrency", "4"][..], &["--instance-requests", "0"][..]] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["serve".as_ref(), "--addr".as_ref(), "127.0.0.1:0".as_ref()];
        args.extend(flags.iter().map(std::ffi::OsStr::new));
        args.push(service.as_os_str());
        let s = seen(&w.run(args));
        assert_eq!(s.code, Some(2), "{flags:?}: {s:?}");
        assert!(s.stderr.contains("--instance-"), "{flags:?}: {s:?}");
    }
}
