//! A private containerd per test (scripts/containerd-up), stopped on drop.

use std::path::PathBuf;
use std::process::{Command, Output};

pub const RUNTIME: &str = "io.containerd.wasmlet.v1";

pub struct Containerd {
    pub dir: PathBuf,
    pub address: String,
    /// The folder of this release's `containerd` and `ctr`.
    pub bin: PathBuf,
}

impl Containerd {
    /// Start containerd with the workspace's freshly built shim on its PATH.
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Start it with `env` in its environment (which its shims inherit).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let out = Command::new(crate::repo_root().join("scripts/containerd-up"))
            .env("WASMLET_SHIM_DIR", crate::profile_dir())
            .envs(env.iter().copied())
            .output()
            .expect("run scripts/containerd-up");
        assert!(out.status.success(), "containerd-up failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {key}=")))
                .unwrap_or_else(|| panic!("{key} missing in {text}"))
                .to_owned()
        };
        Self {
            dir: value("WASMLET_CONTAINERD_DIR").into(),
            address: value("CONTAINERD_ADDRESS"),
            bin: value("WASMLET_CONTAINERD_BIN").into(),
        }
    }

    /// The release under test (`WASMLET_CONTAINERD`: 1.6, 1.7 or 2.1).
    pub fn series() -> String {
        std::env::var("WASMLET_CONTAINERD").unwrap_or_else(|_| "1.6".into())
    }

    /// This release's `ctr` on this containerd, in namespace `namespace`.
    pub fn ctr_in(&self, namespace: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("ctr"));
        // ctr >= 2.2 warns about cgroup v1 on every call on this host.
        cmd.env("CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS", "1");
        cmd.args(["--address", &self.address, "--namespace", namespace]);
        cmd
    }

    pub fn ctr(&self) -> Command {
        self.ctr_in("wasmlet-test")
    }

    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr().args(args).output().expect("run ctr");
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn import(&self, archive: &std::path::Path) {
        self.ctr_ok(&["images", "import", "--all-platforms", archive.to_str().unwrap()]);
    }

    /// `ctr run --rm` of `image` as `id` through wasmlet, with extra flags before the image.
    pub fn run_rm(&self, flags: &[&str], image: &str, id: &str, args: &[&str]) -> Output {
        self.ctr()
            .args(["run", "--rm", "--runtime", RUNTIME])
            .args(flags)
            .args([image, id])
            .args(args)
            .output()
            .expect("run ctr run")
    }

    /// Stop containerd (SIGTERM) and start it again on the same state.
    pub fn restart(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("containerd.pid")).unwrap();
        let pid: i32 = pid.trim().parse().unwrap();
        // SAFETY: kill(2) on the containerd we started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        wait_gone(pid);
        let out = Command::new(crate::repo_root().join("scripts/containerd-up"))
            .arg(&self.dir)
            .env("WASMLET_SHIM_DIR", crate::profile_dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "restart failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

/// The bin folder of containerd release `series` (scripts/install-containerd).
pub fn install(series: &str) -> PathBuf {
    let out = Command::new(crate::repo_root().join("scripts/install-containerd"))
        .arg(series)
        .output()
        .expect("run scripts/install-containerd");
    assert!(out.status.success(), "install-containerd {series}: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Wait until `pid` is gone or a zombie (PID 1 here reaps lazily).
pub fn wait_gone(pid: i32) {
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(stat) if stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z')) => return,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(25)),
        }
    }
    panic!("process {pid} did not exit");
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = Command::new(crate::repo_root().join("scripts/containerd-down")).arg(&self.dir).status();
    }
}
