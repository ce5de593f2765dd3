//! `wasmlet compile FILE`: fill the compile cache.

use super::LOAD_ERROR_STATUS;
use clap::Args;
use std::path::PathBuf;
use wasmlet_runtime::{CacheOutcome, Runtime};

/// Compile FILE into the shared cache; print `DIGEST PATH compiled|cached`.
#[derive(Args, Debug)]
pub struct CompileArgs {
    /// A .wasm module or component, or .wat text
    file: PathBuf,
}

pub fn compile(runtime: &Runtime, args: CompileArgs) -> i32 {
    match runtime.load_file(&args.file, false) {
        Ok((program, outcome)) => {
            let path = match runtime.entry_path(&program) {
                Ok(path) => path,
                Err(err) => {
                    eprintln!("wasmlet: {err}");
                    return LOAD_ERROR_STATUS;
                }
            };
            let status = match outcome {
                CacheOutcome::Compiled => "compiled",
                // Compiling for the cache is this command's whole job.
                CacheOutcome::Uncached => {
                    eprintln!(
                        "wasmlet: the compile cache {} cannot be written (see the warning): nothing was cached",
                        path.parent().unwrap_or(&path).display()
                    );
                    return 1;
                }
                _ => "cached",
            };
            println!("{} {} {status}", program.digest(), path.display());
            0
        }
        Err(err) => {
            eprintln!("wasmlet: {err}");
            LOAD_ERROR_STATUS
        }
    }
}
