//! HTTP functions: `wasmlet serve` vs `wasmtime serve` (same wasmtime
//! version) serving the same component, side by side in one run. Run by
//! `scripts/bench-http`.
//!
//! - First request after idle: the server has had no request for IDLE_MS
//!   (so no instance is alive), then one request on a fresh connection;
//!   time to the complete response. ROUNDS rounds, servers interleaved;
//!   p50 and p99.
//! - Warm throughput: Debian's `wrk`, 50 connections, 2 threads, DURATION
//!   seconds per run, two runs per server interleaved; requests/s, latency,
//!   and the server's CPU time per request (from /proc/PID/stat).
//!
//! Writes benches/results/http.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmlet_tests::{bin, http_guest, repo_root, wasmtime_binary};

struct Server {
    name: &'static str,
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(addr: &str) {
    for _ in 0..400 {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on {addr}");
}

fn start_wasmlet(wasm: &Path, cache: &Path) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(bin("wasmlet"))
        .env("WASMLET_CACHE_DIR", cache)
        .args(["serve", "--addr", &addr])
        .arg(wasm)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wasmlet serve");
    wait_listening(&addr);
    Server { name: "wasmlet serve", child, addr }
}

fn start_wasmtime(wasmtime: &Path, wasm: &Path) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(wasmtime)
        .args(["serve", "-Scli", "--addr", &addr])
        .arg(wasm)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wasmtime serve");
    wait_listening(&addr);
    Server { name: "wasmtime serve", child, addr }
}

/// One GET on a fresh connection; time until the whole response arrived.
fn one_request(addr: &str) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    write!(stream, "GET /idle HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let took = started.elapsed();
    assert!(response.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&response));
    took
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // utime and stime are fields 14 and 15; after the ')' they are at 11 and 12.
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

struct WrkResult {
    requests_per_sec: f64,
    latency_p50: String,
    latency_p99: String,
    cpu_us_per_request: f64,
}

fn wrk(server: &Server, seconds: u64) -> WrkResult {
    let ticks_before = cpu_ticks(server.child.id());
    let out = Command::new("wrk")
        .args(["-t2", "-c50", &format!("-d{seconds}s"), "--latency"])
        .arg(format!("http://{}/", server.addr))
        .output()
        .expect("run wrk (apt-get install wrk)");
    let ticks = cpu_ticks(server.child.id()) - ticks_before;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("wrk output lacks {prefix}: {text}"))
    };
    let requests_per_sec: f64 = field("Requests/sec:").parse().unwrap();
    let total: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().parse::<f64>().ok()))
        .flatten()
        .unwrap_or(requests_per_sec * seconds as f64);
    let errors = text.lines().find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    assert!(errors.is_none(), "{}: wrk saw errors: {text}", server.name);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    WrkResult {
        requests_per_sec,
        latency_p50: field("50%"),
        latency_p99: field("99%"),
        cpu_us_per_request: ticks as f64 / hz * 1e6 / total.max(1.0),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn version(program: &Path) -> String {
    let out = Command::new(program).arg("--version").output().unwrap();
    BufReader::new(&out.stdout[..]).lines().next().and_then(Result::ok).unwrap_or_default()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let rounds = env("ROUNDS", 40) as usize;
    let idle_ms = env("IDLE_MS", 1500);
    let seconds = env("DURATION", 10);
    let wasm = http_guest("hello");
    let wasmtime = wasmtime_binary();
    let cache = tempfile::tempdir().unwrap();
    let servers = [start_wasmlet(&wasm, cache.path()), start_wasmtime(&wasmtime, &wasm)];
    for server in &servers {
        for _ in 0..20 {
            one_request(&server.addr); // compiled, caches warm
        }
    }

    let mut first = vec![Vec::new(); servers.len()];
    for _ in 0..rounds {
        for (i, server) in servers.iter().enumerate() {
            std::thread::sleep(Duration::from_millis(idle_ms));
            first[i].push(one_request(&server.addr));
        }
    }
    for samples in &mut first {
        samples.sort();
    }

    let mut warm: Vec<Vec<WrkResult>> = vec![Vec::new(), Vec::new()];
    for _ in 0..2 {
        for (i, server) in servers.iter().enumerate() {
            warm[i].push(wrk(server, seconds));
        }
    }

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut md = String::new();
    md.push_str(&format!(
        "## HTTP functions: `wasmlet serve` vs `{}` (examples/http/hello, loopback)\n\n",
        version(&wasmtime)
    ));
    md.push_str(&format!(
        "First request after {idle_ms} ms idle, fresh connection, {rounds} rounds interleaved:\n\n| server | p50 | p99 |\n|---|---|---|\n"
    ));
    for (server, samples) in servers.iter().zip(&first) {
        md.push_str(&format!(
            "| {} | {:.3} ms | {:.3} ms |\n",
            server.name,
            ms(percentile(samples, 0.5)),
            ms(percentile(samples, 0.99))
        ));
    }
    let p50 = |i: usize| ms(percentile(&first[i], 0.5));
    md.push_str(&format!("\nwasmlet / wasmtime, first-request p50: **{:.2}**\n\n", p50(0) / p50(1)));
    md.push_str(&format!(
        "Warm: wrk -t2 -c50 -d{seconds}s, two runs each interleaved (all runs listed):\n\n| server | requests/s | latency p50 | latency p99 | server CPU per request |\n|---|---|---|---|---|\n"
    ));
    for (server, results) in servers.iter().zip(&warm) {
        for r in results {
            md.push_str(&format!(
                "| {} | {:.0} | {} | {} | {:.0} µs |\n",
                server.name, r.requests_per_sec, r.latency_p50, r.latency_p99, r.cpu_us_per_request
            ));
        }
    }
    let mean_rps = |i: usize| warm[i].iter().map(|r| r.requests_per_sec).sum::<f64>() / warm[i].len() as f64;
    let cpu = |i: usize| warm[i].iter().map(|r| r.cpu_us_per_request).sum::<f64>() / warm[i].len() as f64;
    md.push_str(&format!(
        "\nwasmlet / wasmtime, mean throughput: **{:.2}×**; CPU per request: {:.0} vs {:.0} µs (**{:.2}×** less)\n",
        mean_rps(0) / mean_rps(1),
        cpu(0),
        cpu(1),
        cpu(1) / cpu(0)
    ));
    println!("{md}");
    let out_dir = repo_root().join("benches/results");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("http.md"), &md).unwrap();
    eprintln!("wrote {}", out_dir.join("http.md").display());
}
