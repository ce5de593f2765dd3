//! `wasmlet run`: run a Wasm program with explicit capabilities.

use super::LOAD_ERROR_STATUS;
use crate::units::{parse_duration, parse_size};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wasmlet_runtime::{Capabilities, Entry, KillSwitch, Limits, Preopen, RunRequest, Runtime, StdinSource, StdoutSink};

/// Run a module or command component; exit with the guest's status.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    grants: GrantArgs,
    /// Cap on linear memory, summed over the guest's memories (e.g. 64Mi)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Wall-clock limit (e.g. 5s, 250ms); on expiry the guest is stopped with status 137
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Call this export (no parameters) instead of `_start`; results are printed
    #[arg(long, value_name = "EXPORT")]
    invoke: Option<String>,
    /// Accept a precompiled .cwasm (only load artifacts you produced)
    #[arg(long)]
    allow_precompiled: bool,
    #[command(flatten)]
    registry: super::images::RegistryArgs,
    /// The .wasm, .wat or (with --allow-precompiled) .cwasm to run, or an
    /// image reference (pulled into the local store if missing)
    file: PathBuf,
    /// Arguments passed to the guest after its name
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(runtime: &std::sync::Arc<Runtime>, args: RunArgs) -> i32 {
    let argv = std::iter::once(argv0(&args.file)).chain(args.args.iter().cloned()).collect();
    let caps = match args.grants.capabilities(argv) {
        Ok(caps) => caps,
        Err(msg) => {
            eprintln!("wasmlet: {msg}");
            return 2;
        }
    };
    let program = match super::images::load_program(runtime, &args.file, args.allow_precompiled, &args.registry) {
        Ok(program) => program,
        Err(err) => {
            eprintln!("wasmlet: {err}");
            return LOAD_ERROR_STATUS;
        }
    };
    let entry = args.invoke.clone().map_or(Entry::Default, Entry::Export);
    let limits = Limits { memory: args.memory, deadline: args.timeout, ..Default::default() };
    let executor = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("wasmlet: cannot start the async runtime: {err}");
            return LOAD_ERROR_STATUS;
        }
    };
    let kill = KillSwitch::new();
    let outcome = executor.block_on(async {
        crate::signals::forward_to(kill.clone());
        runtime.run_on_thread(RunRequest { program, entry, caps, limits, kill }).await
    });
    match outcome {
        Ok(outcome) => {
            for value in &outcome.results {
                println!("{value}");
            }
            match &outcome.status {
                wasmlet_runtime::ExitStatus::Exited(_) => {}
                status => eprintln!("wasmlet: {}: {status}", args.file.display()),
            }
            outcome.code()
        }
        Err(err) => {
            eprintln!("wasmlet: {}: {err}", args.file.display());
            LOAD_ERROR_STATUS
        }
    }
}

/// What a guest is granted: environment, directories, working directory, network.
#[derive(Args, Debug)]
pub struct GrantArgs {
    /// Set NAME=VAL in the guest's environment (NAME alone copies the host's value)
    #[arg(long = "env", value_name = "NAME[=VAL]")]
    env: Vec<String>,
    /// Preopen HOST read-write, as GUEST (default: the same path)
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<String>,
    /// Preopen HOST read-only, as GUEST (default: the same path)
    #[arg(long = "ro-dir", value_name = "HOST[::GUEST]")]
    ro_dirs: Vec<String>,
    /// Guest working directory (a guest path inside a preopen)
    #[arg(long, value_name = "GUEST_PATH")]
    cwd: Option<String>,
    /// Grant network access (TCP, UDP, name lookup, outgoing HTTP); denied by default
    #[arg(long)]
    net: bool,
}

impl GrantArgs {
    /// The capabilities these flags grant, with `args` as argv and the host's stdio.
    pub fn capabilities(&self, args: Vec<String>) -> Result<Capabilities, String> {
        let mut preopens = Vec::new();
        for (spec, read_only) in self.dirs.iter().map(|d| (d, false)).chain(self.ro_dirs.iter().map(|d| (d, true))) {
            let (host, guest) = match spec.split_once("::") {
                Some((host, guest)) => (host, guest),
                None => (spec.as_str(), spec.as_str()),
            };
            if host.is_empty() || guest.is_empty() {
                return Err(format!("invalid directory `{spec}`: expected HOST[::GUEST]"));
            }
            preopens.push(Preopen { host: host.into(), guest: guest.into(), read_only });
        }
        let mut env = Vec::new();
        for spec in &self.env {
            match spec.split_once('=') {
                Some((name, value)) if !name.is_empty() => env.push((name.to_owned(), value.to_owned())),
                Some(_) => return Err(format!("invalid --env `{spec}`: empty name")),
                None => {
                    if let Ok(value) = std::env::var(spec) {
                        env.push((spec.clone(), value));
                    }
                }
            }
        }
        Ok(Capabilities {
            args,
            env,
            cwd: self.cwd.clone(),
            preopens,
            stdin: StdinSource::Inherit,
            stdout: StdoutSink::Inherit,
            stderr: StdoutSink::Inherit,
            network: self.net,
        })
    }
}

/// The guest's `argv[0]`: a file's name as wasmtime passes it (not the host
/// path, which says where the host keeps it), or a registry reference as given.
pub(super) fn argv0(file: &std::path::Path) -> String {
    match file.file_name().filter(|_| file.exists()) {
        Some(name) => name.to_string_lossy().into_owned(),
        None => file.to_string_lossy().into_owned(),
    }
}
