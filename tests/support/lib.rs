//! Shared helpers for wasmlet's integration tests: where the built binaries
//! and guest programs are, and how to run the CLI against a private cache.

pub mod containerd;
pub mod cri;
pub mod faults;
pub mod hostile;
pub mod netns;
pub mod oci;
pub mod pki;
pub mod procfs;
pub mod registry;
pub mod streaming;
pub mod token;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The checkout the tests run from. Read at run time (cargo sets
/// `CARGO_MANIFEST_DIR` for test and bench runs): a value compiled in could
/// name another clone that shared the build cache.
pub fn repo_root() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().expect("tests/ has a parent").to_owned()
}

/// The cargo profile folder the running test binary was built into
/// (`target/release` here: tests and benches share the release profile).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_owned()
}

/// A binary of the workspace, built by `cargo build --release --bins`.
pub fn bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --release --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A Rust guest from examples/guests, built for wasip1 (`p2 = false`, a core
/// module) or wasip2 (a command component). Builds them on first use.
pub fn guest(name: &str, p2: bool) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let target = if p2 { "wasm32-wasip2" } else { "wasm32-wasip1" };
    let path = repo_root().join("target/guests").join(target).join("release").join(format!("{name}.wasm"));
    BUILT.get_or_init(|| {
        if !path.exists() {
            let status =
                Command::new(repo_root().join("scripts/build-guests")).status().expect("run scripts/build-guests");
            assert!(status.success(), "scripts/build-guests failed");
        }
    });
    assert!(path.exists(), "guest {} was not built", path.display());
    path
}

/// A WASI 0.3 guest from examples/guests-p3 (`wasi_check_p3`,
/// `http_service_p3`): a wasm32-wasip2 component importing and exporting
/// WASI 0.3.
pub fn p3_guest(name: &str) -> PathBuf {
    let path = repo_root().join("target/guests/wasm32-wasip2/release/examples").join(format!("{name}.wasm"));
    if !path.exists() {
        guest("hello", false);
        let status = Command::new(repo_root().join("scripts/build-guests")).status().expect("run scripts/build-guests");
        assert!(status.success(), "scripts/build-guests failed");
    }
    assert!(path.exists(), "WASI 0.3 guest {} was not built", path.display());
    path
}

/// An HTTP function from examples/http (`hello`, `echo`): a wasm32-wasip2
/// component exporting `wasi:http/incoming-handler`.
pub fn http_guest(name: &str) -> PathBuf {
    let path = repo_root().join("target/guests/wasm32-wasip2/release").join(format!("http_{name}.wasm"));
    if !path.exists() {
        guest("hello", false);
        let status = Command::new(repo_root().join("scripts/build-guests")).status().expect("run scripts/build-guests");
        assert!(status.success(), "scripts/build-guests failed");
    }
    assert!(path.exists(), "HTTP guest {} was not built", path.display());
    path
}

/// A minimal HTTP/1.1 exchange over one connection: status, headers
/// (lower-cased names) and body of the response.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send `method path` with `body` to `addr` (`Connection: close`) and read the
/// whole response. Handles `Content-Length` and chunked bodies.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
        .ok_or_else(|| std::io::Error::other(format!("malformed response: {:?}", String::from_utf8_lossy(&raw))))
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Some(HttpResponse { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A WAT guest from examples/guests/wat, compiled with the `wat` crate.
pub fn wat_guest(name: &str) -> PathBuf {
    let source = repo_root().join("examples/guests/wat").join(format!("{name}.wat"));
    let binary = wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let dir = repo_root().join("target/guests/wat");
    std::fs::create_dir_all(&dir).expect("create target/guests/wat");
    let out = dir.join(format!("{name}.wasm"));
    // Write then rename: tests run in parallel and may compile the same guest.
    let tmp = dir.join(format!(".{name}.{}.{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&tmp, binary).expect("write wat guest");
    std::fs::rename(&tmp, &out).expect("rename wat guest");
    out
}

/// The `wasmlet` CLI with a cache folder of its own.
pub struct Wasmlet {
    pub cache: tempfile::TempDir,
}

impl Default for Wasmlet {
    fn default() -> Self {
        Self::new()
    }
}

impl Wasmlet {
    pub fn new() -> Self {
        Self { cache: tempfile::tempdir().expect("cache tempdir") }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("wasmlet"));
        cmd.env("WASMLET_CACHE_DIR", self.cache.path()).env_remove("WASMLET_LOG");
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command().args(args).output().expect("spawn wasmlet")
    }
}

/// A mount made for a test (a read-only bind, a tiny tmpfs), lazily
/// unmounted when dropped. Only ever under a test's own temp folder.
pub struct TestMount(pub PathBuf);

impl TestMount {
    /// `dir` bound onto itself, read-only.
    pub fn read_only(dir: &std::path::Path) -> Self {
        mount(&["--bind", &dir.display().to_string(), &dir.display().to_string()]);
        let this = Self(dir.to_owned());
        mount(&["-o", "remount,bind,ro", &dir.display().to_string()]);
        this
    }

    /// A tmpfs of `size` bytes at `dir` (writes past it fail with ENOSPC).
    pub fn tiny_tmpfs(dir: &std::path::Path, size: u64) -> Self {
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &dir.display().to_string()]);
        Self(dir.to_owned())
    }
}

fn mount(args: &[&str]) {
    let out = Command::new("mount").args(args).output().expect("run mount");
    assert!(out.status.success(), "mount {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `cmd`'s output when fed `stdin` (then end of input).
pub fn output_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

/// stdout, stderr and status of an [`Output`], for assertions and messages.
pub struct Seen {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

pub fn seen(output: &Output) -> Seen {
    Seen {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// `wasmtime` (the wasmtime-cli of the runtime's version) for benchmarks'
/// baselines: `$WASMTIME`, else what scripts/install-wasmtime-cli installs.
pub fn wasmtime_binary() -> PathBuf {
    let path = std::env::var_os("WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/wasmlet/tools/bin/wasmtime".into());
    assert!(path.exists(), "{} missing: run scripts/install-wasmtime-cli", path.display());
    path
}
