//! The process's peak resident set, shared by the bench binaries (`#[path]` module: the bench
//! crate has no library target).

/// `VmHWM` from `/proc/self/status`, in bytes (0 where there is no procfs).
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
