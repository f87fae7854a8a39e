//! Helpers for executors that run child processes: killing a process group, describing how a
//! process ended, and the tail of its output for messages.
//!
//! This module owns only these helpers; running children is each executor's business.

use std::process::ExitStatus;

/// The name of a signal, for messages.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        _ => return format!("signal {sig}"),
    };
    format!("signal {sig} ({name})")
}

/// "exited with code 3" / "was killed by signal 11 (SIGSEGV)".
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("was killed by {}", signal_name(sig)),
        _ => format!("ended ({status})"),
    }
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `msg`, then `:` and the last 20 lines of a task's stderr when it wrote any: how a worker
/// that ended without a result is reported.
pub fn with_stderr_tail(msg: impl Into<String>, stderr: &str) -> String {
    let mut msg = msg.into();
    let t = tail(stderr, 20);
    if !t.is_empty() {
        msg.push_str(":\n");
        msg.push_str(&t);
    }
    msg
}

/// Kills process group `pgid` with SIGKILL; returns whether the signal was sent.
///
/// Only that group can be signalled: an id that is not a valid group id (≤ 1, or out of range
/// for a pid, e.g. a tampered job handle) sends nothing, so this can never become `kill(-1)`
/// (every process of the user) or `kill(0)` (our own group).
pub fn kill_group(pgid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `-pid` is a negative
    // number below -1, which names exactly the process group `pid`.
    unsafe { libc::kill(-pid, libc::SIGKILL) == 0 }
}

/// Ends this process at once with SIGKILL, and its whole process group with it when it leads
/// one (a worker of the `process` executor does: its task's own children go too). A process
/// that does not lead its group kills only itself.
pub(crate) fn kill_own_group() -> ! {
    // SAFETY: getpid/getpgrp/kill take and return plain integers; `-me` names the group this
    // process leads, and only when it leads it.
    unsafe {
        let me = libc::getpid();
        if libc::getpgrp() == me {
            libc::kill(-me, libc::SIGKILL);
        }
        libc::kill(me, libc::SIGKILL);
    }
    std::process::abort()
}

/// The start time of process `pid` in clock ticks since boot.
pub(crate) fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    // A zombie has ended: it only waits to be reaped.
    let mut fields = rest.split_whitespace();
    if fields.next() == Some("Z") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_group_signals_only_a_real_group() {
        // Out of range for a pid: would truncate to 1 and become kill(-1, SIGKILL).
        assert!(!kill_group(4_294_967_297));
        assert!(!kill_group(i64::MIN));
        assert!(!kill_group(-5));
        assert!(!kill_group(0));
        assert!(!kill_group(1));
        // A real group of its own is killed.
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        assert!(kill_group(i64::from(child.id())));
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn exits_and_tails_read_as_sentences() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(with_stderr_tail("it died", ""), "it died");
        assert_eq!(with_stderr_tail("it died", "why\n"), "it died:\nwhy");
        assert_eq!(signal_name(libc::SIGSEGV), "signal 11 (SIGSEGV)");
    }
}
