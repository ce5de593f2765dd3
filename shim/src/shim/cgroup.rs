//! The container's cgroup: created from `linux.cgroupsPath`, limits from
//! `linux.resources` applied, and the shim process moved into it, so the
//! guest's memory and CPU are charged where kubelet and `ctr` look.
//! Works on cgroup v1 and v2 (cgroups-rs picks the hierarchy the host uses),
//! with both of containerd's drivers: a cgroupfs path (`/kubepods/pod…/id`)
//! is made directly; a systemd one (`slice:prefix:name`, `SystemdCgroup =
//! true`) becomes the transient scope `prefix-name.scope` in that slice,
//! started through systemd's D-Bus API with the shim as its process, as
//! runc's systemd driver does. systemd removes such a scope once it empties.

use anyhow::Context as _;
use cgroups_rs::fs::{hierarchies, Cgroup};
use cgroups_rs::CgroupPid;
use containerd_shim::protos::cgroups_v2::metrics::{PSIData, PSIStats};
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

/// Where a systemd `slice:prefix:name` lives in the hierarchy:
/// `system.slice:cri:abc` → `system.slice/cri-abc.scope`,
/// `kubepods-besteffort-pod1.slice:cri-containerd:abc` →
/// `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope`.
fn systemd_unit_path(path: &str) -> Option<String> {
    let mut parts = path.splitn(3, ':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    let slice = if slice.is_empty() { "system.slice" } else { slice };
    let unit = match (prefix, name.ends_with(".slice")) {
        (_, true) => name.to_owned(),
        ("", false) => format!("{name}.scope"),
        (prefix, false) => format!("{prefix}-{name}.scope"),
    };
    let dir = cgroups_rs::systemd::utils::expand_slice(slice).ok()?;
    Some(format!("{}/{unit}", dir.trim_matches('/')).trim_start_matches('/').to_owned())
}

impl ContainerCgroup {
    /// Create (or reuse) the spec's cgroup, apply its resources and move this
    /// process into it, for good. `None` when the spec names no cgroup.
    pub fn join(spec: &Spec) -> anyhow::Result<Option<Self>> {
        let Some(path) = cgroups_path(spec) else {
            return Ok(None);
        };
        if cgroups_rs::manager::is_systemd_cgroup(&path) {
            return Self::join_systemd_scope(spec, &path).map(Some);
        }
        let started = std::time::Instant::now();
        let cgroup =
            Cgroup::new(hierarchies::auto(), path.as_str()).with_context(|| format!("creating cgroup {path}"))?;
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

    /// systemd's driver: a transient scope holding this process, its limits
    /// set as unit properties (systemd keeps them) and in cgroupfs.
    fn join_systemd_scope(spec: &Spec, path: &str) -> anyhow::Result<Self> {
        use cgroups_rs::manager::Manager as _;
        let started = std::time::Instant::now();
        let relative = systemd_unit_path(path)
            .with_context(|| format!("systemd cgroup path {path}: expected slice:prefix:name"))?;
        let mut manager =
            cgroups_rs::manager::SystemdManager::new(path).with_context(|| format!("systemd cgroup {path}"))?;
        manager
            .add_proc(CgroupPid::from(std::process::id() as u64))
            .with_context(|| format!("starting the systemd scope for {path} (is systemd reachable over D-Bus?)"))?;
        let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
        if let Some(resources) = resources {
            manager.set(resources).with_context(|| format!("setting the limits of {path} through systemd"))?;
        }
        // The D-Bus connection closes here: nothing idles on it.
        drop(manager);
        let this = Self { cgroup: Cgroup::load(hierarchies::auto(), relative.as_str()), path: relative };
        if let Some(resources) = resources {
            this.update(resources)?;
        }
        tracing::debug!(path = %this.path, took_us = started.elapsed().as_micros() as u64, "joined systemd scope");
        Ok(this)
    }

    pub fn update(&self, resources: &LinuxResources) -> anyhow::Result<()> {
        containerd_shim::cgroup::update_resources(&self.cgroup, resources)
            .with_context(|| format!("applying resources to cgroup {}", self.path))
    }

    /// The cgroup's metrics, packed the way containerd's `Stats` expects.
    pub fn metrics(&self) -> anyhow::Result<Any> {
        let (type_url, bytes) = if self.cgroup.v2() {
            let mut m = containerd_shim::cgroup::collect_metrics_v2(&self.cgroup)?;
            // Pressure stall information, which the crate leaves out.
            let dir = hierarchies::auto().root().join(&self.path);
            let psi = |file: &str| std::fs::read_to_string(dir.join(file)).ok().map(|text| parse_psi(&text));
            if let Some(p) = psi("cpu.pressure") {
                m.cpu.mut_or_insert_default().psi = Some(p).into();
            }
            if let Some(p) = psi("memory.pressure") {
                m.memory.mut_or_insert_default().psi = Some(p).into();
            }
            if let Some(p) = psi("io.pressure") {
                m.io.mut_or_insert_default().psi = Some(p).into();
            }
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
        Ok(Any { type_url: type_url.to_owned(), value: bytes, ..Default::default() })
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

/// How many processes the OOM killer killed in the cgroup a spec's
/// `cgroupsPath` names (cgroupfs or systemd form): `oom_kill` in v2's
/// `memory.events`, v1's `memory.oom_control`. 0 when unknown.
pub fn oom_kills(cgroups_path: &str) -> u64 {
    let path = cgroups_path.trim_start_matches('/');
    let relative = if cgroups_rs::manager::is_systemd_cgroup(path) {
        match systemd_unit_path(path) {
            Some(p) => p,
            None => return 0,
        }
    } else {
        path.to_owned()
    };
    let root = std::path::Path::new("/sys/fs/cgroup");
    let file = if cgroups_rs::fs::hierarchies::is_cgroup2_unified_mode() {
        root.join(&relative).join("memory.events")
    } else {
        root.join("memory").join(&relative).join("memory.oom_control")
    };
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| text.lines().find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok()))
        .unwrap_or(0)
}

/// A cgroup v2 `*.pressure` file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`
/// and the same for `full`.
fn parse_psi(text: &str) -> PSIStats {
    let mut stats = PSIStats::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let kind = fields.next();
        let mut data = PSIData::new();
        for field in fields {
            match field.split_once('=') {
                Some(("avg10", v)) => data.avg10 = v.parse().unwrap_or(0.0),
                Some(("avg60", v)) => data.avg60 = v.parse().unwrap_or(0.0),
                Some(("avg300", v)) => data.avg300 = v.parse().unwrap_or(0.0),
                Some(("total", v)) => data.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        match kind {
            Some("some") => stats.some = Some(data).into(),
            Some("full") => stats.full = Some(data).into(),
            _ => {}
        }
    }
    stats
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
    if cgroups_rs::manager::is_systemd_cgroup(&path) {
        return; // a transient scope: systemd removes it once it is empty
    }
    let cgroup = Cgroup::load(hierarchies::auto(), path.as_str());
    let started = std::time::Instant::now();
    // On v2 an exiting process leaves `cgroup.procs` a moment before the
    // cgroup stops being populated (rmdir fails with EBUSY meanwhile), so
    // retry until it goes or the wait is over.
    loop {
        if !cgroup.exists() {
            return;
        }
        let result = if cgroup.procs().is_empty() { cgroup.delete() } else { Ok(()) };
        match result {
            Ok(()) if !cgroup.exists() => return,
            Err(err) if started.elapsed() >= EMPTY_WAIT => {
                tracing::warn!(%path, error = %err, "removing container cgroup");
                return;
            }
            _ if started.elapsed() >= EMPTY_WAIT => {
                tracing::warn!(%path, "container cgroup still busy; left in place");
                return;
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
}

/// How long `delete` waits for the container's cgroup to empty.
const EMPTY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::{parse_psi, systemd_unit_path};

    #[test]
    fn pressure_files_parse() {
        let psi = parse_psi(
            "some avg10=1.50 avg60=0.20 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        );
        assert_eq!((psi.some.avg10, psi.some.total), (1.5, 12345));
        assert_eq!(psi.full.total, 7);
    }

    #[test]
    fn systemd_paths_name_their_scope_in_the_expanded_slice() {
        assert_eq!(systemd_unit_path("system.slice:wasmlet:abc").as_deref(), Some("system.slice/wasmlet-abc.scope"));
        assert_eq!(
            systemd_unit_path("kubepods-besteffort-pod1.slice:cri-containerd:abc").as_deref(),
            Some("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope")
        );
        assert_eq!(systemd_unit_path(":cri:abc").as_deref(), Some("system.slice/cri-abc.scope"));
        assert_eq!(systemd_unit_path("no-colons"), None);
    }
}
