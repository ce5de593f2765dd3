//! What the WASI 0.3 guests share: output through `wasi:cli` streams, and
//! paths opened through `wasi:filesystem` preopens, with nothing of Rust's
//! std I/O (which would go through WASI 0.2).
use wasip3::filesystem::preopens::get_directories;
use wasip3::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};
use wasip3::wit_stream;

/// Write all of `bytes` to stdout, waiting until the host took them.
pub async fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let (mut tx, rx) = wit_stream::new();
    let done = wasip3::cli::stdout::write_via_stream(rx);
    tx.write_all(bytes.to_vec()).await;
    drop(tx);
    done.await.map_err(|e| format!("stdout: {e:?}"))
}

/// As [`write_stdout`], for stderr.
pub async fn write_stderr(bytes: &[u8]) -> Result<(), String> {
    let (mut tx, rx) = wit_stream::new();
    let done = wasip3::cli::stderr::write_via_stream(rx);
    tx.write_all(bytes.to_vec()).await;
    drop(tx);
    done.await.map_err(|e| format!("stderr: {e:?}"))
}

/// Everything on stdin until it ends.
pub async fn read_stdin() -> Result<Vec<u8>, String> {
    let (rx, done) = wasip3::cli::stdin::read_via_stream();
    let bytes = rx.collect().await;
    done.await.map_err(|e| format!("stdin: {e:?}"))?;
    Ok(bytes)
}

/// The preopened directory that holds `path` and the path inside it
/// (`""` for the directory itself). A relative path starts at the initial
/// working directory. `None` when no preopen holds it.
pub fn resolve(path: &str) -> Option<(Descriptor, String)> {
    let mut preopens = get_directories();
    let absolute = if path.starts_with('/') {
        path.to_owned()
    } else {
        if let Some(dot) = preopens.iter().position(|(_, name)| name == ".") {
            return Some((preopens.swap_remove(dot).0, path.to_owned()));
        }
        let cwd = wasip3::cli::environment::get_initial_cwd().unwrap_or_else(|| "/".into());
        format!("{}/{path}", cwd.trim_end_matches('/'))
    };
    let mut best: Option<(Descriptor, String, usize)> = None;
    for (dir, name) in preopens {
        let prefix = name.trim_end_matches('/');
        let Some(rest) = absolute.strip_prefix(prefix) else { continue };
        if !(rest.is_empty() || rest.starts_with('/')) || best.as_ref().is_some_and(|b| b.2 >= prefix.len()) {
            continue;
        }
        best = Some((dir, rest.trim_start_matches('/').to_owned(), prefix.len()));
    }
    best.map(|(dir, rest, _)| (dir, rest))
}

/// Open `path` (through [`resolve`]) with `open` and `flags`.
pub async fn open(path: &str, open: OpenFlags, flags: DescriptorFlags) -> Result<Descriptor, String> {
    let (dir, rest) = resolve(path).ok_or_else(|| format!("{path}: no preopen holds it"))?;
    let rest = if rest.is_empty() { ".".to_owned() } else { rest };
    dir.open_at(PathFlags::empty(), rest, open, flags).await.map_err(|e| format!("{path}: {e:?}"))
}

/// The whole contents of an open file.
pub async fn read_all(file: &Descriptor) -> Result<Vec<u8>, String> {
    let (rx, done) = file.read_via_stream(0);
    let bytes = rx.collect().await;
    done.await.map_err(|e| format!("read: {e:?}"))?;
    Ok(bytes)
}

/// Write `bytes` at the start of an open file.
pub async fn write_all(file: &Descriptor, bytes: &[u8]) -> Result<(), String> {
    let (mut tx, rx) = wit_stream::new();
    let done = file.write_via_stream(rx, 0);
    tx.write_all(bytes.to_vec()).await;
    drop(tx);
    done.await.map_err(|e| format!("write: {e:?}"))
}
