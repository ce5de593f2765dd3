//! The capabilities a guest is granted, and nothing more.
//!
//! A guest sees exactly: its args and env, the preopened directories (each
//! read-only or read-write), the three stdio streams given here, and the
//! network only when `network` is true. Filesystem access outside a preopen
//! (`..`, absolute paths, symlinks pointing out) is refused by cap-std inside
//! wasmtime-wasi.

use crate::error::RunError;
use std::path::{Path, PathBuf};
use wasmtime_wasi::cli::{InputFile, OutputFile};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// Directory on the host.
    pub host: PathBuf,
    /// Name the guest sees it under (e.g. `/`, `/data`, `.`).
    pub guest: String,
    pub read_only: bool,
}

#[derive(Debug, Default)]
pub enum StdinSource {
    /// Closed: reads see end-of-file.
    #[default]
    Null,
    /// The host process's stdin.
    Inherit,
    /// A file or FIFO (containerd's stdin pipe).
    File(std::fs::File),
}

#[derive(Debug, Default)]
pub enum StdoutSink {
    /// Output is discarded.
    #[default]
    Null,
    /// The host process's stdout (or stderr, for the stderr stream).
    Inherit,
    /// A file or FIFO (containerd's stdout/stderr pipes).
    File(std::fs::File),
}

#[derive(Debug, Default)]
pub struct Capabilities {
    /// argv, including argv\[0\] (the program's name).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Initial working directory, as a guest path.
    pub cwd: Option<String>,
    pub preopens: Vec<Preopen>,
    pub stdin: StdinSource,
    pub stdout: StdoutSink,
    pub stderr: StdoutSink,
    /// TCP, UDP and name lookups to any address. Off: every socket use fails.
    pub network: bool,
}

impl Capabilities {
    /// Build the WASI context builder these capabilities describe.
    ///
    /// wasi-libc resolves relative paths against a preopen named `.` (its own
    /// cwd starts at `/`, whatever `wasi:cli/environment.initial-cwd` says),
    /// so with `cwd_as_dot_preopen` the cwd is also preopened as `.`, with the
    /// permissions of the preopen that contains it.
    pub(crate) fn into_builder(self, cwd_as_dot_preopen: bool) -> Result<WasiCtxBuilder, RunError> {
        let mut builder = self.builder_without_stdio(cwd_as_dot_preopen)?;
        match self.stdin {
            StdinSource::Null => {}
            StdinSource::Inherit => {
                builder.inherit_stdin();
            }
            StdinSource::File(file) => {
                builder.stdin(InputFile::new(file));
            }
        }
        set_output(&mut builder, Stream::Stdout, shared_output(self.stdout));
        set_output(&mut builder, Stream::Stderr, shared_output(self.stderr));
        Ok(builder)
    }

    /// Everything but stdio, from a borrowed set: built once per HTTP request.
    pub(crate) fn builder_without_stdio(&self, cwd_as_dot_preopen: bool) -> Result<WasiCtxBuilder, RunError> {
        let mut builder = WasiCtxBuilder::new();
        builder.args(&self.args).envs(&self.env);
        if let Some(cwd) = &self.cwd {
            builder.initial_cwd(cwd);
        }
        let dot = match (&self.cwd, cwd_as_dot_preopen) {
            (Some(cwd), true) if !self.preopens.iter().any(|p| p.guest == ".") => {
                resolve_guest_path(&self.preopens, cwd)
            }
            _ => None,
        };
        for preopen in self.preopens.iter().chain(dot.iter()) {
            let perms = if preopen.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
            builder.preopened_dir(&preopen.host, &preopen.guest, perms).map_err(|source| RunError::Preopen {
                host: preopen.host.clone(),
                guest: preopen.guest.clone(),
                source: anyhow::anyhow!("{source:#}"),
            })?;
        }
        if self.network {
            builder.inherit_network().allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true);
        } else {
            builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        }
        Ok(builder)
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// An output stream that many WASI contexts can share (one per HTTP request).
#[derive(Clone, Default)]
pub(crate) enum SharedOutput {
    #[default]
    Null,
    Inherit,
    File(OutputFile),
}

pub(crate) fn shared_output(sink: StdoutSink) -> SharedOutput {
    match sink {
        StdoutSink::Null => SharedOutput::Null,
        StdoutSink::Inherit => SharedOutput::Inherit,
        StdoutSink::File(file) => SharedOutput::File(OutputFile::new(file)),
    }
}

pub(crate) fn set_output(builder: &mut WasiCtxBuilder, stream: Stream, output: SharedOutput) {
    match (output, stream) {
        (SharedOutput::Null, _) => {}
        (SharedOutput::Inherit, Stream::Stdout) => {
            builder.inherit_stdout();
        }
        (SharedOutput::Inherit, Stream::Stderr) => {
            builder.inherit_stderr();
        }
        (SharedOutput::File(file), Stream::Stdout) => {
            builder.stdout(file);
        }
        (SharedOutput::File(file), Stream::Stderr) => {
            builder.stderr(file);
        }
    }
}

/// Map a guest path to a preopen (`.`) rooted at the host directory it names,
/// using the longest preopen prefix.
fn resolve_guest_path(preopens: &[Preopen], guest: &str) -> Option<Preopen> {
    let guest_path = Path::new(guest);
    preopens
        .iter()
        .filter_map(|p| {
            let rest = guest_path.strip_prefix(&p.guest).ok()?;
            Some((p.guest.len(), p, rest))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, p, rest)| Preopen { host: p.host.join(rest), guest: ".".into(), read_only: p.read_only })
        .filter(|p| p.host.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwd_resolves_to_longest_preopen() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("data/sub")).unwrap();
        let preopens = vec![
            Preopen { host: tmp.path().into(), guest: "/".into(), read_only: true },
            Preopen { host: tmp.path().join("data"), guest: "/data".into(), read_only: false },
        ];
        let dot = resolve_guest_path(&preopens, "/data/sub").unwrap();
        assert_eq!(dot.host, tmp.path().join("data/sub"));
        assert!(!dot.read_only);
        assert!(resolve_guest_path(&preopens, "/missing").is_none());
        assert!(resolve_guest_path(&preopens[1..], "/etc").is_none());
    }
}
