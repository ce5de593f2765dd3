//! Per-run limits: linear memory and the wall-clock deadline.
//!
//! Memory: the limit covers the sum of every linear memory of the run's
//! instances (a component has several). A `memory.grow` past it fails the way
//! the Wasm spec allows (it returns -1), so a guest that checks can recover.
//! Most guests (Rust's allocator, C's malloc) abort on it instead; when a run
//! that was refused memory then traps, its status is [`crate::ExitStatus::OutOfMemory`]
//! (137, reason `OOMKilled`), the way the kernel reports a cgroup OOM kill.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes of linear memory, summed over the run's memories.
    pub memory: Option<u64>,
    /// A memory cap that can change while the guest runs (a container's
    /// Update); when set, it is used instead of `memory`.
    pub memory_cap: Option<MemoryCap>,
    /// Wall-clock time the run may take, from its start.
    pub deadline: Option<Duration>,
}

/// A memory limit shared with a running guest: lowering it makes the
/// guest's next `memory.grow` past it fail; memory already in use stays.
#[derive(Debug, Clone)]
pub struct MemoryCap(Arc<AtomicU64>);

impl MemoryCap {
    pub fn new(limit: Option<u64>) -> Self {
        Self(Arc::new(AtomicU64::new(limit.unwrap_or(u64::MAX))))
    }

    pub fn set(&self, limit: Option<u64>) {
        self.0.store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|l| *l != u64::MAX)
    }
}

impl PartialEq for MemoryCap {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MemoryCap {}

/// wasmtime `ResourceLimiter` enforcing [`Limits::memory`] and recording
/// whether it ever refused, so a later trap can be reported as OOM.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: Option<u64>,
    cap: Option<MemoryCap>,
    in_use: u64,
    refused: Option<String>,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Self { limit, cap: None, in_use: 0, refused: None }
    }

    /// The limiter for `limits`: the changeable cap when there is one.
    pub(crate) fn for_limits(limits: &Limits) -> Self {
        let mut limiter = Self::new(limits.memory);
        limiter.cap = limits.memory_cap.clone();
        limiter
    }

    /// Why memory was refused, if it ever was.
    pub(crate) fn refusal(&self) -> Option<&str> {
        self.refused.as_deref()
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        let wanted = self.in_use.saturating_add(growth);
        let limit = match &self.cap {
            Some(cap) => cap.get(),
            None => self.limit,
        };
        if let Some(limit) = limit {
            if wanted > limit {
                self.refused = Some(format!(
                    "memory limit of {limit} bytes reached: {} bytes in use, grow by {growth} refused",
                    self.in_use
                ));
                tracing::debug!(limit, in_use = self.in_use, growth, "memory.grow refused");
                return Ok(false);
            }
        }
        self.in_use = wanted;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn sums_memories_and_refuses_past_the_limit() {
        let mut limiter = MemoryLimiter::new(Some(3 * 65536));
        assert!(limiter.memory_growing(0, 65536, None).unwrap());
        assert!(limiter.memory_growing(0, 2 * 65536, None).unwrap());
        assert!(limiter.refusal().is_none());
        assert!(!limiter.memory_growing(65536, 2 * 65536, None).unwrap());
        assert!(limiter.refusal().unwrap().contains("memory limit of 196608 bytes"));
    }

    #[test]
    fn unlimited_by_default() {
        let mut limiter = MemoryLimiter::new(None);
        assert!(limiter.memory_growing(0, 1 << 32, None).unwrap());
        assert!(limiter.refusal().is_none());
    }
}
