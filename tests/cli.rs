//! The `wasmlet` CLI end to end: real binary, real guests built from source,
//! a private compile cache per test.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};
use wasmlet_tests::{guest, seen, wat_guest, Wasmlet};

#[test]
fn hello_module_and_component_print_and_exit_zero() {
    let w = Wasmlet::new();
    for path in [guest("hello", false), guest("hello", true), wat_guest("hello")] {
        let s = seen(&w.run(["run".as_ref(), path.as_os_str()]));
        assert_eq!(s.code, Some(0), "{}: {s:?}", path.display());
        assert_eq!(s.stdout, "hello from wasmlet\n", "{}", path.display());
    }
}

#[test]
fn wat_text_runs_directly() {
    let w = Wasmlet::new();
    let text = wasmlet_tests::repo_root().join("examples/guests/wat/hello.wat");
    let s = seen(&w.run(["run".as_ref(), text.as_os_str()]));
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
}

#[test]
fn args_and_env_are_exactly_what_was_granted() {
    let w = Wasmlet::new();
    for p2 in [false, true] {
        let echo = guest("echo", p2);
        let out = w
            .command()
            .env("WASMLET_TEST_HOST_ONLY", "leaked")
            .env("WASMLET_TEST_COPIED", "from-host")
            .args(["run", "--env", "GREETING=hi there", "--env", "EMPTY=", "--env", "WASMLET_TEST_COPIED"])
            .arg(&echo)
            .args(["one", "two words", "--flag"])
            .output()
            .unwrap();
        let s = seen(&out);
        assert_eq!(s.code, Some(0), "{s:?}");
        let lines: Vec<&str> = s.stdout.lines().filter(|l| !l.starts_with("cwd ")).collect();
        assert_eq!(
            lines,
            [
                // The file's name, as wasmtime passes it: not where the host keeps it.
                "arg[0]=echo.wasm",
                "arg[1]=one",
                "arg[2]=two words",
                "arg[3]=--flag",
                "env EMPTY=",
                "env GREETING=hi there",
                "env WASMLET_TEST_COPIED=from-host",
            ],
            "p2={p2}"
        );
    }
}

#[test]
fn guest_writes_and_reads_files_in_its_preopen() {
    let w = Wasmlet::new();
    for p2 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("input.txt"), "from the host").unwrap();
        let files = guest("files", p2);
        let mount = format!("{}::/data", dir.path().display());
        let s = seen(&w.run([
            "run",
            "--dir",
            &mount,
            files.to_str().unwrap(),
            "write",
            "/data/out.txt",
            "written by the guest",
        ]));
        assert_eq!(s.code, Some(0), "{s:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap(), "written by the guest");
        let s = seen(&w.run(["run", "--dir", &mount, files.to_str().unwrap(), "read", "/data/input.txt"]));
        assert_eq!((s.code, s.stdout.as_str()), (Some(0), "from the host\n"), "{s:?}");
    }
}

#[test]
fn relative_paths_resolve_against_cwd() {
    let w = Wasmlet::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    std::fs::write(dir.path().join("work/note.txt"), "in cwd").unwrap();
    let root = format!("{}::/", dir.path().display());
    for p2 in [false, true] {
        let files = guest("files", p2);
        let s = seen(&w.run(["run", "--ro-dir", &root, "--cwd", "/work", files.to_str().unwrap(), "read", "note.txt"]));
        assert_eq!((s.code, s.stdout.as_str()), (Some(0), "in cwd\n"), "p2={p2} {s:?}");
    }
}

#[test]
fn read_only_preopen_refuses_writes() {
    let w = Wasmlet::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "original").unwrap();
    let files = guest("files", false);
    let mount = format!("{}::/ro", dir.path().display());
    let s = seen(&w.run(["run", "--ro-dir", &mount, files.to_str().unwrap(), "write", "/ro/keep.txt", "overwritten"]));
    assert_eq!(s.code, Some(3), "{s:?}");
    assert!(s.stdout.starts_with("denied:"), "{s:?}");
    assert_eq!(std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(), "original");
    let s = seen(&w.run(["run", "--ro-dir", &mount, files.to_str().unwrap(), "read", "/ro/keep.txt"]));
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "original\n"), "{s:?}");
}

#[test]
fn guest_cannot_escape_its_preopens() {
    let w = Wasmlet::new();
    let outer = tempfile::tempdir().unwrap();
    let jail = outer.path().join("jail");
    std::fs::create_dir(&jail).unwrap();
    std::fs::write(outer.path().join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), jail.join("link-out")).unwrap();
    std::os::unix::fs::symlink("/etc", jail.join("etc-link")).unwrap();
    let mount = format!("{}::/jail", jail.display());
    for p2 in [false, true] {
        let files = guest("files", p2);
        for target in ["/jail/../secret.txt", "/etc/passwd", "/jail/link-out", "/jail/etc-link/passwd", "../secret.txt"]
        {
            let s = seen(&w.run(["run", "--dir", &mount, "--cwd", "/jail", files.to_str().unwrap(), "read", target]));
            assert_eq!(s.code, Some(failed(p2)), "p2={p2} {target} must be refused: {s:?}");
            assert!(s.stdout.starts_with("denied:"), "{s:?}");
            assert!(!s.stdout.contains("top secret") && !s.stdout.contains("root:"), "{s:?}");
        }
        // Writing through a symlink that points out is refused too.
        let s = seen(&w.run(["run", "--dir", &mount, files.to_str().unwrap(), "write", "/jail/link-out", "pwned"]));
        assert_eq!(s.code, Some(failed(p2)), "{s:?}");
        assert_eq!(std::fs::read_to_string(outer.path().join("secret.txt")).unwrap(), "top secret");
    }
}

#[test]
fn no_preopen_means_no_filesystem() {
    let w = Wasmlet::new();
    let s = seen(&w.run(["run".as_ref(), guest("files", false).as_os_str(), "list".as_ref(), "/".as_ref()]));
    assert_eq!(s.code, Some(3), "{s:?}");
}

#[test]
fn network_is_denied_unless_granted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let w = Wasmlet::new();
    let net = guest("net", true);
    let s = seen(&w.run(["run", net.to_str().unwrap(), &addr]));
    assert_eq!(s.code, Some(failed(true)), "{s:?}");
    assert!(s.stdout.starts_with("denied:"), "{s:?}");
    let s = seen(&w.run(["run", "--net", net.to_str().unwrap(), &addr]));
    assert_eq!((s.code, s.stdout.trim()), (Some(0), format!("connected {addr}").as_str()), "{s:?}");
}

#[test]
fn proc_exit_status_is_the_process_status() {
    let w = Wasmlet::new();
    // WASI 0.2's `wasi:cli/exit` carries a result: a component can only say 0 or 1.
    // A module's exit status is exit(2)'s: 0-255, not only WASI's 0-125.
    let cases = [
        (false, 0, 0),
        (false, 7, 7),
        (false, 125, 125),
        (false, 200, 200),
        (false, 255, 255),
        (true, 0, 0),
        (true, 42, 1),
    ];
    for (p2, code, status) in cases {
        let exit = guest("exit", p2);
        let s = seen(&w.run(["run", exit.to_str().unwrap(), &code.to_string()]));
        assert_eq!(s.code, Some(status), "p2={p2} {s:?}");
        assert_eq!(s.stdout, format!("exiting with {code}\n"));
    }
}

#[test]
fn trap_exits_134_with_the_trap_on_stderr() {
    let w = Wasmlet::new();
    let s = seen(&w.run(["run".as_ref(), wat_guest("recursion").as_os_str()]));
    assert_eq!(s.code, Some(134), "{s:?}");
    assert!(s.stderr.contains("call stack exhausted"), "{s:?}");
    let s = seen(&w.run(["run".as_ref(), guest("recurse", false).as_os_str()]));
    assert_eq!(s.code, Some(134), "{s:?}");
    assert!(s.stderr.contains("trapped"), "{s:?}");
}

#[test]
fn memory_limit_refuses_growth_and_reports_oom() {
    let w = Wasmlet::new();
    // memory.grow returns -1 at the limit: the guest sees it and exits with the MiB it got.
    let memgrow = wat_guest("memgrow");
    let s = seen(&w.run(["run", "--memory", "5Mi", memgrow.to_str().unwrap()]));
    assert_eq!(s.code, Some(5), "{s:?}");
    let s = seen(&w.run(["run".as_ref(), memgrow.as_os_str()]));
    assert_eq!(s.code, Some(120), "unlimited run stops at its own cap: {s:?}");
    // A Rust guest aborts when its allocator is refused: OOM, status 137.
    let hog = guest("memhog", false);
    let s = seen(&w.run(["run", "--memory", "32Mi", hog.to_str().unwrap(), "64"]));
    assert_eq!(s.code, Some(137), "{s:?}");
    assert!(s.stderr.contains("memory limit of 33554432 bytes"), "{s:?}");
    assert!(s.stdout.contains("allocated 24 MiB") && !s.stdout.contains("allocated 32 MiB"), "{s:?}");
    let s = seen(&w.run(["run", "--memory", "128Mi", hog.to_str().unwrap(), "64"]));
    assert_eq!((s.code, s.stdout.lines().last()), (Some(0), Some("done: 64 MiB held")), "{s:?}");
}

#[test]
fn timeout_stops_a_tight_loop_with_137() {
    let w = Wasmlet::new();
    let started = Instant::now();
    let s = seen(&w.run(["run", "--timeout", "300ms", wat_guest("loop").to_str().unwrap()]));
    let took = started.elapsed();
    assert_eq!(s.code, Some(137), "{s:?}");
    assert!(s.stderr.contains("deadline exceeded"), "{s:?}");
    assert!(took >= Duration::from_millis(300), "stopped early: {took:?}");
    assert!(took < Duration::from_secs(5), "deadline not enforced promptly: {took:?}");
}

#[test]
fn sigterm_and_sigint_stop_a_busy_guest() {
    let w = Wasmlet::new();
    for (signal, status) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut child = w
            .command()
            .args(["run".as_ref(), guest("spin", false).as_os_str()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "spinning\n");
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status_seen = child.wait().unwrap();
        assert_eq!(status_seen.code(), Some(status));
    }
}

#[test]
fn invoke_calls_a_named_export_and_prints_results() {
    let w = Wasmlet::new();
    let add = wat_guest("add");
    let s = seen(&w.run(["run", "--invoke", "answer", add.to_str().unwrap()]));
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "42\n"), "{s:?}");
    let s = seen(&w.run(["run", "--invoke", "nope", add.to_str().unwrap()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("export `nope` not found") && s.stderr.contains("answer, add, counter"), "{s:?}");
    let s = seen(&w.run(["run", "--invoke", "add", add.to_str().unwrap()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("takes 2 parameter(s)"), "{s:?}");
    let s = seen(&w.run(["run", add.to_str().unwrap()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("not a command"), "{s:?}");
}

#[test]
fn bad_input_gets_a_clear_error_and_status() {
    let w = Wasmlet::new();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some notes\n").unwrap();
    let s = seen(&w.run(["run".as_ref(), text.as_os_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("not a WebAssembly file") && s.stderr.contains("notes.txt"), "{s:?}");

    let invalid = dir.path().join("invalid.wasm");
    // Valid header, then a type section that claims more bytes than exist.
    std::fs::write(&invalid, b"\0asm\x01\0\0\0\x01\x7f\x00").unwrap();
    let s = seen(&w.run(["run".as_ref(), invalid.as_os_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("invalid WebAssembly in") && s.stderr.contains("offset"), "{s:?}");

    let s = seen(&w.run(["run".as_ref(), wat_guest("unknown-import").as_os_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("unknown import") && s.stderr.contains("env::launch_missiles"), "{s:?}");

    let missing = dir.path().join("missing.wasm");
    let s = seen(&w.run(["run".as_ref(), missing.as_os_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("cannot read") && s.stderr.contains("missing.wasm"), "{s:?}");

    let s = seen(&w.run(["run", "--dir", "/definitely/not/here::/x", wat_guest("hello").to_str().unwrap()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("/definitely/not/here"), "{s:?}");
}

#[test]
fn usage_errors_exit_2() {
    let w = Wasmlet::new();
    let hello = wat_guest("hello");
    for args in [
        vec!["run"],
        vec!["run", "--memory", "12Q", hello.to_str().unwrap()],
        vec!["run", "--timeout", "5", hello.to_str().unwrap()],
        vec!["frobnicate"],
        vec!["run", "--dir", "::/x", hello.to_str().unwrap()],
    ] {
        let s = seen(&w.run(&args));
        assert_eq!(s.code, Some(2), "{args:?}: {s:?}");
        assert!(!s.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn second_run_is_a_cache_hit() {
    let w = Wasmlet::new();
    let hello = guest("hello", false);
    let logged = |w: &Wasmlet| {
        let out = w
            .command()
            .env("WASMLET_LOG", "wasmlet_runtime=debug")
            .args(["run".as_ref(), hello.as_os_str()])
            .output()
            .unwrap();
        seen(&out)
    };
    let first = logged(&w);
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(first.stderr.contains("compiled and cached"), "{first:?}");
    let second = logged(&w);
    assert_eq!((second.code, second.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{second:?}");
    assert!(second.stderr.contains("cache hit"), "{second:?}");
    assert!(!second.stderr.contains("compiled and cached"), "{second:?}");
}

#[test]
fn compile_prints_digest_and_path_then_reports_cached() {
    let w = Wasmlet::new();
    let hello = guest("hello", true);
    let s = seen(&w.run(["compile".as_ref(), hello.as_os_str()]));
    assert_eq!(s.code, Some(0), "{s:?}");
    let fields: Vec<&str> = s.stdout.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{s:?}");
    let bytes = std::fs::read(&hello).unwrap();
    assert_eq!(fields[0], format!("sha256:{}", sha256_hex(&bytes)));
    assert!(fields[1].starts_with(w.cache.path().to_str().unwrap()) && fields[1].ends_with(".cwasm"));
    assert!(std::path::Path::new(fields[1]).exists());
    assert_eq!(fields[2], "compiled");
    let s = seen(&w.run(["compile".as_ref(), hello.as_os_str()]));
    assert_eq!(s.stdout.split_whitespace().nth(2), Some("cached"), "{s:?}");

    // The artifact runs only when explicitly allowed.
    let s = seen(&w.run(["run", fields[1]]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("--allow-precompiled"), "{s:?}");
    let s = seen(&w.run(["run", "--allow-precompiled", fields[1]]));
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
}

#[test]
fn corrupt_or_truncated_cache_entry_is_replaced_not_served() {
    let w = Wasmlet::new();
    let hello = guest("hello", false);
    let s = seen(&w.run(["compile".as_ref(), hello.as_os_str()]));
    let entry = std::path::PathBuf::from(s.stdout.split_whitespace().nth(1).unwrap());
    let good = std::fs::read(&entry).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    for damaged in [flipped, good[..good.len() / 3].to_vec()] {
        std::fs::write(&entry, &damaged).unwrap();
        let out = w
            .command()
            .env("WASMLET_LOG", "wasmlet_runtime=info")
            .args(["run".as_ref(), hello.as_os_str()])
            .output()
            .unwrap();
        let s = seen(&out);
        assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
        assert!(s.stderr.contains("removing corrupt compile-cache entry"), "{s:?}");
        assert!(s.stderr.contains("compiled and cached"), "{s:?}");
        assert_eq!(std::fs::read(&entry).unwrap(), good, "entry must be rewritten whole");
    }
}

#[test]
fn concurrent_compiles_of_one_digest_compile_once() {
    let w = Wasmlet::new();
    let big = big_module();
    let children: Vec<_> = (0..2)
        .map(|_| {
            w.command()
                .args(["compile".as_ref(), big.path().as_os_str()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| seen(&c.wait_with_output().unwrap())).collect();
    let statuses: Vec<_> = outputs.iter().filter_map(|s| s.stdout.split_whitespace().nth(2)).collect();
    assert_eq!(outputs.iter().filter(|s| s.code == Some(0)).count(), 2, "{outputs:?}");
    assert_eq!(statuses.iter().filter(|s| **s == "compiled").count(), 1, "{outputs:?}");
    assert_eq!(statuses.iter().filter(|s| **s == "cached").count(), 1, "{outputs:?}");
}

#[test]
fn falls_back_to_on_demand_when_the_pool_cannot_be_reserved() {
    let w = Wasmlet::new();
    let hello = guest("hello", false);
    // 16 GiB of address space: far less than the pool wants, enough for one on-demand instance.
    let script =
        format!("ulimit -v 16777216 && exec {} run {}", wasmlet_tests::bin("wasmlet").display(), hello.display());
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("WASMLET_CACHE_DIR", w.cache.path())
        .output()
        .unwrap();
    let s = seen(&out);
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
    assert!(s.stderr.contains("falling back to on-demand allocation"), "{s:?}");
}

/// A module large enough that compiling it takes a noticeable time, unique per call.
fn big_module() -> tempfile::NamedTempFile {
    let mut wat = String::from("(module (memory 1)\n");
    let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    for i in 0..3000 {
        wat.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32) (local i32) (local.set 1 (i32.const {salt_lo})) \
             (block (loop (local.set 1 (i32.add (local.get 1) (i32.mul (local.get 0) (i32.const {i})))) \
             (br_if 1 (i32.gt_u (local.get 1) (i32.const 1000))) (br 0))) (local.get 1))\n",
            salt_lo = (salt as u32) & 0xffff
        ));
    }
    wat.push(')');
    let file = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(file.path(), wat::parse_str(&wat).unwrap()).unwrap();
    file
}

/// The status of the files/net guests' `denied:` exit (3): a wasip2
/// component can only exit 0 or 1.
fn failed(p2: bool) -> i32 {
    if p2 {
        1
    } else {
        3
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// A cache that cannot be written never blocks a run (issue 14.7): on a
/// read-only mount and on a full filesystem the guest runs, compiled in
/// memory with a warning; nothing partial is left behind; `wasmlet
/// compile`, whose job is the cache, fails saying why.
#[test]
fn a_read_only_or_full_cache_compiles_in_memory() {
    let work = tempfile::tempdir().unwrap();
    let read_only = work.path().join("ro");
    std::fs::create_dir_all(&read_only).unwrap();
    let _ro = wasmlet_tests::TestMount::read_only(&read_only);
    let full = work.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    // Room for the folders and lock files, not for compiled code.
    let _full = wasmlet_tests::TestMount::tiny_tmpfs(&full, 64 * 1024);
    let hello = guest("hello", false);
    for cache in [&read_only, &full] {
        let wasmlet = Wasmlet::new();
        let run = |args: &[&std::ffi::OsStr]| {
            seen(&wasmlet.command().env("WASMLET_CACHE_DIR", cache).args(args).output().unwrap())
        };
        let s = run(&["run".as_ref(), hello.as_os_str()]);
        assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{}: {s:?}", cache.display());
        assert!(s.stderr.contains("not writable") || s.stderr.contains("cannot be created"), "{s:?}");
        let s = run(&["compile".as_ref(), hello.as_os_str()]);
        assert_eq!(s.code, Some(1), "{s:?}");
        assert!(s.stderr.contains("cannot be written"), "{s:?}");
        let left: Vec<_> =
            walk(cache).into_iter().filter(|p| p.extension().is_some_and(|e| e == "cwasm" || e == "sum")).collect();
        assert!(left.is_empty(), "partial entries left: {left:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// A WASI 0.3 component (async functions in its types) whose imports the
/// host cannot satisfy fails naming the missing import, not "invalid
/// WebAssembly" (wasmlet once said that of every 0.3 component).
#[test]
fn a_wasi_0_3_component_the_host_cannot_satisfy_names_the_missing_import() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("p3.wat");
    std::fs::write(
        &file,
        r#"(component
             (import "wasi:cli/teleport@0.3.0" (instance (export "go" (func async))))
             (core module $m (func (export "run") (result i32) i32.const 0))
             (core instance $i (instantiate $m))
             (func $run (result (result)) (canon lift (core func $i "run")))
             (instance $cli (export "run" (func $run)))
             (export "wasi:cli/run@0.3.0" (instance $cli)))"#,
    )
    .unwrap();
    let s = seen(&Wasmlet::new().run(["run".as_ref(), file.as_os_str()]));
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("unknown import") && s.stderr.contains("wasi:cli/teleport@0.3.0"), "{s:?}");
    assert!(!s.stderr.contains("invalid WebAssembly"), "{s:?}");
}

/// WASI 0.3 programs get an engine of their own (with wasmtime's
/// concurrency support, which costs every 0.1/0.2 store and call), so their
/// code lives in another cache folder; precompiled artifacts of either run.
#[test]
fn wasi_0_3_programs_compile_for_the_concurrent_engine_and_the_rest_for_the_standard_one() {
    let w = Wasmlet::new();
    let compiled = |file: &std::path::Path| {
        let s = seen(&w.run(["compile".as_ref(), file.as_os_str()]));
        assert_eq!(s.code, Some(0), "{s:?}");
        let entry = std::path::PathBuf::from(s.stdout.split_whitespace().nth(1).unwrap());
        assert!(entry.exists(), "{s:?}");
        entry
    };
    let folder = |entry: &std::path::Path| entry.parent().unwrap().to_owned();
    let module = compiled(&guest("hello", false));
    let command = compiled(&guest("hello", true));
    let proxy = compiled(&wasmlet_tests::http_guest("hello"));
    let async_command = compiled(&wasmlet_tests::p3_guest("wasi_check_p3"));
    let service = compiled(&wasmlet_tests::p3_guest("http_service_p3"));
    assert_eq!(folder(&module), folder(&command));
    assert_eq!(folder(&module), folder(&proxy));
    assert_eq!(folder(&async_command), folder(&service));
    assert_ne!(folder(&module), folder(&async_command));

    // Each artifact loads on the engine that made it.
    let s = seen(&w.run([
        "run".as_ref(),
        "--allow-precompiled".as_ref(),
        async_command.as_os_str(),
        "exit".as_ref(),
        "7".as_ref(),
    ]));
    assert_eq!(s.code, Some(7), "{s:?}");
    let s = seen(&w.run(["run".as_ref(), "--allow-precompiled".as_ref(), command.as_os_str()]));
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "hello from wasmlet\n"), "{s:?}");
}

/// A WASI 0.3 command component (built from examples/guests-p3 with the
/// `wasip3` bindings: only 0.3's `wasi:cli/run` exported) runs, with its
/// arguments, environment, stdio streams, preopened files and exit code.
#[test]
fn a_wasi_0_3_command_runs_with_args_env_stdio_files_and_exit_code() {
    let check = wasmlet_tests::p3_guest("wasi_check_p3");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("in.txt"), "from the host\n").unwrap();
    let dir = format!("{}::/data", work.path().display());
    let run = |args: &[&str], stdin: &str| {
        let wasmlet = Wasmlet::new();
        let mut cmd = wasmlet.command();
        cmd.args(["run", "--env", "GREETING=hi", "--dir", &dir]).arg(&check).args(args);
        seen(&wasmlet_tests::output_with_stdin(cmd, stdin.as_bytes()))
    };
    let s = run(&["argv", "a", "b"], "");
    assert_eq!((s.code, s.stdout.as_str()), (Some(0), "wasi_check_p3.wasm argv a b\n"), "{s:?}");
    let s = run(&["env", "GREETING"], "");
    assert_eq!(s.stdout, "hi\n", "{s:?}");
    let s = run(&["stdin"], "piped through a stream\n");
    assert_eq!(s.stdout, "piped through a stream\n", "{s:?}");
    let s = run(&["stderr", "to stderr"], "");
    assert_eq!((s.stdout.as_str(), s.stderr.trim_end()), ("ok\n", "to stderr"), "{s:?}");
    let s = run(&["read", "/data/in.txt"], "");
    assert_eq!(s.stdout, "from the host\n", "{s:?}");
    let s = run(&["write-read", "/data/out.txt", "written"], "");
    assert_eq!(s.stdout, "written\n", "{s:?}");
    let s = run(&["fs-ops", "/data"], "");
    assert_eq!(s.stdout, "ok 5\n", "{s:?}");
    let s = run(&["denied", "/etc/passwd"], "");
    assert_eq!(s.stdout, "denied\n", "{s:?}");
    let s = run(&["clocks"], "");
    assert_eq!(s.stdout, "ok\n", "{s:?}");
    let s = run(&["exit", "7"], "");
    assert_eq!(s.code, Some(7), "{s:?}");
}
