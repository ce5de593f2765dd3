//! The seccomp filter of a guest process: the spec's `linux.seccomp` (what
//! kubelet's `RuntimeDefault` and `Localhost` profiles become, translated
//! with libseccomp as runc translates them), or, when the spec has none,
//! wasmlet's own allowlist ([`GUEST_SYSCALLS`]): the system calls a guest
//! process makes (wasmtime, WASI files, clocks, sockets and polls, the
//! HTTP server), found by tracing every example guest, and nothing else.
//!
//! A spec's profile gets a second filter stacked on it that refuses Unix
//! sockets and new namespaces ([`beyond_wasm`]); the allowlist has neither.
//!
//! The filter is compiled to BPF before the fork, and loaded in the child
//! with one `seccomp(2)` call (no allocation after fork).

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use std::io::{Read as _, Seek as _};
use std::os::fd::FromRawFd as _;

/// The system calls a guest process needs when the spec names no profile
/// (traced: `strace -f` of containerd while every example guest ran,
/// modules and components, files, sockets, HTTP, sleeps, kills), plus the
/// WASI calls the examples do not make (links, truncation, timestamps).
/// No `kill`, `ptrace`, `mount`, `bpf`, `keyctl`, `unshare`, `setns`,
/// `pidfd_*` or `process_vm_*`: a guest that escaped wasmtime signals and
/// inspects no other process. `tgkill` is allowed only towards the process
/// itself (glibc's `abort`), see [`SeccompFilter::load`].
pub const GUEST_SYSCALLS: &[&str] = &[
    // memory and threads (wasmtime, Rust std, glibc)
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "membarrier",
    "futex",
    "set_robust_list",
    "rseq",
    "clone",
    "clone3",
    "exit",
    "exit_group",
    "gettid",
    "getpid",
    "sched_yield",
    "sched_getaffinity",
    "prctl",
    "arch_prctl",
    "set_tid_address",
    "getrandom",
    "sigaltstack",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "getrlimit",
    "prlimit64",
    "uname",
    "execve",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getppid",
    // finishing the confinement after a filter loaded without
    // no_new_privs (as runc orders it); harmless without capabilities
    "setgroups",
    "setresgid",
    "setresuid",
    "capget",
    "capset",
    // files (WASI preopens and the compile cache)
    "openat",
    "open",
    "close",
    "read",
    "write",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "preadv",
    "pwritev",
    "lseek",
    "fstat",
    "newfstatat",
    "statx",
    "stat",
    "lstat",
    "fstatfs",
    "statfs",
    "getdents64",
    "readlinkat",
    "readlink",
    "mkdirat",
    "unlinkat",
    "renameat",
    "renameat2",
    "symlinkat",
    "linkat",
    "fsync",
    "fdatasync",
    "ftruncate",
    "fallocate",
    "utimensat",
    "faccessat",
    "faccessat2",
    "access",
    "fadvise64",
    "fcntl",
    "ioctl",
    "dup",
    "dup2",
    "dup3",
    "pipe2",
    "flock",
    "getcwd",
    "umask",
    "memfd_create",
    "mkdir",
    // clocks, sleeps and polls (WASI poll_oneoff, wasi:io)
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "poll",
    "ppoll",
    "pselect6",
    "select",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd2",
    "timerfd_create",
    "timerfd_settime",
    // sockets (granted network, the HTTP listener, the control socket);
    // `socket` only for SOCKET_FAMILIES, see `allowlist`
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "shutdown",
];

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building the seccomp filter: {0}")]
    Build(#[from] libseccomp::error::SeccompError),
    #[error("exporting the seccomp filter: {0}")]
    Export(std::io::Error),
}

/// A guest's filter: checked when made, compiled to BPF by
/// [`SeccompFilter::compile`] (in the guest process, off Create's path: the
/// daemon only needs to know the spec's profile is usable), then loaded.
#[derive(Debug)]
pub struct SeccompFilter {
    profile: Option<LinuxSeccomp>,
    compiled: Option<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    program: Vec<libc::sock_filter>,
    /// With the spec's profile: a second filter refusing what no Wasm guest
    /// needs (see [`beyond_wasm`]); the kernel applies both.
    beyond_wasm: Option<Vec<libc::sock_filter>>,
}

impl SeccompFilter {
    /// The filter for a guest: the spec's profile, else [`GUEST_SYSCALLS`].
    /// A profile libseccomp cannot express fails here.
    pub fn for_spec(profile: Option<&LinuxSeccomp>) -> Result<Self, SeccompError> {
        if let Some(profile) = profile {
            from_profile(profile)?;
        }
        Ok(Self { profile: profile.cloned(), compiled: None })
    }

    /// Compile it to BPF (once), before [`SeccompFilter::load`] (which
    /// must not allocate).
    pub fn compile(&mut self) -> Result<(), SeccompError> {
        if self.compiled.is_some() {
            return Ok(());
        }
        self.compiled = Some(match &self.profile {
            Some(profile) => Compiled {
                program: Self::export(&from_profile(profile)?)?,
                beyond_wasm: Some(Self::export(&beyond_wasm()?)?),
            },
            None => Compiled { program: Self::export(&allowlist(GUEST_SYSCALLS)?)?, beyond_wasm: None },
        });
        Ok(())
    }

    fn export(context: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
        // libseccomp 2.5 exports only to a file descriptor.
        // SAFETY: memfd_create with a valid name; the fd is ours.
        let fd = unsafe { libc::memfd_create(c"wasmlet-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(SeccompError::Export(std::io::Error::last_os_error()));
        }
        // SAFETY: a new fd we own.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        context.export_bpf(&file)?;
        let mut bytes = Vec::new();
        file.rewind().and_then(|_| file.read_to_end(&mut bytes)).map_err(SeccompError::Export)?;
        let size = std::mem::size_of::<libc::sock_filter>();
        if bytes.is_empty() || bytes.len() % size != 0 {
            return Err(SeccompError::Export(std::io::Error::other("truncated BPF program")));
        }
        let program = bytes
            .chunks_exact(size)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(program)
    }

    /// Load it into the calling process, with its own pid in place of
    /// [`OWN_PID`] (in this process's copy of the program: no allocation).
    ///
    /// # Safety
    /// Call only in a child between fork and exec: it confines the whole
    /// process (which must have no_new_privs or CAP_SYS_ADMIN).
    pub unsafe fn load(&mut self) -> std::io::Result<()> {
        let Some(compiled) = self.compiled.as_mut() else {
            return Err(std::io::Error::other("the seccomp filter was not compiled"));
        };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        for instruction in compiled.program.iter_mut().filter(|i| i.k == OWN_PID) {
            instruction.k = pid;
        }
        for program in std::iter::once(&compiled.program).chain(compiled.beyond_wasm.as_ref()) {
            let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
            // SAFETY: a valid program that outlives the call.
            let rc = unsafe {
                libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog)
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Stands for the process's own pid in a compiled filter until
/// [`SeccompFilter::load`] knows it (a pid is at most 2^22).
const OWN_PID: u32 = 0x5ec0_11d0;

/// The socket families a guest may create: IP (granted network, name
/// lookups) and netlink (glibc's getaddrinfo asks it for the addresses).
pub const SOCKET_FAMILIES: [libc::c_int; 3] = [libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK];

/// Only `names` allowed (and `tgkill` of the process itself); anything
/// else fails with EPERM, as Docker's default profile answers.
fn allowlist(names: &[&str]) -> Result<ScmpFilterContext, SeccompError> {
    let mut context = ScmpFilterContext::new(ScmpAction::Errno(libc::EPERM))?;
    let own = ScmpArgCompare::new(0, ScmpCompareOp::Equal, OWN_PID.into());
    context.add_rule_conditional(ScmpAction::Allow, ScmpSyscall::from_name("tgkill")?, &[own])?;
    // No Unix sockets by path: with none of its own, a guest (even root)
    // reaches no containerd or shim socket. (socketpair stays: tokio's
    // signal handling makes one.)
    for family in SOCKET_FAMILIES {
        let domain = ScmpArgCompare::new(0, ScmpCompareOp::Equal, family as u64);
        context.add_rule_conditional(ScmpAction::Allow, ScmpSyscall::from_name("socket")?, &[domain])?;
    }
    for name in names {
        // A name this libseccomp does not know (another architecture's) is skipped.
        if let Ok(syscall) = ScmpSyscall::from_name(name) {
            context.add_rule(ScmpAction::Allow, syscall)?;
        }
    }
    Ok(context)
}

/// Everything allowed but what no Wasm guest can ask for and a Linux
/// container's profile may still allow, stacked on a spec's profile:
/// `socket(AF_UNIX, …)` (a runc container can only use Unix sockets on its
/// own root, but a guest process shares the node's filesystem, where
/// containerd's and the shims' sockets are: root owns them, a root guest
/// passes their permissions, and Landlock does not cover connecting to
/// them), `unshare` and `setns` (new namespaces, e.g. a user namespace's
/// capabilities; `clone3`, which threads need, cannot be told apart).
fn beyond_wasm() -> Result<ScmpFilterContext, SeccompError> {
    let mut context = ScmpFilterContext::new(ScmpAction::Allow)?;
    let unix = ScmpArgCompare::new(0, ScmpCompareOp::Equal, libc::AF_UNIX as u64);
    context.add_rule_conditional(ScmpAction::Errno(libc::EPERM), ScmpSyscall::from_name("socket")?, &[unix])?;
    for name in ["unshare", "setns"] {
        context.add_rule(ScmpAction::Errno(libc::EPERM), ScmpSyscall::from_name(name)?)?;
    }
    Ok(context)
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno.map_or(libc::EPERM, |e| e as i32)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno.map_or(libc::EPERM as u16, |e| e as u16)),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        // Nothing listens for notifications here: refuse instead.
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Errno(libc::ENOSYS),
    }
}

fn arch(arch: Arch) -> Option<ScmpArch> {
    Some(match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        _ => return None,
    })
}

fn compare(arg: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI: `value` is the mask, `valueTwo` the value compared.
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = match arg.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
        _ => arg.value(),
    };
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

/// The spec's profile, as runc builds it: unknown syscall names skipped,
/// rules whose action is the default skipped, and conditions on the same
/// argument split into separate rules (libseccomp allows one per argument).
fn from_profile(profile: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    let default = action(profile.default_action(), profile.default_errno_ret());
    let mut context = ScmpFilterContext::new(default)?;
    for a in profile.architectures().iter().flatten() {
        let Some(a) = arch(*a) else { continue };
        if !context.is_arch_present(a)? {
            context.add_arch(a)?;
        }
    }
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue;
        }
        let args = rule.args().as_deref().unwrap_or_default();
        let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "seccomp profile names a syscall unknown here; skipped");
                continue;
            };
            if args.is_empty() {
                context.add_rule(act, syscall)?;
            } else if repeated {
                for arg in args {
                    context.add_rule_conditional(act, syscall, &[compare(arg)])?;
                }
            } else {
                let conditions: Vec<ScmpArgCompare> = args.iter().map(compare).collect();
                context.add_rule_conditional(act, syscall, &conditions)?;
            }
        }
    }
    Ok(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_and_the_default_allowlist_compile() {
        let profile: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        }))
        .unwrap();
        let compiled = |profile: Option<&LinuxSeccomp>| {
            let mut filter = SeccompFilter::for_spec(profile).unwrap();
            filter.compile().unwrap();
            filter.compiled.unwrap()
        };
        assert!(!compiled(Some(&profile)).program.is_empty());
        let builtin = compiled(None);
        assert_eq!(builtin.program.iter().filter(|i| i.k == OWN_PID).count(), 1, "one own-pid check, for tgkill");
        // Not compiled, not loadable (load runs where it cannot allocate).
        // SAFETY: it fails before any syscall.
        assert!(unsafe { SeccompFilter::for_spec(None).unwrap().load() }.is_err());
    }

    /// The built-in filter loaded for real in a forked child: what a guest
    /// that escaped wasmtime would try fails with EPERM, what a guest
    /// process needs still works. The child reports a bit per check in its
    /// exit status (raw syscalls only after the fork).
    #[test]
    fn the_builtin_filter_refuses_what_an_escaped_guest_would_try() {
        let mut filter = SeccompFilter::for_spec(None).unwrap();
        filter.compile().unwrap();
        // SAFETY: the child runs only raw syscalls, then _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: in the forked child only; plain syscalls.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if filter.load().is_err() {
                    libc::_exit(100);
                }
                let eperm = |rc: libc::c_long| rc == -1 && *libc::__errno_location() == libc::EPERM;
                let mut failed = 0;
                let src = c"none".as_ptr();
                let target = c"/".as_ptr();
                if !eperm(libc::syscall(libc::SYS_mount, src, target, src, 0, 0)) {
                    failed |= 1;
                }
                if !eperm(libc::syscall(libc::SYS_kill, libc::getppid(), 0)) {
                    failed |= 2;
                }
                if !eperm(libc::syscall(libc::SYS_ptrace, libc::PTRACE_ATTACH, libc::getppid(), 0, 0)) {
                    failed |= 4;
                }
                if !eperm(libc::syscall(libc::SYS_tgkill, libc::getppid(), libc::getppid(), 0)) {
                    failed |= 8;
                }
                if !eperm(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)) {
                    failed |= 16;
                }
                if !eperm(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) as libc::c_long) {
                    failed |= 128;
                }
                // Still allowed: its own signals, its own pid, files, IP sockets.
                if libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::getpid(), 0) != 0 {
                    failed |= 32;
                }
                if libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0) < 0 {
                    failed |= 32;
                }
                if libc::syscall(libc::SYS_getpid) <= 0 || libc::open(c"/".as_ptr(), libc::O_RDONLY) < 0 {
                    failed |= 64;
                }
                libc::_exit(failed);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "the child died: {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "checks failed (bits: mount 1, kill 2, ptrace 4, tgkill other 8, unshare 16, tgkill self or IP socket 32, basics 64, Unix socket 128)"
        );
    }
}
