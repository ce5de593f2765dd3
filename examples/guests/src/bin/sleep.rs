//! Prints `sleeping`, sleeps the milliseconds given (default forever), prints `awake`.
use std::io::Write;

fn main() {
    let ms: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(u64::MAX / 4);
    println!("sleeping");
    let _ = std::io::stdout().flush();
    std::thread::sleep(std::time::Duration::from_millis(ms));
    println!("awake");
}
