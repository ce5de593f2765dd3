//! Prints `sleeping`, sleeps the milliseconds given (default forever), prints `awake`.
use std::io::Write;

fn main() {
    let ms: Option<u64> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    // Detached (`ctr run -d`), nobody may read stdout: ignore EPIPE, as a
    // long-running process should.
    let _ = writeln!(std::io::stdout(), "sleeping");
    let _ = std::io::stdout().flush();
    match ms {
        Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
        None => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
    let _ = writeln!(std::io::stdout(), "awake");
}
