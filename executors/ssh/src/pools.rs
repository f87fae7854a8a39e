//! Host pools: one ssh executor over several hosts (`hosts = ["gpu1", "me@gpu2:2222"]`, the
//! other options shared). A task goes to the live host with the fewest of this process's tasks
//! running, up to `slots_per_host` on each (the others wait for a free slot). A host that
//! cannot be reached before the task starts (no connection, a refused master) is marked down
//! for `host_down_for` and the task goes to another host; when every host is down the task
//! fails with what each said. A task that started on a host stays with it (its handle names
//! the host, and cancel, probe and resume go there).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use covalent::executor::worker::TaskEnvelope;
use covalent::executor::{ExecutorError, Output, TaskContext};

use crate::SshExecutor;
use crate::remote::Failure;

/// One host of a pool, as an entry names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Reads `host`, `user@host`, `host:port`, `user@host:port` (`[v6::addr]:port` too).
pub(crate) fn parse_entry(text: &str) -> Result<Entry, String> {
    let text = text.trim();
    let (user, rest) = match text.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
        _ => (None, text),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("host `{text}`: `[` without `]`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("host `{text}`: unexpected `{after}`")),
        };
        (h.to_string(), port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("host `{text}` names no host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("host `{text}`: `{p}` is not a port"))?,
        ),
        None => None,
    };
    Ok(Entry { user, host, port })
}

/// Where each host of a pool stands.
struct Pool {
    entries: Vec<Entry>,
    state: Mutex<Vec<HostState>>,
    changed: tokio::sync::Notify,
    slots: u32,
}

#[derive(Default)]
struct HostState {
    running: u32,
    down_until: Option<Instant>,
    /// Why it was marked down last.
    why: String,
}

/// A task's slot on a host, given back when dropped.
struct Slot {
    pool: Arc<Pool>,
    index: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.state.lock().unwrap()[self.index].running -= 1;
        self.pool.changed.notify_waiters();
    }
}

impl Pool {
    /// A slot on the live host with the fewest tasks; `Err` with what each said when every
    /// host is down.
    async fn pick(self: &Arc<Pool>) -> Result<Slot, String> {
        loop {
            let changed = self.changed.notified();
            {
                let mut state = self.state.lock().unwrap();
                let now = Instant::now();
                let live: Vec<usize> = (0..state.len())
                    .filter(|&i| state[i].down_until.is_none_or(|t| t <= now))
                    .collect();
                if live.is_empty() {
                    let why: Vec<String> = self
                        .entries
                        .iter()
                        .zip(state.iter())
                        .map(|(e, s)| format!("{}: {}", label(e), s.why))
                        .collect();
                    return Err(why.join("; "));
                }
                if let Some(&i) = live
                    .iter()
                    .filter(|&&i| state[i].running < self.slots)
                    .min_by_key(|&&i| state[i].running)
                {
                    state[i].running += 1;
                    return Ok(Slot {
                        pool: self.clone(),
                        index: i,
                    });
                }
            }
            changed.await;
        }
    }

    fn mark_down(&self, i: usize, for_: Duration, why: String) {
        let mut state = self.state.lock().unwrap();
        state[i].down_until = Some(Instant::now() + for_);
        state[i].why = why;
        drop(state);
        self.changed.notify_waiters();
    }
}

fn label(e: &Entry) -> String {
    let mut s = String::new();
    if let Some(u) = &e.user {
        s.push_str(u);
        s.push('@');
    }
    s.push_str(&e.host);
    if let Some(p) = e.port {
        s.push_str(&format!(":{p}"));
    }
    s
}

impl SshExecutor {
    /// The hosts of the pool: `hostname` (if set), then `hosts`.
    pub(crate) fn entries(&self) -> Result<Vec<Entry>, String> {
        let mut all = Vec::new();
        if !self.ssh.hostname.is_empty() {
            all.push(Entry {
                user: self.ssh.username.clone(),
                host: self.ssh.hostname.clone(),
                port: self.ssh.port,
            });
        }
        for h in &self.hosts {
            all.push(parse_entry(h)?);
        }
        Ok(all)
    }

    /// This executor for one host (`user` and `port` only where the entry names them).
    pub(crate) fn on(&self, e: &Entry) -> SshExecutor {
        let mut one = self.clone();
        one.hosts.clear();
        one.ssh.hostname = e.host.clone();
        if e.user.is_some() {
            one.ssh.username = e.user.clone();
        }
        if e.port.is_some() {
            one.ssh.port = e.port;
        }
        one
    }

    /// This executor for the host a job handle names (its `host`, `user@host:port`).
    pub(crate) fn at_handle(&self, job: &serde_json::Value) -> SshExecutor {
        if self.hosts.is_empty() {
            return self.clone();
        }
        match job
            .get("host")
            .and_then(|h| h.as_str())
            .and_then(|h| parse_entry(h).ok())
        {
            Some(e) => self.on(&e),
            None => self.clone(),
        }
    }

    /// Tasks at once per host.
    fn slots_per_host(&self) -> u32 {
        self.slots_per_host
            .unwrap_or(if self.reuse_workers {
                self.worker_cap()
            } else {
                self.ssh.max_sessions.saturating_sub(2)
            })
            .max(1)
    }
}

fn pool_of(ex: &SshExecutor, entries: Vec<Entry>) -> Arc<Pool> {
    static POOLS: LazyLock<Mutex<HashMap<String, Arc<Pool>>>> = LazyLock::new(Default::default);
    let key = serde_json::to_string(&(&ex.ssh, &ex.hosts, ex.reuse_workers, ex.slots_per_host()))
        .unwrap_or_default();
    POOLS
        .lock()
        .unwrap()
        .entry(key)
        .or_insert_with(|| {
            Arc::new(Pool {
                state: Mutex::new(entries.iter().map(|_| HostState::default()).collect()),
                entries,
                changed: tokio::sync::Notify::new(),
                slots: ex.slots_per_host(),
            })
        })
        .clone()
}

/// Runs a task on the pool's hosts (see the module docs).
pub(crate) async fn run(
    ex: &SshExecutor,
    envelope: &TaskEnvelope,
    ctx: &TaskContext,
) -> Result<Output, ExecutorError> {
    let entries = ex.entries().map_err(|e| ExecutorError::Config {
        name: "ssh".into(),
        reason: e,
    })?;
    let pool = pool_of(ex, entries);
    loop {
        let slot = pool.pick().await.map_err(|why| {
            ExecutorError::Failed(format!(
                "no host of the pool can be reached ({why}); each is tried again {:?} after it failed (host_down_for)",
                ex.host_down_for
            ))
        })?;
        let host = ex.on(&pool.entries[slot.index]);
        match host.on_host(envelope, ctx).await {
            Ok(out) => return Ok(out),
            Err(Failure::Unreachable(e)) => {
                pool.mark_down(slot.index, ex.host_down_for, e.to_string());
            }
            Err(Failure::Other(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entries_parse() {
        let e = |u: Option<&str>, h: &str, p: Option<u16>| Entry {
            user: u.map(str::to_string),
            host: h.into(),
            port: p,
        };
        assert_eq!(parse_entry("gpu1"), Ok(e(None, "gpu1", None)));
        assert_eq!(
            parse_entry("me@gpu2:2222"),
            Ok(e(Some("me"), "gpu2", Some(2222)))
        );
        assert_eq!(parse_entry("gpu3:22"), Ok(e(None, "gpu3", Some(22))));
        assert_eq!(parse_entry("[::1]:2200"), Ok(e(None, "::1", Some(2200))));
        assert!(parse_entry("gpu:x").unwrap_err().contains("not a port"));
        assert!(parse_entry("me@").unwrap_err().contains("names no host"));
        assert_eq!(label(&parse_entry("me@h:1").unwrap()), "me@h:1");
    }
}
