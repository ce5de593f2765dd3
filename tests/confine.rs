//! The guest confinement checking itself (issue 13.6): the shim's
//! `self-test` action confines its own process from a spec exactly as a
//! guest process is confined (pod network namespace, masks, Landlock,
//! credentials, capabilities, seccomp), then tries what a guest that broke
//! out of wasmtime would try. Each case asserts every escape is refused
//! (and by which layer, where it matters) and every control still works.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Output};
use wasmlet_tests::bin;

/// A bundle whose rootfs has the files the self-test expects, and a spec of
/// these process, linux and annotations parts as its config.
fn bundle(dir: &Path, process: serde_json::Value, linux: serde_json::Value, annotations: serde_json::Value) {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("locked")).unwrap();
    std::fs::create_dir_all(rootfs.join("open")).unwrap();
    std::fs::write(rootfs.join("readable"), "public\n").unwrap();
    std::fs::write(rootfs.join("secret"), "root only\n").unwrap();
    for (path, mode) in [(dir, 0o755), (&rootfs, 0o755), (&rootfs.join("open"), 0o777), (&rootfs.join("secret"), 0o600)]
    {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let config = serde_json::json!({
        "ociVersion": "1.1.0", "process": process, "root": {"path": "rootfs"}, "linux": linux,
        "annotations": annotations,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// A network namespace of its own, held by a sleeping process (as CNI's is by the pod).
struct NetNs(Child);

impl NetNs {
    fn new() -> Self {
        let holder = Self(Command::new("unshare").args(["--net", "sleep", "600"]).spawn().expect("unshare"));
        for _ in 0..200 {
            if std::fs::read_link(holder.path()).ok() != std::fs::read_link("/proc/self/ns/net").ok() {
                return holder;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("unshare --net never entered a new namespace");
    }
    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.0.id())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a guest on the node could reach: a TCP server on the loopback and
/// a Unix socket anyone may connect to (as a careless daemon's would be).
struct NodeServices {
    tcp: std::net::TcpListener,
    unix_path: std::path::PathBuf,
    _unix: std::os::unix::net::UnixListener,
    _dir: tempfile::TempDir,
}

impl NodeServices {
    fn start() -> Self {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let unix_path = dir.path().join("daemon.sock");
        let unix = std::os::unix::net::UnixListener::bind(&unix_path).unwrap();
        std::fs::set_permissions(&unix_path, std::fs::Permissions::from_mode(0o777)).unwrap();
        Self { tcp, unix_path, _unix: unix, _dir: dir }
    }
}

fn self_test(bundle: &Path, services: &NodeServices) -> Output {
    let addr = services.tcp.local_addr().unwrap().to_string();
    Command::new(bin("containerd-shim-wasmlet-v1"))
        .arg("self-test")
        .arg(bundle)
        .args(["--connect", addr.as_str(), "--unix"])
        .arg(&services.unix_path)
        .output()
        .unwrap()
}

/// The self-test of `bundle`, which must pass (every escape refused, every
/// control allowed): its output and stdout.
fn self_test_passes(bundle: &Path, services: &NodeServices) -> (Output, String) {
    let out = self_test(bundle, services);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out, stdout)
}

/// The self-test's line for `attempt`, e.g. "denied (Permission denied (os error 13))".
fn outcome(output: &Output, attempt: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains(attempt))
        .unwrap_or_else(|| panic!("no attempt `{attempt}` in:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    line.split_once(": ").map(|(_, o)| o.to_owned()).unwrap_or_default()
}

const EACCES: &str = "os error 13";
const EPERM: &str = "os error 1)";

#[test]
fn a_non_root_guest_reaches_nothing_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let netns = NetNs::new();
    bundle(
        dir.path(),
        serde_json::json!({"user": {"uid": 1000, "gid": 1000}, "args": ["/app.wasm"], "cwd": "/",
            "noNewPrivileges": true, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]}),
        serde_json::json!({"namespaces": [{"type": "network", "path": netns.path()}]}),
        serde_json::json!({}),
    );
    let (out, stdout) = self_test_passes(dir.path(), &NodeServices::start());
    assert!(stdout.contains("uid 1000, Landlock enforced"), "{stdout}");
    // Granted: its own folder, as its own user.
    assert_eq!(outcome(&out, "read a readable file"), "allowed");
    assert_eq!(outcome(&out, "create a file in an open folder"), "allowed");
    let made = std::fs::metadata(dir.path().join("rootfs/open/made")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&made), 1000, "created as the spec's user");
    // Refused: the node's files (Landlock), root's files (its uid),
    // privileges, other processes, the node's network and sockets.
    for attempt in [
        "outside the preopens (/etc/passwd)",
        "list a folder outside",
        "read root's 0600 file",
        "create a file in root's folder",
        "/proc/self/mem read-write",
        "init process's environment",
    ] {
        assert!(outcome(&out, attempt).contains(EACCES), "{attempt}: {stdout}");
    }
    for attempt in ["setuid(0)", "ptrace the parent", "signal the init process", "mount over", "unshare a user"] {
        assert!(outcome(&out, attempt).contains(EPERM), "{attempt}: {stdout}");
    }
    assert!(outcome(&out, "on the node").starts_with("denied"), "{stdout}");
    assert!(outcome(&out, "Unix socket").contains(EPERM), "{stdout}");
}

/// Root in the container, no capabilities, no no_new_privs and a seccomp
/// profile that allows every call: what still holds is Landlock (files,
/// signals), the missing capabilities (mount, ptrace) and the filter
/// wasmlet stacks on any profile (Unix sockets, new namespaces).
#[test]
fn root_without_capabilities_under_a_permissive_profile_is_still_confined() {
    let dir = tempfile::tempdir().unwrap();
    let netns = NetNs::new();
    bundle(
        dir.path(),
        serde_json::json!({"user": {"uid": 0, "gid": 0}, "args": ["/app.wasm"], "cwd": "/"}),
        serde_json::json!({"namespaces": [{"type": "network", "path": netns.path()}],
            "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}),
        serde_json::json!({}),
    );
    let (out, stdout) = self_test_passes(dir.path(), &NodeServices::start());
    assert!(stdout.contains("uid 0, Landlock enforced"), "{stdout}");
    for attempt in ["outside the preopens (/etc/passwd)", "/proc/self/mem read-write", "init process's environment"] {
        assert!(outcome(&out, attempt).contains(EACCES), "{attempt}: {stdout}");
    }
    // Root may signal root's processes: only Landlock's signal scope stops it.
    assert!(outcome(&out, "signal the init process").contains(EPERM), "{stdout}");
    for attempt in ["setuid(65534)", "ptrace the parent", "mount over", "Unix socket", "unshare a user"] {
        assert!(outcome(&out, attempt).contains(EPERM), "{attempt}: {stdout}");
    }
}

/// The self-test fails when the spec grants an escape: root with
/// CAP_SETUID under a permissive profile may change its uid, as it could
/// under runc, and the self-test says so.
#[test]
fn the_self_test_reports_what_the_spec_grants() {
    let dir = tempfile::tempdir().unwrap();
    let caps = serde_json::json!(["CAP_SETUID", "CAP_SETGID"]);
    bundle(
        dir.path(),
        serde_json::json!({"user": {"uid": 0, "gid": 0}, "args": ["/app.wasm"], "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}}),
        serde_json::json!({"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}),
        serde_json::json!({}),
    );
    let out = self_test(dir.path(), &NodeServices::start());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(outcome(&out, "setuid(65534)"), "allowed");
}

/// With the network granted, the guest's sockets are in the pod's
/// namespace: the node's loopback server is not there.
#[test]
fn a_guest_with_the_network_cannot_reach_the_nodes_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let netns = NetNs::new();
    bundle(
        dir.path(),
        serde_json::json!({"user": {"uid": 1000, "gid": 1000}, "args": ["/app.wasm"], "cwd": "/",
            "noNewPrivileges": true}),
        serde_json::json!({"namespaces": [{"type": "network", "path": netns.path()}]}),
        serde_json::json!({"wasmlet.io/network": "allow"}),
    );
    let (out, stdout) = self_test_passes(dir.path(), &NodeServices::start());
    // Not Landlock's EACCES (TCP is allowed): the namespace has no route.
    let connect = outcome(&out, "on the node");
    assert!(connect.starts_with("denied") && !connect.contains(EACCES), "{stdout}");
}
