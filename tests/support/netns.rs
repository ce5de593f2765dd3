//! A named network namespace (`ip netns`), as CNI makes one for a pod:
//! loopback up, removed on drop.

use std::process::{Command, Output};

pub struct NetNs(String);

impl NetNs {
    /// Make `name` (replacing one a crashed run left behind).
    pub fn new(name: &str) -> Self {
        let _ = Command::new("ip").args(["netns", "delete", name]).output();
        let status = Command::new("ip").args(["netns", "add", name]).status().unwrap();
        assert!(status.success(), "ip netns add {name}");
        let status = Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]).status().unwrap();
        assert!(status.success());
        NetNs(name.to_owned())
    }

    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }

    /// `curl URL` inside the namespace; stdout ends with `\n<HTTP status>`.
    pub fn curl(&self, url: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, "curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", url])
            .output()
            .unwrap()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}
