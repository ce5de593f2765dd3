//! The `wasmlet` command-line tool: the runtime without containerd.
//!
//! Exit statuses: the guest's own status for `run` (see
//! `wasmlet_runtime::ExitStatus`), 2 for usage errors, 1 when the Wasm
//! cannot be loaded or started.

mod compile;
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
}

/// Parse the command line, run the command, return the process exit status.
pub fn main() -> i32 {
    crate::logging::init_stderr("warn");
    let cli = Cli::parse();
    let mut config = RuntimeConfig::default();
    if let Some(dir) = cli.cache_dir {
        config.cache_dir = dir;
    }
    let runtime = match Runtime::new(config) {
        Ok(runtime) => std::sync::Arc::new(runtime),
        Err(err) => {
            eprintln!("wasmlet: {err:#}");
            return LOAD_ERROR_STATUS;
        }
    };
    match cli.command {
        Command::Run(args) => run::run(&runtime, args),
        Command::Compile(args) => compile::compile(&runtime, args),
        Command::Serve(args) => serve::serve(runtime, args),
    }
}
