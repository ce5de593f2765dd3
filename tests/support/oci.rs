//! Building OCI image archives for tests, from files made here (no registry,
//! no docker): a single-layer image in an OCI layout, tarred for
//! `ctr images import`.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
    (digest, bytes.len())
}

/// Write an image archive named `name` (e.g. `docker.io/wasmlet/hello:latest`)
/// whose rootfs holds `files` (path, bytes, mode), with `entrypoint`, for
/// linux/amd64. Returns the tar's path inside `out`.
pub fn image_archive(out: &Path, name: &str, files: &[(&str, &[u8], u32)], entrypoint: &[&str]) -> PathBuf {
    image_archive_with_links(out, name, files, &[], entrypoint, &["PATH=/"])
}

/// A busybox image as such images are made: `/bin/busybox` and absolute
/// symlinks to it (`/bin/sh`, `/bin/sleep`, `/bin/wget`, …), `PATH=/bin`,
/// no entrypoint. Linux containers run it through runc.
pub fn busybox_archive(out: &Path, name: &str) -> PathBuf {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (scripts/install-deps)");
    let names: Vec<String> =
        ["sh", "sleep", "wget", "cat", "echo", "readlink", "hostname", "ip", "ipcs", "top", "ps", "head", "tr", "stty"]
            .iter()
            .map(|tool| format!("/bin/{tool}"))
            .collect();
    let links: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "/bin/busybox")).collect();
    image_archive_with_links(
        out,
        name,
        &[("/bin/busybox", &busybox, 0o755)],
        &links,
        &[],
        &["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    )
}

/// [`image_archive`] whose config names the user to run as (`uid:gid`),
/// as `USER` in a Dockerfile does.
pub fn image_archive_as_user(out: &Path, name: &str, files: &[(&str, &[u8], u32)], user: &str) -> PathBuf {
    image_archive_configured(out, name, files, &[], &[], &["PATH=/"], Some(user))
}

/// [`image_archive`] with symlinks (path, target) and an environment.
pub fn image_archive_with_links(
    out: &Path,
    name: &str,
    files: &[(&str, &[u8], u32)],
    links: &[(&str, &str)],
    entrypoint: &[&str],
    env: &[&str],
) -> PathBuf {
    image_archive_configured(out, name, files, links, entrypoint, env, None)
}

fn image_archive_configured(
    out: &Path,
    name: &str,
    files: &[(&str, &[u8], u32)],
    links: &[(&str, &str)],
    entrypoint: &[&str],
    env: &[&str],
    user: Option<&str>,
) -> PathBuf {
    let work = tempfile::tempdir().unwrap();
    let layer = tar_layer_with(files, links);
    let layout = work.path().join("layout");
    let (layer_digest, layer_size) = put_blob(&layout, &layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Env": env, "WorkingDir": "/", "User": user.unwrap_or_default()},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let file_name = name.replace(['/', ':'], "_") + ".tar";
    let archive = out.join(file_name);
    let status = Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).arg(".").status().unwrap();
    assert!(status.success());
    archive
}

/// Write an OCI layout at `dir` holding one manifest with the given config
/// and layers (media type, bytes), tagged `latest`. Returns the manifest's
/// digest. For packagings `image_archive` does not make (Wasm layers, odd
/// media types), pushed with [`crate::registry::Registry::push_layout`].
pub fn layout(
    dir: &Path,
    config_media_type: &str,
    config: &[u8],
    layers: &[(&str, &[u8])],
    extra: serde_json::Value,
) -> String {
    let (config_digest, config_size) = put_blob(dir, config);
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(media_type, bytes)| {
            let (digest, size) = put_blob(dir, bytes);
            serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
        })
        .collect();
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_media_type, "digest": config_digest, "size": config_size},
        "layers": layers,
    });
    if let (Some(m), Some(extra)) = (manifest.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let (manifest_digest, manifest_size) = put_blob(dir, &manifest_bytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest_digest
}

/// A tar (uncompressed) holding `files` (path, bytes), as a layer.
pub fn tar_layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let with_modes: Vec<(&str, &[u8], u32)> = files.iter().map(|(p, b)| (*p, *b, 0o644)).collect();
    tar_layer_with(&with_modes, &[])
}

/// A tar layer of `files` (path, bytes, mode) and symlinks (path, target),
/// owned by root, reproducible.
fn tar_layer_with(files: &[(&str, &[u8], u32)], links: &[(&str, &str)]) -> Vec<u8> {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for (path, bytes, mode) in files {
        let target = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, bytes).unwrap();
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(*mode)).unwrap();
    }
    for (path, target) in links {
        let link = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &link).unwrap();
    }
    let out = work.path().join("layer.tar");
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "--sort=name", "--mtime=@0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}
