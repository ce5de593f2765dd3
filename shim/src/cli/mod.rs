//! The `wasmlet` command-line tool: the runtime without containerd.
//!
//! Exit statuses: the guest's own status for `run` (see
//! `wasmlet_runtime::ExitStatus`), 2 for usage errors, 1 when the Wasm
//! cannot be loaded or started.

mod compile;
mod images;
mod install;
mod precompile;
mod run;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use wasmlet_runtime::{Runtime, RuntimeConfig};

/// Status for a program that could not be loaded or started.
pub const LOAD_ERROR_STATUS: i32 = 1;

#[derive(Parser, Debug)]
#[command(name = "wasmlet", version, about = "Run WebAssembly the way wasmlet's containerd shim does")]
struct Cli {
    /// Compile cache folder [default: /var/lib/wasmlet/cache for root, else $XDG_CACHE_HOME/wasmlet]
    #[arg(long, global = true, env = "WASMLET_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Run(run::RunArgs),
    Compile(compile::CompileArgs),
    Serve(serve::ServeArgs),
    Precompile(precompile::PrecompileArgs),
    Push(images::PushArgs),
    Pull(images::PullArgs),
    /// List the images in the local store
    Images,
    Rmi(images::RmiArgs),
    NodeInstall(install::InstallArgs),
    /// containerd stream processor: Wasm layer on stdin, empty tar on stdout
    #[command(hide = true)]
    UnpackWasmLayer,
}

/// Parse the command line, run the command, return the process exit status.
pub fn main() -> i32 {
    // A compilation `precompile` runs within its budget (wasmlet_runtime::compile).
    let args: Vec<_> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == wasmlet_runtime::compile::WORKER_ACTION) {
        return wasmlet_runtime::compile::worker_main(&args);
    }
    // rustls-platform-verifier logs a rejected certificate as an ERROR of its
    // own; the command's error already names it.
    crate::logging::init_stderr("warn,rustls_platform_verifier=off");
    // One TLS crypto provider per process (wasmtime-wasi-http and the
    // registry client would otherwise disagree).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let cache_dir = cli.cache_dir.clone().unwrap_or_else(RuntimeConfig::default_cache_dir);
    // Commands that need no engine.
    let command = match cli.command {
        Command::Push(args) => return images::push(args),
        Command::Pull(args) => return images::pull(&cache_dir, args),
        Command::Images => return images::images(&cache_dir),
        Command::Rmi(args) => return images::rmi(&cache_dir, args),
        Command::UnpackWasmLayer => return images::unpack_wasm_layer(),
        Command::NodeInstall(args) => return install::install(args),
        other => other,
    };
    let config = RuntimeConfig { cache_dir, ..RuntimeConfig::default() };
    let runtime = match Runtime::new(config) {
        Ok(runtime) => std::sync::Arc::new(runtime),
        Err(err) => {
            eprintln!("wasmlet: {err:#}");
            return LOAD_ERROR_STATUS;
        }
    };
    match command {
        Command::Run(args) => run::run(&runtime, args),
        Command::Compile(args) => compile::compile(&runtime, args),
        Command::Serve(args) => serve::serve(runtime, args),
        Command::Precompile(args) => precompile::precompile(runtime, args),
        Command::Push(_)
        | Command::Pull(_)
        | Command::Images
        | Command::Rmi(_)
        | Command::UnpackWasmLayer
        | Command::NodeInstall(_) => {
            unreachable!("handled above")
        }
    }
}
