//! Opening containerd's stdio FIFOs for the guest.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use wasmlet_runtime::{StdinSource, StdoutSink};

/// The guest's three streams, opened from the paths containerd gave.
pub struct Stdio {
    pub stdin: StdinSource,
    pub stdout: StdoutSink,
    pub stderr: StdoutSink,
}

/// Open the FIFOs (or files) named by containerd; empty paths mean "none".
/// containerd has its ends open before Create, so these opens do not wait.
pub fn open(stdin: &str, stdout: &str, stderr: &str) -> std::io::Result<Stdio> {
    Ok(Stdio {
        stdin: match stdin {
            "" => StdinSource::Null,
            path => StdinSource::File(open_stdin(path)?),
        },
        stdout: open_sink(stdout)?,
        stderr: open_sink(stderr)?,
    })
}

/// containerd's writer may connect to the stdin FIFO after the guest starts
/// reading (a client may also never attach to it), so the guest never
/// reads the FIFO directly, which would see a premature end-of-file. A thread
/// blocks in `open` until the writer arrives and copies into a pipe that the
/// guest reads; when containerd closes its end (CloseIO), the guest sees EOF.
fn open_stdin(path: &str) -> std::io::Result<File> {
    let (reader, mut writer) = std::io::pipe()?;
    let path = path.to_owned();
    std::thread::Builder::new().name("wasmlet-stdin".into()).spawn(move || {
        match File::open(&path) {
            Ok(mut fifo) => {
                let _ = std::io::copy(&mut fifo, &mut writer);
            }
            Err(err) => tracing::warn!(%path, error = %err, "opening stdin"),
        }
    })?;
    Ok(File::from(std::os::fd::OwnedFd::from(reader)))
}

fn open_sink(path: &str) -> std::io::Result<StdoutSink> {
    if path.is_empty() {
        return Ok(StdoutSink::Null);
    }
    let path = path.strip_prefix("file://").unwrap_or(path);
    let file = OpenOptions::new()
        .write(true)
        .append(!is_fifo(path))
        .create(!is_fifo(path))
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    Ok(StdoutSink::File(file))
}

fn is_fifo(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    Path::new(path).metadata().is_ok_and(|m| m.file_type().is_fifo())
}
