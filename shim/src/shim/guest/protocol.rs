//! Messages between the shim and its guest process: newline-delimited JSON
//! on the control socket (fd 3 in the child).

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// The fd the control socket has in the guest process.
pub const CONTROL_FD: i32 = 3;

/// What to run, and with what (stdio is fds 0–2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Launch {
    pub id: String,
    /// The program's digest: its compiled code is in the compile cache.
    pub digest: String,
    /// The code is the concurrent engine's (component-model async), not
    /// the standard one's.
    #[serde(default)]
    pub concurrent_engine: bool,
    pub cache_dir: PathBuf,
    /// A core module's export to call instead of `_start`.
    pub export: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub preopens: Vec<Preopen>,
    pub network: bool,
    /// fd 0 is the guest's stdin (else it has none).
    pub stdin: bool,
    pub memory: Option<u64>,
    /// Serve HTTP on the listener at fd 4 instead of running to completion.
    pub serve: Option<Serve>,
    /// The compiled code follows the launch on the control socket, this
    /// many bytes (the compile cache could not keep it).
    #[serde(default)]
    pub code_bytes: Option<u64>,
    /// That code, on the shim's side.
    #[serde(skip)]
    pub code: Option<std::sync::Arc<Vec<u8>>>,
}

/// Send the launch, then the code it carries (see [`Launch::code_bytes`]).
pub fn send_launch(to: &mut impl Write, launch: &Launch) -> std::io::Result<()> {
    send(to, &ToGuest::Launch(Box::new(launch.clone())))?;
    if let Some(code) = &launch.code {
        to.write_all(code)?;
        to.flush()?;
    }
    Ok(())
}

/// The fd an HTTP function's listener has in the guest process.
pub const LISTENER_FD: i32 = 4;

/// The lowest fd the guest process's first preopened folder may have; the
/// rest follow (each spawn path puts them above every fd it still holds).
pub const PREOPEN_FD_BASE: i32 = 10;

/// How an HTTP function admits and bounds requests (`ServeConfig`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Serve {
    pub max_in_flight: usize,
    pub max_queued: usize,
    pub request_timeout_ms: u64,
    pub max_body_bytes: u64,
    /// Requests a wasi:http 0.3 instance takes in its life, and at once (a
    /// launch from a shim older than these fields: one, one at a time).
    #[serde(default = "one")]
    pub instance_requests: usize,
    #[serde(default = "one")]
    pub instance_concurrency: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ToGuest {
    Launch(Box<Launch>),
    Start,
    /// The container's memory limit changed (Update): the guest's new cap.
    Memory(Option<u64>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum FromGuest {
    /// Loaded and waiting for Start.
    Ready,
    /// An HTTP function's socket is listening and an instance could be made.
    Serving,
    /// Could not start the guest (the run never began).
    Failed(String),
    /// The run ended: its exit status as containerd reports it.
    Finished { status: u32, oom: bool, message: Option<String> },
}

pub fn send<T: Serialize>(to: &mut impl Write, message: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    to.write_all(&line)?;
    to.flush()
}

/// The next message, `None` at end of stream.
pub fn receive<T: for<'de> Deserialize<'de>>(from: &mut impl BufRead) -> std::io::Result<Option<T>> {
    let mut line = String::new();
    if from.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line).map(Some).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_one_per_line() {
        let launch = Launch {
            id: "c1".into(),
            digest: "sha256:00".into(),
            concurrent_engine: true,
            cache_dir: "/var/lib/wasmlet/cache".into(),
            export: None,
            args: vec!["app.wasm".into(), "a b".into()],
            env: vec![("K".into(), "v\nw".into())],
            cwd: Some("/".into()),
            preopens: vec![Preopen { host: "/data".into(), guest: "/data".into(), read_only: true }],
            network: false,
            stdin: true,
            memory: Some(1 << 20),
            serve: Some(Serve {
                max_in_flight: 4,
                max_queued: 8,
                request_timeout_ms: 2000,
                max_body_bytes: 1024,
                instance_requests: 128,
                instance_concurrency: 16,
            }),
            code_bytes: Some(5),
            code: Some(std::sync::Arc::new(b"code\n".to_vec())),
        };
        let mut wire = Vec::new();
        send_launch(&mut wire, &launch).unwrap();
        send(&mut wire, &ToGuest::Start).unwrap();
        let mut reader = std::io::BufReader::new(wire.as_slice());
        let Some(ToGuest::Launch(received)) = receive::<ToGuest>(&mut reader).unwrap() else { panic!("no launch") };
        assert_eq!(*received, Launch { code: None, ..launch }, "the code is not in the JSON");
        let mut code = [0u8; 5];
        std::io::Read::read_exact(&mut reader, &mut code).unwrap();
        assert_eq!(&code, b"code\n", "the code follows the launch line");
        assert_eq!(receive::<ToGuest>(&mut reader).unwrap(), Some(ToGuest::Start));
        assert_eq!(receive::<ToGuest>(&mut reader).unwrap(), None);
    }

    #[test]
    fn a_serve_without_the_reuse_fields_means_one_request_per_instance() {
        let old = r#"{"max_in_flight":4,"max_queued":8,"request_timeout_ms":2000,"max_body_bytes":1024}"#;
        let serve: Serve = serde_json::from_str(old).unwrap();
        assert_eq!((serve.instance_requests, serve.instance_concurrency), (1, 1));
    }
}
