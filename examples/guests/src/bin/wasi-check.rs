//! WASI conformance checks, one per subcommand, in the manner of
//! wasi-testsuite: each prints what it saw (or `ok`) and exits 0, or says
//! what differed and exits 1. `scripts/conformance` runs every check built
//! for each WASI level (wasm32-wasip1: 0.1, wasm32-wasip2: 0.2) with the
//! arguments, environment, preopens and stdin its table names, and compares
//! stdout and the exit status (`random`: two runs must differ).
use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime};

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["argv", ..] => Ok(argv.join(" ")),
        ["env", name] => std::env::var(name).map_err(|e| format!("{name}: {e}")),
        ["env-count"] => Ok(std::env::vars().count().to_string()),
        ["stdin"] => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).map(|_| input.trim_end().to_owned()).map_err(|e| e.to_string())
        }
        ["stderr", text] => {
            eprintln!("{text}");
            Ok("ok".into())
        }
        ["exit", code] => std::process::exit(code.parse().unwrap_or(2)),
        ["read", path] => std::fs::read_to_string(path).map(|s| s.trim_end().to_owned()).map_err(|e| e.to_string()),
        ["write-read", path, text] => write_read(path, text),
        ["fs-ops", dir] => fs_ops(dir),
        ["list", dir] => std::fs::read_dir(dir).map_err(|e| e.to_string()).map(|entries| {
            let mut names: Vec<_> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            names.join(",")
        }),
        ["denied", path] => match std::fs::read(path) {
            Ok(_) => Err(format!("{path} was readable without a preopen")),
            Err(_) => Ok("denied".into()),
        },
        ["read-only", path] => match std::fs::OpenOptions::new().append(true).open(path) {
            Ok(_) => Err(format!("{path} opened for writing in a read-only preopen")),
            Err(_) => Ok("read-only".into()),
        },
        ["cwd-read", relative] => std::fs::read_to_string(relative).map(|s| s.trim_end().to_owned()).map_err(|e| e.to_string()),
        ["clocks"] => clocks(),
        ["random"] => random(),
        _ => Err(format!("unknown check {args:?}")),
    };
    match outcome {
        Ok(seen) => {
            println!("{seen}");
            let _ = std::io::stdout().flush();
        }
        Err(why) => {
            println!("FAIL: {why}");
            std::process::exit(1);
        }
    }
}

fn write_read(path: &str, text: &str) -> Result<String, String> {
    std::fs::write(path, text).map_err(|e| format!("write: {e}"))?;
    let back = std::fs::read_to_string(path).map_err(|e| format!("read back: {e}"))?;
    std::fs::remove_file(path).map_err(|e| format!("remove: {e}"))?;
    Ok(back)
}

/// mkdir, create, rename, metadata, remove: the calls a program's data dir sees.
fn fs_ops(dir: &str) -> Result<String, String> {
    let base = format!("{dir}/wasi-check-fs");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir(&base).map_err(|e| format!("mkdir: {e}"))?;
    std::fs::write(format!("{base}/a"), b"12345").map_err(|e| format!("create: {e}"))?;
    std::fs::rename(format!("{base}/a"), format!("{base}/b")).map_err(|e| format!("rename: {e}"))?;
    let len = std::fs::metadata(format!("{base}/b")).map_err(|e| format!("stat: {e}"))?.len();
    if std::fs::metadata(format!("{base}/a")).is_ok() {
        return Err("the renamed file is still there".into());
    }
    std::fs::remove_file(format!("{base}/b")).map_err(|e| format!("unlink: {e}"))?;
    std::fs::remove_dir(&base).map_err(|e| format!("rmdir: {e}"))?;
    Ok(format!("ok {len}"))
}

fn clocks() -> Result<String, String> {
    let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_err(|e| e.to_string())?;
    // After 2020 and before 2100: a real wall clock.
    if !(1_577_836_800..4_102_444_800).contains(&wall.as_secs()) {
        return Err(format!("wall clock reads {wall:?}"));
    }
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    let slept = start.elapsed();
    if slept < Duration::from_millis(20) {
        return Err(format!("slept 20 ms, the monotonic clock says {slept:?}"));
    }
    Ok("ok".into())
}

/// A value drawn from the host's randomness (std's hash seeds come from
/// `random_get` / `wasi:random`): two runs must print different ones.
fn random() -> Result<String, String> {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    Ok(format!("{:016x}", hasher.finish()))
}
