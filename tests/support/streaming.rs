//! Kubernetes' streaming protocol as `kubectl exec -it` and `kubectl attach`
//! speak it to the CRI stream server (containerd's, on the host's loopback):
//! a WebSocket with subprotocol `v4.channel.k8s.io`, each binary message
//! starting with its channel (0 stdin, 1 stdout, 2 stderr, 3 the final
//! status as JSON, 4 terminal resizes as JSON).

use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;

pub struct Session {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The status the server sends when the process ends (channel 3).
    pub status: Option<String>,
    /// The server closed the stream.
    pub closed: bool,
}

impl Session {
    /// Open the stream at `url`, the `http://` URL an Exec/Attach answer holds.
    pub fn connect(url: &str) -> Self {
        let ws_url = url.replacen("http://", "ws://", 1);
        let mut request = ws_url.as_str().into_client_request().expect("stream URL");
        request.headers_mut().insert("Sec-WebSocket-Protocol", "v4.channel.k8s.io".parse().unwrap());
        let (socket, response) =
            tungstenite::connect(request).unwrap_or_else(|e| panic!("connecting to {ws_url}: {e}"));
        assert_eq!(
            response.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()),
            Some("v4.channel.k8s.io"),
            "{response:?}"
        );
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        }
        Self { socket, stdout: Vec::new(), stderr: Vec::new(), status: None, closed: false }
    }

    fn send(&mut self, channel: u8, bytes: &[u8]) {
        let mut message = vec![channel];
        message.extend_from_slice(bytes);
        self.socket.send(Message::Binary(message.into())).expect("sending on the stream");
    }

    pub fn stdin(&mut self, bytes: &[u8]) {
        self.send(STDIN, bytes);
    }

    /// What a user's terminal sends when its window changes.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.send(RESIZE, format!(r#"{{"Width":{width},"Height":{height}}}"#).as_bytes());
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Read from the stream until `done` holds; panics after `within`,
    /// naming `what` and what did arrive.
    pub fn read_until(&mut self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < within && !self.closed,
                "{what}: not seen within {within:?} (closed: {}); stdout {:?}, stderr {:?}, status {:?}",
                self.closed,
                self.stdout_text(),
                String::from_utf8_lossy(&self.stderr),
                self.status
            );
            match self.socket.read() {
                Ok(Message::Binary(bytes)) => self.take(&bytes),
                Ok(Message::Close(_)) => self.closed = true,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => self.closed = true,
                Err(e) => panic!("{what}: reading the stream: {e}"),
            }
        }
    }

    fn take(&mut self, message: &[u8]) {
        let Some((&channel, data)) = message.split_first() else {
            return;
        };
        match channel {
            STDOUT => self.stdout.extend_from_slice(data),
            STDERR => self.stderr.extend_from_slice(data),
            STATUS if !data.is_empty() => self.status = Some(String::from_utf8_lossy(data).into_owned()),
            _ => {}
        }
    }
}
