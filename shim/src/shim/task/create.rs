//! The Create verb: mount the rootfs, read the bundle's spec and pick the
//! workload it describes (a pod sandbox, a Linux container for runc, or Wasm,
//! compiled now so a bad binary fails Create as it does under runc; the guest
//! process links it, and Start fails if it cannot).

use super::error::{blocking, TaskError, TaskResult};
use super::lifecycle::{Cleanup, NewContainer};
use super::SharedRuntime;
use crate::shim::cgroup::ContainerCgroup;
use crate::shim::confine::Confinement;
use crate::shim::fs_view::{Folder, FsView};
use crate::shim::runc::{self, RuncContainer};
use crate::shim::sandbox::PodNamespaces;
use crate::shim::spec::{compile_budget, is_pod_sandbox, wasm_task, SpecError};
use crate::shim::stdio;
use crate::shim::workload::{LinuxContainer, PodSandbox, WasmGuest, Workload};
use containerd_shim::protos::api;
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmlet_runtime::Compile;

/// What Create needs from the shim beyond the request.
pub struct CreateContext<'a> {
    pub runtime: &'a SharedRuntime,
    pub cgroup: &'a Mutex<Option<ContainerCgroup>>,
    /// containerd's gRPC address and namespace, for reading image content.
    pub containerd: &'a (String, String),
}

/// The rootfs containerd asked us to mount; unmounted on drop unless kept.
struct RootfsMount(Option<PathBuf>);

impl RootfsMount {
    async fn mount(mounts: &[api::Mount], rootfs: &Path) -> TaskResult<Self> {
        for mount in mounts {
            containerd_shim::util::mount_rootfs(mount, rootfs)
                .await
                .map_err(|e| TaskError::Internal(format!("mounting rootfs at {}: {e}", rootfs.display())))?;
        }
        Ok(Self((!mounts.is_empty()).then(|| rootfs.to_owned())))
    }

    /// Unmount when the container is deleted instead.
    fn keep(mut self) -> Option<Cleanup> {
        let rootfs = self.0.take()?;
        Some(Box::new(move || unmount(&rootfs)))
    }
}

impl Drop for RootfsMount {
    fn drop(&mut self) {
        if let Some(rootfs) = self.0.take() {
            unmount(&rootfs);
        }
    }
}

fn unmount(rootfs: &Path) {
    if let Err(err) = containerd_shim::mount::umount_recursive(rootfs.to_str(), libc::MNT_DETACH) {
        tracing::warn!(rootfs = %rootfs.display(), error = %err, "unmounting rootfs");
    }
}

pub async fn create(ctx: &CreateContext<'_>, req: &api::CreateTaskRequest) -> TaskResult<NewContainer> {
    if !req.checkpoint.is_empty() {
        return Err(TaskError::Unimplemented("wasmlet does not support restoring checkpoints".into()));
    }
    let bundle = PathBuf::from(&req.bundle);
    let rootfs = bundle.join("rootfs");
    let mount = RootfsMount::mount(&req.rootfs, &rootfs).await?;
    let spec = Spec::load(bundle.join("config.json"))
        .map_err(|e| TaskError::InvalidArgument(format!("reading the bundle's config.json: {e}")))?;
    let workload = workload_for(ctx, req, &bundle, &spec).await.inspect_err(|err| {
        tracing::warn!(id = %req.id, error = %err, "create failed");
    })?;
    Ok(NewContainer {
        id: req.id.clone(),
        bundle,
        stdio: (req.stdin.clone(), req.stdout.clone(), req.stderr.clone()),
        terminal: req.terminal,
        workload,
        cleanup: mount.keep(),
    })
}

async fn workload_for(
    ctx: &CreateContext<'_>,
    req: &api::CreateTaskRequest,
    bundle: &Path,
    spec: &Spec,
) -> TaskResult<Arc<dyn Workload>> {
    if is_pod_sandbox(spec) {
        // Cloned from the executor's thread, which lives as long as the shim:
        // the holder's parent-death signal follows the thread that made it,
        // and a blocking-pool thread exits after 10 s idle.
        let holder = PodNamespaces::create(spec).map_err(|e| TaskError::Internal(format!("pod sandbox: {e}")))?;
        tracing::info!(id = %req.id, holder = holder.pid(), "created pod sandbox (a holder process owns the pod's namespaces)");
        return Ok(Arc::new(PodSandbox::new(holder)));
    }
    // The container's root as the spec names it (`root.path`, absolute or
    // relative to the bundle), as runc reads it.
    let root = spec.root().as_ref().map_or_else(|| bundle.join("rootfs"), |r| bundle.join(r.path()));
    if runc::is_native(spec, &root) {
        // runc starts its process: the guest process the daemon forked is not needed.
        crate::shim::guest::preforked::discard();
        // runc owns this cgroup (and freezes it to kill): step out of it.
        if let Some(cgroup) = ctx.cgroup.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            cgroup.leave();
        }
        let cgroups_path =
            spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref()).map(|p| p.to_string_lossy().into_owned());
        let stdio = (req.stdin.as_str(), req.stdout.as_str(), req.stderr.as_str());
        let runc = RuncContainer::create(&req.id, bundle, stdio, cgroups_path, req.terminal)
            .map_err(|e| TaskError::Internal(format!("Linux container: {e}")))?;
        tracing::info!(id = %req.id, "created Linux container (runc)");
        return Ok(Arc::new(LinuxContainer::new(runc)));
    }
    if req.terminal {
        return Err(TaskError::InvalidArgument(
            "wasmlet does not support a terminal (tty) for Wasm containers; run without -t".into(),
        ));
    }
    let mut confinement = Confinement::from_spec(spec).map_err(|e| TaskError::InvalidArgument(e.to_string()))?;
    let (guest, fs_view) = wasm_guest(ctx, req, spec, &root).await?;
    confinement.fs_view = fs_view;
    // On the executor's own thread, not a blocking-pool one: the guest's
    // parent-death signal fires when the thread that forked it exits, and
    // pool threads exit when idle.
    guest.into_workload(confinement)
}

/// Compile (or load from the cache) and link the Wasm, and open its stdio;
/// also what its preopens let it name.
async fn wasm_guest(
    ctx: &CreateContext<'_>,
    req: &api::CreateTaskRequest,
    spec: &Spec,
    root: &Path,
) -> TaskResult<(WasmGuest, FsView)> {
    let task = wasm_task(spec, root).map_err(|e| TaskError::InvalidArgument(e.to_string()))?;
    let fs_view = {
        let folders: Vec<Folder<'_>> =
            task.caps.preopens.iter().map(|p| Folder { host: &p.host, guest: &p.guest }).collect();
        FsView::new(spec, &folders)
    };
    // Untrusted Wasm compiles in a worker process within its budget: a
    // module that would take the node's memory or minutes fails Create.
    let compile = Compile::Within(compile_budget(spec).map_err(|e| TaskError::InvalidArgument(e.to_string()))?);
    let runtime = ctx.runtime.wait().await?;
    let loader = runtime.clone();
    // Compiled into the cache if it is not there; the guest process loads
    // and links it meanwhile (Start waits for that: see `WasmRun::start`).
    let program = match task.wasm.clone() {
        Some(wasm) => {
            blocking(move || {
                loader.prepare_file_compiling(&wasm, compile).map_err(|e| TaskError::InvalidArgument(e.to_string()))
            })
            .await?
        }
        None => {
            // Not a file in the rootfs: maybe the image is a Wasm artifact
            // whose layer is the Wasm (its rootfs is empty).
            let blob = image_wasm_layer(ctx.containerd, &req.id, &task.wasm_name).await?;
            let digest = blob.digest;
            tracing::info!(image = %blob.image, layer = %blob.digest, media_type = %blob.media_type, "Wasm from the image's layer");
            let what = format!("{} (layer {})", blob.image, blob.digest);
            blocking(move || {
                loader
                    .prepare_verified_compiling(&blob.bytes, digest, &what, compile)
                    .map_err(|e| TaskError::InvalidArgument(e.to_string()))
            })
            .await?
        }
    };
    let (stdin, stdout, stderr) = (req.stdin.clone(), req.stdout.clone(), req.stderr.clone());
    let (id, namespace) = (req.id.clone(), ctx.containerd.1.clone());
    let (stdio, mut relay) = blocking(move || {
        stdio::open(&stdin, &stdout, &stderr, &stdio::Owner { id: &id, namespace: &namespace })
            .map_err(|e| TaskError::Internal(format!("opening stdio: {e}")))
    })
    .await?;
    relay.start().map_err(|e| TaskError::Internal(format!("relaying stdio: {e}")))?;
    tracing::info!(id = %req.id, wasm = %task.wasm_name, digest = %program.digest, kind = ?program.kind, cache = program.outcome.as_str(), "created");
    Ok((WasmGuest::new(&req.id, runtime, program, task, stdio, relay), fs_view))
}

/// The Wasm layer of the container's image, read from containerd's content
/// store and verified; an error naming argv\[0\] when there is none.
async fn image_wasm_layer(
    containerd: &(String, String),
    id: &str,
    argv0: &str,
) -> TaskResult<crate::shim::content::WasmBlob> {
    let missing = SpecError::NotFound(argv0.to_owned()).to_string();
    let (address, namespace) = containerd;
    let content = crate::shim::content::ContainerdContent::connect(address, namespace)
        .await
        .map_err(|e| TaskError::InvalidArgument(format!("{missing}, and the image could not be read: {e}")))?;
    match content.wasm_for_container(id).await {
        Ok(Some(blob)) => Ok(blob),
        Ok(None) => Err(TaskError::InvalidArgument(missing)),
        Err(e) => Err(TaskError::InvalidArgument(format!("{missing}, and the image has no usable Wasm layer: {e}"))),
    }
}
