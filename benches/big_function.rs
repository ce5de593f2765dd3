//! A big component from a real toolchain on a fresh and on a warm node: the
//! Python `wasi:http` function of examples/http/python (componentize-py,
//! ~18 MB: CPython in a component), pushed to a local registry and run
//! through a private containerd in a pod network namespace; time until its
//! first HTTP 200, answered inside the namespace:
//!
//! - fresh node (nothing compiled): image pull, then the container at
//!   once: pull done → first 200 (the compile is on this path), without and
//!   with `wasmlet precompile --watch` running;
//! - image pulled ahead (the agent compiled it meanwhile): container
//!   created → first 200;
//! - warm node (cached): container created → first 200;
//! - `wasmtime serve` on the same component: start → first 200, compiling,
//!   and from its own compile cache (`-C cache=y`).
//!
//! Run by `scripts/bench-function`; writes benches/results/big-function.md.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmlet_tests::containerd::{Containerd, RUNTIME};
use wasmlet_tests::netns::NetNs;
use wasmlet_tests::wasmtime_binary;

const ROUNDS: usize = 2;
/// Warm starts are cheap: more of them.
const WARM_PER_ROUND: usize = 3;

/// One GET of `/` on `addr`: its status line starts with `HTTP/1.1 200`.
fn answers_200(addr: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    if stream.write_all(b"GET / HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// When `addr` first answered 200, polling every 2 ms (in `netns`, if given).
fn first_200(addr: String, netns: Option<String>, within: Duration) -> Instant {
    std::thread::spawn(move || {
        if let Some(path) = netns {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on this thread only, with a namespace fd we hold.
            assert_eq!(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) }, 0);
        }
        let started = Instant::now();
        while started.elapsed() < within {
            if answers_200(&addr) {
                return Instant::now();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("{addr} never answered 200 within {within:?}");
    })
    .join()
    .unwrap()
}

/// Remove every compile-cache entry of `digest` (hex): a fresh node.
fn forget_compiled(hex: &str) {
    for engine in std::fs::read_dir("/var/lib/wasmlet/cache").into_iter().flatten().flatten() {
        for suffix in ["cwasm", "sum"] {
            let _ = std::fs::remove_file(engine.path().join(format!("{hex}.{suffix}")));
        }
    }
}

struct Agent(Child);

impl Agent {
    fn start(c: &Containerd) -> Self {
        let child = Command::new(wasmlet_tests::bin("wasmlet"))
            .args(["precompile", "--watch", "--address", &c.address, "--namespace", "wasmlet-test"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    /// Block until the agent reports `reference` compiled.
    fn wait_compiled(&mut self, reference: &str) {
        let stdout = self.0.stdout.as_mut().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            assert_eq!(stdout.read(&mut byte).unwrap(), 1, "the agent ended");
            if byte[0] != b'\n' {
                line.push(byte[0]);
                continue;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            if text.contains(reference) {
                assert!(text.ends_with(" compiled"), "{text}");
                return;
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Node<'a> {
    c: &'a Containerd,
    reference: String,
    hex: String,
    ns: NetNs,
}

impl Node<'_> {
    /// A node that never had the image: not in containerd, not compiled.
    fn forget(&self) {
        let _ = self.c.ctr().args(["images", "rm", "--sync", &self.reference]).output();
        forget_compiled(&self.hex);
    }

    fn pull_fresh(&self) -> Duration {
        self.forget();
        self.pull()
    }

    fn pull(&self) -> Duration {
        let started = Instant::now();
        self.c.ctr_ok(&["images", "pull", "--plain-http", &self.reference]);
        started.elapsed()
    }

    /// Start a container of the function; when it first answered 200.
    fn start_and_wait(&self, id: &str, port: u16) -> (Instant, Instant) {
        let created = Instant::now();
        let network = format!("network:{}", self.ns.path());
        let env = format!("PORT={port}");
        self.c.ctr_ok(&["run", "-d", "--runtime", RUNTIME, "--env", &env, "--with-ns", &network, &self.reference, id]);
        (created, first_200(format!("127.0.0.1:{port}"), Some(self.ns.path()), Duration::from_secs(120)))
    }

    fn remove(&self, id: &str) {
        let _ = self.c.ctr().args(["tasks", "kill", "--signal", "SIGKILL", id]).output();
        for _ in 0..100 {
            if self.c.ctr().args(["tasks", "delete", id]).output().is_ok_and(|o| o.status.success()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.c.ctr().args(["containers", "delete", id]).output();
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `wasmtime serve` of `file` (extra flags first): spawn → first 200.
fn wasmtime_first_200(wasmtime: &Path, flags: &[&str], file: &Path) -> Duration {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = Command::new(wasmtime)
        .args(["serve", "-Scli", "--addr", &addr])
        .args(flags)
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answered = first_200(addr, None, Duration::from_secs(180));
    let _ = child.kill();
    let _ = child.wait();
    answered - started
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let component = PathBuf::from(std::env::var("WASMLET_PYTHON_FUNCTION").expect("scripts/bench-function sets it"));
    let size_mb = std::fs::metadata(&component).unwrap().len() as f64 / 1e6;
    let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&component).unwrap()));
    let registry = wasmlet_tests::registry::Registry::start();
    let c = Containerd::start();
    let reference = format!("{}/bench/python-http:1", registry.addr);
    let mut push: Vec<&std::ffi::OsStr> = vec!["push".as_ref(), "--format".as_ref(), "runwasi".as_ref()];
    if Containerd::series() == "1.6" {
        push.push("--legacy-unpack".as_ref());
    }
    push.extend([component.as_os_str(), reference.as_ref()]);
    let pushed = wasmlet_tests::Wasmlet::new().run(push);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let node = Node { c: &c, reference: reference.clone(), hex, ns: NetNs::new("wasmlet-bench-python") };
    let mut next_id = 0;
    let mut id = || {
        next_id += 1;
        format!("python-{}-{next_id}", std::process::id())
    };
    let port = 18600;

    let (mut pulls, mut fresh, mut fresh_agent, mut ahead, mut warm) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        // Fresh node, no agent: the compile happens in Create.
        pulls.push(node.pull_fresh());
        let pulled = Instant::now();
        let first = id();
        let (_, answered) = node.start_and_wait(&first, port);
        fresh.push(answered - pulled);
        node.remove(&first);
        // Warm node: the same image again.
        for _ in 0..WARM_PER_ROUND {
            let again = id();
            let (created, answered) = node.start_and_wait(&again, port + 1);
            warm.push(answered - created);
            node.remove(&again);
        }

        // Fresh node with the agent: the pull starts the compile.
        let agent = Agent::start(&c);
        pulls.push(node.pull_fresh());
        let pulled = Instant::now();
        let first = id();
        let (_, answered) = node.start_and_wait(&first, port + 2);
        fresh_agent.push(answered - pulled);
        node.remove(&first);
        drop(agent);
        // Pulled ahead: the agent compiled it before any pod asked.
        node.forget();
        let mut agent = Agent::start(&c);
        node.pull();
        agent.wait_compiled(&reference);
        let first = id();
        let (created, answered) = node.start_and_wait(&first, port + 3);
        ahead.push(answered - created);
        node.remove(&first);
        drop(agent);
    }

    let wasmtime = wasmtime_binary();
    // wasmtime's own compile cache, in a folder of this run's.
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("cache.toml");
    std::fs::write(&config, format!("[cache]\ndirectory = {:?}\n", work.path().join("cache"))).unwrap();
    let cached = ["-Ccache=y".to_owned(), format!("-Ccache-config={}", config.display())];
    let cached: Vec<&str> = cached.iter().map(String::as_str).collect();
    let (mut wt_fresh, mut wt_warm) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        wt_fresh.push(wasmtime_first_200(&wasmtime, &["-Ccache=n"], &component));
    }
    wasmtime_first_200(&wasmtime, &cached, &component); // fills its cache
    for _ in 0..ROUNDS * WARM_PER_ROUND {
        wt_warm.push(wasmtime_first_200(&wasmtime, &cached, &component));
    }

    let list = |v: &[Duration]| v.iter().map(|d| seconds(*d)).collect::<Vec<_>>().join(", ");
    let summary = |v: &[Duration]| format!("{} ({})", seconds(median(v.to_vec())), list(v));
    let mut md = format!(
        "## A big component on a fresh and a warm node: examples/http/python ({size_mb:.1} MB, componentize-py), containerd {}\n\n",
        Containerd::series()
    );
    md.push_str(&format!("Image pull from a loopback registry: {}\n\n", list(&pulls)));
    md.push_str("| case | wasmlet (median; all runs) | `wasmtime serve` (median; all runs) |\n|---|---|---|\n");
    md.push_str(&format!(
        "| fresh node: pull done → first 200 (container created at once) | {} | start → first 200, compiling: {} |\n",
        summary(&fresh),
        summary(&wt_fresh)
    ));
    md.push_str(&format!("| same, `wasmlet precompile --watch` running | {} | |\n", summary(&fresh_agent)));
    md.push_str(&format!(
        "| image pulled ahead, compiled by the agent: container created → first 200 | {} | |\n",
        summary(&ahead)
    ));
    md.push_str(&format!(
        "| warm node (cached): container created → first 200 | {} | start → first 200, from its cache (`-C cache=y`): {} |\n",
        summary(&warm),
        summary(&wt_warm)
    ));
    println!("{md}");
    let out = wasmlet_tests::repo_root().join("benches/results/big-function.md");
    std::fs::write(&out, &md).unwrap();
    eprintln!("wrote {}", out.display());
}
