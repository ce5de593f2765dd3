//! `wasmlet node-install`: put the shim on a node and register it with
//! containerd, idempotently and without touching anything else.
//!
//! 1. Copies `containerd-shim-wasmlet-v1` and `wasmlet` (found beside this
//!    binary) into `--bin-dir` (default `/usr/local/bin`), via temp + rename,
//!    only when their contents differ.
//! 2. Edits containerd's config (`toml_edit`, so comments, order and every
//!    other runtime stay as they were): the `wasmlet` runtime handler under
//!    the CRI plugin (config version 2: `io.containerd.grpc.v1.cri`; version 3:
//!    `io.containerd.cri.v1.runtime`) and the stream processor that lets
//!    containerd before 1.6.25/1.7.7 unpack raw Wasm layers. The file is
//!    rewritten (atomically, first saving `config.toml.wasmlet-backup`) only
//!    when something changed. containerd must be restarted to read it.
//!
//! K3s and MicroK8s generate containerd's config themselves, so the file to
//! change is theirs (`--flavor`, detected under `--host-root` by default):
//! - K3s rewrites `/var/lib/rancher/k3s/agent/etc/containerd/config.toml` at
//!   every start and does not detect `containerd-shim-wasmlet-v1` on its
//!   own; its template beside it (`config-v3.toml.tmpl` for containerd 2.x,
//!   `config.toml.tmpl` for 1.x) extends K3s's `base` template with the
//!   runtime. A template that is already there gets the runtime appended.
//! - MicroK8s renders `/var/snap/microk8s/current/args/containerd-template.toml`
//!   (TOML with `${…}` placeholders), which is edited like a config.
//!
//! In both the runtime names the shim by absolute path (`runtime_path`),
//! since their containerd's PATH need not include `--bin-dir`.

use crate::shim::RUNTIME_TYPE;
use clap::Args;
use std::path::{Path, PathBuf};
use toml_edit::{value, Array, DocumentMut, Item, Table};
use wasmlet_oci::format::WASM_LAYER_MEDIA_TYPES as WASM_LAYER_TYPES;

const SHIM: &str = "containerd-shim-wasmlet-v1";
const CLI: &str = "wasmlet";

/// Install the shim on this node and register it with containerd
#[derive(Args, Debug)]
pub struct InstallArgs {
    /// containerd's config file (created if missing)
    #[arg(long, default_value = "/etc/containerd/config.toml")]
    containerd_config: PathBuf,
    /// Where containerd finds shims (on its PATH)
    #[arg(long, default_value = "/usr/local/bin")]
    bin_dir: PathBuf,
    /// The node's root filesystem as mounted in this container (DaemonSet: /host);
    /// the two paths above are taken inside it
    #[arg(long, default_value = "/")]
    host_root: PathBuf,
    /// Runtime handler name (the RuntimeClass `handler`)
    #[arg(long, default_value = "wasmlet")]
    handler: String,
    /// Whose containerd: `containerd` (its config file), `k3s`, `microk8s`,
    /// or `auto` (K3s or MicroK8s when their folders exist under --host-root)
    #[arg(long, default_value = "auto", value_parser = ["auto", "containerd", "k3s", "microk8s"])]
    flavor: String,
}

const K3S_CONTAINERD_DIR: &str = "/var/lib/rancher/k3s/agent/etc/containerd";
const MICROK8S_TEMPLATE: &str = "/var/snap/microk8s/current/args/containerd-template.toml";

/// Whose containerd config node-install changes.
#[derive(Debug, PartialEq, Eq)]
enum Flavor {
    Containerd,
    K3s,
    MicroK8s,
}

fn flavor(args: &InstallArgs) -> Flavor {
    match args.flavor.as_str() {
        "k3s" => Flavor::K3s,
        "microk8s" => Flavor::MicroK8s,
        "containerd" => Flavor::Containerd,
        _ if under(&args.host_root, Path::new(K3S_CONTAINERD_DIR)).is_dir() => Flavor::K3s,
        _ if under(&args.host_root, Path::new(MICROK8S_TEMPLATE)).is_file() => Flavor::MicroK8s,
        _ => Flavor::Containerd,
    }
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

pub fn install(args: InstallArgs) -> i32 {
    match run(&args) {
        Ok(changes) if changes.is_empty() => {
            println!("wasmlet is already installed; nothing changed");
            0
        }
        Ok(changes) => {
            for change in changes {
                println!("{change}");
            }
            println!("restart containerd to load the new configuration");
            0
        }
        Err(err) => {
            eprintln!("wasmlet: node-install: {err}");
            1
        }
    }
}

fn run(args: &InstallArgs) -> Result<Vec<String>, String> {
    let mut changes = Vec::new();
    let bin_dir = under(&args.host_root, &args.bin_dir);
    let here = std::env::current_exe()
        .map_err(|e| format!("locating this binary: {e}"))?
        .parent()
        .map(Path::to_path_buf)
        .ok_or("this binary has no folder")?;
    std::fs::create_dir_all(&bin_dir).map_err(|e| format!("creating {}: {e}", bin_dir.display()))?;
    for name in [SHIM, CLI] {
        let source = here.join(name);
        let target = bin_dir.join(name);
        if copy_if_changed(&source, &target)? {
            changes.push(format!("installed {}", target.display()));
        }
    }
    let wasmlet_bin = args.bin_dir.join(CLI);
    let shim_path = args.bin_dir.join(SHIM);
    let (config_path, original, updated) = match flavor(args) {
        Flavor::Containerd => {
            let path = under(&args.host_root, &args.containerd_config);
            let original = read_if_present(&path)?;
            let updated = configure(original.as_deref().unwrap_or(""), &args.handler, &wasmlet_bin, None)?;
            (path, original, updated)
        }
        Flavor::MicroK8s => {
            let path = under(&args.host_root, Path::new(MICROK8S_TEMPLATE));
            let original = read_if_present(&path)?;
            let updated = configure(original.as_deref().unwrap_or(""), &args.handler, &wasmlet_bin, Some(&shim_path))?;
            (path, original, updated)
        }
        Flavor::K3s => {
            let dir = under(&args.host_root, Path::new(K3S_CONTAINERD_DIR));
            // K3s's generated config says which containerd (and template) it is.
            let generated = read_if_present(&dir.join("config.toml"))?.unwrap_or_default();
            let version = generated
                .parse::<DocumentMut>()
                .ok()
                .and_then(|doc| doc.get("version").and_then(Item::as_integer))
                .unwrap_or(3);
            let path = dir.join(if version >= 3 { "config-v3.toml.tmpl" } else { "config.toml.tmpl" });
            let original = read_if_present(&path)?;
            let updated = k3s_template(original.as_deref(), version, &args.handler, &shim_path);
            (path, original, updated)
        }
    };
    if original.as_deref() != Some(updated.as_str()) {
        if let Some(original) = &original {
            let backup = config_path.with_extension("toml.wasmlet-backup");
            if !backup.exists() {
                std::fs::write(&backup, original).map_err(|e| format!("writing {}: {e}", backup.display()))?;
            }
        }
        write_atomically(&config_path, updated.as_bytes(), mode_or(&config_path, 0o644))?;
        changes.push(format!("registered runtime `{}` in {}", args.handler, config_path.display()));
    }
    Ok(changes)
}

fn read_if_present(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// The pod annotations containerd's CRI hands to wasmlet's shim.
const POD_ANNOTATIONS: &str = "wasmlet.io/*";

/// K3s's containerd template with the wasmlet runtime: K3s's own `base`
/// template, then the runtime's table. Go template text is not TOML, so an
/// existing template is only appended to, once.
pub fn k3s_template(existing: Option<&str>, version: i64, handler: &str, shim_path: &Path) -> String {
    let header = if version >= 3 {
        format!("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'{handler}']")
    } else {
        format!("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.\"{handler}\"]")
    };
    let block = format!(
        "\n# wasmlet (wasmlet node-install)\n{header}\n  runtime_type = \"{RUNTIME_TYPE}\"\n  runtime_path = \"{}\"\n  pod_annotations = [\"{POD_ANNOTATIONS}\"]\n",
        shim_path.display()
    );
    match existing {
        Some(text) if text.contains(&header) => text.to_owned(),
        Some(text) => format!("{}{block}", if text.ends_with('\n') { text.to_owned() } else { format!("{text}\n") }),
        None => format!("{{{{ template \"base\" . }}}}\n{block}"),
    }
}

fn copy_if_changed(source: &Path, target: &Path) -> Result<bool, String> {
    let bytes = std::fs::read(source).map_err(|e| format!("reading {}: {e}", source.display()))?;
    if std::fs::read(target).is_ok_and(|existing| existing == bytes) {
        return Ok(false);
    }
    // A binary: executable, whatever mode an older copy had.
    write_atomically(target, &bytes, 0o755)?;
    Ok(true)
}

/// Replace `path` whole with permissions `mode`, creating its folder.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let dir = path.parent().ok_or_else(|| format!("{} has no folder", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    wasmlet_content::write_atomically(path, bytes, mode).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// An existing file's permission bits, or `default` for a new one.
fn mode_or(path: &Path, default: u32) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).map_or(default, |m| m.permissions().mode() & 0o7777)
}

/// A table at `path` under `root`, created (as a standard table) if missing.
fn table_at<'a>(root: &'a mut Table, path: &[&str]) -> Result<&'a mut Table, String> {
    let mut table = root;
    for key in path {
        let item = table.entry(key).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        table = item.as_table_mut().ok_or_else(|| format!("`{key}` in containerd's config is not a table"))?;
    }
    Ok(table)
}

/// containerd's config text with the wasmlet runtime and stream processor.
/// `shim_path` names the shim by absolute path (`runtime_path`), for
/// containerds whose PATH may lack the bin dir.
pub fn configure(text: &str, handler: &str, wasmlet_bin: &Path, shim_path: Option<&Path>) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("containerd's config is not valid TOML: {e}"))?;
    match doc.get("version").and_then(Item::as_integer) {
        Some(2) | Some(3) => {}
        None if text.trim().is_empty() => doc["version"] = value(2),
        _ => return Err(
            "containerd config version 1 (or no version) is not supported; migrate it with `containerd config migrate`"
                .into(),
        ),
    }
    let version = doc.get("version").and_then(Item::as_integer).unwrap_or(2);
    let runtimes_path: &[&str] = if version >= 3 {
        &["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"]
    } else {
        &["plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"]
    };
    let root = doc.as_table_mut();
    let runtimes = table_at(root, runtimes_path)?;
    let runtime = table_at(runtimes, &[handler])?;
    runtime.set_implicit(false);
    if runtime.get("runtime_type").and_then(Item::as_str) != Some(RUNTIME_TYPE) {
        runtime["runtime_type"] = value(RUNTIME_TYPE);
    }
    // Kubernetes passes a pod's annotations to the runtime only when its
    // config names them: wasmlet's (`wasmlet.io/network`, the HTTP and
    // compile settings) must reach the shim.
    let passes_ours = runtime
        .get("pod_annotations")
        .and_then(Item::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(POD_ANNOTATIONS)));
    if !passes_ours {
        let mut annotations = runtime.get("pod_annotations").and_then(Item::as_array).cloned().unwrap_or_default();
        annotations.push(POD_ANNOTATIONS);
        runtime["pod_annotations"] = value(annotations);
    }
    if let Some(shim) = shim_path.map(|p| p.display().to_string()) {
        if runtime.get("runtime_path").and_then(Item::as_str) != Some(shim.as_str()) {
            runtime["runtime_path"] = value(shim);
        }
    }
    let processors = table_at(doc.as_table_mut(), &["stream_processors", "io.containerd.wasmlet.wasm-layer"])?;
    processors.set_implicit(false);
    let mut accepts = Array::new();
    for media_type in WASM_LAYER_TYPES {
        accepts.push(*media_type);
    }
    let wanted_path = wasmlet_bin.display().to_string();
    let same = processors.get("path").and_then(Item::as_str) == Some(wanted_path.as_str())
        && processors.get("returns").and_then(Item::as_str) == Some("application/vnd.oci.image.layer.v1.tar")
        && processors
            .get("accepts")
            .and_then(Item::as_array)
            .is_some_and(|a| a.iter().filter_map(|v| v.as_str()).eq(WASM_LAYER_TYPES.iter().copied()));
    if !same {
        processors["accepts"] = value(accepts);
        processors["returns"] = value("application/vnd.oci.image.layer.v1.tar");
        processors["path"] = value(wanted_path);
        let mut args = Array::new();
        args.push("unpack-wasm-layer");
        processors["args"] = value(args);
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::configure;
    use std::path::Path;

    const V2: &str = r#"version = 2
# the node's own settings stay
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
"#;

    #[test]
    fn adds_the_runtime_and_keeps_everything_else() {
        let once = configure(V2, "wasmlet", Path::new("/usr/local/bin/wasmlet"), None).unwrap();
        assert!(once.starts_with(V2), "existing text changed:\n{once}");
        let doc: toml_edit::DocumentMut = once.parse().unwrap();
        let runtimes = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert_eq!(runtimes["wasmlet"]["runtime_type"].as_str(), Some("io.containerd.wasmlet.v1"));
        assert_eq!(runtimes["wasmlet"]["pod_annotations"].as_array().map(|a| a.len()), Some(1));
        assert_eq!(runtimes["wasmlet"]["pod_annotations"][0].as_str(), Some("wasmlet.io/*"));
        assert_eq!(runtimes["runc"]["options"]["SystemdCgroup"].as_bool(), Some(true));
        assert_eq!(
            doc["stream_processors"]["io.containerd.wasmlet.wasm-layer"]["path"].as_str(),
            Some("/usr/local/bin/wasmlet")
        );
        let twice = configure(&once, "wasmlet", Path::new("/usr/local/bin/wasmlet"), None).unwrap();
        assert_eq!(once, twice, "not idempotent");
    }

    #[test]
    fn version_3_uses_the_cri_runtime_plugin() {
        let text = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  runtime_type = 'io.containerd.runc.v2'\n";
        let out = configure(text, "wasmlet", Path::new("/usr/local/bin/wasmlet"), None).unwrap();
        let doc: toml_edit::DocumentMut = out.parse().unwrap();
        let runtimes = &doc["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"];
        assert_eq!(runtimes["wasmlet"]["runtime_type"].as_str(), Some("io.containerd.wasmlet.v1"));
        assert_eq!(runtimes["runc"]["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
    }

    #[test]
    fn empty_config_becomes_version_2_and_version_1_is_refused() {
        let out = configure("", "wasmlet", Path::new("/usr/local/bin/wasmlet"), None).unwrap();
        assert!(out.contains("version = 2"));
        assert!(configure("version = 1\n", "wasmlet", Path::new("/x"), None).is_err());
        assert!(configure("not toml [", "wasmlet", Path::new("/x"), None).is_err());
    }
}
