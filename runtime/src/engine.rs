//! Building the process's one wasmtime [`Engine`].

use crate::config::PoolConfig;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationStrategy {
    Pooling,
    OnDemand,
}

/// Settings shared by both strategies. They change the compiled code, so
/// they are part of the engine's precompile compatibility hash.
fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // WASI 0.3 components: async lifts and lowers, `stream`, `future`.
    // Without it wasmtime rejects them as invalid Wasm.
    config.wasm_component_model_async(true);
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
    cfg
}

/// Build the engine, with the pooling allocator when `pool` is set and the
/// address space for it can be reserved; otherwise on-demand (logged).
pub(crate) fn build_engine(pool: Option<&PoolConfig>) -> wasmtime::Result<(Engine, AllocationStrategy)> {
    if let Some(pool) = pool {
        let mut config = base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(pool)));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, AllocationStrategy::Pooling)),
            Err(err) => tracing::warn!(
                error = %format!("{err:#}"),
                max_instances = pool.max_instances,
                "pooling allocator unavailable (cannot reserve its address space); falling back to on-demand allocation"
            ),
        }
    }
    let engine = Engine::new(&base_config())?;
    Ok((engine, AllocationStrategy::OnDemand))
}
