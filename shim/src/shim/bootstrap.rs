//! The shim binary's actions: `-v`, `-info`, `start`, `delete`, (no
//! action) the long-running daemon, `guest`, a container's guest process,
//! `compile-worker`, a compilation held to its budget, and `self-test`, the
//! guest confinement applied to itself and probed.

use super::{cgroup, daemon, handshake, RUNTIME_TYPE};
use anyhow::Context as _;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message as _;
use containerd_shim::protos::types::introspection::RuntimeInfo;
use containerd_shim::{Flags, StartOpts};
use std::io::Write as _;

pub fn main() -> i32 {
    let args: Vec<_> = std::env::args_os().collect();
    // The guest's own process (`guest`), started by this shim's daemon.
    if args.get(1).is_some_and(|a| a == super::guest::process::GUEST_ACTION) {
        return super::guest::main();
    }
    // The confinement checking itself (self_test).
    if args.get(1).is_some_and(|a| a == super::self_test::ACTION) {
        return super::self_test::main(&args[2..]);
    }
    // A compilation the daemon runs within its budget (wasmlet_runtime::compile).
    if args.get(1).is_some_and(|a| a == wasmlet_runtime::compile::WORKER_ACTION) {
        return wasmlet_runtime::compile::worker_main(&args);
    }
    let flags = match containerd_shim::parse(&args[1..]) {
        Ok(flags) => flags,
        Err(err) => {
            eprintln!("{RUNTIME_TYPE}: {err}");
            return 2;
        }
    };
    let result = if flags.version {
        println!("containerd-shim-wasmlet-v1:\n  Version: {}\n  Runtime: {RUNTIME_TYPE}", env!("CARGO_PKG_VERSION"));
        Ok(())
    } else if flags.info {
        info()
    } else {
        match flags.action.as_str() {
            "start" => start(&flags),
            "delete" => delete(&flags),
            "" => daemon::run(flags),
            other => Err(anyhow::anyhow!("unknown action `{other}` (expected start, delete or none)")),
        }
    };
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("{RUNTIME_TYPE}: {err:#}");
            1
        }
    }
}

/// `-info`: a `RuntimeInfo` protobuf on stdout. containerd 2.x reads its
/// `features` (the OCI runtime-spec Features structure) to learn what the
/// handler supports; CRI, for one, refuses user-namespaced pods (`hostUsers:
/// false`) on a handler that lists no idmap support.
fn info() -> anyhow::Result<()> {
    // containerd pipes the runtime options in; they do not change the answer.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&runtime_info().write_to_bytes()?)?;
    stdout.flush()?;
    Ok(())
}

/// containerd's type URL for the runtime-spec Features structure (JSON).
const FEATURES_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// What wasmlet honours of an OCI spec, as the runtime-spec's Features
/// structure. Only what the shim really applies is listed: the network, IPC,
/// UTS and PID namespaces a pod names (the guest process joins them), every
/// capability (the guest process gets exactly the spec's sets), read-only
/// and bind mounts, the cgroup's resources (cgroupfs and systemd cgroup
/// paths), the spec's seccomp profile (libseccomp's actions and operators).
/// No hooks, no user namespaces or idmapped mounts (a spec asking for one is
/// refused at Create), no AppArmor or SELinux. The Landlock ABI the guest
/// processes get is an annotation (0: this kernel has none).
pub(crate) fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.1",
        "hooks": [],
        "mountOptions": ["bind", "rbind", "ro", "rw"],
        "linux": {
            "namespaces": ["network", "ipc", "uts", "pid"],
            "capabilities": super::confine::CAPABILITIES.to_vec(),
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"],
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}},
        },
        "annotations": {
            "io.wasmlet.version": env!("CARGO_PKG_VERSION"),
            "io.wasmlet.landlock.abi": super::landlock::abi().to_string(),
        },
    })
}

fn runtime_info() -> RuntimeInfo {
    RuntimeInfo {
        name: RUNTIME_TYPE.to_owned(),
        version: Some(containerd_shim::protos::types::introspection::RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: String::new(),
            ..Default::default()
        })
        .into(),
        features: Some(Any {
            type_url: FEATURES_TYPE_URL.to_owned(),
            value: features().to_string().into_bytes(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// `start`: spawn the daemon for this container and print its address,
/// in the form the calling containerd reads (see [`handshake`]).
fn start(flags: &Flags) -> anyhow::Result<()> {
    let mut stdin = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut stdin);
    let params = handshake::BootstrapParams::from_stdin(&stdin, &flags.id, &flags.namespace);
    let pick = |new: Option<&String>, old: String| new.filter(|v| !v.is_empty()).cloned().unwrap_or(old);
    let opts = StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: pick(params.as_ref().map(|p| &p.containerd_grpc_address), flags.address.clone()),
        ttrpc_address: pick(
            params.as_ref().map(|p| &p.containerd_ttrpc_address),
            std::env::var(super::TTRPC_ADDRESS_ENV).unwrap_or_default(),
        ),
        namespace: flags.namespace.clone(),
        debug: flags.debug || params.as_ref().is_some_and(|p| p.debug()),
        ..Default::default()
    };
    let executor = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // One daemon per container: the grouping key is the container id.
    let address =
        executor.block_on(containerd_shim::spawn(opts, &flags.id, Vec::new())).context("spawning the shim daemon")?;
    std::fs::write("address", &address).context("writing the address file in the bundle")?;
    let reply = match params {
        Some(_) => handshake::bootstrap_result(&address),
        None => address.into_bytes(),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&reply)?;
    stdout.flush()?;
    Ok(())
}

/// `delete`: clean up after a daemon that died (containerd calls this after
/// every task, too). The guest lived inside the daemon, so there is no process
/// to kill: unmount the rootfs, remove the cgroup, report SIGKILL.
fn delete(flags: &Flags) -> anyhow::Result<()> {
    let bundle = if flags.bundle.is_empty() { std::env::current_dir()? } else { flags.bundle.clone().into() };
    let rootfs = bundle.join("rootfs");
    if let Err(err) = containerd_shim::mount::umount_recursive(rootfs.to_str(), libc::MNT_DETACH) {
        tracing::warn!(error = %err, "unmounting rootfs");
    }
    if let Ok(spec) = oci_spec::runtime::Spec::load(bundle.join("config.json")) {
        cgroup::remove_for_spec(&spec);
    }
    let response = containerd_shim::protos::api::DeleteResponse {
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: Some(containerd_shim::util::timestamp()?).into(),
        ..Default::default()
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&response.write_to_bytes()?)?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_carries_the_oci_features_containerd_decodes() {
        let bytes = runtime_info().write_to_bytes().unwrap();
        let info = RuntimeInfo::parse_from_bytes(&bytes).unwrap();
        assert_eq!(info.name, RUNTIME_TYPE);
        let features = info.features.as_ref().expect("features");
        assert_eq!(features.type_url, FEATURES_TYPE_URL);
        let parsed: oci_spec::runtime::Features = serde_json::from_slice(&features.value).unwrap();
        assert_eq!(parsed.oci_version_min(), "1.0.0");
        let linux = parsed.linux().as_ref().unwrap();
        use oci_spec::runtime::LinuxNamespaceType::{Ipc, Network, Pid, Uts};
        assert_eq!(linux.namespaces().as_deref(), Some(&[Network, Ipc, Uts, Pid][..]));
        let seccomp = linux.seccomp().as_ref().expect("seccomp");
        assert_eq!(*seccomp.enabled(), Some(true), "the spec's profile is applied");
        assert!(seccomp.operators().as_ref().is_some_and(|o| o.len() == 7), "{seccomp:?}");
        let abi = parsed.annotations().as_ref().and_then(|a| a.get("io.wasmlet.landlock.abi"));
        assert_eq!(abi, Some(&crate::shim::landlock::abi().to_string()));
        let capabilities = linux.capabilities().as_ref().map_or(0, |c| c.len());
        assert_eq!(capabilities, 41, "the guest process applies every capability the spec names");
        let idmap = linux.mount_extensions().as_ref().and_then(|m| m.idmap().as_ref()).and_then(|i| *i.enabled());
        assert_eq!(idmap, Some(false), "user namespaces are not supported: say so");
    }
}
