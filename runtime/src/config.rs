//! Runtime configuration: where the cache lives and how the instance pool is sized.

use std::path::PathBuf;
use std::time::Duration;

/// Sizing of wasmtime's pooling allocator.
///
/// Address space reserved up front is roughly
/// `memories × (memory_reservation + guard)` + `instances × async_stack_size`:
/// with the defaults (1,000 instances, 2 memories each, 4 GiB + 32 MiB per
/// memory slot) about 8 TiB of *virtual* space, which costs no RAM; resident
/// cost is only what running guests touch. Components need several core
/// instances, memories and tables each, hence the multipliers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Concurrent component or module instances (stores) the pool serves.
    pub max_instances: u32,
    /// Core instances per component-instance slot (a Rust wasip2 command uses ~4).
    pub core_instances_per_instance: u32,
    /// Linear memories per instance slot (a wasip2 component uses 2).
    pub memories_per_instance: u32,
    /// Upper bound of one linear memory, in bytes.
    pub max_memory_size: usize,
    /// Bytes of each linear memory (and of each table) that stay resident
    /// when an instance is freed, reset with `memset` instead of `madvise`.
    /// Small guests then reuse a slot without syscalls, page faults or TLB
    /// shoot-downs (costly in VMs); everything above this is returned to the
    /// kernel, so an idle server keeps at most this much per slot it used.
    /// 16 KiB measured best here (hello.wat 64 KiB: 6.5 µs, 16 KiB: 5.8 µs,
    /// 4 KiB: 5.7 µs, 0: 11.6 µs, async path): the pages a small guest
    /// touches, without `memset`ting a whole 64 KiB Wasm page every run.
    /// With the kernel's PAGEMAP_SCAN (used when present) these are the
    /// slot's dirty pages wherever they lie, not its lowest addresses (a
    /// wasi:http hello, wrk -c50: 16 KiB 54–58 µs CPU/request, 256 KiB
    /// 52–56, 1 MiB 56–61; without the scan 80–91 at 16 KiB, 138–144 at 1 MiB).
    pub keep_resident: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            core_instances_per_instance: 8,
            memories_per_instance: 2,
            max_memory_size: 4 << 30,
            keep_resident: 16 << 10,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Root of the compile cache; entries go under an engine-specific folder.
    pub cache_dir: PathBuf,
    /// `None` uses on-demand allocation only.
    pub pool: Option<PoolConfig>,
    /// Period of the epoch ticker: bounds how long kill/deadline take to stop
    /// a guest that never calls the host.
    pub epoch_tick: Duration,
}

impl RuntimeConfig {
    /// The default cache location: `$WASMLET_CACHE_DIR`, else
    /// `/var/lib/wasmlet/cache` for root, else `$XDG_CACHE_HOME/wasmlet`
    /// (or `~/.cache/wasmlet`).
    pub fn default_cache_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("WASMLET_CACHE_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            return PathBuf::from("/var/lib/wasmlet/cache");
        }
        if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(xdg).join("wasmlet");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
        PathBuf::from(home).join(".cache").join("wasmlet")
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: Self::default_cache_dir(),
            pool: Some(PoolConfig::default()),
            epoch_tick: Duration::from_millis(10),
        }
    }
}
