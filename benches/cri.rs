//! Pod start through containerd's CRI plugin, as kubelet drives it: the time
//! from RunPodSandbox through CreateContainer and StartContainer until
//! ContainerStatus reports RUNNING, for a Wasm pod (runtime handler
//! `wasmlet`, sleep.wasm) vs the same pod with runc (a static C sleep, the
//! pause sandbox). ROUNDS rounds, interleaved; medians and the ratio. Pods
//! are on the pod network (CNI: their own network namespace).
//!
//! Zero to first response: RunPodSandbox until an HTTP function in the new
//! pod answers 200 (a Wasm `wasi:http` hello through wasmlet vs busybox
//! `httpd` through runc), probed on 127.0.0.1 inside the pod's network
//! namespace (the bench enters it; nothing goes to pod addresses).
//! Run by `scripts/bench-cri [SERIES…]`; writes benches/results/cri-SERIES.md.

use k8s_cri::v1::*;
use std::time::{Duration, Instant};
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::cri::{import_k8s, import_pause_image, Cri};
use wasmlet_tests::{guest, oci, repo_root};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn start_pod(
    cri: &mut Cri,
    name: &str,
    handler: &str,
    image: &str,
    command: &str,
    logs: &std::path::Path,
) -> (Duration, Duration, String) {
    let config = Cri::pod_network_config(name, name, logs);
    let started = Instant::now();
    let pod = cri.run_pod(&config, handler).await;
    let sandbox_ready = started.elapsed();
    let container =
        cri.create_container(&pod, &config, Cri::container_config("main", 0, image, &[command], &[], 0)).await;
    cri.start_container(&container).await;
    cri.wait_state(&container, ContainerState::ContainerRunning, Duration::from_secs(30)).await;
    (started.elapsed(), sandbox_ready, pod)
}

/// The sandbox task's pid (containerd's verbose PodSandboxStatus).
async fn sandbox_pid(cri: &mut Cri, pod: &str) -> u32 {
    let status = cri
        .runtime
        .pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: pod.to_owned(), verbose: true })
        .await
        .expect("PodSandboxStatus")
        .into_inner();
    let info: serde_json::Value =
        serde_json::from_str(status.info.get("info").expect("verbose info")).expect("info JSON");
    info["pid"].as_u64().expect("sandbox pid") as u32
}

/// One `GET /` to 127.0.0.1:`port` inside the network namespace of `pid`:
/// whether it answered 200.
fn get_200_in_netns(pid: u32, port: u16) -> bool {
    let ns = match std::fs::File::open(format!("/proc/{pid}/ns/net")) {
        Ok(ns) => ns,
        Err(_) => return false,
    };
    std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        // SAFETY: setns on a namespace file we hold open; this thread only probes.
        if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) } != 0 {
            return false;
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"GET / HTTP/1.1\r\nhost: pod\r\nconnection: close\r\n\r\n").is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
    })
    .join()
    .unwrap_or(false)
}

/// RunPodSandbox → CreateContainer → StartContainer → first HTTP 200.
async fn zero_to_first_response(
    cri: &mut Cri,
    name: &str,
    handler: &str,
    image: &str,
    command: &[&str],
    port: u16,
    logs: &std::path::Path,
) -> (Duration, String) {
    let config = Cri::pod_network_config(name, name, logs);
    let started = Instant::now();
    let pod = cri.run_pod(&config, handler).await;
    let pid = sandbox_pid(cri, &pod).await;
    let container = cri
        .create_container(
            &pod,
            &config,
            Cri::container_config("fn", 0, image, command, &[("PORT", &port.to_string())], 0),
        )
        .await;
    cri.start_container(&container).await;
    while !get_200_in_netns(pid, port) {
        assert!(started.elapsed() < Duration::from_secs(30), "{handler}: no HTTP 200 within 30 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (started.elapsed(), pod)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let c = Containerd::start();
    import_pause_image(&c);
    let work = tempfile::tempdir().unwrap();
    let sleep_c = work.path().join("sleep");
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&sleep_c)
        .arg(repo_root().join("examples/native/sleep.c"))
        .status()
        .unwrap();
    assert!(status.success());
    let sleep_native = std::fs::read(&sleep_c).unwrap();
    let sleep_wasm = std::fs::read(guest("sleep", false)).unwrap();
    import_k8s(
        &c,
        &oci::image_archive(
            work.path(),
            "docker.io/bench/cri-native:latest",
            &[("/sleep", &sleep_native, 0o755)],
            &["/sleep"],
        ),
    );
    import_k8s(
        &c,
        &oci::image_archive(
            work.path(),
            "docker.io/bench/cri-wasm:latest",
            &[("/sleep.wasm", &sleep_wasm, 0o644)],
            &["/sleep.wasm"],
        ),
    );
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut cri = Cri::connect(&c).await;
    let cases = [
        ("runc", "runc", "docker.io/bench/cri-native:latest", "/sleep"),
        ("wasmlet", "wasmlet", "docker.io/bench/cri-wasm:latest", "/sleep.wasm"),
    ];
    // Warm-up: caches, the compile cache, containerd's first-use paths.
    for (i, (_, handler, image, command)) in cases.iter().enumerate() {
        let (_, _, pod) = start_pod(&mut cri, &format!("warm-{i}"), handler, image, command, &logs).await;
        cri.remove_pod(&pod).await;
    }
    let mut totals = vec![Vec::new(); cases.len()];
    let mut sandboxes = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (i, (_, handler, image, command)) in cases.iter().enumerate() {
            let (total, sandbox, pod) =
                start_pod(&mut cri, &format!("bench-{round}-{i}"), handler, image, command, &logs).await;
            totals[i].push(total);
            sandboxes[i].push(sandbox);
            cri.remove_pod(&pod).await;
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rows: Vec<(&str, Duration, Duration)> = cases
        .iter()
        .zip(totals.into_iter().zip(sandboxes))
        .map(|((name, ..), (t, s))| (*name, median(t), median(s)))
        .collect();
    // Zero to first response.
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static");
    import_k8s(
        &c,
        &oci::image_archive(
            work.path(),
            "docker.io/bench/cri-httpd:latest",
            &[("/bin/busybox", &busybox, 0o755), ("/www/index.html", b"hello from busybox\n", 0o644)],
            &["/bin/busybox"],
        ),
    );
    let hello_http = std::fs::read(wasmlet_tests::http_guest("hello")).unwrap();
    import_k8s(
        &c,
        &oci::image_archive(
            work.path(),
            "docker.io/bench/cri-http-wasm:latest",
            &[("/hello.wasm", &hello_http, 0o644)],
            &["/hello.wasm"],
        ),
    );
    let http_cases: [(&str, &str, &str, &[&str]); 2] = [
        (
            "runc + busybox httpd",
            "runc",
            "docker.io/bench/cri-httpd:latest",
            &["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
        ),
        ("wasmlet + wasi:http hello", "wasmlet", "docker.io/bench/cri-http-wasm:latest", &["/hello.wasm"]),
    ];
    for (i, (_, handler, image, command)) in http_cases.iter().enumerate() {
        let (_, pod) =
            zero_to_first_response(&mut cri, &format!("http-warm-{i}"), handler, image, command, 8080, &logs).await;
        cri.remove_pod(&pod).await;
    }
    let mut firsts = vec![Vec::new(); http_cases.len()];
    for round in 0..rounds {
        for (i, (_, handler, image, command)) in http_cases.iter().enumerate() {
            let (took, pod) =
                zero_to_first_response(&mut cri, &format!("http-{round}-{i}"), handler, image, command, 8080, &logs)
                    .await;
            firsts[i].push(took);
            cri.remove_pod(&pod).await;
        }
    }
    let first_rows: Vec<(&str, Duration)> =
        http_cases.iter().zip(firsts).map(|((name, ..), t)| (*name, median(t))).collect();

    // Memory of a pod sandbox: the shim (and its holder) vs runc's shim and pause.
    let idle: usize = std::env::var("IDLE").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut sandbox_memory = Vec::new();
    for (label, handler, shim) in [
        ("runc (shim + pause)", "runc", "containerd-shim-runc-v2"),
        ("wasmlet (shim + holder)", "wasmlet", "containerd-shim-wasmlet-v1"),
    ] {
        let mut pods = Vec::new();
        for i in 0..idle {
            let config = Cri::pod_network_config(&format!("idle-{handler}-{i}"), "idle", &logs);
            pods.push(cri.run_pod(&config, handler).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (pss, processes) = wasmlet_tests::procfs::total_pss_kib(shim);
        sandbox_memory.push((label, pss as f64 / idle as f64 / 1024.0, processes));
        for pod in pods {
            cri.remove_pod(&pod).await;
        }
    }

    let mut md = format!(
        "## Pod start through CRI (RunPodSandbox → container RUNNING), {rounds} rounds interleaved, pod-network (CNI) pods, containerd {}\n\n| runtime handler | pod start, median | of which RunPodSandbox | / runc |\n|---|---|---|---|\n",
        Containerd::series()
    );
    let runc = rows[0].1.as_secs_f64();
    for (name, total, sandbox) in &rows {
        md.push_str(&format!(
            "| {name} | {:.1} ms | {:.1} ms | {:.2} |\n",
            ms(*total),
            ms(*sandbox),
            total.as_secs_f64() / runc
        ));
    }
    md.push_str(&format!(
        "\n## Zero to first response (RunPodSandbox → first HTTP 200 on 127.0.0.1 in the pod), {rounds} rounds interleaved\n\n| case | median | / runc |\n|---|---|---|\n"
    ));
    let runc_first = first_rows[0].1.as_secs_f64();
    for (name, took) in &first_rows {
        md.push_str(&format!("| {name} | {:.1} ms | {:.2} |\n", ms(*took), took.as_secs_f64() / runc_first));
    }
    md.push_str(&format!("\n## Memory per pod sandbox ({idle} pods alive at once, total PSS / {idle})\n\n| sandbox | PSS per pod | processes counted |\n|---|---|---|\n"));
    for (label, mib, processes) in &sandbox_memory {
        md.push_str(&format!("| {label} | {mib:.2} MiB | {processes} |\n"));
    }
    println!("{md}");
    let out = repo_root().join("benches/results");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join(format!("cri-{}.md", Containerd::series()));
    std::fs::write(&file, &md).unwrap();
    eprintln!("wrote {}", file.display());
}
