//! Landlock for the guest process: what it may still name on the node's
//! filesystem, which TCP ports it may bind or connect to, and whom it may
//! signal or reach through abstract Unix sockets, enforced by the kernel
//! even if the guest broke out of wasmtime (landlock(7)).
//!
//! The ruleset: every access right the kernel's Landlock ABI knows is
//! handled (so denied) except beneath the guest's preopened folders (all but
//! execute; read-only ones only read) and the compile cache (read). An
//! exec'd guest process also needs its own binary and the libraries the
//! shim maps; a guest with the network granted, the node's name-service
//! files. Without the network, TCP bind and connect are denied (ABI 4; the
//! HTTP listener is bound by the shim and only accepted on). Signals and
//! abstract Unix sockets are scoped to the guest's own domain (ABI 6), so a
//! root guest can signal no host process and reach no shim's abstract
//! socket. A kernel without Landlock gets the rest of the confinement; the
//! ABI in use is reported at start-up (`-info`'s features).
//!
//! Everything is decided before the fork ([`Landlock::new`]); the child only
//! makes raw syscalls ([`Landlock::restrict`]): the `landlock` crate's
//! builder allocates, which is not sound between fork and exec.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

const SYS_CREATE_RULESET: libc::c_long = 444;
const SYS_ADD_RULE: libc::c_long = 445;
const SYS_RESTRICT_SELF: libc::c_long = 446;
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

// Filesystem access rights (uapi/linux/landlock.h).
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
/// ABI 1 knows bits 0–12, ABI 2 adds REFER, 3 TRUNCATE, 5 IOCTL_DEV.
const FS_BY_ABI: [u64; 5] = [(1 << 13) - 1, (1 << 14) - 1, (1 << 15) - 1, (1 << 15) - 1, (1 << 16) - 1];
const READ: u64 = READ_FILE | READ_DIR;
/// Rights that make sense on a file (not a folder) in a rule.
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | (1 << 14) | (1 << 15);
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version this kernel offers (0: none).
pub fn abi() -> u32 {
    // SAFETY: the version query takes no attribute.
    let version =
        unsafe { libc::syscall(SYS_CREATE_RULESET, std::ptr::null::<RulesetAttr>(), 0, CREATE_RULESET_VERSION) };
    version.max(0) as u32
}

/// A guest process's ruleset, decided before the fork.
#[derive(Debug, Default)]
pub struct Landlock {
    abi: u32,
    /// The preopens, at fds `base..` in the child: read-only or not.
    base: i32,
    preopens: Vec<bool>,
    /// Further paths and what is allowed beneath each.
    paths: Vec<(CString, u64)>,
    network: bool,
}

impl Landlock {
    /// The ruleset for a guest whose preopens will be at fds `base..` with
    /// these read-only flags, reading its code from `cache_dir`.
    pub fn new(base: i32, read_only: &[bool], cache_dir: &Path, network: bool) -> Self {
        let mut paths = vec![(c_path(cache_dir), READ)];
        if network {
            // getaddrinfo's files (wasi:sockets name lookups, outgoing HTTP).
            for file in ["/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf"] {
                paths.push((c_path(Path::new(file)), READ_FILE));
            }
        }
        Self { abi: abi().min(7), base, preopens: read_only.to_vec(), paths, network }
    }

    /// Also allow what exec'ing `binary` needs: running it, and reading the
    /// dynamic loader's cache and the libraries this process maps (the
    /// guest process is the same binary).
    pub fn allow_exec_of(&mut self, binary: &Path) {
        self.paths.push((c_path(binary), EXECUTE | READ_FILE));
        self.paths.push((c"/etc/ld.so.cache".to_owned(), READ_FILE));
        for library in mapped_libraries() {
            self.paths.push((c_path(&library), READ_FILE));
        }
    }

    /// Whether this kernel enforces it.
    pub fn enforced(&self) -> bool {
        self.abi > 0
    }

    /// Build the ruleset and restrict the calling thread (and what it
    /// forks or execs) to it. Needs no_new_privs or CAP_SYS_ADMIN. A path
    /// that does not exist gets no rule. Only raw syscalls.
    ///
    /// # Safety
    /// Call only in a single-threaded child of the shim (it confines the
    /// calling thread only), after the preopens are at their fds.
    pub unsafe fn restrict(&self) -> std::io::Result<()> {
        if self.abi == 0 {
            return Ok(());
        }
        let handled_fs = FS_BY_ABI[(self.abi as usize).min(FS_BY_ABI.len()) - 1];
        let attr = RulesetAttr {
            handled_access_fs: handled_fs,
            handled_access_net: if self.abi >= 4 && !self.network { NET_BIND_TCP | NET_CONNECT_TCP } else { 0 },
            scoped: if self.abi >= 6 { SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL } else { 0 },
        };
        // Older kernels take only the fields they know.
        let size = match self.abi {
            1..=3 => 8,
            4 | 5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        let check = |r: libc::c_long| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) };
        // SAFETY: Landlock syscalls with attributes that outlive each call,
        // open/close on fds we own.
        unsafe {
            let ruleset = check(libc::syscall(SYS_CREATE_RULESET, &attr as *const RulesetAttr, size, 0u32))? as i32;
            let add = |fd: i32, allowed: u64| {
                let rule = PathBeneathAttr { allowed_access: allowed & handled_fs, parent_fd: fd };
                check(libc::syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, &rule as *const PathBeneathAttr, 0u32))
            };
            let result = (|| {
                for (i, read_only) in self.preopens.iter().enumerate() {
                    add(self.base + i as i32, if *read_only { READ } else { handled_fs & !EXECUTE })?;
                }
                for (path, allowed) in &self.paths {
                    let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                    if fd < 0 {
                        continue;
                    }
                    let mut stat: libc::stat = std::mem::zeroed();
                    let is_dir = libc::fstat(fd, &mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    let added = add(fd, if is_dir { *allowed } else { *allowed & FILE_RIGHTS });
                    libc::close(fd);
                    added?;
                }
                check(libc::syscall(SYS_RESTRICT_SELF, ruleset, 0u32))
            })();
            libc::close(ruleset);
            result.map(drop)
        }
    }
}

fn c_path(path: &Path) -> CString {
    // A path with a NUL byte cannot be opened: it gets no rule.
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

/// The shared libraries mapped into this process (from /proc/self/maps).
fn mapped_libraries() -> Vec<std::path::PathBuf> {
    static LIBRARIES: std::sync::OnceLock<Vec<std::path::PathBuf>> = std::sync::OnceLock::new();
    LIBRARIES
        .get_or_init(|| {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
            let mut libraries: Vec<std::path::PathBuf> = maps
                .lines()
                .filter_map(|line| line.split_whitespace().nth(5))
                .filter(|path| path.starts_with('/') && path.contains(".so"))
                .map(std::path::PathBuf::from)
                .collect();
            libraries.sort();
            libraries.dedup();
            libraries
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a forked child (single-threaded): restrict, then report what
    /// could still be opened.
    fn in_child(landlock: &Landlock, paths: &[&Path]) -> Vec<bool> {
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let paths: Vec<CString> = paths.iter().map(|p| c_path(p)).collect();
        // SAFETY: the child makes only raw syscalls, then _exit.
        match unsafe { libc::fork() } {
            // SAFETY: the forked child: raw syscalls only, then _exit.
            0 => unsafe {
                use std::io::Write as _;
                let mut result = [0u8; 8];
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if landlock.restrict().is_err() {
                    libc::_exit(2);
                }
                for (i, path) in paths.iter().enumerate() {
                    let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                    result[i] = (fd >= 0) as u8;
                }
                let _ = writer.write_all(&result[..paths.len()]);
                libc::_exit(0);
            },
            pid => {
                drop(writer);
                let mut status = 0;
                // SAFETY: our child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert_eq!(status, 0, "the child could not restrict itself");
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut reader, &mut out).unwrap();
                out.into_iter().map(|b| b == 1).collect()
            }
        }
    }

    #[test]
    fn only_the_allowed_paths_can_be_opened() {
        if abi() == 0 {
            panic!("this kernel has no Landlock: the test machines do");
        }
        let dir = tempfile::tempdir().unwrap();
        let (cache, other) = (dir.path().join("cache"), dir.path().join("other"));
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(cache.join("code"), "x").unwrap();
        std::fs::write(other.join("secret"), "x").unwrap();
        let landlock = Landlock::new(1000, &[], &cache, false);
        let opened = in_child(&landlock, &[&cache.join("code"), &other.join("secret"), Path::new("/etc/passwd")]);
        assert_eq!(opened, [true, false, false], "cache readable; nothing else");
    }
}
