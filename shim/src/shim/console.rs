//! The "host console" of a foreground runc with a terminal (`runc run` of a
//! Linux container whose spec asks for one, `runc exec --tty`).
//!
//! A foreground runc makes the container's pty itself and copies it to and
//! from its own stdin/stdout, which are containerd's FIFOs. It takes its
//! stderr for the user's terminal, whose size it copies onto the container's
//! pty on SIGWINCH. So runc's stderr is a pty of the shim's: ResizePty sets
//! that pty's size and signals runc, as a user's terminal would. (runc's
//! `--console-socket` needs a detached runc, whose process would not be the
//! shim's child and could not be waited for.)

use std::fs::File;
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::sync::Arc;

/// The master end of the pty a foreground runc takes for its terminal.
#[derive(Debug, Clone)]
pub struct HostConsole {
    master: Arc<File>,
}

impl HostConsole {
    /// A new pty: the console and the slave end to hand to runc as stderr.
    /// Both are close-on-exec (the slave is dup'd onto the child's stderr).
    pub fn open() -> Result<(Self, File), String> {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty fills two new descriptors we then own.
        let rc =
            unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        if rc != 0 {
            return Err(format!("allocating a pty: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: both are ours; FD_CLOEXEC keeps them out of other children.
        let (master, slave) = unsafe {
            libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(slave, libc::F_SETFD, libc::FD_CLOEXEC);
            (File::from_raw_fd(master), File::from_raw_fd(slave))
        };
        Ok((Self { master: Arc::new(master) }, slave))
    }

    /// Copy what runc writes on the console (its own messages; the
    /// container's output goes to runc's stdout) into the FIFO at `path`.
    pub fn relay_to(&self, path: &str) {
        let (master, path) = (self.master.clone(), path.to_owned());
        let _ = std::thread::Builder::new().name("wasmlet-tty".into()).spawn(move || {
            let mut out =
                (!path.is_empty()).then(|| std::fs::OpenOptions::new().write(true).open(&path).ok()).flatten();
            let mut buf = [0u8; 4096];
            // Ends with EIO once runc, the slave's only user, has exited.
            while let Ok(n @ 1..) = std::io::Read::read(&mut &*master, &mut buf) {
                if let Some(out) = out.as_mut() {
                    let _ = std::io::Write::write_all(out, &buf[..n]);
                }
            }
        });
    }

    /// Give the console a new window size and tell runc (`runc_pid`), which
    /// copies it onto the container's pty.
    pub fn resize(&self, width: u32, height: u32, runc_pid: u32) -> Result<(), String> {
        let size = libc::winsize {
            ws_row: height.min(u16::MAX as u32) as u16,
            ws_col: width.min(u16::MAX as u32) as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ on the pty master we own, with a valid winsize.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
            return Err(format!("resizing the terminal: {}", std::io::Error::last_os_error()));
        }
        if runc_pid == 0 {
            return Err("the process has not started".into());
        }
        // SAFETY: kill(2) on our own child runc; the caller checked it has not been reaped.
        if unsafe { libc::kill(runc_pid as i32, libc::SIGWINCH) } != 0 {
            return Err(format!("signalling runc: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }
}
