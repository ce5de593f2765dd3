//! The container's cgroup: created from `linux.cgroupsPath`, limits from
//! `linux.resources` applied, and the shim process moved into it, so the
//! guest's memory and CPU are charged where kubelet and `ctr` look.
//! Works on cgroup v1 and v2 (cgroups-rs picks the hierarchy the host uses).

use anyhow::Context as _;
use cgroups_rs::fs::{hierarchies, Cgroup};
use cgroups_rs::CgroupPid;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message as _;
use oci_spec::runtime::{LinuxResources, Spec};

pub struct ContainerCgroup {
    cgroup: Cgroup,
    path: String,
}

fn cgroups_path(spec: &Spec) -> Option<String> {
    let path = spec.linux().as_ref()?.cgroups_path().as_ref()?;
    let path = path.to_string_lossy().trim_start_matches('/').to_owned();
    (!path.is_empty()).then_some(path)
}

impl ContainerCgroup {
    /// Create (or reuse) the spec's cgroup, apply its resources and move this
    /// process into it, for good. `None` when the spec names no cgroup.
    pub fn join(spec: &Spec) -> anyhow::Result<Option<Self>> {
        let Some(path) = cgroups_path(spec) else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let cgroup = Cgroup::new(hierarchies::auto(), path.as_str())
            .with_context(|| format!("creating cgroup {path}"))?;
        let created = started.elapsed();
        let this = Self { cgroup, path };
        if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            this.update(resources)?;
        }
        let limited = started.elapsed();
        // A `cgroup.procs` write takes the kernel's global threadgroup lock,
        // whose writer side waits for an RCU grace period: 6–24 ms per
        // container here, the whole gap between wasmlet's cold start and a
        // null shim's. On v1 a single-threaded process (the daemon joins
        // before starting any thread) moves itself with "0" in each
        // hierarchy's `tasks` instead, which skips that lock (~0.15 ms).
        // Threads created later inherit the cgroup. The daemon never leaves
        // it either (see `remove_for_spec`).
        let single = single_threaded();
        let joined = if !this.cgroup.v2() && single {
            this.cgroup.add_task(CgroupPid::from(0))
        } else {
            this.cgroup.add_task_by_tgid(CgroupPid::from(std::process::id() as u64))
        };
        joined.with_context(|| format!("joining cgroup {}", this.path))?;
        tracing::debug!(
            path = %this.path,
            v2 = this.cgroup.v2(),
            single,
            created_us = created.as_micros() as u64,
            limits_us = (limited - created).as_micros() as u64,
            joined_us = (started.elapsed() - limited).as_micros() as u64,
            "joined container cgroup"
        );
        Ok(Some(this))
    }

    pub fn update(&self, resources: &LinuxResources) -> anyhow::Result<()> {
        containerd_shim::cgroup::update_resources(&self.cgroup, resources)
            .with_context(|| format!("applying resources to cgroup {}", self.path))
    }

    /// The cgroup's metrics, packed the way containerd's `Stats` expects.
    pub fn metrics(&self) -> anyhow::Result<Any> {
        let (type_url, bytes) = if self.cgroup.v2() {
            let m = containerd_shim::cgroup::collect_metrics_v2(&self.cgroup)?;
            ("io.containerd.cgroups.v2.Metrics", m.write_to_bytes()?)
        } else {
            let mut m = containerd_shim::cgroup::collect_metrics(&self.cgroup)?;
            // The crate reads CPU usage from cgroup v2's cpu.stat only; on v1
            // it lives in cpuacct (what `kubectl top` and CRI stats report).
            if let Some(acct) = self.cgroup.controller_of::<cgroups_rs::fs::cpuacct::CpuAcctController>() {
                let acct = acct.cpuacct();
                let usage = m.cpu.mut_or_insert_default().usage.mut_or_insert_default();
                usage.total = acct.usage;
                usage.per_cpu = acct.usage_percpu.split_whitespace().filter_map(|v| v.parse().ok()).collect();
                // cpuacct.stat is in USER_HZ ticks.
                // SAFETY: sysconf has no preconditions.
                let tick_ns = 1_000_000_000 / (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64);
                for line in acct.stat.lines() {
                    match line.split_once(' ') {
                        Some(("user", v)) => usage.user = v.trim().parse::<u64>().unwrap_or(0) * tick_ns,
                        Some(("system", v)) => usage.kernel = v.trim().parse::<u64>().unwrap_or(0) * tick_ns,
                        _ => {}
                    }
                }
            }
            ("io.containerd.cgroups.v1.Metrics", m.write_to_bytes()?)
        };
        Ok(Any {
            type_url: type_url.to_owned(),
            value: bytes,
            ..Default::default()
        })
    }

    /// Move this process to the parent cgroup (the container's stays).
    pub fn leave(&self) {
        if let Some(parent) = self.cgroup.parent_control_group().into() {
            let parent: Cgroup = parent;
            if let Err(err) = parent.add_task_by_tgid(CgroupPid::from(std::process::id() as u64)) {
                tracing::warn!(error = %err, "leaving container cgroup");
            }
        }
    }
}

/// Whether this process has one thread (so moving it is moving that thread).
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// Remove the cgroup a spec names: the `delete` action's job, run by
/// containerd after the daemon (which stays in the cgroup to its end) has
/// exited, cleanly or not. An exiting process leaves its cgroups a moment
/// after its socket closes, so wait briefly for the cgroup to empty.
pub fn remove_for_spec(spec: &Spec) {
    let Some(path) = cgroups_path(spec) else { return };
    let cgroup = Cgroup::load(hierarchies::auto(), path.as_str());
    let started = std::time::Instant::now();
    while !cgroup.procs().is_empty() && started.elapsed() < EMPTY_WAIT {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if let Err(err) = cgroup.delete() {
        tracing::warn!(%path, error = %err, "removing container cgroup");
    }
}

/// How long `delete` waits for the container's cgroup to empty.
const EMPTY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
