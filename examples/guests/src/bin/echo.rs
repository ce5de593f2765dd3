//! Prints each argument and each environment variable (sorted), one per line.
fn main() {
    for (i, arg) in std::env::args().enumerate() {
        println!("arg[{i}]={arg}");
    }
    let mut vars: Vec<_> = std::env::vars().collect();
    vars.sort();
    for (name, value) in vars {
        println!("env {name}={value}");
    }
    if let Ok(cwd) = std::env::current_dir() {
        println!("cwd {}", cwd.display());
    }
}
