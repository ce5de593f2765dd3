//! A TCP relay on loopback that breaks connections the way networks do,
//! in front of a real service: after a number of response bytes it either
//! cuts the connection or stalls it (holds it open, sending nothing).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Relay everything.
    None = 0,
    /// Close both sides after `after_bytes` of response.
    Cut = 1,
    /// Stop relaying after `after_bytes` of response, keeping the connection open.
    Stall = 2,
}

pub struct FaultyRelay {
    pub addr: String,
    fault: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
}

struct Shared {
    fault: Arc<AtomicU8>,
    after_bytes: usize,
    stop: Arc<AtomicBool>,
}

impl FaultyRelay {
    /// Relay 127.0.0.1:<new port> → `upstream`, applying `fault` to each new
    /// connection once `after_bytes` of its response have passed.
    pub fn start(upstream: &str, fault: Fault, after_bytes: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let relay = Self { addr, fault: Arc::new(AtomicU8::new(fault as u8)), stop: Arc::new(AtomicBool::new(false)) };
        let shared = Arc::new(Shared { fault: relay.fault.clone(), after_bytes, stop: relay.stop.clone() });
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || relay_connection(client, server, &shared));
            }
        });
        relay
    }

    /// The fault for connections opened from now on.
    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }
}

fn relay_connection(client: TcpStream, server: TcpStream, shared: &Shared) {
    let fault = match shared.fault.load(Ordering::SeqCst) {
        1 => Fault::Cut,
        2 => Fault::Stall,
        _ => Fault::None,
    };
    let (Ok(mut client_reader), Ok(mut server_writer)) = (client.try_clone(), server.try_clone()) else { return };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut server_writer);
        let _ = server_writer.shutdown(Shutdown::Write);
    });
    let (mut server_reader, mut client_writer) = (server, client);
    let mut relayed = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match server_reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = if fault == Fault::None { n } else { n.min(shared.after_bytes.saturating_sub(relayed)) };
        if client_writer.write_all(&buf[..allowed]).is_err() {
            break;
        }
        relayed += allowed;
        if allowed < n {
            if fault == Fault::Stall {
                while !shared.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            break;
        }
    }
    let _ = client_writer.shutdown(Shutdown::Both);
    let _ = server_reader.shutdown(Shutdown::Both);
}

impl Drop for FaultyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}
