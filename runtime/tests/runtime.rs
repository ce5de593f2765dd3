//! The runtime as a library: runs, kill from another thread, deadlines, the
//! pool's capacity and the compile cache's counters.

use std::time::{Duration, Instant};
use wasmlet_runtime::{
    AllocationStrategy, CacheOutcome, Capabilities, Entry, ExitStatus, KillSwitch, Limits, Runtime, RuntimeConfig,
    StdoutSink,
};

fn runtime(cache: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: cache.to_owned(),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

fn wat(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())).join("../examples/guests/wat").join(format!("{name}.wat"));
    wat::parse_file(path).expect("wat")
}

fn executor() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn hello_writes_its_output_to_the_given_file() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    assert_eq!(rt.allocation_strategy(), AllocationStrategy::Pooling);
    let (program, outcome) = rt.load_bytes(&wat("hello"), "hello.wat", false).unwrap();
    assert_eq!(outcome, CacheOutcome::Compiled);
    let out = tempfile::NamedTempFile::new().unwrap();
    let caps = Capabilities {
        args: vec!["hello".into()],
        stdout: StdoutSink::File(out.reopen().unwrap()),
        ..Default::default()
    };
    let outcome = executor()
        .block_on(rt.run(&program, &Entry::Default, caps, &Limits::default(), &KillSwitch::new()))
        .unwrap();
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "hello from wasmlet\n");
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
        let outcome = executor()
            .block_on(rt.run(&program, &Entry::Default, Capabilities::default(), &Limits::default(), &kill))
            .unwrap();
        let stopped = Instant::now();
        let sent = killer.join().unwrap();
        latencies.push(stopped.saturating_duration_since(sent));
        assert_eq!(outcome.status, ExitStatus::Signaled(signal));
        assert_eq!(outcome.code(), 128 + signal);
    }
    let typical = median(latencies.clone());
    assert!(typical < Duration::from_millis(100), "kill latencies {latencies:?}");
}

#[test]
fn kill_before_start_never_runs_the_guest() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let (program, _) = rt.load_bytes(&wat("hello"), "hello.wat", false).unwrap();
    let kill = KillSwitch::new();
    kill.kill(libc::SIGKILL);
    kill.kill(libc::SIGTERM); // the first signal wins
    let out = tempfile::NamedTempFile::new().unwrap();
    let caps = Capabilities {
        stdout: StdoutSink::File(out.reopen().unwrap()),
        ..Default::default()
    };
    let outcome = executor().block_on(rt.run(&program, &Entry::Default, caps, &Limits::default(), &kill)).unwrap();
    assert_eq!(outcome.code(), 137);
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "");
}

#[test]
fn deadline_stops_a_tight_loop() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let (program, _) = rt.load_bytes(&wat("loop"), "loop.wat", false).unwrap();
    let limits = Limits {
        deadline: Some(Duration::from_millis(150)),
        ..Default::default()
    };
    let mut took = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let outcome = executor()
            .block_on(rt.run(&program, &Entry::Default, Capabilities::default(), &limits, &KillSwitch::new()))
            .unwrap();
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
    let run = |program, memory| {
        executor()
            .block_on(rt.run(program, &Entry::Default, Capabilities::default(), &Limits { memory, ..Default::default() }, &KillSwitch::new()))
            .unwrap()
    };
    assert_eq!(run(&memgrow, Some(3 << 20)).status, ExitStatus::Exited(3));
    assert_eq!(run(&memgrow, Some((3 << 20) + 65535)).status, ExitStatus::Exited(3));
    // hello.wat declares one 64 KiB page; a smaller limit fails instantiation as OOM.
    let (hello, _) = rt.load_bytes(&wat("hello"), "hello.wat", false).unwrap();
    let outcome = run(&hello, Some(1024));
    assert!(outcome.status.is_oom(), "{outcome:?}");
    assert_eq!((outcome.code(), outcome.status.reason()), (137, "OOMKilled"));
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
        let instance = linker
            .instantiate(&mut store, &module)
            .unwrap_or_else(|e| panic!("instance {i}: {e:#}"));
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
        wat_text.push_str(&format!("(func (export \"f{i}\") (param i32) (result i32) (i32.mul (local.get 0) (i32.const {i})))\n"));
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
