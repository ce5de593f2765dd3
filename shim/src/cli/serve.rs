//! `wasmlet serve`: serve an HTTP function (`wasi:http/proxy` 0.2 or
//! `wasi:http/service` 0.3), one instance per request unless a 0.3
//! function's instances are allowed to take more.

use super::run::GrantArgs;
use super::LOAD_ERROR_STATUS;
use crate::units::{parse_duration, parse_size};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmlet_runtime::{HttpServer, InstanceReuse, KillSwitch, Limits, Runtime, ServeConfig};

/// Serve an HTTP function (a component exporting wasi:http 0.2's `incoming-handler` or 0.3's `handler`)
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    addr: SocketAddr,
    #[command(flatten)]
    grants: GrantArgs,
    /// Cap on each request's linear memory (e.g. 64Mi)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Time a request may take, to the end of its response body
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    /// Requests running at once; more wait in the queue
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().max_in_flight)]
    max_in_flight: usize,
    /// Requests waiting for a slot; beyond this they get 503
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().max_queued)]
    max_queued: usize,
    /// Largest request body accepted (413 beyond)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "64Mi")]
    max_body: u64,
    /// Requests one instance of a wasi:http 0.3 function handles in its
    /// life (1: a fresh instance per request; `wasmtime serve` uses 128).
    /// Requests of a reused instance share its memory
    #[arg(long, value_name = "N", default_value_t = 1)]
    instance_requests: usize,
    /// Requests one wasi:http 0.3 instance handles at once (`wasmtime serve`: 16)
    #[arg(long, value_name = "N", default_value_t = 1)]
    instance_concurrency: usize,
    #[command(flatten)]
    registry: super::images::RegistryArgs,
    /// Threads serving requests. 1 (the default) keeps each request on the
    /// thread that accepted it: no cross-thread wake-ups, which cost more
    /// than the request itself on small VMs; more threads scale a CPU-bound function
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// The component (.wasm or .wat), or an image reference
    file: PathBuf,
}

pub fn serve(runtime: Arc<Runtime>, args: ServeArgs) -> i32 {
    let caps = match args.grants.capabilities(vec![super::run::argv0(&args.file)]) {
        Ok(caps) => caps,
        Err(msg) => {
            eprintln!("wasmlet: {msg}");
            return 2;
        }
    };
    let reuse = match InstanceReuse::checked(args.instance_requests, args.instance_concurrency) {
        Ok(reuse) => reuse,
        Err(err) => {
            eprintln!(
                "wasmlet: --instance-requests {} --instance-concurrency {}: {err}",
                args.instance_requests, args.instance_concurrency
            );
            return 2;
        }
    };
    let program = match super::images::load_program(&runtime, &args.file, false, &args.registry) {
        Ok(program) => program,
        Err(err) => {
            eprintln!("wasmlet: {err}");
            return LOAD_ERROR_STATUS;
        }
    };
    let config = ServeConfig {
        max_in_flight: args.max_in_flight,
        max_queued: args.max_queued,
        request_timeout: args.timeout,
        max_body_bytes: args.max_body,
        reuse,
    };
    let limits = Limits { memory: args.memory, ..Default::default() };
    let server = match HttpServer::new(runtime, &program, caps, limits, config) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("wasmlet: {}: {err}", args.file.display());
            return LOAD_ERROR_STATUS;
        }
    };
    // Bound now (a taken port fails at once), listening only once an
    // instance could be made (HttpServer::serve_blocking).
    let socket = match crate::shim::netns::bound_socket(args.addr) {
        Ok(socket) => std::net::TcpListener::from(socket),
        Err(err) => {
            eprintln!("wasmlet: cannot listen on {}: {err}", args.addr);
            return LOAD_ERROR_STATUS;
        }
    };
    let stop = KillSwitch::new();
    let outcome = server.serve_blocking(socket, args.threads, &stop, |local| {
        eprintln!("wasmlet: serving http://{local}/");
        crate::signals::forward_to(stop.clone());
    });
    match outcome {
        Ok(outcome) => outcome.code(),
        Err(err) => {
            eprintln!("wasmlet: cannot serve on {}: {err}", args.addr);
            LOAD_ERROR_STATUS
        }
    }
}
