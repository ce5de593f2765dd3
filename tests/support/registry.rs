//! A real OCI registry (Debian's `docker-registry`) on loopback with temp
//! storage, optionally behind htpasswd basic auth or token auth, optionally
//! over HTTPS; stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Registry {
    child: Child,
    pub addr: String,
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

/// How the registry authenticates and serves.
#[derive(Default)]
pub struct RegistrySetup<'a> {
    /// Every request needs basic auth with these credentials (htpasswd).
    pub basic: Option<(&'a str, &'a str)>,
    /// Every request needs a bearer token from this issuer.
    pub token: Option<&'a crate::token::TokenIssuer>,
    /// Serve HTTPS with this server certificate, on 127.0.0.2 (127.0.0.1
    /// is always plain HTTP to clients).
    pub tls: Option<&'a crate::pki::ServerCert>,
}

impl Registry {
    /// Anonymous access.
    pub fn start() -> Self {
        Self::start_with(RegistrySetup::default())
    }

    /// With `Some((user, password))`, every request needs basic auth.
    pub fn start_with_auth(credentials: Option<(&str, &str)>) -> Self {
        Self::start_with(RegistrySetup { basic: credentials, ..Default::default() })
    }

    pub fn start_with(setup: RegistrySetup<'_>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let ip = if setup.tls.is_some() { "127.0.0.2" } else { "127.0.0.1" };
        let port = std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
        let addr = format!("{ip}:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        if let Some(cert) = setup.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.cert.display(),
                cert.key.display()
            ));
        }
        if let Some((user, password)) = setup.basic {
            let htpasswd = dir.path().join("htpasswd");
            let out =
                Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("htpasswd (apache2-utils)");
            assert!(out.status.success());
            std::fs::write(&htpasswd, out.stdout).unwrap();
            config
                .push_str(&format!("auth:\n  htpasswd:\n    realm: wasmlet-test\n    path: {}\n", htpasswd.display()));
        }
        if let Some(issuer) = setup.token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                issuer.realm(),
                crate::token::SERVICE,
                crate::token::ISSUER,
                issuer.signing_cert().display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new("docker-registry")
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
        let _ = child.kill();
        let _ = child.wait();
        panic!("docker-registry did not listen on {addr}");
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// Upload `bytes` as a blob of repository `name` (one monolithic upload,
    /// over the distribution API); returns its digest.
    pub fn push_blob(&self, name: &str, bytes: &[u8]) -> String {
        let digest = crate::oci::sha256(bytes);
        let started = crate::http_request(&self.addr, "POST", &format!("/v2/{name}/blobs/uploads/"), &[], b"")
            .expect("start upload");
        assert_eq!(started.status, 202, "{}", started.text());
        let location =
            started.headers.iter().find(|(n, _)| n == "location").map(|(_, v)| v.clone()).expect("upload location");
        let path = location.find("/v2/").map(|i| location[i..].to_owned()).expect("upload path");
        let separator = if path.contains('?') { '&' } else { '?' };
        let done = crate::http_request(
            &self.addr,
            "PUT",
            &format!("{path}{separator}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )
        .expect("finish upload");
        assert_eq!(done.status, 201, "{}", done.text());
        digest
    }

    /// Put an OCI image manifest as `name:tag`.
    pub fn push_manifest(&self, name: &str, tag: &str, manifest: &[u8]) {
        let done = crate::http_request(
            &self.addr,
            "PUT",
            &format!("/v2/{name}/manifests/{tag}"),
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            manifest,
        )
        .expect("put manifest");
        assert_eq!(done.status, 201, "{}", done.text());
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
