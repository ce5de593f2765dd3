//! Which certificate authorities a registry's HTTPS certificate may chain to,
//! beyond the system's trust store.
//!
//! The same places Docker, Podman and containerd's `ctr` users already put
//! them: `<dir>/<host[:port]>/*.crt` under `/etc/containers/certs.d` and
//! `/etc/docker/certs.d` (`$WASMLET_CERTS_D` replaces both, for a private
//! node setup), plus files named on the command line (`--ca-file`).

use oci_client::client::{Certificate, CertificateEncoding};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("reading the CA certificate {path}: {source}")]
pub struct CaError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn certs_d_roots() -> Vec<PathBuf> {
    match std::env::var_os("WASMLET_CERTS_D").filter(|d| !d.is_empty()) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec![PathBuf::from("/etc/containers/certs.d"), PathBuf::from("/etc/docker/certs.d")],
    }
}

/// `*.crt` files in `<root>/<registry>/`, sorted so the order is stable.
fn certs_d_files(root: &Path, registry: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join(registry)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "crt"))
        .collect();
    files.sort();
    files
}

/// The extra trust anchors for `registry` (host[:port]): `explicit` files
/// first, then its certs.d directories. PEM files may hold several certificates.
pub fn extra_roots(registry: &str, explicit: &[PathBuf]) -> Result<Vec<Certificate>, CaError> {
    let mut files = explicit.to_vec();
    for root in certs_d_roots() {
        files.extend(certs_d_files(&root, registry));
    }
    files
        .into_iter()
        .map(|path| match std::fs::read(&path) {
            Ok(data) => Ok(Certificate {
                encoding: if data.windows(11).any(|w| w == b"-----BEGIN ") {
                    CertificateEncoding::Pem
                } else {
                    CertificateEncoding::Der
                },
                data,
            }),
            Err(source) => Err(CaError { path, source }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_d_lists_only_crt_files_of_that_registry() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("reg.example:5000");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("b.crt"), "-----BEGIN CERTIFICATE-----").unwrap();
        std::fs::write(host.join("a.crt"), [0x30, 0x82]).unwrap();
        std::fs::write(host.join("client.key"), "key").unwrap();
        let files = certs_d_files(dir.path(), "reg.example:5000");
        assert_eq!(files, vec![host.join("a.crt"), host.join("b.crt")]);
        assert!(certs_d_files(dir.path(), "other:5000").is_empty());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = extra_roots("reg.example", &[PathBuf::from("/nonexistent/ca.pem")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
