//! What the process that runs a container's guest code may do: the OCI
//! spec's `process.user`, capabilities, `noNewPrivileges`, rlimits and
//! seccomp profile (wasmlet's own allowlist without one, see `seccomp`), a
//! Landlock ruleset (see `landlock`), and the pod's IPC and UTS namespaces,
//! read from the spec ([`Confinement::from_spec`]) and applied in a forked
//! child before it execs ([`Confinement::apply`]), in the order runc
//! applies them.
//!
//! Why a process and not a thread: credentials, capabilities and
//! no_new_privs can be set per thread, but a guest that escaped wasmtime
//! runs native code in the shim's address space and could rewrite any other
//! thread's stack. Only a process boundary keeps it from the shim's root
//! credentials, containerd's sockets and the other containers' FIFOs.

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsRawFd as _, OwnedFd};

/// Capabilities by name, as the OCI spec writes them, to their numbers.
pub(crate) const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// One of the five capability sets, as a bit mask by capability number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(u64);

impl CapSet {
    fn of(names: Option<&oci_spec::runtime::Capabilities>) -> Result<Self, ConfineError> {
        let mut mask = 0u64;
        for cap in names.into_iter().flatten() {
            let name = serde_json::to_value(cap).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let number = CAPABILITIES
                .iter()
                .position(|known| *known == name)
                .ok_or_else(|| ConfineError::UnknownCapability(name.clone()))?;
            mask |= 1 << number;
        }
        Ok(Self(mask))
    }

    pub fn contains(&self, number: u32) -> bool {
        self.0 & (1 << number) != 0
    }
}

/// The spec's `process.capabilities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub bounding: CapSet,
    pub effective: CapSet,
    pub permitted: CapSet,
    pub inheritable: CapSet,
    pub ambient: CapSet,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("unknown capability `{0}`")]
    UnknownCapability(String),
    #[error(
        "wasmlet does not support user namespaces (a pod with `hostUsers: false`, or uid/gid mappings): run it with \
         `hostUsers: true`, or under runc"
    )]
    UserNamespace,
    #[error("unknown rlimit `{0}`")]
    UnknownRlimit(String),
    #[error("opening the pod's {what} namespace {path}: {source}")]
    Namespace { what: &'static str, path: String, source: std::io::Error },
    #[error(transparent)]
    Seccomp(#[from] crate::shim::seccomp::SeccompError),
    #[error(transparent)]
    PidNamespace(#[from] crate::shim::pidns::PidNsError),
}

/// What the guest's process gets, all decided before the fork.
#[derive(Debug)]
pub struct Confinement {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    pub no_new_privileges: bool,
    pub capabilities: Capabilities,
    /// (resource, soft, hard).
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    /// Namespaces to join, opened now: (CLONE_NEW* flag, file).
    namespaces: Vec<(libc::c_int, OwnedFd)>,
    /// The PID namespace the process must start in (entered by whoever
    /// forks it: `pidns`).
    pub pid_namespace: crate::shim::pidns::PidNamespace,
    /// The highest capability number this kernel knows.
    last_cap: u32,
    /// The spec's seccomp profile (or wasmlet's allowlist), compiled by
    /// [`Confinement::compile`].
    seccomp: crate::shim::seccomp::SeccompFilter,
    /// What the guest can name through its preopens (set by the caller,
    /// which knows them).
    pub fs_view: crate::shim::fs_view::FsView,
    /// What the guest may still name on the node (set by the caller, which
    /// knows the preopens' fds).
    pub landlock: crate::shim::landlock::Landlock,
    /// The step of [`Confinement::apply`] that failed, if one did.
    pub failed_step: &'static str,
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

impl Confinement {
    pub fn from_spec(spec: &Spec) -> Result<Self, ConfineError> {
        let linux = spec.linux().as_ref();
        let user_namespace = linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::User));
        if user_namespace || linux.and_then(|l| l.uid_mappings().as_ref()).is_some_and(|m| !m.is_empty()) {
            return Err(ConfineError::UserNamespace);
        }
        let process = spec.process().clone().unwrap_or_default();
        let user = process.user();
        // No capabilities in the spec means none (oci-spec's own default
        // would be a set of them).
        let capabilities = match process.capabilities() {
            None => Capabilities::default(),
            Some(caps) => Capabilities {
                bounding: CapSet::of(caps.bounding().as_ref())?,
                effective: CapSet::of(caps.effective().as_ref())?,
                permitted: CapSet::of(caps.permitted().as_ref())?,
                inheritable: CapSet::of(caps.inheritable().as_ref())?,
                ambient: CapSet::of(caps.ambient().as_ref())?,
            },
        };
        let mut rlimits = Vec::new();
        for limit in process.rlimits().iter().flatten() {
            let name =
                serde_json::to_value(limit.typ()).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let resource = rlimit_resource(&name).ok_or(ConfineError::UnknownRlimit(name))?;
            rlimits.push((resource, limit.soft(), limit.hard()));
        }
        let mut namespaces = Vec::new();
        for ns in spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).into_iter().flatten() {
            let (flag, what) = match ns.typ() {
                LinuxNamespaceType::Ipc => (libc::CLONE_NEWIPC, "IPC"),
                LinuxNamespaceType::Uts => (libc::CLONE_NEWUTS, "UTS"),
                _ => continue,
            };
            // A namespace without a path would be a new one: the guest has no
            // use for an empty IPC or UTS namespace of its own.
            let Some(path) = ns.path() else { continue };
            let file = std::fs::File::open(path).map_err(|source| ConfineError::Namespace {
                what,
                path: path.display().to_string(),
                source,
            })?;
            namespaces.push((flag, OwnedFd::from(file)));
        }
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        Ok(Self {
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            capabilities,
            rlimits,
            namespaces,
            pid_namespace: crate::shim::pidns::PidNamespace::from_spec(spec)?,
            last_cap,
            seccomp: crate::shim::seccomp::SeccompFilter::for_spec(linux.and_then(|l| l.seccomp().as_ref()))?,
            fs_view: Default::default(),
            landlock: Default::default(),
            failed_step: "",
        })
    }

    /// Compile what [`Confinement::apply`] loads (it must not allocate).
    pub fn compile(&mut self) -> Result<(), ConfineError> {
        Ok(self.seccomp.compile()?)
    }

    /// Turn the spec's capability sets into those the process would hold
    /// after exec'ing a file without capabilities of its own, as the kernel
    /// computes them (capabilities(7)) and as a runc container's process
    /// ends up: for uid 0, permitted = bounding | inheritable | ambient
    /// (within the spec's permitted under no_new_privs) and effective the
    /// same; for any other uid, permitted = effective = ambient. A guest
    /// process that does not exec (the pre-forked one) applies these, so it
    /// holds exactly what an exec'd one would: a non-root user, none.
    pub fn as_after_exec(&mut self) {
        let caps = &mut self.capabilities;
        let ambient = caps.ambient.0;
        let (permitted, effective) = if self.uid == 0 {
            let gained = caps.bounding.0 | caps.inheritable.0 | ambient;
            let permitted = if self.no_new_privileges { gained & caps.permitted.0 } else { gained };
            (permitted, permitted)
        } else {
            (ambient, ambient)
        };
        caps.permitted = CapSet(permitted);
        caps.effective = CapSet(effective);
    }

    /// Confine the calling process for a guest that runs without an exec
    /// (the pre-forked guest process, `self-test`): what it can name through
    /// `folders` (opened at fds `base..`), the capability sets an exec would
    /// leave, Landlock over those folders (`read_only` for each) and the
    /// compile cache, then everything [`Confinement::apply`] does. The
    /// error names what failed.
    ///
    /// # Safety
    /// As for [`Confinement::apply`]; the process must still be root.
    pub unsafe fn apply_without_exec(
        &mut self,
        spec: &Spec,
        folders: &[crate::shim::fs_view::Folder<'_>],
        read_only: &[bool],
        cache_dir: &std::path::Path,
        network: bool,
        base: i32,
    ) -> Result<(), String> {
        self.compile().map_err(|e| e.to_string())?;
        self.fs_view = crate::shim::fs_view::FsView::new(spec, folders);
        // No exec follows to recompute the capability sets: apply the result.
        self.as_after_exec();
        self.landlock = crate::shim::landlock::Landlock::new(base, read_only, cache_dir, network);
        // SAFETY: the caller's guarantees.
        unsafe { self.fs_view.apply(base) }.map_err(|e| format!("masking the guest's view of its folders: {e}"))?;
        // SAFETY: as above.
        unsafe { self.apply() }.map_err(|e| format!("confining the guest ({}): {e}", self.failed_step))
    }

    /// Apply it to the calling process: namespaces, rlimits, the bounding
    /// set, then identity, capabilities, no_new_privs, umask, Landlock and
    /// seccomp, as runc does: without no_new_privs the filter (and the
    /// Landlock ruleset) is loaded while the process still has
    /// CAP_SYS_ADMIN, before the identity change (so the filter must allow
    /// those calls); with it, last. Only raw syscalls, no
    /// allocation: it also runs between fork and exec.
    ///
    /// # Safety
    /// Call only in a single-threaded child (a forked one about to exec, or
    /// the pre-forked guest process): it changes the whole process's
    /// credentials, and capabilities and seccomp are per thread.
    pub unsafe fn apply(&mut self) -> std::io::Result<()> {
        let check = |r: libc::c_int| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
        // Which step failed, for the error (naming it must not allocate).
        macro_rules! step {
            ($name:expr, $call:expr) => {{
                self.failed_step = $name;
                $call
            }};
        }
        // SAFETY: plain syscalls on values we own; the caller guarantees a
        // single-threaded child about to exec.
        unsafe {
            for (flag, fd) in &self.namespaces {
                step!("setns", check(libc::setns(fd.as_raw_fd(), *flag)))?;
            }
            for (resource, soft, hard) in &self.rlimits {
                let limit = libc::rlimit { rlim_cur: *soft, rlim_max: *hard };
                step!("setrlimit", check(libc::setrlimit(*resource, &limit)))?;
            }
            for cap in 0..=self.last_cap.min(63) {
                if !self.capabilities.bounding.contains(cap) {
                    step!("PR_CAPBSET_DROP", check(libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)))?;
                }
            }
            // Keep the permitted set across the uid change; the capset below
            // then sets exactly the spec's.
            step!("PR_SET_KEEPCAPS", check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0)))?;
            // Landlock and seccomp need CAP_SYS_ADMIN without no_new_privs:
            // both come before the identity change then (Landlock first:
            // the filter need not allow its calls).
            if !self.no_new_privileges {
                step!("Landlock", self.landlock.restrict())?;
                step!("loading the seccomp filter", self.seccomp.load())?;
            }
            step!("setgroups", check(libc::setgroups(self.additional_gids.len(), self.additional_gids.as_ptr())))?;
            step!("setresgid", check(libc::setresgid(self.gid, self.gid, self.gid)))?;
            step!("setresuid", check(libc::setresuid(self.uid, self.uid, self.uid)))?;
            step!("capset", set_capabilities(&self.capabilities))?;
            for cap in 0..=self.last_cap.min(63) {
                if self.capabilities.ambient.contains(cap) {
                    step!(
                        "PR_CAP_AMBIENT_RAISE",
                        check(libc::prctl(
                            libc::PR_CAP_AMBIENT,
                            libc::PR_CAP_AMBIENT_RAISE,
                            cap as libc::c_ulong,
                            0,
                            0
                        ))
                    )?;
                }
            }
            if self.no_new_privileges {
                step!("PR_SET_NO_NEW_PRIVS", check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)))?;
            }
            libc::umask(self.umask as libc::mode_t);
            // The credential change cleared the parent-death signal: if the
            // shim dies, so does its guest. (It follows the *thread* that
            // forked this child: spawn from a thread that lives as long as
            // the shim.)
            step!("PR_SET_PDEATHSIG", check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0)))?;
            // It also made the process undumpable: /proc/self would stay
            // root's and the guest could not reopen its preopens through
            // /proc/self/fd. An exec resets this; a pre-forked guest process
            // does not exec (a runc container's process is dumpable too).
            step!("PR_SET_DUMPABLE", check(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0)))?;
            if self.no_new_privileges {
                step!("Landlock", self.landlock.restrict())?;
                step!("loading the seccomp filter", self.seccomp.load())?;
            }
        }
        Ok(())
    }
}

/// capset(2) with the spec's effective, permitted and inheritable sets.
fn set_capabilities(caps: &Capabilities) -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let split = |set: CapSet| (set.0 as u32, (set.0 >> 32) as u32);
    let (e0, e1) = split(caps.effective);
    let (p0, p1) = split(caps.permitted);
    let (i0, i1) = split(caps.inheritable);
    let header = Header { version: VERSION_3, pid: 0 };
    let data = [
        Data { effective: e0, permitted: p0, inheritable: i0 },
        Data { effective: e1, permitted: p1, inheritable: i1 },
    ];
    // SAFETY: capset with a v3 header and its two data words.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(process: serde_json::Value) -> Spec {
        serde_json::from_value(
            serde_json::json!({"ociVersion": "1.1.0", "process": process, "root": {"path": "rootfs"}}),
        )
        .unwrap()
    }

    #[test]
    fn reads_identity_capabilities_and_rlimits_from_the_spec() {
        let c = Confinement::from_spec(&spec(serde_json::json!({
            "user": {"uid": 1000, "gid": 3000, "additionalGids": [2000, 3000], "umask": 63},
            "cwd": "/", "noNewPrivileges": true,
            "capabilities": {"bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"], "effective": ["CAP_CHOWN"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}]
        })))
        .unwrap();
        assert_eq!((c.uid, c.gid, c.additional_gids.as_slice(), c.umask), (1000, 3000, &[2000, 3000][..], 0o77));
        assert!(c.no_new_privileges);
        assert!(c.capabilities.bounding.contains(0) && c.capabilities.bounding.contains(10));
        assert!(!c.capabilities.bounding.contains(21), "no CAP_SYS_ADMIN");
        assert_eq!(c.capabilities.effective, CapSet(1));
        assert_eq!(c.capabilities.ambient, CapSet::default());
        assert_eq!(c.rlimits, [(libc::RLIMIT_NOFILE, 512, 1024)]);
    }

    #[test]
    fn user_namespaces_are_refused_with_the_reason() {
        let mut v = serde_json::json!({"ociVersion": "1.1.0", "root": {"path": "rootfs"},
            "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/"},
            "linux": {"namespaces": [{"type": "user"}], "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}});
        let err = Confinement::from_spec(&serde_json::from_value(v.clone()).unwrap()).unwrap_err();
        assert!(err.to_string().contains("hostUsers: false"), "{err}");
        v["linux"]["namespaces"] = serde_json::json!([{"type": "network"}]);
        assert!(Confinement::from_spec(&serde_json::from_value(v).unwrap()).is_err(), "mappings alone are refused too");
    }

    #[test]
    fn defaults_are_the_least_privilege() {
        let c = Confinement::from_spec(&spec(serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/"}))).unwrap();
        assert_eq!(c.capabilities, Capabilities::default(), "no capabilities unless the spec grants them");
        assert_eq!(c.umask, 0o022);
        assert!(c.rlimits.is_empty());
    }

    #[test]
    fn without_an_exec_the_sets_are_those_an_exec_would_leave() {
        let caps = |uid: u32, nnp: bool, ambient: &[&str]| {
            let mut c = Confinement::from_spec(&spec(serde_json::json!({
                "user": {"uid": uid, "gid": uid}, "cwd": "/", "noNewPrivileges": nnp,
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_NET_BIND_SERVICE"],
                    "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_NET_BIND_SERVICE"],
                    "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE"],
                    "inheritable": ["CAP_NET_BIND_SERVICE"],
                    "ambient": ambient,
                }
            })))
            .unwrap();
            c.as_after_exec();
            (c.capabilities.permitted, c.capabilities.effective)
        };
        let (chown, dac, bind) = (1 << 0, 1 << 1, 1 << 10);
        // A non-root user keeps only its ambient set (runAsUser: none at all).
        assert_eq!(caps(1000, true, &[]), (CapSet(0), CapSet(0)));
        assert_eq!(caps(1000, true, &["CAP_NET_BIND_SERVICE"]), (CapSet(bind), CapSet(bind)));
        // Root gets bounding | inheritable, within the permitted set under no_new_privs.
        assert_eq!(caps(0, false, &[]), (CapSet(chown | dac | bind), CapSet(chown | dac | bind)));
        assert_eq!(caps(0, true, &[]), (CapSet(chown | dac), CapSet(chown | dac)));
    }
}
