//! Translating an OCI bundle's `config.json` into what the guest may use.
//!
//! - `process.args[0]` names the Wasm inside the rootfs (`/app.wasm`);
//!   `path#export` invokes a named export instead of `_start`.
//! - `process.args`, `process.env`, `process.cwd` pass through. As runc
//!   does, a cwd missing from the container's filesystem is created (owned
//!   by root, 0755) inside the rootfs or the volume it lies in; one that is
//!   relative or cannot be a directory fails Create.
//! - The rootfs is preopened as `/` (read-only when `root.readonly`), and each
//!   bind mount of a directory as its destination (read-only with `ro`).
//!   Nothing else is granted: no proc, sys, dev, tmpfs or file bind mounts.
//!   A bind mount whose source does not exist fails Create, as under runc
//!   (writes must never land in the throwaway rootfs instead).
//! - Network: only with the annotation `wasmlet.io/network=allow`, or when
//!   the spec has no network namespace (a host-network pod).
//! - HTTP functions (`wasi:http/proxy` components) listen on `$PORT` from the
//!   container env (default 8080), on all addresses of the pod's network
//!   namespace unless `wasmlet.io/http-listen` names an address (`127.0.0.1`
//!   or `127.0.0.1:9000`). `wasmlet.io/http-timeout` (e.g. `10s`, default
//!   30s), `wasmlet.io/http-max-in-flight` and `wasmlet.io/http-max-body`
//!   (e.g. `8Mi`) bound each request.
//! - Compilation of Wasm not yet in the node's cache runs in a worker
//!   process within a budget: `wasmlet.io/compile-timeout` (default 110s,
//!   under kubelet's 2-minute request timeout) and `wasmlet.io/compile-memory`
//!   (default 2Gi); over it, Create fails naming the budget.
//! - Memory: a `linux.resources.memory.limit` caps the guest's linear
//!   memory at the limit minus [`SHIM_MEMORY_RESERVE`], so the guest hits
//!   its limit (a clean OOM exit) before the kernel would kill the shim.

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};
use wasmlet_runtime::{Capabilities, Entry, Limits, Preopen};

/// Annotation that grants the guest network access.
pub const NETWORK_ANNOTATION: &str = "wasmlet.io/network";
/// Annotations configuring an HTTP function (see the module docs).
pub const HTTP_LISTEN_ANNOTATION: &str = "wasmlet.io/http-listen";
pub const HTTP_TIMEOUT_ANNOTATION: &str = "wasmlet.io/http-timeout";
pub const HTTP_MAX_IN_FLIGHT_ANNOTATION: &str = "wasmlet.io/http-max-in-flight";
pub const HTTP_MAX_BODY_ANNOTATION: &str = "wasmlet.io/http-max-body";
/// Requests one instance of a wasi:http 0.3 function takes in its life
/// (default 1: a fresh instance per request).
pub const HTTP_INSTANCE_REQUESTS_ANNOTATION: &str = "wasmlet.io/http-instance-requests";
/// Requests one instance of a wasi:http 0.3 function takes at once (default 1).
pub const HTTP_INSTANCE_CONCURRENCY_ANNOTATION: &str = "wasmlet.io/http-instance-concurrency";
pub const COMPILE_TIMEOUT_ANNOTATION: &str = "wasmlet.io/compile-timeout";
pub const COMPILE_MEMORY_ANNOTATION: &str = "wasmlet.io/compile-memory";
/// Knative's contract: the port comes from `$PORT`, else 8080.
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// Memory of the container's cgroup kept for the shim itself.
pub const SHIM_MEMORY_RESERVE: u64 = 8 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("the OCI spec has no process args: argv[0] must name the .wasm in the image")]
    NoArgs,
    #[error("argv[0] `{0}`: no such file in the container's rootfs")]
    NotFound(String),
    #[error("invalid environment entry `{0}`: expected NAME=VALUE")]
    BadEnv(String),
    #[error("the OCI spec has no root")]
    NoRoot,
    #[error("annotation {name}=`{value}`: {why}")]
    BadAnnotation { name: &'static str, value: String, why: String },
    #[error("PORT=`{0}` is not a TCP port number")]
    BadPort(String),
    #[error("error mounting `{from}` to rootfs at `{destination}`: the source does not exist")]
    MountSource { from: String, destination: String },
    #[error("process.cwd `{cwd}`: {why}")]
    Cwd { cwd: String, why: String },
}

/// Where and how an HTTP function serves.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub listen: std::net::SocketAddr,
    pub network: Network,
    pub serve: wasmlet_runtime::ServeConfig,
}

/// What the bundle says to run, and with which capabilities.
#[derive(Debug)]
pub struct WasmTask {
    /// Host path of the Wasm file; `None` when argv\[0\] is not a file in
    /// the rootfs (the image may carry its Wasm as a layer instead).
    pub wasm: Option<PathBuf>,
    /// argv\[0\] without a `#export` suffix.
    pub wasm_name: String,
    pub entry: Entry,
    /// Capabilities without stdio (the shim wires containerd's FIFOs).
    pub caps: Capabilities,
    pub limits: Limits,
    /// Used only if the Wasm turns out to be an HTTP function.
    pub http: HttpSettings,
}

/// A CRI pod sandbox container (`io.kubernetes.cri.container-type: sandbox`):
/// it runs no Wasm; a holder process owns the pod's namespaces (`sandbox`).
pub fn is_pod_sandbox(spec: &Spec) -> bool {
    spec.annotations().as_ref().and_then(|a| a.get("io.kubernetes.cri.container-type")).is_some_and(|t| t == "sandbox")
}

/// The network namespace a spec gives its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// No network namespace in the spec: the node's (host-network pods).
    Host,
    /// An existing namespace, such as the pod's made by CNI.
    Path(PathBuf),
    /// A new, empty one (`ctr run` without `--net-host`).
    New,
}

pub fn network(spec: &Spec) -> Network {
    let namespace = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.namespaces().as_ref())
        .and_then(|namespaces| namespaces.iter().find(|ns| ns.typ() == LinuxNamespaceType::Network));
    match namespace {
        None => Network::Host,
        Some(ns) => ns.path().clone().map_or(Network::New, Network::Path),
    }
}

/// Whether the guest may open sockets: with the annotation, or for a
/// host-network container.
pub fn network_granted(spec: &Spec) -> bool {
    let annotated = spec.annotations().as_ref().and_then(|a| a.get(NETWORK_ANNOTATION)).is_some_and(|v| v == "allow");
    annotated || network(spec) == Network::Host
}

/// Translate `spec` for a bundle whose rootfs is mounted at `rootfs`.
pub fn wasm_task(spec: &Spec, rootfs: &Path) -> Result<WasmTask, SpecError> {
    let process = spec.process().as_ref();
    let args: Vec<String> = process.and_then(|p| p.args().clone()).unwrap_or_default();
    let argv0 = args.first().ok_or(SpecError::NoArgs)?;
    let (path, entry) = match argv0.split_once('#') {
        Some((path, export)) if !export.is_empty() => (path, Entry::Export(export.to_owned())),
        _ => (argv0.as_str(), Entry::Default),
    };
    // As the container would see it: symlinks and `..` stay in the rootfs.
    let wasm = super::rootfs::resolve(rootfs, &Path::new("/").join(path)).ok().filter(|p| p.is_file());
    let wasm_name = path.to_owned();

    let mut env = Vec::new();
    for entry in process.and_then(|p| p.env().clone()).unwrap_or_default() {
        match entry.split_once('=') {
            Some((name, value)) if !name.is_empty() => env.push((name.to_owned(), value.to_owned())),
            _ => return Err(SpecError::BadEnv(entry)),
        }
    }
    let cwd = process.map(|p| p.cwd().to_string_lossy().into_owned()).filter(|c| !c.is_empty());

    let root = spec.root().as_ref().ok_or(SpecError::NoRoot)?;
    let mut preopens =
        vec![Preopen { host: rootfs.to_owned(), guest: "/".into(), read_only: root.readonly().unwrap_or(false) }];
    for mount in spec.mounts().iter().flatten() {
        let options = mount.options().clone().unwrap_or_default();
        let is_bind = mount.typ().as_deref() == Some("bind") || options.iter().any(|o| o == "bind" || o == "rbind");
        let Some(source) = mount.source().as_ref().filter(|_| is_bind) else {
            continue;
        };
        if std::fs::symlink_metadata(source).is_err() {
            return Err(SpecError::MountSource {
                from: source.display().to_string(),
                destination: mount.destination().display().to_string(),
            });
        }
        if !source.is_dir() {
            // WASI preopens are directories; file mounts (/etc/hosts, ...) are not granted.
            tracing::debug!(source = %source.display(), "skipping non-directory mount");
            continue;
        }
        preopens.push(Preopen {
            host: source.clone(),
            guest: mount.destination().to_string_lossy().into_owned(),
            read_only: options.iter().any(|o| o == "ro"),
        });
    }

    if let Some(cwd) = &cwd {
        ensure_cwd(&preopens, cwd)?;
    }

    let memory = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|limit| *limit > 0)
        .map(|limit| guest_memory_limit(limit as u64));

    let http = http_settings(spec, &env)?;

    Ok(WasmTask {
        http,
        wasm,
        wasm_name,
        entry,
        caps: Capabilities { args, env, cwd, preopens, network: network_granted(spec), ..Default::default() },
        limits: Limits {
            memory,
            // Shared with the running guest so Update can change it.
            memory_cap: Some(wasmlet_runtime::MemoryCap::new(memory)),
            deadline: None,
        },
    })
}

/// The cwd as the container sees it, inside the preopen that holds it
/// (the deepest mount), created when missing as runc's init does.
fn ensure_cwd(preopens: &[Preopen], cwd: &str) -> Result<(), SpecError> {
    let fail = |why: String| SpecError::Cwd { cwd: cwd.to_owned(), why };
    let path = Path::new(cwd);
    if !path.is_absolute() {
        return Err(fail("must be an absolute path".into()));
    }
    let Some(preopen) = preopens.iter().filter(|p| path.starts_with(&p.guest)).max_by_key(|p| p.guest.len()) else {
        return Err(fail("is outside the container's filesystem".into()));
    };
    let inside = path.strip_prefix(&preopen.guest).unwrap_or(path);
    let host = super::rootfs::resolve(&preopen.host, &Path::new("/").join(inside)).map_err(|e| fail(e.to_string()))?;
    if host.is_dir() {
        return Ok(());
    }
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&host)
        .map_err(|e| fail(format!("does not exist and cannot be created: {e}")))?;
    tracing::debug!(%cwd, host = %host.display(), "created the missing cwd, as runc does");
    Ok(())
}

fn bad_annotation(name: &'static str, value: &str, why: String) -> SpecError {
    SpecError::BadAnnotation { name, value: value.to_owned(), why }
}

/// The budget for compiling this container's Wasm (module docs).
pub fn compile_budget(spec: &Spec) -> Result<wasmlet_runtime::CompileBudget, SpecError> {
    let mut budget = wasmlet_runtime::CompileBudget::default();
    if let Some(value) = annotation(spec, COMPILE_TIMEOUT_ANNOTATION) {
        budget.time = crate::units::parse_duration(value).ok().filter(|t| !t.is_zero()).ok_or_else(|| {
            bad_annotation(COMPILE_TIMEOUT_ANNOTATION, value, "expected a positive duration like 60s".into())
        })?;
    }
    if let Some(value) = annotation(spec, COMPILE_MEMORY_ANNOTATION) {
        budget.memory = crate::units::parse_size(value).ok().filter(|m| *m >= 16 << 20).ok_or_else(|| {
            bad_annotation(COMPILE_MEMORY_ANNOTATION, value, "expected a size of at least 16Mi, like 512Mi".into())
        })?;
    }
    Ok(budget)
}

fn annotation<'a>(spec: &'a Spec, name: &str) -> Option<&'a str> {
    spec.annotations().as_ref()?.get(name).map(String::as_str)
}

fn http_settings(spec: &Spec, env: &[(String, String)]) -> Result<HttpSettings, SpecError> {
    let port = match env.iter().rev().find(|(name, _)| name == "PORT") {
        Some((_, value)) => value.parse::<u16>().map_err(|_| SpecError::BadPort(value.clone()))?,
        None => DEFAULT_HTTP_PORT,
    };
    let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], port));
    let listen = match annotation(spec, HTTP_LISTEN_ANNOTATION) {
        None => unspecified,
        Some(value) => match (value.parse::<std::net::SocketAddr>(), value.parse::<std::net::IpAddr>()) {
            (Ok(addr), _) => addr,
            (_, Ok(ip)) => std::net::SocketAddr::new(ip, port),
            _ => {
                return Err(bad_annotation(
                    HTTP_LISTEN_ANNOTATION,
                    value,
                    "expected an IP address, optionally with :PORT".into(),
                ))
            }
        },
    };
    let mut serve = wasmlet_runtime::ServeConfig::default();
    if let Some(value) = annotation(spec, HTTP_TIMEOUT_ANNOTATION) {
        serve.request_timeout =
            crate::units::parse_duration(value).map_err(|e| bad_annotation(HTTP_TIMEOUT_ANNOTATION, value, e))?;
    }
    let positive = |name: &'static str| -> Result<Option<usize>, SpecError> {
        let Some(value) = annotation(spec, name) else { return Ok(None) };
        let n = value.parse::<usize>().ok().filter(|n| *n > 0);
        n.map(Some).ok_or_else(|| bad_annotation(name, value, "expected a positive number".into()))
    };
    if let Some(n) = positive(HTTP_MAX_IN_FLIGHT_ANNOTATION)? {
        serve.max_in_flight = n;
    }
    let requests = positive(HTTP_INSTANCE_REQUESTS_ANNOTATION)?;
    let concurrency = positive(HTTP_INSTANCE_CONCURRENCY_ANNOTATION)?;
    if requests.is_some() || concurrency.is_some() {
        // Zeros are refused above; what is left is concurrency without reuse.
        let (requests, concurrency) = (requests.unwrap_or(1), concurrency.unwrap_or(1));
        serve.reuse = wasmlet_runtime::InstanceReuse::checked(requests, concurrency).map_err(|e| {
            let why = format!("{e}: set {HTTP_INSTANCE_REQUESTS_ANNOTATION} above 1");
            bad_annotation(HTTP_INSTANCE_CONCURRENCY_ANNOTATION, &concurrency.to_string(), why)
        })?;
    }
    if let Some(value) = annotation(spec, HTTP_MAX_BODY_ANNOTATION) {
        serve.max_body_bytes =
            crate::units::parse_size(value).map_err(|e| bad_annotation(HTTP_MAX_BODY_ANNOTATION, value, e))?;
    }
    Ok(HttpSettings { listen, network: network(spec), serve })
}

/// The guest's share of a container memory limit.
pub fn guest_memory_limit(cgroup_limit: u64) -> u64 {
    cgroup_limit.saturating_sub(SHIM_MEMORY_RESERVE).max(cgroup_limit / 2)
}

/// Resolve a guest path inside `rootfs`, refusing anything that leaves it
/// (`..`, or symlinks pointing out).
#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("spec: {e}"))
    }

    fn base(extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["/app.wasm", "x"], "env": ["A=1", "B=two=2"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs", "readonly": false},
            "linux": {"namespaces": [{"type": "network"}, {"type": "mount"}]}
        });
        if let (Some(base), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in extra {
                base.insert(k.clone(), val.clone());
            }
        }
        v
    }

    #[test]
    fn translates_args_env_root_and_bind_mounts() {
        let rootfs = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(rootfs.path().join("app.wasm"), b"\0asm").unwrap();
        let s = spec(base(serde_json::json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": data.path(), "options": ["rbind", "ro"]},
            {"destination": "/etc/hosts", "type": "bind", "source": file.path(), "options": ["rbind"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"}
        ]})));
        let task = wasm_task(&s, rootfs.path()).unwrap();
        assert_eq!(task.wasm, Some(rootfs.path().canonicalize().unwrap().join("app.wasm")));
        assert_eq!(task.entry, Entry::Default);
        assert_eq!(task.caps.args, ["/app.wasm", "x"]);
        assert_eq!(task.caps.env, [("A".into(), "1".into()), ("B".into(), "two=2".into())]);
        assert_eq!(task.caps.preopens.len(), 2);
        assert_eq!(task.caps.preopens[0].guest, "/");
        assert!(!task.caps.preopens[0].read_only);
        assert_eq!((task.caps.preopens[1].guest.as_str(), task.caps.preopens[1].read_only), ("/data", true));
        assert!(!task.caps.network);
        assert_eq!(task.limits.memory, None);
    }

    #[test]
    fn export_selector_network_and_memory() {
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::write(rootfs.path().join("app.wasm"), b"\0asm").unwrap();
        let mut v = base(serde_json::json!({"annotations": {"wasmlet.io/network": "allow"}}));
        v["process"]["args"] = serde_json::json!(["app.wasm#run"]);
        v["linux"]["resources"] = serde_json::json!({"memory": {"limit": 64 << 20}});
        let task = wasm_task(&spec(v), rootfs.path()).unwrap();
        assert_eq!(task.entry, Entry::Export("run".into()));
        assert!(task.caps.network);
        assert_eq!(task.limits.memory, Some((64 << 20) - SHIM_MEMORY_RESERVE));

        let mut host_net = base(serde_json::json!({}));
        host_net["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
        assert!(wasm_task(&spec(host_net), rootfs.path()).unwrap().caps.network);
    }

    #[test]
    fn http_settings_from_port_annotations_and_netns() {
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::write(rootfs.path().join("app.wasm"), b"\0asm").unwrap();
        let task = wasm_task(&spec(base(serde_json::json!({}))), rootfs.path()).unwrap();
        assert_eq!(task.http.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(task.http.network, Network::New);

        let mut v = base(serde_json::json!({"annotations": {
            "wasmlet.io/http-listen": "127.0.0.1",
            "wasmlet.io/http-timeout": "2s",
            "wasmlet.io/http-max-in-flight": "3",
            "wasmlet.io/http-max-body": "1Ki",
            "wasmlet.io/http-instance-requests": "128",
            "wasmlet.io/http-instance-concurrency": "16"
        }}));
        v["process"]["env"] = serde_json::json!(["PORT=9000"]);
        v["linux"]["namespaces"] = serde_json::json!([{"type": "network", "path": "/var/run/netns/pod"}]);
        let http = wasm_task(&spec(v), rootfs.path()).unwrap().http;
        assert_eq!(http.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(http.network, Network::Path("/var/run/netns/pod".into()));
        assert_eq!(http.serve.request_timeout, std::time::Duration::from_secs(2));
        assert_eq!((http.serve.max_in_flight, http.serve.max_body_bytes), (3, 1024));
        assert_eq!(http.serve.reuse, wasmlet_runtime::InstanceReuse::WASMTIME_SERVE);
        let one = wasm_task(&spec(base(serde_json::json!({}))), rootfs.path()).unwrap().http.serve.reuse;
        assert_eq!(one, wasmlet_runtime::InstanceReuse::PER_REQUEST);
        for bad in [
            serde_json::json!({"wasmlet.io/http-instance-concurrency": "0"}),
            serde_json::json!({"wasmlet.io/http-instance-concurrency": "4"}),
        ] {
            let v = base(serde_json::json!({ "annotations": bad }));
            assert!(matches!(wasm_task(&spec(v), rootfs.path()).unwrap_err(), SpecError::BadAnnotation { .. }));
        }

        let mut v = base(serde_json::json!({"annotations": {"wasmlet.io/http-listen": "nowhere"}}));
        v["process"]["env"] = serde_json::json!(["PORT=x"]);
        assert_eq!(wasm_task(&spec(v), rootfs.path()).unwrap_err(), SpecError::BadPort("x".into()));
        let v = base(serde_json::json!({"annotations": {"wasmlet.io/http-listen": "nowhere"}}));
        assert!(matches!(wasm_task(&spec(v), rootfs.path()).unwrap_err(), SpecError::BadAnnotation { .. }));
    }

    #[test]
    fn a_missing_mount_source_fails_and_a_missing_cwd_is_made_as_runc_does() {
        let rootfs = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::write(rootfs.path().join("app.wasm"), b"\0asm").unwrap();
        std::fs::write(rootfs.path().join("file"), b"").unwrap();
        let v = base(serde_json::json!({"mounts": [
            {"destination": "/data", "type": "bind", "source": "/nonexistent-wasmlet-src", "options": ["rbind"]}
        ]}));
        assert_eq!(
            wasm_task(&spec(v), rootfs.path()).unwrap_err().to_string(),
            "error mounting `/nonexistent-wasmlet-src` to rootfs at `/data`: the source does not exist"
        );
        // Missing: created in the rootfs, or in the volume holding it.
        let mounts = serde_json::json!({"mounts": [
            {"destination": "/data", "type": "bind", "source": data.path(), "options": ["rbind"]}
        ]});
        for (cwd, made) in [("/work/dir", rootfs.path().join("work/dir")), ("/data/sub", data.path().join("sub"))] {
            let mut v = base(mounts.clone());
            v["process"]["cwd"] = serde_json::json!(cwd);
            wasm_task(&spec(v), rootfs.path()).unwrap();
            assert!(made.is_dir(), "{cwd} not made at {}", made.display());
        }
        for (cwd, why) in [("/file/x", "cannot be created"), ("relative", "absolute")] {
            let mut v = base(serde_json::json!({}));
            v["process"]["cwd"] = serde_json::json!(cwd);
            let err = wasm_task(&spec(v), rootfs.path()).unwrap_err().to_string();
            assert!(err.contains(cwd) && err.contains(why), "{err}");
        }
    }

    #[test]
    fn never_reaches_files_outside_the_rootfs() {
        let outer = tempfile::tempdir().unwrap();
        let rootfs = outer.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("app")).unwrap();
        std::fs::write(outer.path().join("outside.wasm"), b"\0asm").unwrap();
        std::fs::write(rootfs.join("app/inside.wasm"), b"\0asm").unwrap();
        // An absolute symlink means the container's own path, not the host's.
        std::os::unix::fs::symlink(outer.path().join("outside.wasm"), rootfs.join("link.wasm")).unwrap();
        std::os::unix::fs::symlink("/app/inside.wasm", rootfs.join("inner.wasm")).unwrap();
        for argv0 in ["/../outside.wasm", "/link.wasm"] {
            let mut v = base(serde_json::json!({}));
            v["process"]["args"] = serde_json::json!([argv0]);
            assert_eq!(wasm_task(&spec(v), &rootfs).unwrap().wasm, None, "{argv0} reached the host");
        }
        let mut v = base(serde_json::json!({}));
        v["process"]["args"] = serde_json::json!(["/inner.wasm"]);
        assert_eq!(wasm_task(&spec(v), &rootfs).unwrap().wasm, Some(rootfs.join("app/inside.wasm")));
        let mut v = base(serde_json::json!({}));
        v["process"]["args"] = serde_json::json!(["/missing.wasm"]);
        let task = wasm_task(&spec(v), &rootfs).unwrap();
        assert_eq!((task.wasm, task.wasm_name.as_str()), (None, "/missing.wasm"));
        let mut v = base(serde_json::json!({}));
        v["process"]["args"] = serde_json::json!([]);
        assert_eq!(wasm_task(&spec(v), &rootfs).unwrap_err(), SpecError::NoArgs);
    }
}
