//! WASI 0.3 conformance checks, the same subcommands as
//! `examples/guests/src/bin/wasi-check.rs` (WASI 0.1 and 0.2) but made
//! through WASI 0.3's interfaces only: `wasi:cli` streams for stdio,
//! `wasi:filesystem` 0.3 for files, `wasi:clocks` 0.3's `wait-for`.
//! `scripts/conformance` runs them as its WASI 0.3 level.
use wasip3::cli::{environment, exit};
use wasip3::clocks::{monotonic_clock, system_clock};
use wasip3::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
use wasmlet_guests_p3::{open, read_all, read_stdin, resolve, write_all, write_stderr, write_stdout};

wasip3::cli::command::export!(Check);

struct Check;

impl wasip3::exports::cli::run::Guest for Check {
    async fn run() -> Result<(), ()> {
        let argv = environment::get_arguments();
        let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
        let outcome = match args.as_slice() {
            ["argv", ..] => Ok(argv.join(" ")),
            ["env", name] => {
                environment::get_environment().into_iter().find(|(k, _)| k == name).map(|(_, v)| v).ok_or_else(|| format!("{name}: not set"))
            }
            ["env-count"] => Ok(environment::get_environment().len().to_string()),
            ["stdin"] => read_stdin().await.map(|b| String::from_utf8_lossy(&b).trim_end().to_owned()),
            ["stderr", text] => write_stderr(format!("{text}\n").as_bytes()).await.map(|()| "ok".into()),
            ["exit", code] => {
                exit::exit_with_code(code.parse().unwrap_or(2));
                Err("exit-with-code returned".into())
            }
            ["read", path] => read(path).await,
            ["write-read", path, text] => write_read(path, text).await,
            ["fs-ops", dir] => fs_ops(dir).await,
            ["list", dir] => list(dir).await,
            ["denied", path] => match read(path).await {
                Ok(_) => Err(format!("{path} was readable without a preopen")),
                Err(_) => Ok("denied".into()),
            },
            ["read-only", path] => match open(path, OpenFlags::empty(), DescriptorFlags::WRITE).await {
                Ok(_) => Err(format!("{path} opened for writing in a read-only preopen")),
                Err(_) => Ok("read-only".into()),
            },
            ["cwd-read", relative] => read(relative).await,
            ["clocks"] => clocks().await,
            ["random"] => Ok(format!("{:016x}", wasip3::random::random::get_random_u64())),
            _ => Err(format!("unknown check {args:?}")),
        };
        match outcome {
            Ok(seen) => write_stdout(format!("{seen}\n").as_bytes()).await.map_err(drop),
            Err(why) => {
                let _ = write_stdout(format!("FAIL: {why}\n").as_bytes()).await;
                exit::exit_with_code(1);
                Err(())
            }
        }
    }
}

async fn read(path: &str) -> Result<String, String> {
    let file = open(path, OpenFlags::empty(), DescriptorFlags::READ).await?;
    Ok(String::from_utf8_lossy(&read_all(&file).await?).trim_end().to_owned())
}

async fn write_read(path: &str, text: &str) -> Result<String, String> {
    let flags = DescriptorFlags::READ | DescriptorFlags::WRITE;
    let file = open(path, OpenFlags::CREATE | OpenFlags::TRUNCATE, flags).await?;
    write_all(&file, text.as_bytes()).await?;
    let back = read(path).await?;
    let (dir, rest) = resolve(path).ok_or("no preopen")?;
    dir.unlink_file_at(rest).await.map_err(|e| format!("remove: {e:?}"))?;
    Ok(back)
}

/// mkdir, create, rename, stat, unlink, rmdir: the calls a program's data dir sees.
async fn fs_ops(path: &str) -> Result<String, String> {
    let dir = open(path, OpenFlags::DIRECTORY, DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY).await?;
    let _ = dir.remove_directory_at("wasi-check-fs".into()).await;
    dir.create_directory_at("wasi-check-fs".into()).await.map_err(|e| format!("mkdir: {e:?}"))?;
    let flags = DescriptorFlags::READ | DescriptorFlags::WRITE;
    let file = dir.open_at(PathFlags::empty(), "wasi-check-fs/a".into(), OpenFlags::CREATE, flags).await.map_err(|e| format!("create: {e:?}"))?;
    write_all(&file, b"12345").await?;
    drop(file);
    dir.rename_at("wasi-check-fs/a".into(), &dir, "wasi-check-fs/b".into()).await.map_err(|e| format!("rename: {e:?}"))?;
    let len = dir.stat_at(PathFlags::empty(), "wasi-check-fs/b".into()).await.map_err(|e| format!("stat: {e:?}"))?.size;
    if dir.stat_at(PathFlags::empty(), "wasi-check-fs/a".into()).await.is_ok() {
        return Err("the renamed file is still there".into());
    }
    dir.unlink_file_at("wasi-check-fs/b".into()).await.map_err(|e| format!("unlink: {e:?}"))?;
    dir.remove_directory_at("wasi-check-fs".into()).await.map_err(|e| format!("rmdir: {e:?}"))?;
    Ok(format!("ok {len}"))
}

async fn list(path: &str) -> Result<String, String> {
    let dir = open(path, OpenFlags::DIRECTORY, DescriptorFlags::READ).await?;
    let (entries, done) = dir.read_directory();
    let mut names: Vec<String> = entries.collect().await.into_iter().map(|e| e.name).collect();
    done.await.map_err(|e| format!("read-directory: {e:?}"))?;
    names.sort();
    Ok(names.join(","))
}

async fn clocks() -> Result<String, String> {
    let wall = system_clock::now();
    // After 2020 and before 2100: a real wall clock.
    if !(1_577_836_800..4_102_444_800).contains(&wall.seconds) {
        return Err(format!("wall clock reads {}s", wall.seconds));
    }
    let start = monotonic_clock::now();
    monotonic_clock::wait_for(20_000_000).await;
    let slept = monotonic_clock::now() - start;
    if slept < 20_000_000 {
        return Err(format!("waited 20 ms, the monotonic clock says {slept} ns"));
    }
    Ok("ok".into())
}
