//! The node installer against a real containerd config, and the shipped
//! Kubernetes manifests parsed as Kubernetes types.

use std::process::{Command, Stdio};
use std::time::Duration;
use wasmlet_tests::{bin, guest, oci, seen, Wasmlet};

fn node_install(args: &[&str]) -> wasmlet_tests::Seen {
    let w = Wasmlet::new();
    seen(&w.command().arg("node-install").args(args).output().unwrap())
}

#[test]
fn installer_is_idempotent_keeps_other_runtimes_and_containerd_runs_the_shim() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin_dir = d.join("bin");
    // A node's containerd config: private paths, runc and another runtime.
    let config = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
# comments survive
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "wasmlet.local/pause:latest"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.other]
      runtime_type = "io.containerd.other.v1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "{d}/cni"
"#,
        d = d.display()
    );
    let config_path = d.join("config.toml");
    std::fs::write(&config_path, &config).unwrap();
    let args = ["--containerd-config", config_path.to_str().unwrap(), "--bin-dir", bin_dir.to_str().unwrap()];
    let first = node_install(&args);
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(first.stdout.contains("registered runtime `wasmlet`") && first.stdout.contains("restart containerd"), "{first:?}");
    let second = node_install(&args);
    assert_eq!(second.code, Some(0), "{second:?}");
    assert!(second.stdout.contains("nothing changed"), "{second:?}");
    assert_eq!(std::fs::read(bin_dir.join("containerd-shim-wasmlet-v1")).unwrap(), std::fs::read(bin("containerd-shim-wasmlet-v1")).unwrap());
    assert_eq!(std::fs::read_to_string(d.join("config.toml.wasmlet-backup")).unwrap(), config);

    let installed = std::fs::read_to_string(&config_path).unwrap();
    assert!(installed.starts_with(&config[..config.find("[plugins").unwrap()]), "the head of the file changed");
    assert!(installed.contains("# comments survive"));
    let doc: toml::Table = toml::from_str(&installed).expect("the installed config parses");
    let runtimes = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
    assert_eq!(runtimes["wasmlet"]["runtime_type"].as_str(), Some("io.containerd.wasmlet.v1"));
    assert_eq!(runtimes["runc"]["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
    assert_eq!(runtimes["other"]["runtime_type"].as_str(), Some("io.containerd.other.v1"));

    // containerd starts with it, lists the runtime, and runs a Wasm container
    // through the installed shim (only bin_dir has it on containerd's PATH).
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display());
    let log = std::fs::File::create(d.join("containerd.log")).unwrap();
    let containerd = Command::new("containerd")
        .arg("--config")
        .arg(&config_path)
        .env("PATH", path)
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let address = d.join("containerd.sock");
    let ctr = |args: &[&str]| Command::new("ctr").arg("--address").arg(&address).args(["--namespace", "install-test"]).args(args).output().unwrap();
    let mut up = false;
    for _ in 0..200 {
        if ctr(&["version"]).status.success() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let stop = |mut child: std::process::Child| {
        // SAFETY: kill(2) on the containerd this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    };
    if !up {
        stop(containerd);
        panic!("containerd did not start: {}", std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default());
    }
    let log_text = std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default();
    let cri_line = log_text.lines().find(|l| l.contains("Start cri plugin with config")).unwrap_or_default().to_owned();
    let work = tempfile::tempdir().unwrap();
    let hello = std::fs::read(guest("hello", false)).unwrap();
    let archive = oci::image_archive(work.path(), "docker.io/wasmlet/install-hello:latest", &[("/hello.wasm", &hello, 0o644)], &["/hello.wasm"]);
    let imported = ctr(&["images", "import", "--all-platforms", archive.to_str().unwrap()]);
    let id = format!("installed-{}", std::process::id());
    let run = ctr(&["run", "--rm", "--runtime", "io.containerd.wasmlet.v1", "docker.io/wasmlet/install-hello:latest", &id]);
    stop(containerd);
    let _ = Command::new("umount").arg("-R").arg(d.join("root")).stderr(Stdio::null()).status();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    assert!(cri_line.contains("wasmlet:{Type:io.containerd.wasmlet.v1"), "CRI config lacks the runtime: {cri_line}");
    assert!(cri_line.contains("runc:{Type:io.containerd.runc.v2") && cri_line.contains("other:{Type:io.containerd.other.v1"), "{cri_line}");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from wasmlet\n", "{}", String::from_utf8_lossy(&run.stderr));
}

#[test]
fn shipped_manifests_parse_as_kubernetes_objects() {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::node::v1::RuntimeClass;
    let root = wasmlet_tests::repo_root();
    let mut seen_kinds = Vec::new();
    for dir in ["examples/k8s", "deploy"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for document in serde_yaml::Deserializer::from_str(&text) {
                let value = serde_yaml::Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let kind = value["kind"].as_str().unwrap_or_default().to_owned();
                let what = format!("{} ({kind})", path.display());
                let pod_runtime_class = match kind.as_str() {
                    "RuntimeClass" => {
                        let rc: RuntimeClass = serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(rc.handler, "wasmlet", "{what}");
                        None
                    }
                    "Deployment" => {
                        let d: Deployment = serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{what}: {e}"));
                        d.spec.and_then(|s| s.template.spec).and_then(|p| p.runtime_class_name)
                    }
                    "Job" => {
                        let j: Job = serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{what}: {e}"));
                        j.spec.and_then(|s| s.template.spec).and_then(|p| p.runtime_class_name)
                    }
                    "DaemonSet" => {
                        let ds: DaemonSet = serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{what}: {e}"));
                        let spec = ds.spec.and_then(|s| s.template.spec).expect("pod spec");
                        assert!(spec.init_containers.is_some_and(|c| !c.is_empty()), "{what}: no installer");
                        None
                    }
                    "Service" if value["apiVersion"].as_str() == Some("v1") => {
                        let _: Service = serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{what}: {e}"));
                        None
                    }
                    // Knative's Service: not in k8s-openapi; check the fields wasmlet needs.
                    "Service" => {
                        assert_eq!(value["apiVersion"].as_str(), Some("serving.knative.dev/v1"), "{what}");
                        value["spec"]["template"]["spec"]["runtimeClassName"].as_str().map(str::to_owned)
                    }
                    other => panic!("{what}: unexpected kind {other}"),
                };
                if let Some(class) = pod_runtime_class {
                    assert_eq!(class, "wasmlet", "{what}");
                }
                seen_kinds.push(kind);
            }
        }
    }
    for kind in ["RuntimeClass", "Deployment", "Service", "Job", "DaemonSet"] {
        assert!(seen_kinds.iter().any(|k| k == kind), "no {kind} among {seen_kinds:?}");
    }
}

use serde::Deserialize as _;
