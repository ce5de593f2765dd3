//! The runtime as a library: runs (through `run_blocking`, the shim's and
//! CLI's path, and the async path), kill from another thread, deadlines, a
//! guest blocked in a host call, the pool's capacity and the compile cache.

use std::time::{Duration, Instant};
use wasmlet_runtime::{
    AllocationStrategy, CacheOutcome, Capabilities, Entry, ExitStatus, KillSwitch, Limits, Outcome, Program,
    RunRequest, Runtime, RuntimeConfig, StdoutSink,
};

fn runtime(cache: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig { cache_dir: cache.to_owned(), ..RuntimeConfig::default() }).expect("runtime")
}

fn wat(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../examples/guests/wat")
    .join(format!("{name}.wat"));
    wat::parse_file(path).expect("wat")
}

fn executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The two ways a run to completion can go.
#[derive(Debug, Clone, Copy)]
enum Path {
    Blocking,
    Async,
}

const PATHS: [Path; 2] = [Path::Blocking, Path::Async];

fn run(path: Path, rt: &Runtime, program: &Program, caps: Capabilities, limits: &Limits, kill: &KillSwitch) -> Outcome {
    match path {
        Path::Blocking => rt.run_blocking(request(program, caps, limits, kill)),
        Path::Async => executor().block_on(rt.run(request(program, caps, limits, kill))),
    }
    .unwrap()
}

fn request(program: &Program, caps: Capabilities, limits: &Limits, kill: &KillSwitch) -> RunRequest {
    RunRequest { program: program.clone(), entry: Entry::Default, caps, limits: limits.clone(), kill: kill.clone() }
}

#[test]
fn hello_writes_its_output_to_the_given_file() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    assert_eq!(rt.allocation_strategy(), AllocationStrategy::Pooling);
    let (program, outcome) = rt.load_bytes(&wat("hello"), "hello.wat", false).unwrap();
    assert_eq!(outcome, CacheOutcome::Compiled);
    for path in PATHS {
        let out = tempfile::NamedTempFile::new().unwrap();
        let caps = Capabilities {
            args: vec!["hello".into()],
            stdout: StdoutSink::File(out.reopen().unwrap()),
            ..Default::default()
        };
        let outcome = run(path, &rt, &program, caps, &Limits::default(), &KillSwitch::new());
        assert_eq!(outcome.status, ExitStatus::Exited(0), "{path:?}");
        assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "hello from wasmlet\n", "{path:?}");
    }
}

/// The median of several trials: this VM's vCPUs are sometimes descheduled
/// for hundreds of ms (host steal), which no runtime can hide from one sample.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn kill_from_another_thread_stops_a_tight_loop_within_100ms() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let (program, _) = rt.load_bytes(&wat("loop"), "loop.wat", false).unwrap();
    for path in PATHS {
        let mut latencies = Vec::new();
        for signal in [libc::SIGKILL, libc::SIGTERM, libc::SIGKILL, libc::SIGTERM, libc::SIGKILL] {
            let kill = KillSwitch::new();
            let killer = {
                let kill = kill.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    let sent = Instant::now();
                    kill.kill(signal);
                    sent
                })
            };
            let outcome = run(path, &rt, &program, Capabilities::default(), &Limits::default(), &kill);
            let stopped = Instant::now();
            let sent = killer.join().unwrap();
            latencies.push(stopped.saturating_duration_since(sent));
            assert_eq!(outcome.status, ExitStatus::Signaled(signal), "{path:?}");
            assert_eq!(outcome.code(), 128 + signal);
        }
        let typical = median(latencies.clone());
        assert!(typical < Duration::from_millis(100), "{path:?}: kill latencies {latencies:?}");
    }
}

#[test]
fn kill_before_start_never_runs_the_guest() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let (program, _) = rt.load_bytes(&wat("hello"), "hello.wat", false).unwrap();
    for path in PATHS {
        let kill = KillSwitch::new();
        kill.kill(libc::SIGKILL);
        kill.kill(libc::SIGTERM); // the first signal wins
        let out = tempfile::NamedTempFile::new().unwrap();
        let caps = Capabilities { stdout: StdoutSink::File(out.reopen().unwrap()), ..Default::default() };
        let outcome = run(path, &rt, &program, caps, &Limits::default(), &kill);
        assert_eq!(outcome.code(), 137, "{path:?}");
        assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "", "{path:?}");
    }
}

#[test]
fn deadline_stops_a_tight_loop() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let (program, _) = rt.load_bytes(&wat("loop"), "loop.wat", false).unwrap();
    let limits = Limits { deadline: Some(Duration::from_millis(150)), ..Default::default() };
    let mut took = Vec::new();
    for path in [Path::Blocking, Path::Async, Path::Blocking, Path::Async] {
        let started = Instant::now();
        let outcome = run(path, &rt, &program, Capabilities::default(), &limits, &KillSwitch::new());
        took.push(started.elapsed());
        assert_eq!(outcome.status, ExitStatus::DeadlineExceeded);
        assert_eq!((outcome.code(), outcome.status.reason()), (137, "DeadlineExceeded"));
    }
    assert!(took.iter().all(|t| *t >= Duration::from_millis(150)), "stopped early: {took:?}");
    // The ticker's 10 ms sleeps are what the deadline rides on; they run late here.
    assert!(median(took.clone()) < Duration::from_millis(1000), "deadline not enforced: {took:?}");
}

#[test]
fn memory_limit_makes_grow_fail_and_exceeding_initial_memory_is_oom() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let (memgrow, _) = rt.load_bytes(&wat("memgrow"), "memgrow.wat", false).unwrap();
    let (hello, _) = rt.load_bytes(&wat("hello"), "hello.wat", false).unwrap();
    for path in PATHS {
        let limited = |program, memory| {
            run(
                path,
                &rt,
                program,
                Capabilities::default(),
                &Limits { memory, ..Default::default() },
                &KillSwitch::new(),
            )
        };
        assert_eq!(limited(&memgrow, Some(3 << 20)).status, ExitStatus::Exited(3), "{path:?}");
        assert_eq!(limited(&memgrow, Some((3 << 20) + 65535)).status, ExitStatus::Exited(3), "{path:?}");
        // hello.wat declares one 64 KiB page; a smaller limit fails instantiation as OOM.
        let outcome = limited(&hello, Some(1024));
        assert!(outcome.status.is_oom(), "{path:?}: {outcome:?}");
        assert_eq!((outcome.code(), outcome.status.reason()), (137, "OOMKilled"));
    }
}

#[test]
fn a_guest_blocked_in_a_host_call_is_reported_stopped_after_the_grace() {
    let cache = tempfile::tempdir().unwrap();
    let rt = std::sync::Arc::new(runtime(cache.path()));
    let (program, _) = rt.load_bytes(&wat("sleep"), "sleep.wat", false).unwrap();
    let kill = KillSwitch::new();
    let killer = {
        let kill = kill.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            kill.kill(libc::SIGTERM);
            Instant::now()
        })
    };
    let outcome =
        executor().block_on(rt.run_on_thread(RunRequest { kill, ..RunRequest::new(program.clone()) })).unwrap();
    let waited = killer.join().unwrap().elapsed();
    assert_eq!((outcome.code(), outcome.status), (143, ExitStatus::Signaled(libc::SIGTERM)));
    assert!(waited >= wasmlet_runtime::STOP_GRACE && waited < Duration::from_secs(2), "reported after {waited:?}");

    // A deadline, likewise; and a guest that finishes is simply awaited.
    let limits = Limits { deadline: Some(Duration::from_millis(100)), ..Default::default() };
    let outcome = executor().block_on(rt.run_on_thread(RunRequest { limits, ..RunRequest::new(program) })).unwrap();
    assert_eq!(outcome.status, ExitStatus::DeadlineExceeded);
    let (hello, _) = rt.load_bytes(&wat("hello"), "hello.wat", false).unwrap();
    let outcome = executor().block_on(rt.run_on_thread(RunRequest::new(hello))).unwrap();
    assert_eq!(outcome.status, ExitStatus::Exited(0));
}

#[test]
fn pool_holds_1000_concurrent_instances() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let module = wasmtime::Module::new(rt.engine(), "(module (memory 1) (func (export \"f\")))").unwrap();
    let linker = wasmtime::Linker::<()>::new(rt.engine());
    let mut alive = Vec::new();
    for i in 0..1000 {
        let mut store = wasmtime::Store::new(rt.engine(), ());
        let instance = linker.instantiate(&mut store, &module).unwrap_or_else(|e| panic!("instance {i}: {e:#}"));
        alive.push((store, instance));
    }
    assert_eq!(alive.len(), 1000);
}

#[test]
fn cache_is_shared_across_runtimes_and_counts_hits() {
    let cache = tempfile::tempdir().unwrap();
    let bytes = wat("hello");
    let first = runtime(cache.path());
    assert_eq!(first.load_bytes(&bytes, "hello", false).unwrap().1, CacheOutcome::Compiled);
    assert_eq!(first.load_bytes(&bytes, "hello", false).unwrap().1, CacheOutcome::Memory);
    assert_eq!(first.cache().stats().compiled, 1);
    // A second runtime stands for another process on the node.
    let second = runtime(cache.path());
    assert_eq!(second.load_bytes(&bytes, "hello", false).unwrap().1, CacheOutcome::Disk);
    let stats = second.cache().stats();
    assert_eq!((stats.compiled, stats.disk_hits), (0, 1));
}

#[test]
fn two_threads_compiling_one_digest_compile_once() {
    let cache = tempfile::tempdir().unwrap();
    let mut wat_text = String::from("(module\n");
    for i in 0..2000 {
        wat_text.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32) (i32.mul (local.get 0) (i32.const {i})))\n"
        ));
    }
    wat_text.push(')');
    let bytes = wat::parse_str(&wat_text).unwrap();
    let barrier = std::sync::Barrier::new(2);
    let outcomes: Vec<CacheOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let rt = runtime(cache.path());
                    barrier.wait();
                    rt.load_bytes(&bytes, "big", false).unwrap().1
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| **o == CacheOutcome::Compiled).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == CacheOutcome::Disk).count(), 1, "{outcomes:?}");
}
