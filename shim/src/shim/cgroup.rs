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
    /// process into it. `None` when the spec names no cgroup.
    pub fn join(spec: &Spec) -> anyhow::Result<Option<Self>> {
        let Some(path) = cgroups_path(spec) else {
            return Ok(None);
        };
        let cgroup = Cgroup::new(hierarchies::auto(), path.as_str())
            .with_context(|| format!("creating cgroup {path}"))?;
        let this = Self { cgroup, path };
        if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            this.update(resources)?;
        }
        this.cgroup
            .add_task_by_tgid(CgroupPid::from(std::process::id() as u64))
            .with_context(|| format!("joining cgroup {}", this.path))?;
        tracing::debug!(path = %this.path, v2 = this.cgroup.v2(), "joined container cgroup");
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

    /// Leave the cgroup (for its parent) and remove it.
    pub fn remove(self) {
        if let Some(parent) = self.cgroup.parent_control_group().into() {
            let parent: Cgroup = parent;
            if let Err(err) = parent.add_task_by_tgid(CgroupPid::from(std::process::id() as u64)) {
                tracing::warn!(error = %err, "leaving container cgroup");
            }
        }
        if let Err(err) = self.cgroup.delete() {
            tracing::warn!(path = %self.path, error = %err, "removing container cgroup");
        }
    }
}

/// Remove the cgroup a spec names (used by `delete` after a dead shim).
pub fn remove_for_spec(spec: &Spec) {
    if let Some(path) = cgroups_path(spec) {
        let cgroup = Cgroup::load(hierarchies::auto(), path.as_str());
        if let Err(err) = cgroup.delete() {
            tracing::warn!(%path, error = %err, "removing container cgroup");
        }
    }
}
