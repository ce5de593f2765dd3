//! Prints `spinning` and then burns CPU forever without calling the host.
use std::io::Write;

fn main() {
    println!("spinning");
    let _ = std::io::stdout().flush();
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
