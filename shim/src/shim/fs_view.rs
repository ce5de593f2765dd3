//! What the guest can name through its preopened folders, cut down the way
//! runc cuts a container's root: the spec's `maskedPaths` hidden (`/dev/null`
//! over a file, an empty read-only tmpfs over a folder), its `readonlyPaths`
//! read-only, and device nodes its device rules deny hidden, inside a mount
//! namespace of the guest process's own. A hostPath `/proc` or `/dev` then
//! gives what runc would give, and the node's own mounts are untouched.
//!
//! Everything is resolved before the fork ([`FsView::new`]); the child only
//! makes syscalls ([`FsView::apply`]), then opens the preopens itself, so
//! their lookups see the masks.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// A preopened folder: the host path and the name the guest sees.
pub struct Folder<'a> {
    pub host: &'a Path,
    pub guest: &'a str,
}

#[derive(Debug, Default)]
pub struct FsView {
    /// (host path, is a folder).
    masks: Vec<(CString, bool)>,
    readonly: Vec<CString>,
    /// The preopens' host paths, opened in this order by the child.
    preopens: Vec<CString>,
}

fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

/// Where container path `path` is on the host through `folder`, if inside it.
fn through(folder: &Folder<'_>, path: &str) -> Option<PathBuf> {
    let guest = folder.guest.trim_end_matches('/');
    let rest = if guest.is_empty() { path.strip_prefix('/')? } else { path.strip_prefix(guest)? };
    if !(rest.is_empty() || rest.starts_with('/') || guest.is_empty()) {
        return None; // `/procfoo` is not inside `/proc`
    }
    Some(folder.host.join(rest.trim_start_matches('/')))
}

/// Whether the spec's device rules let the guest read or write a device
/// (`c`/`b`, major, minor): the last matching rule decides, nothing matching
/// denies, as the device cgroup does.
pub fn device_allowed(rules: &[LinuxDeviceCgroup], kind: char, major: i64, minor: i64) -> bool {
    let mut allowed = false;
    for rule in rules {
        let type_matches = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => true,
            LinuxDeviceType::C | LinuxDeviceType::U => kind == 'c',
            LinuxDeviceType::B => kind == 'b',
            LinuxDeviceType::P => false,
        };
        let access = rule.access().as_deref().unwrap_or("rwm");
        if type_matches
            && rule.major().is_none_or(|m| m == major)
            && rule.minor().is_none_or(|m| m == minor)
            && (access.contains('r') || access.contains('w'))
        {
            allowed = rule.allow();
        }
    }
    allowed
}

impl FsView {
    pub fn new(spec: &Spec, folders: &[Folder<'_>]) -> Self {
        let linux = spec.linux().as_ref();
        let mut view = Self { preopens: folders.iter().filter_map(|f| c_path(f.host)).collect(), ..Self::default() };
        for path in linux.and_then(|l| l.masked_paths().as_ref()).into_iter().flatten() {
            for folder in folders {
                let Some(host) = through(folder, path) else { continue };
                // A path the rootfs does not have needs no mask (runc skips it too).
                if let (Ok(meta), Some(c)) = (std::fs::symlink_metadata(&host), c_path(&host)) {
                    view.masks.push((c, meta.is_dir()));
                }
            }
        }
        for path in linux.and_then(|l| l.readonly_paths().as_ref()).into_iter().flatten() {
            for folder in folders {
                if let Some(host) = through(folder, path).filter(|h| h.exists()) {
                    view.readonly.extend(c_path(&host));
                }
            }
        }
        let rules = linux.and_then(|l| l.resources().as_ref()).and_then(|r| r.devices().clone()).unwrap_or_default();
        for folder in folders.iter().filter(|f| f.host.starts_with("/dev")) {
            view.mask_denied_devices(folder.host, &rules, 3);
        }
        view
    }

    fn mask_denied_devices(&mut self, dir: &Path, rules: &[LinuxDeviceCgroup], depth: u32) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let kind = if meta.file_type().is_char_device() {
                'c'
            } else if meta.file_type().is_block_device() {
                'b'
            } else {
                if meta.is_dir() && depth > 0 {
                    self.mask_denied_devices(&entry.path(), rules, depth - 1);
                }
                continue;
            };
            let (major, minor) = (libc::major(meta.rdev()) as i64, libc::minor(meta.rdev()) as i64);
            if !device_allowed(rules, kind, major, minor) {
                self.masks.extend(c_path(&entry.path()).map(|c| (c, false)));
            }
        }
    }

    /// In a new mount namespace: apply the masks and read-only paths, then
    /// open each preopen (`O_PATH`) at fd `base + i`.
    ///
    /// # Safety
    /// Call only in a single-threaded child of the shim, while it is still root.
    pub unsafe fn apply(&self, base: i32) -> std::io::Result<()> {
        let check = |r: libc::c_int| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
        let none = std::ptr::null::<libc::c_char>();
        // SAFETY: plain syscalls on NUL-terminated strings built before the
        // fork; the caller guarantees a single-threaded child.
        unsafe {
            if !(self.masks.is_empty() && self.readonly.is_empty()) {
                check(libc::unshare(libc::CLONE_NEWNS))?;
                // Nothing done here may reach the node's mount namespace.
                check(libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_SLAVE, std::ptr::null()))?;
                for (path, is_dir) in &self.masks {
                    let r = if *is_dir {
                        libc::mount(
                            c"tmpfs".as_ptr(),
                            path.as_ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_RDONLY,
                            c"size=0".as_ptr().cast(),
                        )
                    } else {
                        libc::mount(c"/dev/null".as_ptr(), path.as_ptr(), none, libc::MS_BIND, std::ptr::null())
                    };
                    check(r)?;
                }
                for path in &self.readonly {
                    check(libc::mount(
                        path.as_ptr(),
                        path.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC;
                    check(libc::mount(path.as_ptr(), path.as_ptr(), none, flags, std::ptr::null()))?;
                }
            }
            for (i, path) in self.preopens.iter().enumerate() {
                let target = base + i as i32;
                let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
                check(fd)?;
                if fd == target {
                    // The lowest free fd was the target itself: keep it across exec.
                    check(libc::fcntl(fd, libc::F_SETFD, 0))?;
                } else {
                    check(libc::dup2(fd, target))?;
                    libc::close(fd);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linux: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({"ociVersion": "1.1.0", "root": {"path": "rootfs"}, "linux": linux}))
            .unwrap()
    }

    #[test]
    fn container_paths_map_into_the_folders_that_hold_them() {
        let root = Folder { host: Path::new("/b/rootfs"), guest: "/" };
        let proc = Folder { host: Path::new("/proc"), guest: "/proc" };
        assert_eq!(through(&root, "/proc/kcore"), Some(PathBuf::from("/b/rootfs/proc/kcore")));
        assert_eq!(through(&proc, "/proc/kcore"), Some(PathBuf::from("/proc/kcore")));
        assert_eq!(through(&proc, "/proc"), Some(PathBuf::from("/proc")));
        assert_eq!(through(&proc, "/procfoo/x"), None);
        assert_eq!(through(&proc, "/sys/firmware"), None);
    }

    #[test]
    fn masks_what_exists_through_each_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/acpi")).unwrap();
        std::fs::write(dir.path().join("proc/kcore"), "x").unwrap();
        let s = spec(serde_json::json!({
            "maskedPaths": ["/proc/kcore", "/proc/acpi", "/proc/missing"],
            "readonlyPaths": ["/proc"]
        }));
        let view = FsView::new(&s, &[Folder { host: dir.path(), guest: "/" }]);
        let host = |p: &str| CString::new(dir.path().join(p).as_os_str().as_bytes()).unwrap();
        assert_eq!(view.masks, [(host("proc/kcore"), false), (host("proc/acpi"), true)]);
        assert_eq!(view.readonly, [host("proc")]);
        assert_eq!(view.preopens, [CString::new(dir.path().as_os_str().as_bytes()).unwrap()]);
    }

    #[test]
    fn device_rules_decide_by_the_last_match_and_deny_by_default() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "m"}
        ]))
        .unwrap();
        assert!(device_allowed(&rules, 'c', 1, 3), "/dev/null");
        assert!(!device_allowed(&rules, 'c', 1, 5), "mknod only is not access");
        assert!(!device_allowed(&rules, 'b', 8, 0), "a disk");
        assert!(!device_allowed(&[], 'c', 1, 3), "no rules: denied");
    }
}
