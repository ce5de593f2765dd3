//! A real OCI registry (Debian's `docker-registry`) on 127.0.0.1 with temp
//! storage, optionally behind htpasswd basic auth; stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Registry {
    child: Child,
    pub addr: String,
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Anonymous access.
    pub fn start() -> Self {
        Self::start_with_auth(None)
    }

    /// With `Some((user, password))`, every request needs basic auth.
    pub fn start_with_auth(credentials: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        if let Some((user, password)) = credentials {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("htpasswd (apache2-utils)");
            assert!(out.status.success());
            std::fs::write(&htpasswd, out.stdout).unwrap();
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: wasmlet-test\n    path: {}\n", htpasswd.display()));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Self { child, addr, storage, _dir: dir };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("docker-registry did not listen on {addr}");
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Push an OCI layout directory with skopeo as `name:tag`.
    pub fn push_layout(&self, layout: &std::path::Path, name: &str) {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests"])
            .arg(format!("oci:{}", layout.display()))
            .arg(format!("docker://{}/{name}", self.addr))
            .output()
            .expect("skopeo");
        assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
