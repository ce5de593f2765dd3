//! The guest's stdio, wired to what containerd named, the way runc's shim
//! does it.
//!
//! The guest never holds containerd's FIFOs (or log files) itself: it writes
//! into a pipe of the shim's, and a relay task on the shim's executor copies
//! each pipe into its destination. This is what makes a stop clean on every
//! containerd: since 1.6.22 / 1.7.3 the CRI plugin waits for end-of-file on a
//! container's stdout/stderr FIFOs before it deletes the task, and a guest
//! thread still blocked in a host call (a sleep) after the kill would keep
//! them open for good. When the task is reported stopped, [`Relay::close`]
//! passes on what the guest already wrote and closes the destinations,
//! whatever the guest thread still holds.
//!
//! Like runc's shim, the shim also keeps a read end of each output FIFO open,
//! so a guest whose client went away (`ctr run -d`) never sees EPIPE: its
//! output waits in the FIFO, and the guest blocks once it is full.
//!
//! Destinations (containerd's `stdout`/`stderr` strings): a FIFO or file
//! path, `file:///path` (appended to, directories created), and
//! `binary:///path?arg=value` (a logging program started once for both
//! streams, reading stdout on fd 3 and stderr on fd 4, and closing fd 5 when
//! it is ready; `CONTAINER_ID` and `CONTAINER_NAMESPACE` in its
//! environment), as nerdctl and `ctr run --log-uri` use them.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::pipe;
use wasmlet_runtime::{StdinSource, StdoutSink};

/// How long a stop waits for the relays to pass on output the guest had
/// already written (a destination nobody reads never drains).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// How long a logging binary gets to say it is ready, and to exit after its
/// input ended.
const LOG_BINARY_LIMIT: Duration = Duration::from_secs(10);

/// The guest's three streams.
pub struct Stdio {
    pub stdin: StdinSource,
    pub stdout: StdoutSink,
    pub stderr: StdoutSink,
}

/// Who the container is, for a logging binary's environment.
pub struct Owner<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
}

/// Where one output stream goes.
enum Destination {
    /// A FIFO (containerd's), with the read end the shim keeps.
    Fifo { writer: File, reader: File },
    /// A regular file, appended to.
    File(File),
    /// A pipe into a logging binary.
    Pipe(OwnedFd),
}

/// The shim's side of the guest's output: the relays, once started, and
/// what they need to let go of when the task stops.
pub struct Relay {
    streams: Vec<(OwnedFd, Destination)>,
    tasks: Vec<(tokio::task::JoinHandle<()>, tokio::sync::oneshot::Sender<()>)>,
    /// The shim's own read ends of the output FIFOs (see [`HeldFifos`]).
    readers: Vec<File>,
    log_binary: Option<std::process::Child>,
    /// Set when the task is killed: its relays do not wait for their
    /// output to be read (see [`until_read`]).
    killed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Open what containerd named (empty means none). Blocking; call off the
/// executor. containerd has its FIFO ends open before Create, so these opens
/// do not wait.
pub fn open(stdin: &str, stdout: &str, stderr: &str, owner: &Owner<'_>) -> std::io::Result<(Stdio, Relay)> {
    let stdin = match stdin {
        "" => StdinSource::Null,
        path => StdinSource::File(open_stdin(path)?),
    };
    let mut relay = Relay {
        streams: Vec::new(),
        tasks: Vec::new(),
        readers: Vec::new(),
        log_binary: None,
        killed: Default::default(),
    };
    let (stdout, stderr) = if stdout.starts_with("binary://") || stderr.starts_with("binary://") {
        let uri = if stdout.starts_with("binary://") { stdout } else { stderr };
        let (child, out, err) = start_log_binary(uri, owner)?;
        relay.log_binary = Some(child);
        (relay.add(Destination::Pipe(out))?, relay.add(Destination::Pipe(err))?)
    } else {
        let out = destination(stdout)?.map(|d| relay.add(d)).transpose()?;
        let err = destination(stderr)?.map(|d| relay.add(d)).transpose()?;
        (out.unwrap_or(StdoutSink::Null), err.unwrap_or(StdoutSink::Null))
    };
    Ok((Stdio { stdin, stdout, stderr }, relay))
}

impl Relay {
    /// A pipe for the guest whose other end is relayed to `destination`.
    fn add(&mut self, destination: Destination) -> std::io::Result<StdoutSink> {
        let (reader, writer) = std::io::pipe()?;
        self.streams.push((OwnedFd::from(reader), destination));
        Ok(StdoutSink::File(File::from(OwnedFd::from(writer))))
    }

    /// Start copying; call on the shim's executor.
    pub fn start(&mut self) -> std::io::Result<()> {
        for (from, to) in self.streams.drain(..) {
            let from = pipe::Receiver::from_owned_fd(from)?;
            let to = match to {
                Destination::Fifo { writer, reader } => {
                    self.readers.push(reader);
                    Writer::Pipe(pipe::Sender::from_file(writer)?)
                }
                Destination::Pipe(fd) => Writer::Pipe(pipe::Sender::from_owned_fd(fd)?),
                Destination::File(file) => Writer::File(file),
            };
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
            self.tasks.push((tokio::spawn(relay(from, to, stop_rx, self.killed.clone())), stop_tx));
        }
        Ok(())
    }

    /// The task is being killed: whatever it wrote that nobody has read by
    /// its end is not waited for (a kill's exit is never delayed).
    pub fn killed(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.killed.clone()
    }

    /// The task stopped: pass on what the guest wrote, then close every
    /// destination, even if the guest's thread still holds its pipe ends.
    /// The FIFOs' read ends stay open in what it returns (see [`HeldFifos`]).
    pub async fn close(mut self) -> HeldFifos {
        let mut handles = Vec::new();
        for (handle, stop) in self.tasks.drain(..) {
            let _ = stop.send(());
            handles.push(handle);
        }
        for mut handle in handles {
            if tokio::time::timeout(DRAIN_LIMIT, &mut handle).await.is_err() {
                tracing::warn!("container output was not read within {DRAIN_LIMIT:?}; dropping the rest");
                handle.abort();
            }
        }
        if let Some(child) = self.log_binary.take() {
            let _ = tokio::task::spawn_blocking(move || reap_log_binary(child)).await;
        }
        HeldFifos(std::mem::take(&mut self.readers))
    }
}

/// The shim's read ends of a stopped task's output FIFOs, kept until the
/// task is deleted. A FIFO's buffer lives only while some end is open: a
/// client whose own open of the read end is still completing (it waits for
/// a writer, and is woken when the shim's writer arrives) would otherwise
/// find the FIFO empty when the shim's writer is already gone. Read ends
/// do not delay the end-of-file containerd waits for.
pub struct HeldFifos(#[allow(dead_code)] Vec<File>);

impl Drop for Relay {
    fn drop(&mut self) {
        for (handle, _) in &self.tasks {
            handle.abort();
        }
        if let Some(mut child) = self.log_binary.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

enum Writer {
    /// A FIFO or pipe.
    Pipe(pipe::Sender),
    /// A regular file: writes do not wait for a reader.
    File(File),
}

impl Writer {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Pipe(sender) => sender.write_all(bytes).await,
            Self::File(file) => std::io::Write::write_all(file, bytes),
        }
    }
}

/// Copy the guest's pipe into its destination until the guest closes it or
/// the task is reported stopped; then copy only what is already in the pipe.
async fn relay(
    mut from: pipe::Receiver,
    mut to: Writer,
    stop: tokio::sync::oneshot::Receiver<()>,
    killed: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut stop = std::pin::pin!(stop);
    let mut stopping = false;
    let mut broken = false;
    loop {
        let read = if stopping {
            // A plain non-blocking read: tokio's `try_read` answers from the
            // readiness the reactor last saw, which may predate the write.
            match nix::unistd::read(&from, &mut buf) {
                Err(nix::errno::Errno::EAGAIN) => Ok(0),
                other => other.map_err(std::io::Error::from),
            }
        } else {
            tokio::select! {
                read = from.read(&mut buf) => read,
                _ = &mut stop => {
                    stopping = true;
                    continue;
                }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // A destination that fails (a file on a full disk) loses output, but
        // the guest keeps running: its pipe is still drained.
        if !broken {
            if let Err(err) = to.write_all(&buf[..n]).await {
                tracing::warn!(error = %err, "writing container output; discarding the rest");
                broken = true;
            }
        }
    }
    if let Writer::Pipe(sender) = &to {
        if !broken {
            until_read(sender.as_raw_fd(), UNREAD_WAIT, &killed).await;
        }
    }
}

/// How long a task that ended by itself keeps its FIFO open for output
/// nobody has read yet (within `DRAIN_LIMIT`).
const UNREAD_WAIT: Duration = Duration::from_millis(500);

/// Wait until the FIFO or pipe `fd` holds no unread bytes, for at most
/// `limit`. Closing the write end while the client's read end is still
/// being opened loses what is in the buffer: ctr opens its FIFOs in the
/// background, and under load that open can come after a short guest has
/// finished (1 of ~500 parallel `ctr run --rm` of hello came back empty);
/// the client only learns of the exit after this, so it always gets here.
/// A killed task waits for nothing; one whose client has left reports its
/// exit `limit` late.
async fn until_read(fd: std::os::fd::RawFd, limit: Duration, killed: &std::sync::atomic::AtomicBool) {
    let started = std::time::Instant::now();
    loop {
        if killed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD on a pipe fd we own, into a c_int.
        let ok = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) } == 0;
        if !ok || unread == 0 {
            return;
        }
        if started.elapsed() >= limit {
            tracing::debug!(unread, "container output left unread at the stop");
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A destination string from containerd, opened; `None` for "".
fn destination(uri: &str) -> std::io::Result<Option<Destination>> {
    if uri.is_empty() {
        return Ok(None);
    }
    if let Some(path) = uri.strip_prefix("file://") {
        let path = percent_decode(path);
        if let Some(dir) = Path::new(&path).parent() {
            std::fs::create_dir_all(dir)?;
        }
        return Ok(Some(Destination::File(append(&path)?)));
    }
    if is_fifo(uri) {
        // Our own read end first: the write-only open then cannot wait, and
        // the FIFO never breaks while the shim holds it.
        let reader = open_fifo(uri, FifoEnd::Read, Blocking::No)?;
        let writer = open_fifo(uri, FifoEnd::Write, Blocking::No)?;
        return Ok(Some(Destination::Fifo { writer, reader }));
    }
    Ok(Some(Destination::File(append(uri)?)))
}

/// Which end of a FIFO to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoEnd {
    Read,
    Write,
}

/// Whether the opened end blocks (what a process handed the FIFO as its
/// stdio expects), or stays non-blocking (for the shim's relays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    Yes,
    No,
}

/// One end of containerd's FIFO at `path`, close-on-exec. A read end never
/// waits for a writer to appear (it is opened non-blocking); a non-blocking
/// write end fails at once without a reader, a blocking one waits for it.
pub fn open_fifo(path: &str, end: FifoEnd, blocking: Blocking) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    match end {
        FifoEnd::Read => options.read(true),
        FifoEnd::Write => options.write(true),
    };
    let nonblocking_open = end == FifoEnd::Read || blocking == Blocking::No;
    if nonblocking_open {
        options.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = options.open(path)?;
    if nonblocking_open && blocking == Blocking::Yes {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

fn append(path: &str) -> std::io::Result<File> {
    OpenOptions::new().append(true).create(true).custom_flags(libc::O_CLOEXEC).open(path)
}

fn is_fifo(path: &str) -> bool {
    Path::new(path).metadata().is_ok_and(|m| m.file_type().is_fifo())
}

/// containerd's writer may connect to the stdin FIFO after the guest starts
/// reading (a client may also never attach to it), so the guest never
/// reads the FIFO directly, which would see a premature end-of-file. A thread
/// blocks in `open` until the writer arrives and copies into a pipe that the
/// guest reads; when containerd closes its end (CloseIO), the guest sees EOF.
fn open_stdin(path: &str) -> std::io::Result<File> {
    let (reader, mut writer) = std::io::pipe()?;
    let path = path.to_owned();
    std::thread::Builder::new().name("wasmlet-stdin".into()).spawn(move || match File::open(&path) {
        Ok(mut fifo) => {
            let _ = std::io::copy(&mut fifo, &mut writer);
        }
        Err(err) => tracing::warn!(%path, error = %err, "opening stdin"),
    })?;
    Ok(File::from(OwnedFd::from(reader)))
}

/// A `binary://` URI: the program's path and its arguments (each query
/// pair becomes `key value`, as containerd's runc shim passes them).
fn parse_binary_uri(uri: &str) -> Option<(String, Vec<String>)> {
    let rest = uri.strip_prefix("binary://")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return None;
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(percent_decode(key));
        if !value.is_empty() {
            args.push(percent_decode(value));
        }
    }
    Some((percent_decode(path), args))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Start the logging binary; the write ends of its stdout and stderr pipes.
fn start_log_binary(uri: &str, owner: &Owner<'_>) -> std::io::Result<(std::process::Child, OwnedFd, OwnedFd)> {
    let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("log URI {uri}: {why}"));
    let (path, args) = parse_binary_uri(uri).ok_or_else(|| invalid("expected binary:///absolute/path[?key=value…]"))?;
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    let (mut ready_r, ready_w) = std::io::pipe()?;
    let passed = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut command = std::process::Command::new(&path);
    command
        .args(&args)
        .env("CONTAINER_ID", owner.id)
        .env("CONTAINER_NAMESPACE", owner.namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Move the three out of the way first (one may already be 3, 4 or
            // 5), close-on-exec: only the dup2 targets reach the program.
            let mut high = [0; 3];
            for (slot, fd) in high.iter_mut().zip(passed) {
                *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                if *slot < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (target, fd) in (3..).zip(high) {
                if libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("starting the logging binary {path}: {e}")))?;
    drop((out_r, err_r, ready_w));
    // Ready when it closes fd 5 (or writes to it); bounded, unlike runc's shim.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = tx.send(ready_r.read(&mut byte));
    });
    match rx.recv_timeout(LOG_BINARY_LIMIT) {
        Ok(_) => Ok((child, OwnedFd::from(out_w), OwnedFd::from(err_w))),
        Err(_) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the logging binary {path} did not signal ready (close fd 5) within {LOG_BINARY_LIMIT:?}"),
            ))
        }
    }
}

/// Its input has ended: give the logging binary time to finish, then kill it.
fn reap_log_binary(mut child: std::process::Child) {
    let started = std::time::Instant::now();
    while started.elapsed() < LOG_BINARY_LIMIT {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::warn!("the logging binary did not exit after its input ended; killing it");
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_uri_gives_path_and_arguments() {
        assert_eq!(
            parse_binary_uri("binary:///usr/bin/logger?level=debug&flag&path=%2Fvar%2Flog"),
            Some((
                "/usr/bin/logger".into(),
                vec!["level".into(), "debug".into(), "flag".into(), "path".into(), "/var/log".into()]
            ))
        );
        assert_eq!(parse_binary_uri("binary://relative/logger"), None);
        assert_eq!(parse_binary_uri("file:///x"), None);
    }

    #[tokio::test]
    async fn fifo_output_survives_a_reader_leaving_and_closes_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stdout");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // containerd's reader: opened first, as containerd does, then gone.
        let reader = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
        let owner = Owner { id: "c", namespace: "n" };
        let (stdio, mut relay) = open("", fifo.to_str().unwrap(), "", &owner).unwrap();
        relay.start().unwrap();
        drop(reader);
        let StdoutSink::File(mut guest) = stdio.stdout else { panic!("no pipe for stdout") };
        // No EPIPE for the guest: the shim holds a read end.
        std::io::Write::write_all(&mut guest, b"after the reader left\n").unwrap();
        // A new reader, then a stop while the guest still holds its end:
        // the reader gets what was written, then end-of-file.
        let mut reader = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
        // The shim's read end stays open after the stop; EOF still comes.
        let _held = relay.close().await;
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(String::from_utf8_lossy(&seen), "after the reader left\n");
        drop(guest);
    }
}
