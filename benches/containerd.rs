//! `ctr run --rm` through wasmlet vs runc, and memory per idle container,
//! against a private containerd (the release WASMLET_CONTAINERD names).
//! Run by `scripts/bench-containerd [SERIES…]`.
//!
//! Cold start: interleaved rounds (each starting at the next case) of (runc: static C hello) / (wasmlet: Rust
//! hello, cached) / (wasmlet: a do-nothing module) / (a null shim that runs
//! nothing, benches/null-shim.rs: the floor any shim on this containerd pays),
//! wall time of the whole `ctr run --rm`. Memory: 50 idle containers of each
//! kind alive at once; total PSS of every process they cost, divided by 50.
//! Writes benches/results/containerd-SERIES.md and .svg (WASMLET_CONTAINERD).
//! With WASMLET_BASELINE_SHIM (an older shim binary) it also runs that shim
//! in the same rounds and only prints the tables: before/after a change.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wasmlet_tests::containerd::{Containerd, RUNTIME};
use wasmlet_tests::procfs::total_pss_kib;
use wasmlet_tests::{guest, oci, repo_root};

fn cc_static(source: &str, out: &Path) -> Vec<u8> {
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(repo_root().join("examples/native").join(source))
        .status()
        .expect("gcc");
    assert!(status.success(), "gcc {source}");
    std::fs::read(out).unwrap()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

struct Row {
    name: &'static str,
    median: Duration,
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / criterion-style probes: nothing to list.
    }
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let idle: usize = std::env::var("IDLE").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let work = tempfile::tempdir().unwrap();
    let c = Containerd::start();
    let hello_c = cc_static("hello.c", &work.path().join("hello"));
    let sleep_c = cc_static("sleep.c", &work.path().join("sleep"));
    let noop = wat::parse_str("(module (func (export \"_start\")))").unwrap();
    let images = [
        (
            "docker.io/bench/native:latest",
            vec![("/hello", hello_c.clone(), 0o755), ("/sleep", sleep_c, 0o755)],
            vec!["/hello"],
        ),
        (
            "docker.io/bench/wasm:latest",
            vec![
                ("/hello.wasm", std::fs::read(guest("hello", false)).unwrap(), 0o644),
                ("/noop.wasm", noop, 0o644),
                ("/sleep.wasm", std::fs::read(guest("sleep", false)).unwrap(), 0o644),
            ],
            vec!["/hello.wasm"],
        ),
    ];
    for (name, files, entry) in &images {
        let refs: Vec<(&str, &[u8], u32)> = files.iter().map(|(p, b, m)| (*p, b.as_slice(), *m)).collect();
        c.import(&oci::image_archive(work.path(), name, &refs, entry));
    }
    // WASMLET_BASELINE_SHIM=/path/to/an/older/containerd-shim-wasmlet-v1
    // adds it as a fifth case in the same interleaved rounds (before/after
    // a change), under runtime type io.containerd.wasmletbaseline.v1.
    let baseline = std::env::var_os("WASMLET_BASELINE_SHIM").map(|path| {
        let installed = wasmlet_tests::profile_dir().join("containerd-shim-wasmletbaseline-v1");
        std::fs::copy(&path, &installed).unwrap_or_else(|e| panic!("copying {path:?}: {e}"));
        installed
    });
    let mut cases: Vec<(&str, &str, &str, &str)> = vec![
        ("runc: static C hello", "io.containerd.runc.v2", "docker.io/bench/native:latest", "/hello"),
        ("wasmlet: Rust hello (cached)", RUNTIME, "docker.io/bench/wasm:latest", "/hello.wasm"),
        ("wasmlet: do-nothing module", RUNTIME, "docker.io/bench/wasm:latest", "/noop.wasm"),
        (
            "null shim (runs nothing): the floor",
            "io.containerd.nullbench.v1",
            "docker.io/bench/wasm:latest",
            "/noop.wasm",
        ),
    ];
    if baseline.is_some() {
        cases.push((
            "wasmlet baseline (WASMLET_BASELINE_SHIM): Rust hello (cached)",
            "io.containerd.wasmletbaseline.v1",
            "docker.io/bench/wasm:latest",
            "/hello.wasm",
        ));
    }
    let run = |runtime: &str, image: &str, arg: &str, id: &str| {
        let started = Instant::now();
        let out = c.ctr().args(["run", "--rm", "--runtime", runtime, image, id, arg]).output().unwrap();
        let took = started.elapsed();
        assert!(out.status.success(), "{runtime} {arg}: {}", String::from_utf8_lossy(&out.stderr));
        took
    };
    for (i, (_, runtime, image, arg)) in cases.iter().enumerate() {
        run(runtime, image, arg, &format!("warm-{i}")); // fills the compile cache, warms page cache
    }
    let mut samples = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        // Each round starts at the next case, so none always follows the
        // same neighbour (runc's teardown still runs when the next starts).
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            let (_, runtime, image, arg) = cases[i];
            samples[i].push(run(runtime, image, arg, &format!("bench-{round}-{i}")));
        }
    }
    let rows: Vec<Row> = cases.iter().zip(samples).map(|((name, ..), s)| Row { name, median: median(s) }).collect();
    let runc = rows[0].median.as_secs_f64();

    // Memory per idle container.
    let mut memory = Vec::new();
    let mut contestants = vec![
        ("runc", "io.containerd.runc.v2", "docker.io/bench/native:latest", "/sleep", "containerd-shim-runc-v2"),
        ("wasmlet", RUNTIME, "docker.io/bench/wasm:latest", "/sleep.wasm", "containerd-shim-wasmlet-v1"),
    ];
    if baseline.is_some() {
        let shim = "containerd-shim-wasmletbaseline-v1";
        contestants.push((
            "wasmlet-baseline",
            "io.containerd.wasmletbaseline.v1",
            "docker.io/bench/wasm:latest",
            "/sleep.wasm",
            shim,
        ));
    }
    for (label, runtime, image, arg, shim) in contestants {
        let ids: Vec<String> = (0..idle).map(|i| format!("idle-{label}-{i}")).collect();
        for id in &ids {
            c.ctr_ok(&["run", "-d", "--runtime", runtime, image, id, arg]);
        }
        std::thread::sleep(Duration::from_secs(2));
        let (pss, processes) = total_pss_kib(shim);
        memory.push((label, pss as f64 / idle as f64 / 1024.0, processes));
        for id in &ids {
            let _ = c.ctr().args(["tasks", "kill", "--signal", "SIGKILL", id]).output();
        }
        std::thread::sleep(Duration::from_millis(500));
        for id in &ids {
            let _ = c.ctr().args(["tasks", "delete", id]).output();
            let _ = c.ctr().args(["containers", "delete", id]).output();
        }
    }

    let mut md = String::new();
    md.push_str(&format!(
        "## `ctr run --rm`, {rounds} interleaved rounds (containerd {}, info level)\n\n",
        containerd_version(&c)
    ));
    md.push_str("| case | median | / runc |\n|---|---|---|\n");
    for row in &rows {
        md.push_str(&format!(
            "| {} | {:.1} ms | {:.2} |\n",
            row.name,
            row.median.as_secs_f64() * 1e3,
            row.median.as_secs_f64() / runc
        ));
    }
    md.push_str(&format!("\n## Memory per idle container ({idle} alive at once, total PSS / {idle})\n\n"));
    md.push_str("| runtime | PSS per container | processes counted |\n|---|---|---|\n");
    for (label, mib, processes) in &memory {
        md.push_str(&format!("| {label} | {mib:.2} MiB | {processes} |\n"));
    }
    println!("{md}");
    if let Some(installed) = &baseline {
        let _ = std::fs::remove_file(installed);
    }
    if baseline.is_some() {
        return; // a before/after comparison: printed, not the recorded result
    }
    let out_dir = repo_root().join("benches/results");
    std::fs::create_dir_all(&out_dir).unwrap();
    // One pair of files per containerd release (WASMLET_CONTAINERD).
    let series = Containerd::series();
    std::fs::write(out_dir.join(format!("containerd-{series}.md")), &md).unwrap();
    std::fs::write(out_dir.join(format!("containerd-{series}.svg")), chart(&rows, &memory)).unwrap();
    eprintln!("wrote {}", out_dir.join(format!("containerd-{series}.{{md,svg}}")).display());
}

fn containerd_version(c: &Containerd) -> String {
    let out = Command::new(c.bin.join("containerd"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace().nth(2).unwrap_or("?").to_owned()
}

/// Two horizontal bar charts (start latency, memory), plain SVG.
fn chart(rows: &[Row], memory: &[(&str, f64, usize)]) -> String {
    let mut svg = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="720" height="300" font-family="sans-serif" font-size="13">"#,
    );
    svg.push_str(r#"<rect width="720" height="300" fill="white"/>"#);
    let bars = |svg: &mut String, top: f64, title: &str, items: Vec<(String, f64, String)>| {
        svg.push_str(&format!(r#"<text x="10" y="{}" font-weight="bold">{title}</text>"#, top));
        let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-9);
        for (k, (label, value, text)) in items.iter().enumerate() {
            let y = top + 12.0 + k as f64 * 26.0;
            let w = 360.0 * value / max;
            let colour = if label.starts_with("runc") { "#999" } else { "#4a7fd4" };
            svg.push_str(&format!(r#"<text x="10" y="{}">{label}</text>"#, y + 15.0));
            svg.push_str(&format!(r#"<rect x="230" y="{y}" width="{w:.1}" height="20" fill="{colour}"/>"#));
            svg.push_str(&format!(r#"<text x="{}" y="{}">{text}</text>"#, 236.0 + w, y + 15.0));
        }
    };
    let runc = rows[0].median.as_secs_f64();
    bars(
        &mut svg,
        20.0,
        "ctr run --rm, median (lower is better)",
        rows.iter()
            .map(|r| {
                (
                    r.name.to_owned(),
                    r.median.as_secs_f64(),
                    format!("{:.1} ms ({:.2}× runc)", r.median.as_secs_f64() * 1e3, r.median.as_secs_f64() / runc),
                )
            })
            .collect(),
    );
    bars(
        &mut svg,
        150.0,
        "PSS per idle container (lower is better)",
        memory.iter().map(|(l, m, _)| (l.to_string(), *m, format!("{m:.2} MiB"))).collect(),
    );
    svg.push_str("</svg>\n");
    svg
}
