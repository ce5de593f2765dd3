//! A throwaway certificate authority made with the `openssl` CLI: a CA and a
//! server certificate for an IP address, for the HTTPS registry tests.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    pub cert: PathBuf,
    key: PathBuf,
    dir: tempfile::TempDir,
}

/// A server certificate signed by a [`TestCa`].
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        );
        Self { cert: dir.path().join("ca.crt"), key: dir.path().join("ca.key"), dir }
    }

    /// A server certificate for `ip` (as its subjectAltName), signed by this CA.
    pub fn server_cert(&self, ip: &str) -> ServerCert {
        let d = self.dir.path();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={ip}"),
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            d.join("server.ext"),
            format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        let (ca, key) = (self.cert.to_string_lossy(), self.key.to_string_lossy());
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &ca,
                "-CAkey",
                &key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        ServerCert { cert: d.join("server.crt"), key: d.join("server.key") }
    }
}
