//! Driving containerd's CRI plugin the way kubelet does: a gRPC client from
//! the `k8s-cri` crate (CRI v1) over the private containerd's socket, with
//! host-network or pod-network pods (the private containerd's CNI bridge)
//! and images imported into `k8s.io`.

use crate::containerd::Containerd;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub type Channel = containerd_client::tonic::transport::Channel;

pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// A static pause binary imported as the sandbox image the private
/// containerd names (`wasmlet.local/pause:latest`); runc pods run it.
pub fn import_pause_image(c: &Containerd) {
    let work = tempfile::tempdir().unwrap();
    let pause = work.path().join("pause");
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&pause)
        .arg(crate::repo_root().join("examples/native/pause.c"))
        .status()
        .expect("gcc");
    assert!(status.success());
    let bytes = std::fs::read(&pause).unwrap();
    let archive =
        crate::oci::image_archive(work.path(), "wasmlet.local/pause:latest", &[("/pause", &bytes, 0o755)], &["/pause"]);
    import_k8s(c, &archive);
}

/// `ctr -n k8s.io images import`: where the CRI plugin looks for images.
pub fn import_k8s(c: &Containerd, archive: &std::path::Path) {
    let out = c.ctr_in("k8s.io").args(["images", "import", "--all-platforms"]).arg(archive).output().unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
}

impl Cri {
    pub async fn connect(c: &Containerd) -> Self {
        let channel = containerd_client::connect(&c.address).await.expect("connect to containerd");
        Self { runtime: RuntimeServiceClient::new(channel.clone()), images: ImageServiceClient::new(channel) }
    }

    /// A pod on the pod network (CNI: its own network namespace), with its
    /// own IPC and UTS namespaces and `hostname`, logging under `log_dir`.
    pub fn pod_network_config(name: &str, hostname: &str, log_dir: &std::path::Path) -> PodSandboxConfig {
        let mut config = Self::pod_config(name, log_dir);
        config.hostname = hostname.to_owned();
        if let Some(options) =
            config.linux.as_mut().and_then(|l| l.security_context.as_mut()).and_then(|s| s.namespace_options.as_mut())
        {
            options.network = NamespaceMode::Pod as i32;
        }
        config
    }

    /// A host-network pod's sandbox config, logging under `log_dir`.
    pub fn pod_config(name: &str, log_dir: &std::path::Path) -> PodSandboxConfig {
        let uid = format!("{name}-{}", std::process::id());
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: log_dir.display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/wasmlet-cri/{uid}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub async fn run_pod(&mut self, config: &PodSandboxConfig, handler: &str) -> String {
        self.runtime
            .run_pod_sandbox(RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.to_owned() })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}"))
            .into_inner()
            .pod_sandbox_id
    }

    pub fn container_config(
        name: &str,
        attempt: u32,
        image: &str,
        command: &[&str],
        envs: &[(&str, &str)],
        memory_limit: i64,
    ) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.to_owned(), attempt }),
            image: Some(ImageSpec { image: image.to_owned(), ..Default::default() }),
            command: command.iter().map(|s| s.to_string()).collect(),
            envs: envs.iter().map(|(k, v)| KeyValue { key: k.to_string(), value: v.to_string() }).collect(),
            log_path: format!("{name}_{attempt}.log"),
            labels: HashMap::new(),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    memory_limit_in_bytes: memory_limit,
                    cpu_shares: 256,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub async fn create_container(
        &mut self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> String {
        self.runtime
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.to_owned(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer: {e}"))
            .into_inner()
            .container_id
    }

    pub async fn start_container(&mut self, id: &str) {
        self.runtime
            .start_container(StartContainerRequest { container_id: id.to_owned() })
            .await
            .unwrap_or_else(|e| panic!("StartContainer: {e}"));
    }

    pub async fn status(&mut self, id: &str) -> ContainerStatus {
        self.runtime
            .container_status(ContainerStatusRequest { container_id: id.to_owned(), verbose: false })
            .await
            .unwrap_or_else(|e| panic!("ContainerStatus: {e}"))
            .into_inner()
            .status
            .expect("status")
    }

    /// Poll ContainerStatus until `state` (or panic after `within`).
    pub async fn wait_state(&mut self, id: &str, state: ContainerState, within: Duration) -> ContainerStatus {
        let start = Instant::now();
        loop {
            let status = self.status(id).await;
            if status.state == state as i32 {
                return status;
            }
            assert!(start.elapsed() < within, "container {id} never reached {state:?}: {status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn remove_pod(&mut self, pod: &str) {
        self.runtime
            .stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.to_owned() })
            .await
            .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
        self.runtime
            .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod.to_owned() })
            .await
            .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    }
}
