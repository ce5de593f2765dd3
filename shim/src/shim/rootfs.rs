//! Paths inside a container's rootfs, resolved the way the container itself
//! would see them: symlinks (absolute ones too) and `..` stay inside the
//! rootfs and never reach the host's files, and a bare program name is
//! looked up in the spec's `PATH`, as runc's `exec` does.

use std::path::{Component, Path, PathBuf};

/// How many symlinks one lookup may follow (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// runc's default when the spec's environment has no `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The host path of `guest` (absolute, or relative to `/`) in `rootfs`,
/// following symlinks as if `rootfs` were `/`. The result need not exist;
/// every symlink on the way is resolved.
pub fn resolve(rootfs: &Path, guest: &Path) -> std::io::Result<PathBuf> {
    let mut resolved = PathBuf::from("/");
    let mut pending: Vec<std::ffi::OsString> = components(guest).into_iter().rev().collect();
    let mut followed = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let host = host_path(rootfs, &candidate);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&host)?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                pending.extend(components(&target).into_iter().rev());
            }
            _ => resolved = candidate,
        }
    }
    Ok(host_path(rootfs, &resolved))
}

/// The path's normal and `..` components (`.` and `/` dropped).
fn components(path: &Path) -> Vec<std::ffi::OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn host_path(rootfs: &Path, guest_absolute: &Path) -> PathBuf {
    rootfs.join(guest_absolute.strip_prefix("/").unwrap_or(guest_absolute))
}

/// The program `argv0` names, as runc would find it: a path with a `/` is
/// taken as is (relative to `cwd`), a bare name is searched in `path` (the
/// spec's `PATH`, `:`-separated). `None` when no regular file matches.
pub fn find_program(rootfs: &Path, argv0: &str, path: Option<&str>, cwd: &str) -> Option<PathBuf> {
    let regular = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    if argv0.contains('/') {
        let guest = Path::new(cwd).join(argv0);
        return resolve(rootfs, &guest).ok().filter(|p| regular(p));
    }
    if argv0.is_empty() {
        return None;
    }
    path.unwrap_or(DEFAULT_PATH)
        .split(':')
        .filter(|dir| !dir.is_empty())
        .filter_map(|dir| resolve(rootfs, &Path::new(dir).join(argv0)).ok())
        .find(|p| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What a file in the rootfs is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executable {
    /// WebAssembly (`\0asm`): a core module or a component.
    Wasm,
    /// An ELF binary or a `#!` script: a Linux container.
    Native,
    Other,
}

pub fn classify(file: &Path) -> Executable {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(file).and_then(|mut f| std::io::Read::read(&mut f, &mut magic));
    match read {
        Ok(4) if magic == *b"\0asm" => Executable::Wasm,
        Ok(4) if magic == *b"\x7fELF" => Executable::Native,
        Ok(n) if n >= 2 && magic.starts_with(b"#!") => Executable::Native,
        _ => Executable::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in ["bin", "usr/bin", "app", "etc"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("bin/busybox"), b"\x7fELF....").unwrap();
        std::fs::set_permissions(r.join("bin/busybox"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // Absolute symlinks, as busybox images have them: must resolve inside.
        symlink("/bin/busybox", r.join("bin/sh")).unwrap();
        symlink("/bin/busybox", r.join("usr/bin/sleep")).unwrap();
        std::fs::write(r.join("app/main.wasm"), b"\0asm\x01\0\0\0").unwrap();
        symlink("../app/main.wasm", r.join("bin/app")).unwrap();
        symlink("/etc/shadow", r.join("app/escape")).unwrap();
        symlink("../../../../../../etc/passwd", r.join("app/dotdot")).unwrap();
        symlink("loop2", r.join("app/loop1")).unwrap();
        symlink("loop1", r.join("app/loop2")).unwrap();
        dir
    }

    #[test]
    fn symlinks_resolve_inside_the_rootfs() {
        let dir = rootfs();
        let r = dir.path();
        assert_eq!(resolve(r, Path::new("/bin/sh")).unwrap(), r.join("bin/busybox"));
        assert_eq!(resolve(r, Path::new("/bin/app")).unwrap(), r.join("app/main.wasm"));
        // Absolute and `..` targets are clamped at the rootfs, never the host's /etc.
        assert_eq!(resolve(r, Path::new("/app/escape")).unwrap(), r.join("etc/shadow"));
        assert_eq!(resolve(r, Path::new("/app/dotdot")).unwrap(), r.join("etc/passwd"));
        assert_eq!(resolve(r, Path::new("/../../bin/sh")).unwrap(), r.join("bin/busybox"));
        assert_eq!(resolve(r, Path::new("/app/loop1")).unwrap_err().raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn bare_names_are_found_in_the_specs_path() {
        let dir = rootfs();
        let r = dir.path();
        assert_eq!(find_program(r, "sh", Some("/usr/local/bin:/bin"), "/"), Some(r.join("bin/busybox")));
        assert_eq!(find_program(r, "sleep", None, "/"), Some(r.join("bin/busybox")));
        assert_eq!(find_program(r, "top", None, "/"), None);
        assert_eq!(find_program(r, "main.wasm", None, "/"), None, "not executable, not on PATH");
        assert_eq!(find_program(r, "/app/main.wasm", None, "/"), Some(r.join("app/main.wasm")));
        assert_eq!(find_program(r, "./main.wasm", None, "/app"), Some(r.join("app/main.wasm")));
        assert_eq!(find_program(r, "/app/escape", None, "/"), None, "the host's /etc/shadow is not the container's");
        assert_eq!(classify(&r.join("bin/busybox")), Executable::Native);
        assert_eq!(classify(&r.join("app/main.wasm")), Executable::Wasm);
    }
}
