//! Building the process's wasmtime [`Engine`]s: one per [`EngineKind`].

use crate::config::PoolConfig;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Which engine a program runs on. wasmtime's concurrency support (needed
/// by WASI 0.3) sets up per-store state and routes every component call
/// through its concurrent machinery, which cost a wasi:http 0.2 request
/// ~35 µs of CPU here; programs that do not use it run without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// Core modules and components without component-model async (WASI
    /// 0.1, 0.2): no concurrency support.
    Standard,
    /// Components using component-model async (WASI 0.3): built on first use.
    Concurrent,
}

impl EngineKind {
    /// The engine for Wasm binary `bytes` (a component when `component`).
    /// An unreadable component gets the concurrent engine, which accepts
    /// everything the standard one does: compiling it names the fault.
    pub fn of_binary(bytes: &[u8], component: bool) -> Self {
        match component && crate::async_features::component_uses_async(bytes).unwrap_or(true) {
            true => EngineKind::Concurrent,
            false => EngineKind::Standard,
        }
    }

    /// The compile worker's argument naming this kind.
    pub(crate) fn as_arg(self) -> &'static str {
        match self {
            EngineKind::Standard => "standard",
            EngineKind::Concurrent => "concurrent",
        }
    }

    pub(crate) fn from_arg(arg: &str) -> Option<Self> {
        [EngineKind::Standard, EngineKind::Concurrent].into_iter().find(|kind| kind.as_arg() == arg)
    }
}

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationStrategy {
    Pooling,
    OnDemand,
}

/// Settings shared by both strategies. They change the compiled code, so
/// they are part of the engine's precompile compatibility hash.
fn base_config(kind: EngineKind) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    match kind {
        EngineKind::Standard => config.concurrency_support(false),
        // WASI 0.3 components: async lifts and lowers, `stream`, `future`.
        EngineKind::Concurrent => config.concurrency_support(true).wasm_component_model_async(true),
    };
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}

fn pooling_config(pool: &PoolConfig) -> PoolingAllocationConfig {
    let instances = pool.max_instances.max(1);
    let mut cfg = PoolingAllocationConfig::new();
    cfg.total_component_instances(instances)
        .total_stacks(instances)
        .total_core_instances(instances.saturating_mul(pool.core_instances_per_instance.max(1)))
        .total_memories(instances.saturating_mul(pool.memories_per_instance.max(1)))
        .total_tables(instances.saturating_mul(pool.core_instances_per_instance.max(1)))
        .max_memory_size(pool.max_memory_size)
        // Beyond `keep_resident`, a freed slot's pages go back to the kernel:
        // scale-to-zero must give memory back.
        .linear_memory_keep_resident(pool.keep_resident)
        .table_keep_resident(pool.keep_resident);
    // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), the `keep_resident`
    // bytes a freed slot keeps are its dirty pages wherever they are, reset
    // with memset, not its lowest addresses: a Rust guest dirties the top of
    // its 1 MiB shadow stack and its heap, never the first 16 KiB, so without
    // it every instance madvise'd its pages away and faulted them back in (a
    // wasi:http 0.2 hello: 80–91 → 54–58 µs of CPU per request here).
    cfg.pagemap_scan(wasmtime::Enabled::Auto);
    cfg
}

/// Build the engine of `kind`, with the pooling allocator when `pool` is set
/// and the address space for it can be reserved; otherwise on-demand (logged).
pub(crate) fn build_engine(
    kind: EngineKind,
    pool: Option<&PoolConfig>,
) -> wasmtime::Result<(Engine, AllocationStrategy)> {
    if let Some(pool) = pool {
        let mut config = base_config(kind);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(pool)));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, AllocationStrategy::Pooling)),
            Err(err) => tracing::warn!(
                error = %format!("{err:#}"),
                max_instances = pool.max_instances,
                ?kind,
                "pooling allocator unavailable (cannot reserve its address space); falling back to on-demand allocation"
            ),
        }
    }
    let engine = Engine::new(&base_config(kind))?;
    Ok((engine, AllocationStrategy::OnDemand))
}
