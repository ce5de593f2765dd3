//! Filesystem probe: `write PATH TEXT`, `read PATH`, `list DIR`, `open PATH`.
//! Failures are printed as `denied: ...` and exit with status 3.
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["write", path, text] => std::fs::File::create(path).and_then(|mut f| f.write_all(text.as_bytes())).map(|()| format!("wrote {path}")),
        ["read", path] => std::fs::read_to_string(path),
        ["list", dir] => std::fs::read_dir(dir).map(|entries| {
            let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            names.join("\n")
        }),
        ["open", path] => std::fs::File::open(path).map(|_| format!("opened {path}")),
        _ => {
            eprintln!("usage: files write PATH TEXT | read PATH | list DIR | open PATH");
            std::process::exit(2);
        }
    };
    match result {
        Ok(text) => println!("{text}"),
        Err(err) => {
            println!("denied: {err}");
            std::process::exit(3);
        }
    }
}
