//! `wasmlet push`, `pull`, `images`, `rmi`, and resolving `run`/`serve`'s
//! argument to a program: a file, or an image reference pulled on demand
//! into the local store (`<cache dir>/oci`).

use super::LOAD_ERROR_STATUS;
use clap::Args;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use wasmlet_oci::{ContentStore, PushFormat, PushOptions, Registry, RegistryOptions};
use wasmlet_runtime::{Digest, Program, Runtime};

/// Options shared by every command that talks to a registry.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Use plain HTTP for this registry (always used for localhost/127.0.0.1)
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA certificate (PEM or DER) for HTTPS registries, besides
    /// the system's and /etc/{containers,docker}/certs.d/<host:port>/*.crt
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,
    /// Give up connecting to the registry after this long (e.g. 10s)
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub connect_timeout: Option<std::time::Duration>,
    /// Give up when the registry sends nothing for this long (default 30s)
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub read_timeout: Option<std::time::Duration>,
    /// Refuse blobs declared larger than this, before downloading (default 1Gi)
    #[arg(long = "max-blob-size", value_name = "SIZE", value_parser = crate::units::parse_size)]
    pub max_blob_bytes: Option<u64>,
}

impl RegistryArgs {
    fn options(&self) -> RegistryOptions {
        RegistryOptions {
            insecure: self.insecure,
            ca_files: self.ca_files.clone(),
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            max_blob_bytes: self.max_blob_bytes,
        }
    }
}

/// Push a .wasm to a registry as a CNCF Wasm OCI artifact
#[derive(Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    /// `cncf` (the CNCF Wasm artifact) or `runwasi` (an OCI image config and
    /// a Wasm layer: what `ctr` and containerd 1.6's CRI can run)
    #[arg(long, default_value = "cncf", value_parser = ["cncf", "runwasi"])]
    format: String,
    /// For containerd 1.6.20–1.6.24: list the empty tar as the Wasm layer's
    /// diff id, which 1.6 unpacks with wasmlet's stream processor. containerd
    /// 1.7 and 2.x refuse such images and run the default (no diff ids).
    #[arg(long)]
    legacy_unpack: bool,
    /// The module or component
    file: PathBuf,
    /// Where to push it, e.g. ghcr.io/me/hello:1.0
    reference: String,
}

/// Pull an image (Wasm artifact, Wasm layer or plain image) into the local store
#[derive(Args, Debug)]
pub struct PullArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    reference: String,
}

/// Remove an image from the local store
#[derive(Args, Debug)]
pub struct RmiArgs {
    references: Vec<String>,
}

/// The local image store, beside the compile cache.
pub fn store_dir(cache_dir: &Path) -> PathBuf {
    std::env::var_os("WASMLET_STORE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir.join("oci"))
}

fn open_store(cache_dir: &Path) -> Result<ContentStore, String> {
    ContentStore::open(&store_dir(cache_dir)).map_err(|e| e.to_string())
}

fn executor() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// A progress bar on stderr for transfers over 1 MiB, when stderr is a terminal.
fn progress_bar(label: &str) -> impl Fn(u64, u64) + Sync {
    let bar = std::sync::OnceLock::<indicatif::ProgressBar>::new();
    let label = label.to_owned();
    let interactive = std::io::stderr().is_terminal();
    move |done: u64, total: u64| {
        if !interactive || total < (1 << 20) {
            return;
        }
        let bar = bar.get_or_init(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.clone());
            bar
        });
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
        }
    }
}

pub fn push(args: PushArgs) -> i32 {
    let wasm = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!("wasmlet: reading {}: {err}", args.file.display());
            return LOAD_ERROR_STATUS;
        }
    };
    let registry = Registry::new(args.registry.options());
    let result = executor().and_then(|rt| {
        let options = PushOptions {
            format: if args.format == "runwasi" { PushFormat::Runwasi } else { PushFormat::Cncf },
            legacy_unpack: args.legacy_unpack,
        };
        rt.block_on(registry.push(&wasm, &args.reference, options, &progress_bar("pushing"))).map_err(|e| e.to_string())
    });
    match result {
        Ok(digest) => {
            println!("{} {digest}", args.reference);
            0
        }
        Err(err) => {
            eprintln!("wasmlet: push: {err}");
            LOAD_ERROR_STATUS
        }
    }
}

pub fn pull(cache_dir: &Path, args: PullArgs) -> i32 {
    match pull_into_store(cache_dir, &args.reference, &args.registry) {
        Ok((reference, image)) => {
            println!("{reference} {} {}", image.manifest_digest, image.wasm_digest.unwrap_or_default());
            0
        }
        Err(err) => {
            eprintln!("wasmlet: pull: {err}");
            LOAD_ERROR_STATUS
        }
    }
}

fn pull_into_store(
    cache_dir: &Path,
    reference: &str,
    options: &RegistryArgs,
) -> Result<(String, wasmlet_oci::StoredImage), String> {
    let store = open_store(cache_dir)?;
    let registry = Registry::new(options.options());
    let pulled =
        executor()?.block_on(registry.pull(reference, &store, &progress_bar("pulling"))).map_err(|e| e.to_string())?;
    tracing::info!(reference = %pulled.reference, reused = pulled.reused, "pulled");
    Ok((pulled.reference, pulled.image))
}

pub fn images(cache_dir: &Path) -> i32 {
    let listed = open_store(cache_dir).and_then(|s| s.list().map_err(|e| e.to_string()));
    match listed {
        Ok(images) => {
            println!("{:<50} {:<10} {:>10}  DIGEST", "REFERENCE", "OS", "SIZE");
            for (reference, image) in images {
                println!(
                    "{reference:<50} {:<10} {:>10}  {}",
                    image.os.as_deref().unwrap_or("-"),
                    image.size,
                    image.manifest_digest
                );
            }
            0
        }
        Err(err) => {
            eprintln!("wasmlet: images: {err}");
            LOAD_ERROR_STATUS
        }
    }
}

pub fn rmi(cache_dir: &Path, args: RmiArgs) -> i32 {
    let store = match open_store(cache_dir) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("wasmlet: rmi: {err}");
            return LOAD_ERROR_STATUS;
        }
    };
    let mut status = 0;
    for reference in &args.references {
        let name = Registry::parse_reference(reference).map(|r| r.whole()).unwrap_or_else(|_| reference.clone());
        match store.remove(&name) {
            Ok(true) => println!("removed {name}"),
            Ok(false) => {
                eprintln!("wasmlet: rmi: {name}: no such image in the local store");
                status = LOAD_ERROR_STATUS;
            }
            Err(err) => {
                eprintln!("wasmlet: rmi: {name}: {err}");
                status = LOAD_ERROR_STATUS;
            }
        }
    }
    status
}

/// `run`/`serve`'s argument: an existing file, else an image reference
/// (pulled when not in the local store). Wasm from the store is keyed in the
/// compile cache by its verified content digest.
pub fn load_program(
    runtime: &Runtime,
    target: &Path,
    allow_precompiled: bool,
    registry: &RegistryArgs,
) -> Result<Program, String> {
    let text = target.to_string_lossy();
    if target.exists() || !looks_like_reference(&text) {
        return runtime.load_file(target, allow_precompiled).map(|(program, _)| program).map_err(|e| e.to_string());
    }
    let cache_dir = runtime.cache().root();
    let store = open_store(cache_dir)?;
    let name = Registry::parse_reference(&text).map_err(|e| e.to_string())?.whole();
    let image = match store.lookup(&name).map_err(|e| e.to_string())? {
        Some(image) => image,
        None => pull_into_store(cache_dir, &text, registry)?.1,
    };
    let digest_text = image.wasm_digest.ok_or_else(|| format!("{name}: the stored image has no Wasm"))?;
    let bytes = store.read_blob(&digest_text).map_err(|e| format!("{name}: {e} (pull it again)"))?;
    let digest: Digest = digest_text.parse().map_err(|e| format!("{name}: {e}"))?;
    runtime.load_verified(&bytes, digest, &name).map(|(program, _)| program).map_err(|e| e.to_string())
}

/// `ghcr.io/x/y:1`, `localhost:5000/a`, `name@sha256:…`: not a path to a Wasm file.
fn looks_like_reference(text: &str) -> bool {
    let wasm_file = [".wasm", ".wat", ".cwasm"].iter().any(|ext| text.ends_with(ext));
    !wasm_file && !text.starts_with('.') && !text.starts_with('/') && (text.contains(':') || text.contains('/'))
}

/// containerd stream processor for Wasm layers: reads the layer on stdin and
/// writes an empty tar, so containerd before 1.6.25/1.7.7 can "unpack" images
/// whose layers are raw Wasm (their rootfs stays empty; the shim reads the
/// Wasm from the content store). See deploy/containerd-1.6-wasm-layers.toml.
pub fn unpack_wasm_layer() -> i32 {
    use std::io::Write as _;
    let drained = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    let mut stdout = std::io::stdout().lock();
    match drained.and_then(|_| stdout.write_all(&[0u8; 1024])).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("wasmlet: unpack-wasm-layer: {err}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_reference;

    #[test]
    fn tells_references_from_files() {
        assert!(looks_like_reference("ghcr.io/wasmlet/hello:1.0"));
        assert!(looks_like_reference("localhost:5000/hello"));
        assert!(!looks_like_reference("hello.wasm"));
        assert!(!looks_like_reference("./dir/hello"));
        assert!(!looks_like_reference("/abs/hello"));
        assert!(!looks_like_reference("hello"));
    }
}
