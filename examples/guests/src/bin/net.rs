//! Tries to connect to the address given (default 127.0.0.1:9); prints the result.
fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9".into());
    match std::net::TcpStream::connect(&addr) {
        Ok(_) => println!("connected {addr}"),
        Err(err) => {
            println!("denied: {err}");
            std::process::exit(3);
        }
    }
}
