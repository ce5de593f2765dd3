//! What idle containers cost a node: N sleeping Wasm containers (a guest
//! blocked in `poll_oneoff`) alive at once through a private containerd,
//! then, over 10 s: wake-ups per container per second (context switches of
//! every thread of every shim and guest process), the CPU all of them used
//! (% of one core), and PSS per container; and whether a new container
//! still starts as fast as on an idle node. Runc's sleeping containers are
//! measured the same way for reference (RUNC_N of them).
//! Run by `scripts/bench-idle`; N=1000 RUNC_N=1000 by default.

use std::time::{Duration, Instant};
use wasmlet_tests::containerd::{Containerd, RUNTIME};
use wasmlet_tests::guest;
use wasmlet_tests::oci;
use wasmlet_tests::procfs::{children, processes_named, total_pss_kib, wakeups_and_cpu};

/// Every process a runtime's containers cost: its shims and their descendants.
fn processes(shim: &str) -> Vec<u32> {
    let mut pids = processes_named(shim);
    let descendants: Vec<u32> = pids.iter().flat_map(|p| children(*p)).collect();
    pids.extend(descendants);
    pids.sort();
    pids.dedup();
    pids
}

/// (wake-ups per second per container, % of one core) over `window`.
fn idle_cost(shim: &str, containers: usize, window: Duration) -> (f64, f64) {
    let pids = processes(shim);
    let before: Vec<(u64, u64)> = pids.iter().map(|p| wakeups_and_cpu(*p)).collect();
    std::thread::sleep(window);
    let after: Vec<(u64, u64)> = pids.iter().map(|p| wakeups_and_cpu(*p)).collect();
    let (mut switches, mut ticks) = (0u64, 0u64);
    for (b, a) in before.iter().zip(&after) {
        // A process that ended in the window reads as zeros: skip it.
        if a.0 >= b.0 && a.1 >= b.1 {
            switches += a.0 - b.0;
            ticks += a.1 - b.1;
        }
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let seconds = window.as_secs_f64();
    (switches as f64 / seconds / containers as f64, 100.0 * ticks as f64 / hz / seconds)
}

fn start_sleepers(c: &Containerd, runtime: &str, image: &str, command: &[&str], prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        let mut args = vec!["run", "-d", "--runtime", runtime, image, id.as_str()];
        args.extend(command);
        c.ctr_ok(&args);
    }
    ids
}

fn remove(c: &Containerd, ids: &[String]) {
    for id in ids {
        let _ = c.ctr().args(["tasks", "kill", "--signal", "SIGKILL", id]).output();
    }
    std::thread::sleep(Duration::from_secs(1));
    for id in ids {
        let _ = c.ctr().args(["tasks", "delete", id]).output();
        let _ = c.ctr().args(["containers", "delete", id]).output();
    }
}

fn hello_ms(c: &Containerd, image: &str, id: &str) -> f64 {
    let started = Instant::now();
    let out = c.ctr().args(["run", "--rm", "--runtime", RUNTIME, image, id, "/hello.wasm"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    started.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let runc_n: usize = std::env::var("RUNC_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let window = Duration::from_secs(10);
    let work = tempfile::tempdir().unwrap();
    let c = Containerd::start();
    let image = "docker.io/bench/idle:latest";
    let files = [
        ("/sleep.wasm", std::fs::read(guest("sleep", false)).unwrap()),
        ("/hello.wasm", std::fs::read(guest("hello", false)).unwrap()),
        ("/sleep", std::fs::read("/bin/busybox").expect("busybox-static (scripts/install-deps)")),
    ];
    let refs: Vec<(&str, &[u8], u32)> = files.iter().map(|(p, b)| (*p, b.as_slice(), 0o755)).collect();
    c.import(&oci::image_archive(work.path(), image, &refs, &["/hello.wasm"]));
    let log_before = c.log().len();
    let quiet: Vec<f64> = (0..10).map(|i| hello_ms(&c, image, &format!("quiet-{i}"))).collect();
    let log_per_hello = (c.log().len() - log_before) / 10;

    let started = Instant::now();
    let wasm = start_sleepers(&c, RUNTIME, image, &["/sleep.wasm"], "idle-wasm", n);
    let start_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let log_before = c.log().len();
    let (wakeups, cpu) = idle_cost("containerd-shim-wasmlet-v1", n, window);
    let log_idle = c.log().len() - log_before;
    let (pss, procs) = total_pss_kib("containerd-shim-wasmlet-v1");
    assert_eq!(procs, 2 * n, "every container has its shim and its guest process, still alive");
    let busy: Vec<f64> = (0..10).map(|i| hello_ms(&c, image, &format!("busy-{i}"))).collect();
    remove(&c, &wasm);

    let started = Instant::now();
    let runc = start_sleepers(&c, "io.containerd.runc.v2", image, &["/sleep", "1000000"], "idle-runc", runc_n);
    let runc_start_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let (runc_wakeups, runc_cpu) = idle_cost("containerd-shim-runc-v2", runc_n, window);
    let (runc_pss, runc_procs) = total_pss_kib("containerd-shim-runc-v2");
    remove(&c, &runc);

    let mut md =
        format!("## {n} sleeping Wasm containers alive at once, then {runc_n} runc ones, over {window:?} each\n\n");
    md.push_str("| runtime | containers | started in | wake-ups / s / container | CPU of all (% of a core) | PSS / container | processes |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    md.push_str(&format!(
        "| wasmlet | {n} | {start_s:.0} s | {wakeups:.2} | {cpu:.2} | {:.2} MiB | {procs} |\n",
        pss as f64 / n as f64 / 1024.0
    ));
    md.push_str(&format!(
        "| runc (`sleep`) | {runc_n} | {runc_start_s:.0} s | {runc_wakeups:.2} | {runc_cpu:.2} | {:.2} MiB | {runc_procs} |\n",
        runc_pss as f64 / runc_n.max(1) as f64 / 1024.0
    ));
    md.push_str(&format!(
        "\n`ctr run --rm` hello, median of 10: {:.1} ms on the quiet node, {:.1} ms with the {n} alive\n",
        median(quiet),
        median(busy)
    ));
    md.push_str(&format!(
        "\ncontainerd's log (the shims log into it): {log_per_hello} bytes per hello run, {log_idle} bytes from the {n} idle containers over {window:?}\n"
    ));
    println!("{md}");
    let out = wasmlet_tests::repo_root().join("benches/results/idle.md");
    std::fs::write(&out, &md).unwrap();
    eprintln!("wrote {}", out.display());
}
