//! Memory of processes, read from /proc (benchmarks).

/// A process's proportional set size, in KiB (0 when gone).
pub fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Pss:")?.trim().strip_suffix("kB")?.trim().parse().ok()))
        .unwrap_or(0)
}

/// Every descendant of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let path = task.path().join("children");
        for c in std::fs::read_to_string(path).unwrap_or_default().split_whitespace() {
            if let Ok(c) = c.parse::<u32>() {
                out.push(c);
                out.extend(children(c));
            }
        }
    }
    out
}

/// Processes whose argv[0] ends with `needle`.
pub fn processes_named(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).split('\0').next().is_some_and(|argv0| argv0.ends_with(needle)) {
            pids.push(pid);
        }
    }
    pids
}

/// PSS of every process `shim` names, plus their descendants.
pub fn total_pss_kib(shim: &str) -> (u64, usize) {
    let mut pids = processes_named(shim);
    let descendants: Vec<u32> = pids.iter().flat_map(|p| children(*p)).collect();
    pids.extend(descendants);
    pids.sort();
    pids.dedup();
    (pids.iter().map(|p| pss_kib(*p)).sum(), pids.len())
}

/// Context switches (voluntary and not) of every thread of `pid`, and its
/// CPU time in clock ticks (user + system), for wake-up and CPU deltas.
pub fn wakeups_and_cpu(pid: u32) -> (u64, u64) {
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    // After the command: state is field 0, utime 11 and stime 12.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (switches, ticks(11) + ticks(12))
}
