//! The Kubernetes path: containerd's CRI plugin driven as kubelet drives it
//! (k8s-cri's gRPC client), with the runtime handler `wasmlet`.

use k8s_cri::v1::*;
use std::time::Duration;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::cri::{import_k8s, import_pause_image, Cri};
use wasmlet_tests::{guest, http_guest, oci};

const IMAGE: &str = "docker.io/wasmlet/cri-guests:latest";

fn setup() -> (Containerd, tempfile::TempDir) {
    let c = Containerd::start();
    import_pause_image(&c);
    let work = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, Vec<u8>)> = ["hello", "exit", "sleep", "memhog", "echo", "files"]
        .iter()
        .map(|n| (format!("/{n}.wasm"), std::fs::read(guest(n, false)).unwrap()))
        .collect();
    files.push(("/http.wasm".into(), std::fs::read(http_guest("echo")).unwrap()));
    files.push(("/net.wasm".into(), std::fs::read(guest("net", false)).unwrap()));
    let refs: Vec<(&str, &[u8], u32)> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice(), 0o644)).collect();
    import_k8s(&c, &oci::image_archive(work.path(), IMAGE, &refs, &["/hello.wasm"]));
    (c, work)
}

fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_pod_through_cri_logs_statuses_stats_probe_restart_and_cleanup() {
    let (c, work) = setup();
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let pod_config = Cri::pod_config("wasm-pod", &logs);
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    let cgroup_parent = pod_config.linux.as_ref().unwrap().cgroup_parent.clone();

    // Completed, with the output in kubelet's log format.
    let hello = cri
        .create_container(&pod, &pod_config, Cri::container_config("hello", 0, IMAGE, &["/hello.wasm"], &[], 0))
        .await;
    cri.start_container(&hello).await;
    let status = cri.wait_state(&hello, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"), "{status:?}");
    let lines = log_lines(&logs.join("hello_0.log"));
    assert!(lines.iter().any(|l| l.ends_with(" stdout F hello from wasmlet")), "{lines:?}");

    // Command, args and env from the container config.
    let echo = cri
        .create_container(
            &pod,
            &pod_config,
            Cri::container_config("echo", 0, IMAGE, &["/echo.wasm", "one", "two words"], &[("GREETING", "hi")], 0),
        )
        .await;
    cri.start_container(&echo).await;
    cri.wait_state(&echo, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    let lines = log_lines(&logs.join("echo_0.log"));
    for want in ["arg[0]=/echo.wasm", "arg[1]=one", "arg[2]=two words", "env GREETING=hi"] {
        assert!(lines.iter().any(|l| l.ends_with(want)), "{want} missing: {lines:?}");
    }

    // Error and OOMKilled.
    let failing = cri
        .create_container(&pod, &pod_config, Cri::container_config("exit", 0, IMAGE, &["/exit.wasm", "3"], &[], 0))
        .await;
    cri.start_container(&failing).await;
    let status = cri.wait_state(&failing, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (3, "Error"), "{status:?}");
    let hog = cri
        .create_container(
            &pod,
            &pod_config,
            Cri::container_config("hog", 0, IMAGE, &["/memhog.wasm", "200"], &[], 64 << 20),
        )
        .await;
    cri.start_container(&hog).await;
    let status = cri.wait_state(&hog, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "OOMKilled"), "{status:?}");

    // Running: stats from its cgroup, listed, then stopped.
    let sleeper = cri
        .create_container(&pod, &pod_config, Cri::container_config("sleep", 0, IMAGE, &["/sleep.wasm"], &[], 128 << 20))
        .await;
    cri.start_container(&sleeper).await;
    cri.wait_state(&sleeper, ContainerState::ContainerRunning, Duration::from_secs(10)).await;
    let cgroup =
        std::path::Path::new("/sys/fs/cgroup/memory").join(cgroup_parent.trim_start_matches('/')).join(&sleeper);
    assert_eq!(
        std::fs::read_to_string(cgroup.join("memory.limit_in_bytes")).unwrap().trim(),
        (128u64 << 20).to_string()
    );
    let stats = cri
        .runtime
        .container_stats(ContainerStatsRequest { container_id: sleeper.clone() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let working_set = stats.memory.and_then(|m| m.working_set_bytes).map_or(0, |v| v.value);
    assert!(working_set > 1 << 20, "working set {working_set}");
    assert!(stats.cpu.and_then(|c| c.usage_core_nano_seconds).is_some_and(|v| v.value > 0));
    let listed = cri.runtime.list_containers(ListContainersRequest::default()).await.unwrap().into_inner().containers;
    assert!(listed.iter().any(|c| c.id == sleeper && c.state == ContainerState::ContainerRunning as i32));
    cri.runtime.stop_container(StopContainerRequest { container_id: sleeper.clone(), timeout: 5 }).await.unwrap();
    let status = cri.status(&sleeper).await;
    assert_eq!(status.state, ContainerState::ContainerExited as i32, "{status:?}");
    cri.runtime.remove_container(RemoveContainerRequest { container_id: sleeper.clone() }).await.unwrap();

    // In-place resize: a lower memory limit reaches the running guest too.
    let grower = cri
        .create_container(
            &pod,
            &pod_config,
            Cri::container_config("grow", 0, IMAGE, &["/memhog.wasm", "200", "40"], &[], 256 << 20),
        )
        .await;
    cri.start_container(&grower).await;
    cri.wait_state(&grower, ContainerState::ContainerRunning, Duration::from_secs(10)).await;
    cri.runtime
        .update_container_resources(UpdateContainerResourcesRequest {
            container_id: grower.clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                cpu_shares: 256,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let grow_cgroup =
        std::path::Path::new("/sys/fs/cgroup/memory").join(cgroup_parent.trim_start_matches('/')).join(&grower);
    assert_eq!(
        std::fs::read_to_string(grow_cgroup.join("memory.limit_in_bytes")).unwrap().trim(),
        (64u64 << 20).to_string()
    );
    let status = cri.wait_state(&grower, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "OOMKilled"), "{status:?}");
    let lines = log_lines(&logs.join("grow_0.log"));
    assert!(lines.iter().any(|l| l.ends_with("allocated 48 MiB")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("allocated 64 MiB") || l.contains("done")),
        "the old limit still applied: {lines:?}"
    );

    // A TCP probe passes as soon as StartContainer returns.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port_text = port.to_string();
    let web = cri
        .create_container(
            &pod,
            &pod_config,
            Cri::container_config("web", 0, IMAGE, &["/http.wasm"], &[("PORT", &port_text)], 64 << 20),
        )
        .await;
    cri.start_container(&web).await;
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "TCP probe failed right after StartContainer");
    let response = wasmlet_tests::http_request(&format!("127.0.0.1:{port}"), "GET", "/probe", &[], b"").unwrap();
    assert_eq!(response.status, 200);
    assert!(response.text().starts_with("GET /probe\n"));

    // Restart: the same container created again after it exited.
    let again = cri
        .create_container(&pod, &pod_config, Cri::container_config("hello", 1, IMAGE, &["/hello.wasm"], &[], 0))
        .await;
    cri.start_container(&again).await;
    let status = cri.wait_state(&again, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    assert_eq!(status.exit_code, 0);
    assert!(log_lines(&logs.join("hello_1.log")).iter().any(|l| l.ends_with(" stdout F hello from wasmlet")));

    // Removing the pod stops what still runs and cleans everything up.
    cri.remove_pod(&pod).await;
    let pods = cri.runtime.list_pod_sandbox(ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert!(pods.iter().all(|p| p.id != pod), "pod still listed");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/memory").join(cgroup_parent.trim_start_matches('/')).join(&web).exists(),
        "container cgroup left behind"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&pod) && !mounts.contains(&web), "mounts left behind");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the HTTP function still listens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linux_sidecar_in_a_wasm_pod_runs_through_runc() {
    let (c, work) = setup();
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (scripts/install-deps)");
    import_k8s(
        &c,
        &oci::image_archive(
            work.path(),
            "docker.io/wasmlet/busybox:latest",
            &[("/bin/busybox", &busybox, 0o755)],
            &["/bin/busybox"],
        ),
    );
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let pod_config = Cri::pod_config("mixed-pod", &logs);
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    let wasm = cri
        .create_container(&pod, &pod_config, Cri::container_config("wasm", 0, IMAGE, &["/sleep.wasm"], &[], 64 << 20))
        .await;
    let script = "echo sidecar up; while true; do echo tick; /bin/busybox sleep 0.2; done";
    let sidecar = cri
        .create_container(
            &pod,
            &pod_config,
            Cri::container_config(
                "sidecar",
                0,
                "docker.io/wasmlet/busybox:latest",
                &["/bin/busybox", "sh", "-c", script],
                &[],
                32 << 20,
            ),
        )
        .await;
    cri.start_container(&wasm).await;
    cri.start_container(&sidecar).await;
    cri.wait_state(&wasm, ContainerState::ContainerRunning, Duration::from_secs(10)).await;
    cri.wait_state(&sidecar, ContainerState::ContainerRunning, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let wasm_log = log_lines(&logs.join("wasm_0.log"));
    let sidecar_log = log_lines(&logs.join("sidecar_0.log"));
    assert!(wasm_log.iter().any(|l| l.ends_with(" stdout F sleeping")), "{wasm_log:?}");
    assert!(sidecar_log.iter().any(|l| l.ends_with(" stdout F sidecar up")), "{sidecar_log:?}");
    assert!(sidecar_log.iter().filter(|l| l.ends_with(" stdout F tick")).count() >= 2, "{sidecar_log:?}");
    // The sidecar is charged to its own cgroup, with its limit.
    let cgroup_parent = pod_config.linux.as_ref().unwrap().cgroup_parent.clone();
    let cgroup =
        std::path::Path::new("/sys/fs/cgroup/memory").join(cgroup_parent.trim_start_matches('/')).join(&sidecar);
    assert_eq!(
        std::fs::read_to_string(cgroup.join("memory.limit_in_bytes")).unwrap().trim(),
        (32u64 << 20).to_string()
    );
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    assert!(!procs.trim().is_empty(), "the sidecar runs in its cgroup: {procs}");
    cri.runtime.stop_container(StopContainerRequest { container_id: sidecar.clone(), timeout: 2 }).await.unwrap();
    let status = cri.status(&sidecar).await;
    assert_eq!(status.state, ContainerState::ContainerExited as i32, "{status:?}");
    assert!(status.exit_code == 137 || status.exit_code == 143, "{status:?}");
    cri.remove_pod(&pod).await;
    std::thread::sleep(Duration::from_millis(300));
    assert!(!cgroup.exists(), "sidecar cgroup left behind");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&sidecar), "sidecar rootfs still mounted");
}

/// containerd >= 1.6.22 / 1.7.3 waits for end-of-file on a container's
/// stdout/stderr FIFOs before it deletes a stopped task. A guest still
/// blocked in a host call (a sleep) must not hold them: StopContainer and
/// StopPodSandbox return within the grace period on every release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_sleeping_guest_returns_within_the_grace_period() {
    let (c, work) = setup();
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let pod_config = Cri::pod_config("sleeping-pod", &logs);
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    let mut sleepers = Vec::new();
    for name in ["sleeper-a", "sleeper-b"] {
        let id = cri
            .create_container(&pod, &pod_config, Cri::container_config(name, 0, IMAGE, &["/sleep.wasm"], &[], 0))
            .await;
        cri.start_container(&id).await;
        cri.wait_state(&id, ContainerState::ContainerRunning, Duration::from_secs(10)).await;
        sleepers.push(id);
    }
    let started = std::time::Instant::now();
    let stopped = tokio::time::timeout(
        Duration::from_secs(10),
        cri.runtime.stop_container(StopContainerRequest { container_id: sleepers[0].clone(), timeout: 2 }),
    )
    .await;
    assert!(matches!(stopped, Ok(Ok(_))), "StopContainer hung or failed: {stopped:?}\n{}", c.log());
    assert!(started.elapsed() < Duration::from_secs(5), "StopContainer took {:?}", started.elapsed());
    let status = cri.status(&sleepers[0]).await;
    assert_eq!(status.state, ContainerState::ContainerExited as i32, "{status:?}");
    assert_eq!(status.exit_code, 143, "SIGTERM ends a WASI guest at once: {status:?}");
    let lines = log_lines(&logs.join("sleeper-a_0.log"));
    assert!(lines.iter().any(|l| l.ends_with(" stdout F sleeping")), "{lines:?}");
    // The pod, with its other sleeper still running.
    let started = std::time::Instant::now();
    let stopped = tokio::time::timeout(
        Duration::from_secs(15),
        cri.runtime.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }),
    )
    .await;
    assert!(matches!(stopped, Ok(Ok(_))), "StopPodSandbox hung or failed: {stopped:?}\n{}", c.log());
    assert!(started.elapsed() < Duration::from_secs(10), "StopPodSandbox took {:?}", started.elapsed());
    let status = cri.status(&sleepers[1]).await;
    assert_eq!(status.state, ContainerState::ContainerExited as i32, "{status:?}");
    cri.runtime.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
}

/// The task pid containerd holds for `id` in namespace k8s.io.
fn task_pid(c: &Containerd, id: &str) -> u32 {
    let out = c.ctr_in("k8s.io").args(["tasks", "ls"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with(id))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no task {id}: {text}"))
}

fn ns_of(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap().display().to_string()
}

/// A pod on the pod network, as Kubernetes runs most pods: the sandbox
/// holds the pod's network (made by CNI), IPC and UTS namespaces; a busybox
/// sidecar started as `sh -c …` (bare argv[0], symlinked busybox) shares
/// them and reaches the Wasm HTTP function on 127.0.0.1; nothing of the pod
/// is on the host's network, and a guest with the network granted cannot
/// reach the host's loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_network_pod_owns_its_namespaces_and_its_sidecar_reaches_the_function() {
    let (c, work) = setup();
    import_k8s(&c, &oci::busybox_archive(work.path(), "docker.io/wasmlet/busybox-links:latest"));
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let pod_config = Cri::pod_network_config("net-pod", "wasm-net-pod", &logs);
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    let holder = task_pid(&c, &pod).to_string();
    for kind in ["net", "ipc", "uts"] {
        assert_ne!(ns_of(&holder, kind), ns_of("self", kind), "the sandbox's {kind} namespace is the host's");
    }

    // A host-loopback server the guest must not reach.
    let host_server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host_server.set_nonblocking(true).unwrap();
    let host_port = host_server.local_addr().unwrap().port();

    let port = "18093";
    let mut http = Cri::container_config("fn", 0, IMAGE, &["/http.wasm"], &[("PORT", port)], 0);
    http.annotations.insert("wasmlet.io/network".into(), "allow".into());
    let function = cri.create_container(&pod, &pod_config, http).await;
    cri.start_container(&function).await;
    let mut net = Cri::container_config("net", 0, IMAGE, &["/net.wasm", &format!("127.0.0.1:{host_port}")], &[], 0);
    net.annotations.insert("wasmlet.io/network".into(), "allow".into());
    let prober = cri.create_container(&pod, &pod_config, net).await;
    cri.start_container(&prober).await;
    let script = format!(
        "echo net $(readlink /proc/self/ns/net); echo ipc $(readlink /proc/self/ns/ipc); echo uts $(readlink /proc/self/ns/uts); \
         echo host $(hostname); i=0; while [ $i -lt 100 ]; do if wget -q -O - http://127.0.0.1:{port}/from-sidecar; then echo; \
         if ps | grep -q '[w]asmlet-guest'; then echo sees-guest; fi; echo fetched; break; fi; sleep 0.1; i=$((i+1)); done; exec sleep 3600"
    );
    let sidecar = cri
        .create_container(
            &pod,
            &pod_config,
            Cri::container_config(
                "sidecar",
                0,
                "docker.io/wasmlet/busybox-links:latest",
                &["sh", "-c", &script],
                &[],
                0,
            ),
        )
        .await;
    cri.start_container(&sidecar).await;

    let status = cri.wait_state(&prober, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    let prober_log = log_lines(&logs.join("net_0.log"));
    assert_eq!(status.exit_code, 3, "a guest reached the host's loopback: {prober_log:?}");
    assert!(prober_log.iter().any(|l| l.contains("denied")), "{prober_log:?}");
    assert!(host_server.accept().is_err(), "the host's loopback server got a connection from the pod");

    let mut sidecar_log = Vec::new();
    for _ in 0..150 {
        sidecar_log = log_lines(&logs.join("sidecar_0.log"));
        if sidecar_log.iter().any(|l| l.ends_with(" fetched")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sidecar_log.iter().any(|l| l.contains("GET /from-sidecar")),
        "the sidecar did not reach the function: {sidecar_log:?}"
    );
    for kind in ["net", "ipc", "uts"] {
        let line = sidecar_log.iter().find(|l| l.contains(&format!(" {kind} "))).cloned().unwrap_or_default();
        assert!(
            line.ends_with(&ns_of(&holder, kind)),
            "sidecar {kind} is not the pod's: {line} vs {}",
            ns_of(&holder, kind)
        );
    }
    assert!(sidecar_log.iter().any(|l| l.ends_with(" host wasm-net-pod")), "{sidecar_log:?}");
    // kubectl exec / exec probes: ExecSync in the sidecar, through the shim's exec.
    let exec = cri
        .runtime
        .exec_sync(ExecSyncRequest {
            container_id: sidecar.clone(),
            cmd: ["wget", "-q", "-O", "-", &format!("http://127.0.0.1:{port}/via-exec")].map(String::from).to_vec(),
            timeout: 20,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    assert_eq!(exec.exit_code, 0, "{exec:?}");
    assert!(String::from_utf8_lossy(&exec.stdout).contains("GET /via-exec"), "{exec:?}");
    let exec = cri
        .runtime
        .exec_sync(ExecSyncRequest {
            container_id: sidecar.clone(),
            cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"].map(String::from).to_vec(),
            timeout: 20,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    assert_eq!(
        (exec.exit_code, exec.stdout.as_slice(), exec.stderr.as_slice()),
        (3, &b"out\n"[..], &b"err\n"[..]),
        "{exec:?}"
    );
    // A Wasm container has nothing to exec into: the error says so.
    let refused = cri
        .runtime
        .exec_sync(ExecSyncRequest { container_id: function.clone(), cmd: vec!["sh".into()], timeout: 5 })
        .await
        .expect_err("exec into a Wasm container");
    assert!(refused.message().contains("no other processes"), "{refused:?}");
    // The function's shim sockets live in the pod, not on the host.
    let fn_pid = task_pid(&c, &function).to_string();
    assert_eq!(ns_of(&fn_pid, "net"), ns_of(&holder, "net"));
    // Its guest process is in the pod's PID namespace (the containers ask
    // for the pod's), which the sidecar's `ps` lists it in; not the node's.
    assert_eq!(ns_of(&fn_pid, "pid"), ns_of(&holder, "pid"));
    assert_ne!(ns_of(&fn_pid, "pid"), ns_of("self", "pid"));
    assert!(sidecar_log.iter().any(|l| l.ends_with(" sees-guest")), "{sidecar_log:?}");
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(), "the function listens on the host");

    let stopped = tokio::time::timeout(
        Duration::from_secs(20),
        cri.runtime.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }),
    )
    .await;
    assert!(matches!(stopped, Ok(Ok(_))), "StopPodSandbox: {stopped:?}\n{}", c.log());
    cri.runtime.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{holder}")).exists()
            || std::fs::read_to_string(format!("/proc/{holder}/stat")).is_ok_and(|s| s.contains(") Z")),
        "the holder outlived its pod"
    );
}

/// Linux sidecars as critest drives them: stopped right after Start (runc
/// must already know the container), and an OOM kill reported as
/// `OOMKilled` (TaskOOM from the container's cgroup), with nothing leaked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_sidecars_stop_right_after_start_and_report_oom_kills() {
    let (c, work) = setup();
    import_k8s(&c, &oci::busybox_archive(work.path(), "docker.io/wasmlet/busybox-links:latest"));
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let pod_config = Cri::pod_network_config("sidecar-pod", "sidecar-pod", &logs);
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    let image = "docker.io/wasmlet/busybox-links:latest";

    let quick = cri
        .create_container(&pod, &pod_config, Cri::container_config("quick", 0, image, &["sleep", "3600"], &[], 0))
        .await;
    cri.start_container(&quick).await;
    let stopped = tokio::time::timeout(
        Duration::from_secs(15),
        cri.runtime.stop_container(StopContainerRequest { container_id: quick.clone(), timeout: 2 }),
    )
    .await;
    assert!(matches!(stopped, Ok(Ok(_))), "StopContainer right after Start: {stopped:?}\n{}", c.log());
    let status = cri.status(&quick).await;
    assert_eq!(status.state, ContainerState::ContainerExited as i32, "{status:?}");

    // The shell doubles a string until the cgroup's 32 MiB limit kills it.
    let hog = cri
        .create_container(
            &pod,
            &pod_config,
            Cri::container_config("hog", 0, image, &["sh", "-c", "x=a; while true; do x=$x$x; done"], &[], 32 << 20),
        )
        .await;
    cri.start_container(&hog).await;
    let status = cri.wait_state(&hog, ContainerState::ContainerExited, Duration::from_secs(60)).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "OOMKilled"), "{status:?}");

    cri.remove_pod(&pod).await;
    let tasks =
        String::from_utf8_lossy(&c.ctr_in("k8s.io").args(["tasks", "ls"]).output().unwrap().stdout).into_owned();
    assert!(!tasks.contains(&quick) && !tasks.contains(&hog) && !tasks.contains(&pod), "tasks leaked: {tasks}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&quick) && !mounts.contains(&hog), "rootfs left mounted");
}

/// What `wasmlet push` writes runs through CRI (PullImage from a registry,
/// as kubelet pulls) on the release under test: runwasi's packaging with an
/// entrypoint everywhere (with `--legacy-unpack` on 1.6), and the CNCF
/// artifact with a command on 1.7 and 2.x (1.6's CRI refuses its config).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_written_by_wasmlet_push_run_through_cri() {
    let (c, work) = setup();
    let registry = wasmlet_tests::registry::Registry::start();
    let pusher = wasmlet_tests::Wasmlet::new();
    let legacy = Containerd::series() == "1.6";
    let hello = guest("hello", false);
    let mut cases = vec![("runwasi", format!("{}/wasmlet/cri-runwasi:1", registry.addr))];
    if !legacy {
        cases.push(("cncf", format!("{}/wasmlet/cri-cncf:1", registry.addr)));
    }
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let pod_config = Cri::pod_config("pushed-pod", &logs);
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    for (i, (format, reference)) in cases.iter().enumerate() {
        let mut args: Vec<&std::ffi::OsStr> = vec!["push".as_ref(), "--format".as_ref(), format.as_ref()];
        if legacy {
            args.push("--legacy-unpack".as_ref());
        }
        args.extend([hello.as_os_str(), reference.as_ref()]);
        let pushed = wasmlet_tests::seen(&pusher.run(args));
        assert_eq!(pushed.code, Some(0), "{pushed:?}");
        cri.images
            .pull_image(PullImageRequest {
                image: Some(ImageSpec { image: reference.clone(), ..Default::default() }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("PullImage {reference} ({format}): {e}\n{}", c.log()));
        let name = format!("pushed-{i}");
        // The CNCF artifact's config has no entrypoint: the pod names argv[0].
        let command: &[&str] = if *format == "cncf" { &["/hello.wasm"] } else { &[] };
        let id =
            cri.create_container(&pod, &pod_config, Cri::container_config(&name, 0, reference, command, &[], 0)).await;
        cri.start_container(&id).await;
        let status = cri.wait_state(&id, ContainerState::ContainerExited, Duration::from_secs(30)).await;
        assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"), "{format}: {status:?}");
        let lines = log_lines(&logs.join(format!("{name}_0.log")));
        assert!(lines.iter().any(|l| l.ends_with(" stdout F hello from wasmlet")), "{format}: {lines:?}");
    }
    cri.remove_pod(&pod).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_user_confines_the_guest_to_that_users_files() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let (c, work) = setup();
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let volume = work.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(volume.join("secret"), "root only\n").unwrap();
    std::fs::set_permissions(volume.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let pod_config = Cri::pod_config("user-pod", &logs);
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    let as_user = |name: &str, command: &[&str]| {
        let mut config = Cri::container_config(name, 0, IMAGE, command, &[], 0);
        config.mounts = vec![Mount {
            container_path: "/vol".into(),
            host_path: volume.display().to_string(),
            ..Default::default()
        }];
        let linux = config.linux.get_or_insert_with(Default::default);
        linux.security_context = Some(LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 1000 }),
            run_as_group: Some(Int64Value { value: 1000 }),
            // kubelet's `seccompProfile: RuntimeDefault`: containerd's
            // default profile in the spec, which the guest process loads.
            seccomp: Some(SecurityProfile {
                profile_type: security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        });
        config
    };
    let reader =
        cri.create_container(&pod, &pod_config, as_user("reader", &["/files.wasm", "read", "/vol/secret"])).await;
    cri.start_container(&reader).await;
    let status = cri.wait_state(&reader, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    assert_eq!(status.exit_code, 3, "{status:?}");
    let lines = log_lines(&logs.join("reader_0.log"));
    assert!(lines.iter().any(|l| l.contains("denied") && l.contains("ermission denied")), "{lines:?}");
    let writer =
        cri.create_container(&pod, &pod_config, as_user("writer", &["/files.wasm", "write", "/vol/made", "x"])).await;
    cri.start_container(&writer).await;
    let status = cri.wait_state(&writer, ContainerState::ContainerExited, Duration::from_secs(30)).await;
    assert_eq!(status.exit_code, 0, "{status:?}");
    let made = std::fs::metadata(volume.join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (1000, 1000));
    cri.runtime.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    cri.runtime.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
}

/// `kubectl run -it`, `kubectl attach` and `kubectl exec -it` on a Linux
/// sidecar, through containerd's stream server as kubectl reaches it: the
/// container's own terminal (its size set by the client's resizes, its
/// stdin read), a streaming exec with a terminal and an exit status, and
/// one without a terminal whose stdout and stderr stay apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_has_a_terminal_attach_and_streaming_exec() {
    use wasmlet_tests::streaming::Session;
    let (c, work) = setup();
    let image = "docker.io/wasmlet/busybox-links:latest";
    import_k8s(&c, &oci::busybox_archive(work.path(), image));
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let pod_config = Cri::pod_network_config("tty-pod", "tty-pod", &logs);
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    // Waits for the attached client's window size, then for a line.
    let script = r#"until [ "$(stty size)" = "33 99" ]; do sleep 0.1; done; echo "size=$(stty size)"; read line; echo "got:$line"; exec sleep 3600"#;
    let mut config = Cri::container_config("shell", 0, image, &["sh", "-c", script], &[], 0);
    (config.tty, config.stdin) = (true, true);
    let shell = cri.create_container(&pod, &pod_config, config).await;
    cri.start_container(&shell).await;
    cri.wait_state(&shell, ContainerState::ContainerRunning, Duration::from_secs(10)).await;

    let attach = cri
        .runtime
        .attach(AttachRequest { container_id: shell.clone(), stdin: true, tty: true, stdout: true, stderr: false })
        .await
        .unwrap_or_else(|e| panic!("Attach: {e}"))
        .into_inner();
    let mut session = Session::connect(&attach.url);
    session.resize(99, 33);
    session.read_until(Duration::from_secs(10), "the container's terminal resized", |s| {
        s.stdout_text().contains("size=33 99")
    });
    session.stdin(b"hello\n");
    session.read_until(Duration::from_secs(10), "the line typed into the attached terminal", |s| {
        s.stdout_text().contains("got:hello")
    });
    drop(session);

    let exec = cri
        .runtime
        .exec(ExecRequest {
            container_id: shell.clone(),
            cmd: [
                "sh",
                "-c",
                r#"until [ "$(stty size)" = "45 123" ]; do sleep 0.1; done; echo "exec size=$(stty size)"; exit 7"#,
            ]
            .map(String::from)
            .to_vec(),
            tty: true,
            stdin: true,
            stdout: true,
            stderr: false,
        })
        .await
        .unwrap_or_else(|e| panic!("Exec: {e}"))
        .into_inner();
    let mut session = Session::connect(&exec.url);
    session.resize(123, 45);
    session.read_until(Duration::from_secs(15), "the exec's status", |s| s.status.is_some());
    assert!(session.stdout_text().contains("exec size=45 123"), "{:?}", session.stdout_text());
    let status = session.status.clone().unwrap();
    assert!(status.contains("NonZeroExitCode") && status.contains(r#""message":"7""#), "{status}");

    let exec = cri
        .runtime
        .exec(ExecRequest {
            container_id: shell.clone(),
            cmd: ["sh", "-c", "echo to-out; echo to-err >&2"].map(String::from).to_vec(),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap_or_else(|e| panic!("Exec: {e}"))
        .into_inner();
    let mut session = Session::connect(&exec.url);
    session.read_until(Duration::from_secs(15), "the exec's status", |s| s.status.is_some());
    assert_eq!(
        (session.stdout_text().as_str(), String::from_utf8_lossy(&session.stderr).as_ref()),
        ("to-out\n", "to-err\n")
    );
    assert!(session.status.as_deref().unwrap().contains(r#""status":"Success""#), "{:?}", session.status);

    // The container's log holds what its terminal showed.
    let log = log_lines(&logs.join("shell_0.log"));
    assert!(log.iter().any(|l| l.contains("size=33 99")), "{log:?}");
    cri.remove_pod(&pod).await;
    let tasks =
        String::from_utf8_lossy(&c.ctr_in("k8s.io").args(["tasks", "ls"]).output().unwrap().stdout).into_owned();
    assert!(!tasks.contains(&shell), "tasks leaked: {tasks}");
}

/// A pod's `wasmlet.io/*` annotations reach the shim (the runtime's
/// `pod_annotations`, as `wasmlet node-install` writes it): an invalid
/// compile budget fails StartContainer (the shim's Create) naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_annotations_reach_the_shim() {
    let (c, work) = setup();
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut pod_config = Cri::pod_config("annotated-pod", &logs);
    pod_config.annotations.insert("wasmlet.io/compile-timeout".into(), "0s".into());
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    let hello = cri
        .create_container(&pod, &pod_config, Cri::container_config("hello", 0, IMAGE, &["/hello.wasm"], &[], 0))
        .await;
    let err = cri
        .runtime
        .start_container(StartContainerRequest { container_id: hello.clone() })
        .await
        .expect_err("an invalid compile budget");
    assert!(err.message().contains("wasmlet.io/compile-timeout=`0s`"), "{err:?}");
    cri.remove_pod(&pod).await;
}

/// fsGroup as kubelet applies it: a volume owned by the pod's fsGroup
/// (2000), setgid and closed to everyone else (02770), and the group in
/// every container's supplemental groups. The Wasm guest (uid 1000) and a
/// busybox sidecar (uid 3000) reach it only through that group: each writes
/// a file the other reads, both files belong to the group, and a Wasm
/// guest without the group is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_group_volumes_are_shared_between_the_guest_and_its_sidecars() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let (c, work) = setup();
    let busybox = "docker.io/wasmlet/busybox-links:latest";
    import_k8s(&c, &oci::busybox_archive(work.path(), busybox));
    let mut cri = Cri::connect(&c).await;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let volume = work.path().join("shared");
    std::fs::create_dir_all(&volume).unwrap();
    std::os::unix::fs::chown(&volume, Some(0), Some(2000)).unwrap();
    std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o2770)).unwrap();
    let mut pod_config = Cri::pod_config("fsgroup-pod", &logs);
    if let Some(context) = pod_config.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        context.supplemental_groups = vec![2000];
    }
    let pod = cri.run_pod(&pod_config, "wasmlet").await;
    let container = |name: &str, image: &str, command: &[&str], uid: i64, groups: Vec<i64>| {
        let mut config = Cri::container_config(name, 0, image, command, &[], 0);
        config.mounts = vec![Mount {
            container_path: "/vol".into(),
            host_path: volume.display().to_string(),
            ..Default::default()
        }];
        config.linux.get_or_insert_with(Default::default).security_context = Some(LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: uid }),
            run_as_group: Some(Int64Value { value: uid }),
            supplemental_groups: groups,
            ..Default::default()
        });
        config
    };
    let mut run = async |config: ContainerConfig| {
        let name = config.metadata.as_ref().unwrap().name.clone();
        let id = cri.create_container(&pod, &pod_config, config).await;
        cri.start_container(&id).await;
        let status = cri.wait_state(&id, ContainerState::ContainerExited, Duration::from_secs(30)).await;
        (status.exit_code, log_lines(&logs.join(format!("{name}_0.log"))))
    };
    let (code, lines) = run(container(
        "wasm-writer",
        IMAGE,
        &["/files.wasm", "write", "/vol/from-wasm", "written by wasm"],
        1000,
        vec![2000],
    ))
    .await;
    assert_eq!(code, 0, "{lines:?}");
    let made = std::fs::metadata(volume.join("from-wasm")).unwrap();
    assert_eq!((made.uid(), made.gid()), (1000, 2000), "the guest's file belongs to the fsGroup");
    let script = "umask 027; cat /vol/from-wasm; echo; echo written by the sidecar > /vol/from-sidecar";
    let (code, lines) = run(container("sidecar", busybox, &["sh", "-c", script], 3000, vec![2000])).await;
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with(" written by wasm")), "the sidecar read the guest's file: {lines:?}");
    let made = std::fs::metadata(volume.join("from-sidecar")).unwrap();
    assert_eq!((made.uid(), made.gid(), made.mode() & 0o777), (3000, 2000, 0o640));
    let (code, lines) =
        run(container("wasm-reader", IMAGE, &["/files.wasm", "read", "/vol/from-sidecar"], 1000, vec![2000])).await;
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with(" written by the sidecar")), "{lines:?}");
    // Without the group: the volume is closed to uid 1000.
    let (code, lines) =
        run(container("outsider", IMAGE, &["/files.wasm", "read", "/vol/from-sidecar"], 1000, vec![])).await;
    assert_ne!(code, 0, "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("written by the sidecar")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("ermission denied")), "{lines:?}");
    cri.remove_pod(&pod).await;
}
