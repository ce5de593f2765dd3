//! Shared helpers for wasmlet's integration tests: where the built binaries
//! and guest programs are, and how to run the CLI against a private cache.

pub mod containerd;
pub mod oci;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
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
            let status = Command::new(repo_root().join("scripts/build-guests"))
                .status()
                .expect("run scripts/build-guests");
            assert!(status.success(), "scripts/build-guests failed");
        }
    });
    assert!(path.exists(), "guest {} was not built", path.display());
    path
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
        Self {
            cache: tempfile::tempdir().expect("cache tempdir"),
        }
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
