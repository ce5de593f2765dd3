//! A hostile registry on loopback: it answers the distribution API's
//! version check, then serves every manifest as a flood — an endless
//! chunked body, or a `Content-Length` far past any cap — and counts what
//! it managed to send before the client hung up.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
pub enum Flood {
    /// `Transfer-Encoding: chunked`, never ending.
    Endless,
    /// `Content-Length` of this many bytes, then that many (or until cut).
    Declared(u64),
}

pub struct HostileRegistry {
    pub addr: String,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl HostileRegistry {
    pub fn start(flood: Flood) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopped) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || serve(client, flood, &counter));
            }
        });
        Self { addr, sent, stop }
    }

    /// Manifest body bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Requests on one keep-alive connection, until the client leaves.
fn serve(mut client: TcpStream, flood: Flood, sent: &AtomicU64) {
    loop {
        let Some(path) = read_request_path(&mut client) else { return };
        if !path.contains("/manifests/") {
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}";
            if client.write_all(answer).is_err() {
                return;
            }
            continue;
        }
        let framing = match flood {
            Flood::Endless => "Transfer-Encoding: chunked".to_owned(),
            Flood::Declared(length) => format!("Content-Length: {length}"),
        };
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n{framing}\r\n\r\n");
        if client.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b' '; 64 << 10];
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        loop {
            let wrote = match flood {
                Flood::Endless => client.write_all(&framed),
                Flood::Declared(_) => client.write_all(&chunk),
            };
            if wrote.is_err() {
                return;
            }
            sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            if let Flood::Declared(length) = flood {
                if sent.load(Ordering::SeqCst) >= length {
                    return;
                }
            }
        }
    }
}

fn read_request_path(client: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace().nth(1).map(str::to_owned)
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}
