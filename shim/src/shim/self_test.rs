//! `containerd-shim-wasmlet-v1 self-test BUNDLE [--connect ADDR] [--unix PATH]`:
//! confine this process exactly as a guest process of BUNDLE's spec is
//! confined (the pod's network namespace, `FsView`, `Landlock`,
//! `Confinement`), then try what a guest that escaped wasmtime would try,
//! and print one line per attempt. It exits 0 only if every escape was
//! refused and every control (what the guest is granted) still works: a
//! check of the node's kernel for operators, and the test of the
//! confinement code itself (tests/confine.rs).
//!
//! The bundle's `rootfs` should hold `readable` (world-readable), `secret`
//! (root's, 0600), `locked/` (root's, 0755) and `open/` (0777).

use super::confine::Confinement;
use super::fs_view::Folder;
use super::guest::protocol::PREOPEN_FD_BASE;
use std::ffi::CString;
use std::path::PathBuf;

pub const ACTION: &str = "self-test";

struct Options {
    bundle: PathBuf,
    connect: Option<std::net::SocketAddr>,
    unix: Option<PathBuf>,
}

fn options(args: &[std::ffi::OsString]) -> Result<Options, String> {
    let mut args = args.iter().map(|a| a.to_string_lossy().into_owned());
    let bundle = args.next().ok_or("usage: self-test BUNDLE [--connect ADDR] [--unix PATH]")?;
    let mut options = Options { bundle: bundle.into(), connect: None, unix: None };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--connect" => options.connect = Some(value.parse().map_err(|e| format!("--connect {value}: {e}"))?),
            "--unix" => options.unix = Some(value.into()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(options)
}

/// Entry point (`args`: what follows `self-test`). Single-threaded.
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    match options(args).and_then(|o| run(&o)) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(err) => {
            eprintln!("self-test: {err}");
            2
        }
    }
}

fn run(options: &Options) -> Result<bool, String> {
    let spec = oci_spec::runtime::Spec::load(options.bundle.join("config.json")).map_err(|e| e.to_string())?;
    let root = spec.root().as_ref().map_or_else(|| options.bundle.join("rootfs"), |r| options.bundle.join(r.path()));
    let mut spec_for_task = spec.clone();
    // The preopens and network grant as the shim derives them (argv[0] need not be Wasm here).
    if let Some(process) = spec_for_task.process_mut() {
        process.set_args(Some(vec!["/self-test.wasm".into()]));
    }
    let task = super::spec::wasm_task(&spec_for_task, &root).map_err(|e| e.to_string())?;
    super::netns::join_for_guest(&spec).map_err(|e| e.to_string())?;
    let mut confinement = Confinement::from_spec(&spec).map_err(|e| e.to_string())?;
    let folders: Vec<Folder<'_>> =
        task.caps.preopens.iter().map(|p| Folder { host: &p.host, guest: &p.guest }).collect();
    let read_only: Vec<bool> = task.caps.preopens.iter().map(|p| p.read_only).collect();
    let base = PREOPEN_FD_BASE.max(64);
    let cache_dir = wasmlet_runtime::RuntimeConfig::default_cache_dir();
    // SAFETY: this action runs before any thread starts, as root.
    unsafe { confinement.apply_without_exec(&spec, &folders, &read_only, &cache_dir, task.caps.network, base) }?;
    let (uid, landlock) = (confinement.uid, confinement.landlock.enforced());
    drop(confinement);
    println!("confined: uid {uid}, Landlock {}", if landlock { "enforced" } else { "not available" });

    let root_fd = format!("/proc/self/fd/{base}");
    let inside = |name: &str| format!("{root_fd}/{name}");
    let mut ok = true;
    let mut check = |name: &str, should_work: bool, result: Result<(), i32>| {
        let fine = result.is_ok() == should_work;
        ok &= fine;
        let what = match result {
            Ok(()) => "allowed".to_owned(),
            Err(errno) => format!("denied ({})", std::io::Error::from_raw_os_error(errno)),
        };
        println!("{} {name}: {what}", if fine { "ok  " } else { "FAIL" });
    };
    // Controls: what the guest is granted.
    check("read a readable file in the preopen", true, open(&inside("readable"), libc::O_RDONLY));
    check(
        "create a file in an open folder of the preopen",
        true,
        open(&inside("open/made"), libc::O_CREAT | libc::O_WRONLY),
    );
    // Escapes.
    check("read a file outside the preopens (/etc/passwd)", false, open("/etc/passwd", libc::O_RDONLY));
    check("list a folder outside the preopens (/)", false, open("/", libc::O_RDONLY | libc::O_DIRECTORY));
    if uid != 0 {
        check("read root's 0600 file", false, open(&inside("secret"), libc::O_RDONLY));
        check("create a file in root's folder", false, open(&inside("locked/made"), libc::O_CREAT | libc::O_WRONLY));
    }
    check("open /proc/self/mem read-write", false, open("/proc/self/mem", libc::O_RDWR));
    check("read the init process's environment", false, open("/proc/1/environ", libc::O_RDONLY));
    // SAFETY: plain syscalls; their effects are the point of the test.
    unsafe {
        let other = if uid == 0 { 65534 } else { 0 };
        check(&format!("setuid({other})"), false, errno(libc::setuid(other) as libc::c_long));
        check("ptrace the parent", false, errno(libc::ptrace(libc::PTRACE_ATTACH, libc::getppid(), 0, 0)));
        check("signal the init process", false, errno(libc::kill(1, 0) as libc::c_long));
        let target = CString::new(root_fd.clone()).unwrap_or_default();
        check(
            "mount over the preopen",
            false,
            errno(
                libc::mount(c"none".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) as libc::c_long
            ),
        );
        check("unshare a user namespace", false, errno(libc::unshare(libc::CLONE_NEWUSER) as libc::c_long));
    }
    if let Some(addr) = options.connect {
        let connected = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2));
        check(
            &format!("connect to {addr} on the node"),
            false,
            connected.map(drop).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
        );
    }
    if let Some(path) = &options.unix {
        let connected = std::os::unix::net::UnixStream::connect(path);
        check(
            &format!("connect to the Unix socket {}", path.display()),
            false,
            connected.map(drop).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
        );
    }
    Ok(ok)
}

fn open(path: &str, flags: libc::c_int) -> Result<(), i32> {
    let path = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: open/close of a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
    }
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    Ok(())
}

fn errno(rc: libc::c_long) -> Result<(), i32> {
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(())
    }
}
