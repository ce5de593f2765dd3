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
    // A node's containerd config: private paths, runc and another runtime,
    // in the config version of the containerd release under test.
    let series = wasmlet_tests::containerd::Containerd::series();
    let containerd_bin = wasmlet_tests::containerd::install(&series);
    let head = format!(
        r#"root = "{d}/root"
state = "{d}/state"
# comments survive
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
"#,
        d = d.display()
    );
    // NRI's socket is one per machine: other tests' containerds run beside this one.
    let nri = if series.starts_with("2.") {
        "[plugins.'io.containerd.nri.v1.nri']\n  disable = true\n"
    } else {
        "[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n"
    };
    let head = format!("{head}{nri}");
    let (config, cri_runtimes) = if series.starts_with("2.") {
        let body = format!(
            r#"[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "wasmlet.local/pause:latest"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.other]
      runtime_type = "io.containerd.other.v1"
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    conf_dir = "{d}/cni"
"#,
            d = d.display()
        );
        (format!("version = 3\n{head}{body}"), ["io.containerd.cri.v1.runtime", "containerd", "runtimes"])
    } else {
        let body = format!(
            r#"[plugins."io.containerd.grpc.v1.cri"]
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
        (format!("version = 2\n{head}{body}"), ["io.containerd.grpc.v1.cri", "containerd", "runtimes"])
    };
    let config_path = d.join("config.toml");
    std::fs::write(&config_path, &config).unwrap();
    let args = ["--containerd-config", config_path.to_str().unwrap(), "--bin-dir", bin_dir.to_str().unwrap()];
    let first = node_install(&args);
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(
        first.stdout.contains("registered runtime `wasmlet`") && first.stdout.contains("restart containerd"),
        "{first:?}"
    );
    let second = node_install(&args);
    assert_eq!(second.code, Some(0), "{second:?}");
    assert!(second.stdout.contains("nothing changed"), "{second:?}");
    assert_eq!(
        std::fs::read(bin_dir.join("containerd-shim-wasmlet-v1")).unwrap(),
        std::fs::read(bin("containerd-shim-wasmlet-v1")).unwrap()
    );
    assert_eq!(std::fs::read_to_string(d.join("config.toml.wasmlet-backup")).unwrap(), config);

    let installed = std::fs::read_to_string(&config_path).unwrap();
    assert!(installed.starts_with(&config[..config.find("[plugins").unwrap()]), "the head of the file changed");
    assert!(installed.contains("# comments survive"));
    let doc: toml::Table = toml::from_str(&installed).expect("the installed config parses");
    let runtimes = &doc["plugins"][cri_runtimes[0]][cri_runtimes[1]][cri_runtimes[2]];
    assert_eq!(runtimes["wasmlet"]["runtime_type"].as_str(), Some("io.containerd.wasmlet.v1"));
    assert_eq!(runtimes["runc"]["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
    assert_eq!(runtimes["other"]["runtime_type"].as_str(), Some("io.containerd.other.v1"));

    // containerd starts with it, lists the runtime, and runs a Wasm container
    // through the installed shim (only bin_dir has it on containerd's PATH).
    let path = format!("{}:{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display(), containerd_bin.display());
    let log = std::fs::File::create(d.join("containerd.log")).unwrap();
    let containerd = Command::new(containerd_bin.join("containerd"))
        .arg("--config")
        .arg(&config_path)
        .env("PATH", path)
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let address = d.join("containerd.sock");
    let ctr = |args: &[&str]| {
        Command::new(containerd_bin.join("ctr"))
            .env("CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS", "1")
            .arg("--address")
            .arg(&address)
            .args(["--namespace", "install-test"])
            .args(args)
            .output()
            .unwrap()
    };
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
    // The CRI plugin logs its config at start: Go syntax in 1.x, JSON in 2.x.
    let cri_line = log_text
        .lines()
        .find(|l| l.contains("Start cri plugin with config") || l.contains("starting cri plugin"))
        .unwrap_or_default()
        .replace(['\\', '"'], "")
        .replace("runtimeType:", "Type:");
    let work = tempfile::tempdir().unwrap();
    let hello = std::fs::read(guest("hello", false)).unwrap();
    let archive = oci::image_archive(
        work.path(),
        "docker.io/wasmlet/install-hello:latest",
        &[("/hello.wasm", &hello, 0o644)],
        &["/hello.wasm"],
    );
    let imported = ctr(&["images", "import", "--all-platforms", archive.to_str().unwrap()]);
    let id = format!("installed-{}", std::process::id());
    let run =
        ctr(&["run", "--rm", "--runtime", "io.containerd.wasmlet.v1", "docker.io/wasmlet/install-hello:latest", &id]);
    stop(containerd);
    let _ = Command::new("umount").arg("-R").arg(d.join("root")).stderr(Stdio::null()).status();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    assert!(cri_line.contains("wasmlet:{Type:io.containerd.wasmlet.v1"), "CRI config lacks the runtime: {cri_line}");
    assert!(
        cri_line.contains("runc:{Type:io.containerd.runc.v2")
            && cri_line.contains("other:{Type:io.containerd.other.v1"),
        "{cri_line}"
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello from wasmlet\n",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
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
                let value =
                    serde_yaml::Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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

/// K3s regenerates containerd's config at every start (the template beside
/// it extends it) and MicroK8s renders its own template: node-install
/// changes those, found under --host-root as the DaemonSet mounts the node.
#[test]
fn installer_writes_k3s_and_microk8s_templates() {
    // K3s with containerd 2.x: its generated config (an excerpt of what K3s
    // v1.33 writes) and no template yet.
    let host = tempfile::tempdir().unwrap();
    let k3s_dir = host.path().join("var/lib/rancher/k3s/agent/etc/containerd");
    std::fs::create_dir_all(&k3s_dir).unwrap();
    let generated = r#"# File generated by k3s. DO NOT EDIT. Use config-v3.toml.tmpl instead.
version = 3
root = "/var/lib/rancher/k3s/agent/containerd"
state = "/run/k3s/containerd"

[grpc]
  address = "/run/k3s/containerd/containerd.sock"

[plugins.'io.containerd.internal.v1.opt']
  path = "/var/lib/rancher/k3s/agent/containerd"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  device_ownership_from_security_context = false

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  disable_snapshot_annotations = true

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "rancher/mirrored-pause:3.6"

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dir = "/var/lib/rancher/k3s/data/cni"
  conf_dir = "/var/lib/rancher/k3s/agent/etc/cni/net.d"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
"#;
    std::fs::write(k3s_dir.join("config.toml"), generated).unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    let args = ["--host-root", host.path().to_str().unwrap(), "--bin-dir", "/usr/local/bin"];
    let first = node_install(&args);
    assert_eq!(first.code, Some(0), "{first:?}");
    let template_path = k3s_dir.join("config-v3.toml.tmpl");
    let template = std::fs::read_to_string(&template_path).expect("K3s template written");
    assert!(template.starts_with("{{ template \"base\" . }}\n"), "{template}");
    assert_eq!(std::fs::read_to_string(k3s_dir.join("config.toml")).unwrap(), generated, "K3s's own file is K3s's");
    assert!(host.path().join("usr/local/bin/containerd-shim-wasmlet-v1").exists());
    let again = node_install(&args);
    assert!(again.stdout.contains("nothing changed"), "{again:?}");
    // What K3s renders (its base config, then the template's rest) is TOML
    // with the runtime, named by absolute path.
    let rendered = template.replace("{{ template \"base\" . }}", generated);
    let doc: toml::Table = toml::from_str(&rendered).expect("the rendered config parses");
    let wasmlet = &doc["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["wasmlet"];
    assert_eq!(wasmlet["runtime_type"].as_str(), Some("io.containerd.wasmlet.v1"));
    assert_eq!(wasmlet["runtime_path"].as_str(), Some("/usr/local/bin/containerd-shim-wasmlet-v1"));
    // A template the operator already has is extended, once.
    let own = "{{ template \"base\" . }}\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'other']\n  runtime_type = \"io.containerd.other.v1\"\n";
    std::fs::write(&template_path, own).unwrap();
    assert_eq!(node_install(&args).code, Some(0));
    let extended = std::fs::read_to_string(&template_path).unwrap();
    assert!(extended.starts_with(own) && extended.matches("io.containerd.wasmlet.v1").count() == 1, "{extended}");
    assert!(node_install(&args).stdout.contains("nothing changed"));
    drop(bin_dir);

    // MicroK8s: its containerd template, ${…} placeholders and all (an
    // excerpt of the snap's args/containerd-template.toml).
    let host = tempfile::tempdir().unwrap();
    let args_dir = host.path().join("var/snap/microk8s/current/args");
    std::fs::create_dir_all(&args_dir).unwrap();
    let microk8s = r#"# Use config version 2 to enable new configuration fields.
version = 2
oom_score = 0

[grpc]
  uid = 0
  gid = 0
  max_recv_message_size = 16777216
  max_send_message_size = 16777216

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  sandbox_image = "registry.k8s.io/pause:3.7"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "${SNAPSHOTTER}"
    no_pivot = false
    default_runtime_name = "${RUNTIME}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "${RUNTIME_TYPE}"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia-container-runtime]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia-container-runtime.options]
          BinaryName = "nvidia-container-runtime"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${SNAP_DATA}/opt/cni/bin"
    conf_dir = "${SNAP_DATA}/args/cni-network"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${SNAP_DATA}/args/certs.d"
"#;
    let template_path = args_dir.join("containerd-template.toml");
    std::fs::write(&template_path, microk8s).unwrap();
    let args = ["--host-root", host.path().to_str().unwrap()];
    assert_eq!(node_install(&args).code, Some(0));
    let edited = std::fs::read_to_string(&template_path).unwrap();
    assert!(
        edited.starts_with(&microk8s[..microk8s.find("  [plugins.\"io.containerd.grpc.v1.cri\".cni]").unwrap()]),
        "{edited}"
    );
    assert!(edited.contains("${SNAP_DATA}/opt/cni/bin") && edited.contains("runtime_type = \"${RUNTIME_TYPE}\""));
    let doc: toml::Table = toml::from_str(&edited).unwrap();
    let runtimes = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
    assert_eq!(runtimes["wasmlet"]["runtime_type"].as_str(), Some("io.containerd.wasmlet.v1"));
    assert_eq!(runtimes["wasmlet"]["runtime_path"].as_str(), Some("/usr/local/bin/containerd-shim-wasmlet-v1"));
    assert_eq!(
        runtimes["nvidia-container-runtime"]["options"]["BinaryName"].as_str(),
        Some("nvidia-container-runtime")
    );
    assert!(node_install(&args).stdout.contains("nothing changed"));
}
