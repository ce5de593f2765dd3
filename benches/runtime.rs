//! Runtime micro-benchmarks (criterion), run by `scripts/bench-runtime`.
//!
//! - `run/*`: Store + instantiate + run to completion + drop, of a program
//!   already loaded (compiled code in memory), pooling vs on-demand, through
//!   `run_blocking` (the shim's and CLI's path) and the async path (`-async`).
//! - `load/*`: compiling a module vs loading it from the compile cache
//!   (`deserialize_file`, mmap'd), as a fresh process on the node would.
//! - Before criterion starts, a one-off report of what the pool costs:
//!   address space reserved and memory resident with 1,000 live instances.

use criterion::Criterion;
use std::path::{Path, PathBuf};
use wasmlet_runtime::{
    Capabilities, Entry, KillSwitch, Limits, PoolConfig, Program, RunRequest, Runtime, RuntimeConfig,
};

fn repo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
        .join("..")
}

fn guest(target: &str, name: &str) -> Vec<u8> {
    let path = repo().join("target/guests").join(target).join("release").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-guests)", path.display()))
}

fn runtime(cache: &Path, pool: Option<PoolConfig>) -> Runtime {
    Runtime::new(RuntimeConfig { cache_dir: cache.to_owned(), pool, ..RuntimeConfig::default() }).expect("runtime")
}

fn bench_runs(c: &mut Criterion, cache: &Path) {
    let executor = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let hello_wat = wat::parse_file(repo().join("examples/guests/wat/hello.wat")).unwrap();
    let programs = [
        ("hello.wat", hello_wat),
        ("hello-rust-p1", guest("wasm32-wasip1", "hello")),
        ("hello-rust-p2", guest("wasm32-wasip2", "hello")),
    ];
    let mut group = c.benchmark_group("run");
    let caps = || Capabilities { args: vec!["hello".into()], ..Default::default() };
    // The same kill switch every iteration, as the runs before it took.
    let request = |program: &Program, kill: &KillSwitch| RunRequest {
        program: program.clone(),
        entry: Entry::Default,
        caps: caps(),
        limits: Limits::default(),
        kill: kill.clone(),
    };
    for (strategy, pool) in [("pooling", Some(PoolConfig::default())), ("on-demand", None)] {
        let rt = runtime(cache, pool);
        let kill = KillSwitch::new();
        for (name, bytes) in &programs {
            let (program, _) = rt.load_bytes(bytes, name, false).unwrap();
            // What the shim and `wasmlet run` do on their guest thread.
            group.bench_function(format!("{name}/{strategy}"), |b| {
                b.iter(|| {
                    let outcome = rt.run_blocking(request(&program, &kill)).unwrap();
                    assert_eq!(outcome.code(), 0);
                })
            });
            // The async path (HTTP functions' per-request instances use it).
            group.bench_function(format!("{name}/{strategy}-async"), |b| {
                b.iter(|| {
                    let outcome = executor.block_on(rt.run(request(&program, &kill))).unwrap();
                    assert_eq!(outcome.code(), 0);
                })
            });
        }
    }
    group.finish();
}

fn bench_loads(c: &mut Criterion, cache: &Path) {
    let rt = runtime(cache, Some(PoolConfig::default()));
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    for (name, target) in [("hello-rust-p1", "wasm32-wasip1"), ("hello-rust-p2", "wasm32-wasip2")] {
        let bytes = guest(target, "hello");
        let component = target.ends_with('2');
        group.bench_function(format!("{name}/compile"), |b| {
            b.iter(|| {
                if component {
                    rt.engine().precompile_component(&bytes).unwrap()
                } else {
                    rt.engine().precompile_module(&bytes).unwrap()
                }
            })
        });
        rt.load_bytes(&bytes, name, false).unwrap();
        group.bench_function(format!("{name}/cache-hit"), |b| {
            b.iter(|| {
                rt.forget_programs();
                let (_, outcome) = rt.load_bytes(&bytes, name, false).unwrap();
                assert_eq!(outcome, wasmlet_runtime::CacheOutcome::Disk);
            })
        });
    }
    group.finish();
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

/// Address space and resident memory of the pool, idle and with 1,000 live instances.
fn report_pool_footprint(cache: &Path) {
    let gib = |kib: u64| kib as f64 / (1024.0 * 1024.0);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (vm0, rss0) = (status_kib("VmSize:"), status_kib("VmRSS:"));
    let rt = runtime(cache, Some(PoolConfig::default()));
    let (vm1, rss1) = (status_kib("VmSize:"), status_kib("VmRSS:"));
    let module = wasmtime::Module::new(
        rt.engine(),
        "(module (memory 1) (func (export \"touch\") (i32.store (i32.const 0) (i32.const 1))))",
    )
    .unwrap();
    let linker = wasmtime::Linker::<()>::new(rt.engine());
    let mut alive = Vec::new();
    for _ in 0..1000 {
        let mut store = wasmtime::Store::new(rt.engine(), ());
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let touch = instance.get_typed_func::<(), ()>(&mut store, "touch").unwrap();
        touch.call(&mut store, ()).unwrap();
        alive.push((store, instance));
    }
    let (vm2, rss2) = (status_kib("VmSize:"), status_kib("VmRSS:"));
    drop(alive);
    let rss3 = status_kib("VmRSS:");
    println!("\n## Pooling allocator footprint (PoolConfig::default(): 1,000 instances)\n");
    println!("| state | address space (VmSize) | resident (VmRSS) |");
    println!("|---|---|---|");
    println!("| before the engine | {:.2} GiB | {:.1} MiB |", gib(vm0), mib(rss0));
    println!(
        "| pool reserved, idle | {:.2} TiB (+{:.2} TiB) | {:.1} MiB (+{:.1} MiB) |",
        gib(vm1) / 1024.0,
        gib(vm1 - vm0) / 1024.0,
        mib(rss1),
        mib(rss1.saturating_sub(rss0))
    );
    println!(
        "| 1,000 live instances (1 page touched each) | {:.2} TiB | {:.1} MiB (+{:.1} KiB per instance) |",
        gib(vm2) / 1024.0,
        mib(rss2),
        rss2.saturating_sub(rss1) as f64 / 1000.0
    );
    println!("| after dropping them | | {:.1} MiB |\n", mib(rss3));
}

fn main() {
    let cache = tempfile::tempdir().unwrap();
    report_pool_footprint(cache.path());
    let mut c = Criterion::default().configure_from_args();
    bench_runs(&mut c, cache.path());
    bench_loads(&mut c, cache.path());
    c.final_summary();
}
