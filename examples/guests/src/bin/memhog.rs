//! Allocates and touches memory in 1 MiB steps up to the MiB given as the
//! first argument (default: forever), printing progress, waiting the
//! milliseconds given as the second argument between steps (default 0).
//! Used to show the memory limit: past it the allocator aborts and the run
//! reports OOM.
use std::io::Write;

fn main() {
    let limit: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(usize::MAX);
    let pause: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for mib in 1..=limit {
        chunks.push(vec![0xA5; 1 << 20]);
        if pause > 0 {
            std::thread::sleep(std::time::Duration::from_millis(pause));
        }
        if mib % 8 == 0 {
            println!("allocated {mib} MiB");
            let _ = std::io::stdout().flush();
        }
    }
    println!("done: {} MiB held", chunks.len());
}
