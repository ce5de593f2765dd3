//! `wasmlet-vm-cri-stats SOCKET HANDLER IMAGE ARGV0 MEMORY_LIMIT`: what
//! kubelet's stats provider asks of CRI, run inside the cgroup v2 + systemd
//! VM (tests/vm/40-cri-stats.sh) against the node's containerd. Runs a
//! host-network pod whose cgroup parent is a systemd slice (as kubelet's
//! systemd driver sends it), one container with ARGV0, waits for it to run,
//! asks ContainerStats twice a second apart and prints one `key=value` line
//! per figure, then removes the pod. Never installed.

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, handler, image, argv0, memory_limit] = args.as_slice() else {
        return Err("usage: wasmlet-vm-cri-stats SOCKET HANDLER IMAGE ARGV0 MEMORY_LIMIT".into());
    };
    let channel = containerd_client::connect(socket).await?;
    let mut cri = RuntimeServiceClient::new(channel);
    // kubelet's systemd driver names slices; CRI then makes the
    // cgroupsPath `system.slice:cri-containerd:ID` (a scope).
    let mut pod_config =
        wasmlet_tests::cri::Cri::pod_config("stats", std::path::Path::new("/var/tmp/wasmlet-vm-tests/cri-logs"));
    if let Some(linux) = pod_config.linux.as_mut() {
        linux.cgroup_parent = "system.slice".into();
    }
    let pod = cri
        .run_pod_sandbox(RunPodSandboxRequest { config: Some(pod_config.clone()), runtime_handler: handler.clone() })
        .await?
        .into_inner()
        .pod_sandbox_id;
    println!("pod={pod}");
    let result = stats_of_one_container(&mut cri, &pod, &pod_config, image, argv0, memory_limit.parse()?).await;
    cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await?;
    cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await?;
    result
}

async fn stats_of_one_container(
    cri: &mut RuntimeServiceClient<containerd_client::tonic::transport::Channel>,
    pod: &str,
    pod_config: &PodSandboxConfig,
    image: &str,
    argv0: &str,
    memory_limit: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata { name: "guest".into(), attempt: 0 }),
        image: Some(ImageSpec { image: image.to_owned(), ..Default::default() }),
        command: vec![argv0.to_owned()],
        log_path: "guest.log".into(),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources { memory_limit_in_bytes: memory_limit, ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.to_owned(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        })
        .await?
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest { container_id: id.clone() }).await?;
    let start = Instant::now();
    loop {
        let status = cri
            .container_status(ContainerStatusRequest { container_id: id.clone(), verbose: false })
            .await?
            .into_inner()
            .status
            .ok_or("no status")?;
        if status.state == ContainerState::ContainerRunning as i32 {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("container never ran: {status:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("container={id}");
    let mut cpu = Vec::new();
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let stats = cri
            .container_stats(ContainerStatsRequest { container_id: id.clone() })
            .await?
            .into_inner()
            .stats
            .ok_or("ContainerStats has no stats")?;
        let memory = stats.memory.ok_or("no memory stats")?;
        let value = |v: Option<UInt64Value>| v.map_or(0, |v| v.value);
        let cpu_stats = stats.cpu.ok_or("no cpu stats")?;
        cpu.push(value(cpu_stats.usage_core_nano_seconds));
        if round == 0 {
            println!("memory_working_set_bytes={}", value(memory.working_set_bytes));
            println!("memory_usage_bytes={}", value(memory.usage_bytes));
            println!("memory_timestamp={}", memory.timestamp);
            println!("cpu_timestamp={}", cpu_stats.timestamp);
        }
    }
    println!("cpu_usage_core_nano_seconds={}", cpu[0]);
    println!("cpu_usage_core_nano_seconds_later={}", cpu[1]);
    Ok(())
}
