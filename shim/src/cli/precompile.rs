//! `wasmlet precompile`: compile the Wasm of containerd's images into the
//! node's compile cache when the images arrive, not when their first pod
//! starts.
//!
//! A big component (a Python or JavaScript runtime, 10–20 MB) takes
//! seconds of Cranelift; without this the first pod of it on each node
//! waits for that inside CreateContainer. With `--watch` (the DaemonSet in
//! deploy/, or a systemd unit) it subscribes to containerd's
//! `/images/create` and `/images/update` events and compiles each new
//! image's Wasm layer with every core, in a worker held to the shim's
//! default compile budget ([`CompileBudget`]), into the same cache and
//! under the same per-digest lock the shim uses: a Create that comes while
//! the compile still runs waits for it instead of compiling again, and one
//! that comes after maps the code at once. Images already there when it
//! starts (or while it was disconnected) are compiled first.
//!
//! Wasm that keeps its `.wasm` in the image rootfs is compiled by the shim
//! at Create as before; so is anything the budget refuses (the error is
//! logged here, and Create reports it to the pod).

use crate::shim::content::ContainerdContent;
use clap::Args;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::{ImageCreate, SubscribeRequest};
use std::sync::Arc;
use std::time::Duration;
use wasmlet_runtime::{CacheOutcome, Compile, CompileBudget, Runtime};

/// Compile the Wasm of containerd's images into the compile cache
#[derive(Args, Debug)]
pub struct PrecompileArgs {
    /// containerd's socket
    #[arg(long, default_value = "/run/containerd/containerd.sock", value_name = "PATH")]
    address: String,
    /// containerd namespaces whose images are compiled (Kubernetes: k8s.io)
    #[arg(long = "namespace", default_value = "k8s.io", value_name = "NS")]
    namespaces: Vec<String>,
    /// Keep running: compile each image as containerd creates or updates it
    #[arg(long)]
    watch: bool,
}

/// An image to look at: its namespace and name.
type ImageRef = (String, String);

/// Images waiting to be compiled; more than this while the compiler is
/// busy are skipped (the shim compiles them at Create).
const QUEUE: usize = 256;

pub fn precompile(runtime: Arc<Runtime>, args: PrecompileArgs) -> i32 {
    let executor = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(executor) => executor,
        Err(err) => {
            eprintln!("wasmlet: {err}");
            return 1;
        }
    };
    executor.block_on(async move {
        if !args.watch {
            return match compile_existing(&runtime, &args).await {
                Ok(failed) => i32::from(failed > 0),
                Err(err) => {
                    eprintln!("wasmlet: {err}");
                    1
                }
            };
        }
        tokio::select! {
            () = watch(runtime, args) => 1,
            () = terminated() => 0,
        }
    })
}

async fn terminated() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Every image of the namespaces now; how many failed.
async fn compile_existing(runtime: &Arc<Runtime>, args: &PrecompileArgs) -> anyhow::Result<usize> {
    let content = connect(&args.address).await?;
    let mut failed = 0;
    for namespace in &args.namespaces {
        let content = content.in_namespace(namespace);
        for name in content.image_names().await? {
            failed += usize::from(!compile_image(runtime, &content, &name).await);
        }
    }
    Ok(failed)
}

/// Subscribe, compile what is there, then what arrives; reconnect when
/// containerd goes away (it restarts on upgrades and config changes).
async fn watch(runtime: Arc<Runtime>, args: PrecompileArgs) {
    let (queue, mut pending) = tokio::sync::mpsc::channel::<ImageRef>(QUEUE);
    let compiler = {
        let (runtime, address) = (runtime.clone(), args.address.clone());
        tokio::spawn(async move {
            let mut content: Option<ContainerdContent> = None;
            while let Some((namespace, name)) = pending.recv().await {
                if content.is_none() {
                    content = connect(&address).await.ok();
                }
                if let Some(content) = &content {
                    compile_image(&runtime, &content.in_namespace(&namespace), &name).await;
                }
            }
        })
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        match follow(&args, &queue).await {
            Ok(()) => tracing::warn!("containerd closed the event stream; reconnecting"),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "watching containerd's images; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
        if compiler.is_finished() {
            return;
        }
    }
}

/// One connection: subscribe first (so nothing created meanwhile is
/// missed), queue the images already there, then each created or updated one.
async fn follow(args: &PrecompileArgs, queue: &tokio::sync::mpsc::Sender<ImageRef>) -> anyhow::Result<()> {
    let content = connect(&args.address).await?;
    let mut events = EventsClient::new(content.channel());
    let request = SubscribeRequest { filters: vec![r#"topic~="^/images/(create|update)$""#.to_owned()] };
    let mut stream = events
        .subscribe(request)
        .await
        .map_err(|s| anyhow::anyhow!("subscribing to events: {}", s.message()))?
        .into_inner();
    tracing::info!(address = %args.address, namespaces = ?args.namespaces, "watching containerd for Wasm images");
    for namespace in &args.namespaces {
        for name in content.in_namespace(namespace).image_names().await? {
            enqueue(queue, (namespace.clone(), name));
        }
    }
    while let Some(envelope) = stream.message().await.map_err(|s| anyhow::anyhow!("events: {}", s.message()))? {
        if !args.namespaces.contains(&envelope.namespace) {
            continue;
        }
        // ImageUpdate has the same fields (name = 1).
        let Some(name) = envelope
            .event
            .and_then(|any| <ImageCreate as prost::Message>::decode(any.value.as_slice()).ok())
            .map(|event| event.name)
        else {
            continue;
        };
        tracing::debug!(topic = %envelope.topic, image = %name, "image event");
        enqueue(queue, (envelope.namespace, name));
    }
    Ok(())
}

fn enqueue(queue: &tokio::sync::mpsc::Sender<ImageRef>, image: ImageRef) {
    if let Err(tokio::sync::mpsc::error::TrySendError::Full((_, name))) = queue.try_send(image) {
        tracing::warn!(image = %name, "{QUEUE} images already waiting; this one compiles at its first Create");
    }
}

async fn connect(address: &str) -> anyhow::Result<ContainerdContent> {
    // The namespace is chosen per call (`in_namespace`).
    Ok(ContainerdContent::connect(address, "default").await?)
}

/// Compile `name`'s Wasm layer, if it has one; false if that failed.
async fn compile_image(runtime: &Arc<Runtime>, content: &ContainerdContent, name: &str) -> bool {
    let blob = match content.wasm_for_image(name).await {
        Ok(Some(blob)) => blob,
        Ok(None) => {
            tracing::debug!(image = %name, "no Wasm layer (a Linux image, or Wasm in the rootfs)");
            return true;
        }
        Err(err) => {
            // Linux images resolve to no Wasm layer; this is a Wasm image
            // that could not be read, or a manifest it does not accept.
            tracing::debug!(image = %name, error = %err, "not compiled");
            return true;
        }
    };
    let started = std::time::Instant::now();
    let loader = runtime.clone();
    let digest = blob.digest;
    let what = format!("{name} (layer {digest})");
    let compiled = tokio::task::spawn_blocking(move || {
        loader.load_verified_compiling(&blob.bytes, digest, &what, Compile::Within(CompileBudget::default()))
    })
    .await;
    match compiled {
        Ok(Ok((_, outcome))) => {
            let said = match outcome {
                CacheOutcome::Compiled => "compiled",
                CacheOutcome::Uncached => "not cached (the cache cannot be written)",
                _ => "cached",
            };
            tracing::info!(image = %name, layer = %digest, outcome = said, elapsed = ?started.elapsed(), "precompiled");
            println!("{digest} {name} {said}");
            outcome != CacheOutcome::Uncached
        }
        Ok(Err(err)) => {
            tracing::warn!(image = %name, error = %err, "not precompiled; its first Create compiles (and reports) it");
            false
        }
        Err(err) => {
            tracing::warn!(image = %name, error = %err, "the compile task failed");
            false
        }
    }
}
