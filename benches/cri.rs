//! Pod start through containerd's CRI plugin, as kubelet drives it: the time
//! from RunPodSandbox through CreateContainer and StartContainer until
//! ContainerStatus reports RUNNING, for a Wasm pod (runtime handler
//! `wasmlet`, sleep.wasm) vs the same pod with runc (a static C sleep, the
//! pause sandbox). ROUNDS rounds, interleaved; medians and the ratio.
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

async fn start_pod(cri: &mut Cri, name: &str, handler: &str, image: &str, command: &str, logs: &std::path::Path) -> (Duration, Duration, String) {
    let config = Cri::pod_config(name, logs);
    let started = Instant::now();
    let pod = cri.run_pod(&config, handler).await;
    let sandbox_ready = started.elapsed();
    let container = cri
        .create_container(&pod, &config, Cri::container_config("main", 0, image, &[command], &[], 0))
        .await;
    cri.start_container(&container).await;
    cri.wait_state(&container, ContainerState::ContainerRunning, Duration::from_secs(30)).await;
    (started.elapsed(), sandbox_ready, pod)
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
    import_k8s(&c, &oci::image_archive(work.path(), "docker.io/bench/cri-native:latest", &[("/sleep", &sleep_native, 0o755)], &["/sleep"]));
    import_k8s(&c, &oci::image_archive(work.path(), "docker.io/bench/cri-wasm:latest", &[("/sleep.wasm", &sleep_wasm, 0o644)], &["/sleep.wasm"]));
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
            let (total, sandbox, pod) = start_pod(&mut cri, &format!("bench-{round}-{i}"), handler, image, command, &logs).await;
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
    let mut md = format!(
        "## Pod start through CRI (RunPodSandbox → container RUNNING), {rounds} rounds interleaved, host-network pods, containerd {}\n\n| runtime handler | pod start, median | of which RunPodSandbox | / runc |\n|---|---|---|---|\n",
        Containerd::series()
    );
    let runc = rows[0].1.as_secs_f64();
    for (name, total, sandbox) in &rows {
        md.push_str(&format!("| {name} | {:.1} ms | {:.1} ms | {:.2} |\n", ms(*total), ms(*sandbox), total.as_secs_f64() / runc));
    }
    println!("{md}");
    let out = repo_root().join("benches/results");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join(format!("cri-{}.md", Containerd::series()));
    std::fs::write(&file, &md).unwrap();
    eprintln!("wrote {}", file.display());
}
