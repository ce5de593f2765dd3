//! The shim binary's actions: `-v`, `-info`, `start`, `delete`, and (no
//! action) the long-running daemon.

use super::{cgroup, daemon, RUNTIME_TYPE};
use anyhow::Context as _;
use containerd_shim::protos::protobuf::Message as _;
use containerd_shim::{Flags, StartOpts};
use std::io::Write as _;

pub fn main() -> i32 {
    let args: Vec<_> = std::env::args_os().collect();
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

/// `-info`: a `RuntimeInfo` protobuf on stdout.
fn info() -> anyhow::Result<()> {
    // containerd pipes the runtime options in; they do not change the answer.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    let info = containerd_shim::protos::types::introspection::RuntimeInfo {
        name: RUNTIME_TYPE.to_owned(),
        version: Some(containerd_shim::protos::types::introspection::RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: String::new(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&info.write_to_bytes()?)?;
    stdout.flush()?;
    Ok(())
}

/// `start`: spawn the daemon for this container and print its address.
fn start(flags: &Flags) -> anyhow::Result<()> {
    // Runtime options arrive on stdin; wasmlet has none of its own yet.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    let opts = StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address: std::env::var(super::TTRPC_ADDRESS_ENV).unwrap_or_default(),
        namespace: flags.namespace.clone(),
        debug: flags.debug,
        ..Default::default()
    };
    let executor = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // One daemon per container: the grouping key is the container id.
    let address = executor
        .block_on(containerd_shim::spawn(opts, &flags.id, Vec::new()))
        .context("spawning the shim daemon")?;
    std::fs::write("address", &address).context("writing the address file in the bundle")?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(address.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// `delete`: clean up after a daemon that died (containerd calls this after
/// every task, too). The guest lived inside the daemon, so there is no process
/// to kill: unmount the rootfs, remove the cgroup, report SIGKILL.
fn delete(flags: &Flags) -> anyhow::Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir()?
    } else {
        flags.bundle.clone().into()
    };
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
