//! `containerd-shim-nullbench-v1`: a shim that runs nothing, built on the
//! same containerd-shim crate and ttrpc server as wasmlet's. Its task
//! "exits" with status 0 as soon as it starts. benches/containerd.rs runs
//! it beside runc and wasmlet to show the floor of `ctr run --rm`: what
//! containerd, ctr and three shim process lifetimes cost with no work at all.
//! Not installed anywhere; benchmark use only.

use async_trait::async_trait;
use containerd_shim::protos::api;
use containerd_shim::protos::protobuf::Message as _;
use containerd_shim::protos::shim_async::{create_task, Task};
use containerd_shim::protos::ttrpc::r#async::transport::Listener;
use containerd_shim::protos::ttrpc::r#async::{Server, TtrpcContext};
use containerd_shim::{ExitSignal, StartOpts};
use std::io::Write as _;
use std::sync::Arc;

type RpcResult<T> = containerd_shim::protos::ttrpc::Result<T>;

struct NullTask {
    exit: Arc<ExitSignal>,
}

fn now() -> containerd_shim::protos::protobuf::MessageField<
    containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp,
> {
    containerd_shim::util::timestamp().ok().into()
}

#[async_trait]
impl Task for NullTask {
    async fn create(&self, _ctx: &TtrpcContext, _req: api::CreateTaskRequest) -> RpcResult<api::CreateTaskResponse> {
        Ok(api::CreateTaskResponse { pid: std::process::id(), ..Default::default() })
    }

    async fn start(&self, _ctx: &TtrpcContext, _req: api::StartRequest) -> RpcResult<api::StartResponse> {
        Ok(api::StartResponse { pid: std::process::id(), ..Default::default() })
    }

    async fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> RpcResult<api::StateResponse> {
        Ok(api::StateResponse {
            id: req.id,
            pid: std::process::id(),
            status: api::Status::STOPPED.into(),
            exited_at: now(),
            ..Default::default()
        })
    }

    async fn wait(&self, _ctx: &TtrpcContext, _req: api::WaitRequest) -> RpcResult<api::WaitResponse> {
        Ok(api::WaitResponse { exit_status: 0, exited_at: now(), ..Default::default() })
    }

    async fn kill(&self, _ctx: &TtrpcContext, _req: api::KillRequest) -> RpcResult<api::Empty> {
        Ok(api::Empty::new())
    }

    async fn delete(&self, _ctx: &TtrpcContext, _req: api::DeleteRequest) -> RpcResult<api::DeleteResponse> {
        Ok(api::DeleteResponse { pid: std::process::id(), exit_status: 0, exited_at: now(), ..Default::default() })
    }

    async fn connect(&self, _ctx: &TtrpcContext, _req: api::ConnectRequest) -> RpcResult<api::ConnectResponse> {
        Ok(api::ConnectResponse { shim_pid: std::process::id(), task_pid: std::process::id(), ..Default::default() })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> RpcResult<api::Empty> {
        self.exit.signal();
        Ok(api::Empty::new())
    }
}

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    let Ok(flags) = containerd_shim::parse(&args[1..]) else { std::process::exit(2) };
    let executor = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("executor");
    match flags.action.as_str() {
        "start" => {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let opts = StartOpts {
                id: flags.id.clone(),
                publish_binary: flags.publish_binary.clone(),
                address: flags.address.clone(),
                ttrpc_address: std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
                namespace: flags.namespace.clone(),
                ..Default::default()
            };
            let address = executor.block_on(containerd_shim::spawn(opts, &flags.id, Vec::new())).expect("spawn");
            let _ = std::fs::write("address", &address);
            print!("{address}");
        }
        "delete" => {
            let response = api::DeleteResponse { exited_at: now(), ..Default::default() };
            let _ = std::io::stdout().write_all(&response.write_to_bytes().unwrap_or_default());
        }
        _ => executor.block_on(serve(&flags.socket)),
    }
}

async fn serve(socket: &str) {
    let exit = Arc::new(ExitSignal::default());
    let task: Arc<dyn Task + Send + Sync> = Arc::new(NullTask { exit: exit.clone() });
    let mut services = create_task(task.clone());
    if let Some(v2) = create_task(task).remove("containerd.task.v3.Task") {
        services.insert("containerd.task.v2.Task".to_owned(), v2);
    }
    let path = socket.strip_prefix("unix://").unwrap_or(socket);
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let mut server =
        Server::new().add_listener(Listener::try_from(listener).expect("listener")).register_service(services);
    server.start().await.expect("serve");
    // `start` reads our stdout until it closes.
    // SAFETY: dup2 on the process's own standard descriptors.
    unsafe {
        libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
    }
    exit.wait().await;
    let _ = server.shutdown().await;
    let _ = std::fs::remove_file(path);
}
