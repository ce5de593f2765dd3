//! The guest process, forked from the daemon before it starts any thread.
//!
//! Exec'ing a fresh guest process at Create costs ~3 ms of the container's
//! start on these VMs (exec and dynamic linking of a 34 MB binary, glibc's
//! CPUID probing, which traps to the hypervisor at ~12 µs a call, then the
//! engine and its instance pool), all on the path from Create to the guest's
//! first instruction. So the daemon forks its container's guest process as
//! soon as it has joined the container's cgroup and network namespace, while
//! still single-threaded (fork without exec is only sound then): the child
//! builds its engine while containerd is still between starting the shim and
//! calling Create, then waits. Create hands it the guest's stdio (and an HTTP
//! function's listener) over the control socket as `SCM_RIGHTS`, then the
//! [`Launch`]; the child masks its view of the preopens, confines itself
//! exactly as the exec'd guest is confined before its exec (`Confinement`,
//! `FsView`, from its copy of the same spec), and runs the guest.
//!
//! What it keeps of the daemon: the memory it had at the fork (the spec and
//! the shim's flags, before any request or log line; the environment is
//! cleared), nothing else: fds 0–2 are `/dev/null` until the handoff, every
//! other fd but the control socket is closed, and no log subscriber exists
//! yet. A container that turns out not to be Wasm (a Linux sidecar for runc)
//! kills it ([`discard`]); when none is waiting, the guest is exec'd as before.

use super::protocol::{receive, Launch, ToGuest, CONTROL_FD, LISTENER_FD, PREOPEN_FD_BASE};
use crate::shim::confine::Confinement;
use crate::shim::fs_view::Folder;
use crate::shim::pidns::{ForChildren, PidNamespace};
use oci_spec::runtime::Spec;
use std::io::BufReader;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, IntoRawFd as _, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use wasmlet_runtime::{Runtime, RuntimeConfig};

/// A forked guest process waiting for its launch.
pub struct PreForked {
    pub pid: libc::pid_t,
    control: UnixStream,
}

static WAITING: Mutex<Option<PreForked>> = Mutex::new(None);

fn waiting() -> std::sync::MutexGuard<'static, Option<PreForked>> {
    WAITING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fork the guest process for `spec`'s container; it waits for [`take`].
///
/// # Safety
/// The calling process must be single-threaded.
pub unsafe fn fork(spec: &Spec) -> std::io::Result<libc::pid_t> {
    let (shim_end, guest_end) = UnixStream::pair()?;
    let pid_namespace = PidNamespace::from_spec(spec).map_err(std::io::Error::other)?;
    let in_pid_namespace = ForChildren::enter(&pid_namespace).map_err(std::io::Error::other)?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the caller guarantees no other thread exists, so the child may
    // allocate and run ordinary code.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(shim_end);
            // SAFETY: this is the single-threaded child.
            let status = unsafe { child(guest_end, spec, parent) };
            // SAFETY: leave without running the daemon's exit handlers.
            unsafe { libc::_exit(status) }
        }
        pid => {
            drop(in_pid_namespace);
            drop(guest_end);
            *waiting() = Some(PreForked { pid, control: shim_end });
            Ok(pid)
        }
    }
}

/// The waiting guest process, if there is one (only the first caller gets it).
pub fn take() -> Option<PreForked> {
    waiting().take()
}

/// Kill and reap the waiting guest process: this container needs none.
pub fn discard() {
    if let Some(process) = take() {
        process.kill();
    }
}

/// The guest's fds as they are handed over: which are present (bits: stdin,
/// stdout, stderr, listener), then the fds in that order.
pub struct Handoff<'a> {
    pub stdin: Option<BorrowedFd<'a>>,
    pub stdout: Option<BorrowedFd<'a>>,
    pub stderr: Option<BorrowedFd<'a>>,
    pub listener: Option<BorrowedFd<'a>>,
}

impl PreForked {
    /// Hand over the fds, then the launch. On error the process is unusable
    /// (the caller kills it and execs a guest instead).
    pub fn launch(&mut self, fds: &Handoff<'_>, launch: &Launch) -> std::io::Result<()> {
        let slots = [fds.stdin, fds.stdout, fds.stderr, fds.listener];
        let mut present = 0u8;
        let mut raw = Vec::new();
        for (bit, fd) in slots.iter().enumerate() {
            if let Some(fd) = fd {
                present |= 1 << bit;
                raw.push(fd.as_raw_fd());
            }
        }
        send_fds(self.control.as_raw_fd(), present, &raw)?;
        super::protocol::send_launch(&mut self.control, launch)
    }

    pub fn into_control(self) -> UnixStream {
        self.control
    }

    /// Kill and reap it (it was never launched, or cannot be).
    pub fn kill(self) {
        // SAFETY: our own child, not reaped by anyone else.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// The child: get out of the daemon's way, build the engine, wait for the
/// launch, confine, run.
///
/// # Safety
/// Only in the freshly forked, single-threaded child.
unsafe fn child(control: UnixStream, spec: &Spec, parent: libc::pid_t) -> i32 {
    // SAFETY: plain syscalls on our own fds and process.
    unsafe {
        // The daemon may have died before the prctl (PID 1 of a new
        // namespace sees no parent: its control socket tells instead).
        let ppid = libc::getppid();
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 || (ppid != parent && ppid != 0) {
            return 137;
        }
        crate::shim::pidns::exit_on_signals_as_pid1(&[]);
        let control_fd = control.into_raw_fd();
        if control_fd != CONTROL_FD && (libc::dup2(control_fd, CONTROL_FD) < 0 || libc::close(control_fd) < 0) {
            return 125;
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null < 0 || (0..3).any(|fd| libc::dup2(null, fd) < 0) {
            return 125;
        }
        libc::syscall(libc::SYS_close_range, (CONTROL_FD + 1) as u32, u32::MAX, 0u32);
        // Hold the listener's place: what the engine and the confinement
        // open meanwhile must not land where the handoff puts it.
        if libc::dup2(0, LISTENER_FD) < 0 {
            return 125;
        }
        libc::clearenv();
    }
    name_process(&container_id());
    // Built (and the seccomp filter compiled) now, while containerd is
    // still busy before Create.
    let runtime = Runtime::new(crate::shim::guest_runtime_config(RuntimeConfig::default_cache_dir())).ok();
    let confinement = Confinement::from_spec(spec).and_then(|mut confinement| {
        confinement.compile()?;
        Ok(confinement)
    });
    // SAFETY: fd 3 is the control socket, set up above.
    let control = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };
    let Ok(present) = receive_fds(CONTROL_FD) else { return 137 };
    if !present.listener {
        // SAFETY: the placeholder is ours; the exec'd guest has nothing at fd 4 either.
        unsafe { libc::close(LISTENER_FD) };
    }
    let Ok(reader) = control.try_clone() else { return 125 };
    let mut from_shim = BufReader::new(reader);
    let mut launch = match receive::<ToGuest>(&mut from_shim) {
        Ok(Some(ToGuest::Launch(launch))) => *launch,
        _ => return 137,
    };
    let mut to_shim = control;
    let fail = |to_shim: &mut UnixStream, message: String| {
        super::child::tell_user(&message);
        let _ = super::protocol::send(to_shim, &super::protocol::FromGuest::Failed(message));
        1
    };
    let mut confinement = match confinement {
        Ok(confinement) => confinement,
        Err(err) => return fail(&mut to_shim, format!("confining the guest: {err}")),
    };
    let folders: Vec<Folder<'_>> = launch.preopens.iter().map(|p| Folder { host: &p.host, guest: &p.guest }).collect();
    let read_only: Vec<bool> = launch.preopens.iter().map(|p| p.read_only).collect();
    // The preopens go above every fd the engine and the confinement hold.
    let base = PREOPEN_FD_BASE.max(highest_open_fd() + 1);
    // SAFETY: single-threaded (the engine starts no thread), still root.
    let confined =
        unsafe { confinement.apply_without_exec(spec, &folders, &read_only, &launch.cache_dir, launch.network, base) };
    if let Err(message) = confined {
        return fail(&mut to_shim, message);
    }
    // Its namespace fds and compiled filter are of no use to the guest.
    drop(confinement);
    for (i, preopen) in launch.preopens.iter_mut().enumerate() {
        preopen.host = format!("/proc/self/fd/{}", base + i as i32).into();
    }
    launch.stdin = present.stdin;
    super::child::run(launch, from_shim, to_shim, runtime)
}

/// The highest fd open in this process.
fn highest_open_fd() -> i32 {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).max().unwrap_or(2))
        .unwrap_or(64)
}

/// The container id: the bundle folder's name (the daemon runs in it, and
/// containerd names it after the container).
fn container_id() -> String {
    std::env::current_dir()
        .ok()
        .and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// Show as `wasmlet-guest ID` in `ps` (the exec'd guest's argv), by writing
/// over the daemon's argv area, which is longer.
fn name_process(id: &str) {
    // SAFETY: PR_SET_NAME with a NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"wasmlet-guest".as_ptr(), 0, 0, 0) };
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command (which may hold spaces): arg_start and
    // arg_end are fields 48 and 49 of proc(5), so 45 and 46 after it.
    let Some((_, rest)) = stat.rsplit_once(')') else { return };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (Some(Ok(start)), Some(Ok(end))) =
        (fields.get(45).map(|f| f.parse::<usize>()), fields.get(46).map(|f| f.parse::<usize>()))
    else {
        return;
    };
    let Some(len) = end.checked_sub(start).filter(|l| *l > 0) else { return };
    let mut title = format!("wasmlet-guest {id}\0guest\0").into_bytes();
    title.truncate(len);
    title.resize(len, 0);
    // SAFETY: [arg_start, arg_end) is this process's own argv strings, which
    // nothing else refers to once the daemon's flags are parsed.
    unsafe { std::ptr::copy_nonoverlapping(title.as_ptr(), start as *mut u8, len) };
}

/// Which fds arrived (each put at its place: 0–2 and [`LISTENER_FD`]).
struct Present {
    stdin: bool,
    listener: bool,
}

/// One byte (the presence bits) with the fds as `SCM_RIGHTS`.
fn send_fds(socket: RawFd, present: u8, fds: &[RawFd]) -> std::io::Result<()> {
    let mut byte = [present];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let payload = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
    let mut buffer = vec![0u8; space.max(1)];
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    if !fds.is_empty() {
        message.msg_control = buffer.as_mut_ptr().cast();
        message.msg_controllen = space as _;
        // SAFETY: the control buffer holds one header of `payload` bytes.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(payload as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(header).cast(), fds.len());
        }
    }
    // SAFETY: sendmsg on our socket with the message built above.
    if unsafe { libc::sendmsg(socket, &message, libc::MSG_NOSIGNAL) } != 1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Receive [`send_fds`]'s byte and fds, and put each fd at its place.
fn receive_fds(socket: RawFd) -> std::io::Result<Present> {
    const MAX_FDS: usize = 4;
    let mut byte = [0u8];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut buffer = vec![0u8; space];
    // SAFETY: as in send_fds.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = buffer.as_mut_ptr().cast();
    message.msg_controllen = space as _;
    // SAFETY: recvmsg into the buffers above.
    let got = unsafe { libc::recvmsg(socket, &mut message, libc::MSG_CMSG_CLOEXEC) };
    if got != 1 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no launch"));
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages recvmsg filled in.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                fds.extend((0..count).map(|i| data.add(i).read_unaligned()));
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    let present = byte[0];
    let targets = [0, 1, 2, LISTENER_FD];
    let mut fds = fds.into_iter();
    for (bit, target) in targets.into_iter().enumerate() {
        if present & (1 << bit) == 0 {
            continue;
        }
        let fd = fds.next().ok_or_else(|| std::io::Error::other("an fd is missing from the handoff"))?;
        if fd == target {
            continue; // already in place (nothing execs: its CLOEXEC does not matter)
        }
        // SAFETY: dup2 of a received fd onto its place, then drop the copy.
        unsafe {
            if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
        }
    }
    Ok(Present { stdin: present & 1 != 0, listener: present & (1 << 3) != 0 })
}
