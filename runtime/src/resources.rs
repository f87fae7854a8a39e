//! What a task needs and what an executor has: an electron's declared [`Needs`] (`cpus`,
//! `memory`, `gpus`, named resources), an executor instance's [`Capacity`] (the machine's, or
//! what its options say), the [`Ledger`] that admits a node only while its needs fit what is
//! free, and the [`Assignment`] a running task reads ([`assigned`]).
//!
//! This module owns the bookkeeping; the dispatcher asks the ledger before a node starts and
//! executors hand the assignment on (the `process` executor as environment variables).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// What one electron needs while it runs (`#[electron(cpus = 4, memory = "16G", gpus = 1,
/// resources = [("matlab", 1)])]`); zero is "not declared".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// CPU cores.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// GPUs.
    pub gpus: u32,
    /// Named resources (licences, scratch slots, ...), by name.
    pub custom: &'static [(&'static str, u32)],
}

impl Needs {
    /// Nothing declared.
    pub const NONE: Needs = Needs {
        cpus: 0,
        memory: 0,
        gpus: 0,
        custom: &[],
    };

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.cpus == 0 && self.memory == 0 && self.gpus == 0 && self.custom.is_empty()
    }
}

/// What an executor instance has to share among its running nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// CPU cores.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// GPU device ids.
    pub gpus: Vec<u32>,
    /// Named resources.
    pub custom: BTreeMap<String, u32>,
}

impl Capacity {
    /// This machine's: its cores, its memory (`MemTotal`), the GPUs `CUDA_VISIBLE_DEVICES`
    /// lists (else one per `/dev/nvidiaN`), no named resources; each part replaced by the
    /// option given (`cpus`, `memory`, `gpus`, `resources` of the executor).
    pub fn of_machine(
        cpus: Option<u32>,
        memory: Option<u64>,
        gpus: Option<u32>,
        custom: &BTreeMap<String, u32>,
    ) -> Capacity {
        let cpus = cpus.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        });
        let memory = memory.unwrap_or_else(machine_memory);
        let visible = visible_gpus();
        let gpus = match gpus {
            Some(n) => {
                let mut ids: Vec<u32> = visible.into_iter().take(n as usize).collect();
                while ids.len() < n as usize {
                    ids.push(ids.last().map_or(0, |l| l + 1));
                }
                ids
            }
            None => visible,
        };
        Capacity {
            cpus,
            memory,
            gpus,
            custom: custom.clone(),
        }
    }
}

fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

/// The GPUs this process may use: `CUDA_VISIBLE_DEVICES` (numeric ids; an empty value is
/// none), else one per `/dev/nvidiaN` device.
fn visible_gpus() -> Vec<u32> {
    if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return v
            .split(',')
            .filter_map(|x| x.trim().parse::<u32>().ok())
            .collect();
    }
    let mut ids: Vec<u32> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("nvidia"))
                        .and_then(|n| n.parse::<u32>().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Parses a memory size: a number of bytes, or with a unit `K`, `M`, `G`, `T` (powers of 1024,
/// as Slurm's `--mem`; `KB`/`KiB` and lower case alike).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a memory size (as in \"16G\", \"512M\")"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        other => {
            return Err(format!(
                "`{s}`: unknown memory unit `{other}` (K, M, G or T)"
            ));
        }
    };
    Ok((n * mult as f64) as u64)
}

/// `16G`, `512M`, `300` (bytes): the largest unit that divides the size.
pub fn format_memory(n: u64) -> String {
    for (unit, m) in [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

/// What a running task was given: its share of the executor's capacity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// CPU cores.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// GPU device ids (what `CUDA_VISIBLE_DEVICES` holds for a `process` task).
    pub gpus: Vec<u32>,
    /// Named resources.
    pub custom: BTreeMap<String, u32>,
}

/// Environment variable holding a `process` task's assignment (JSON).
pub const ASSIGNED_ENV: &str = "COVALENT_ASSIGNED";

thread_local! {
    static ASSIGNED: std::cell::RefCell<Option<Assignment>> = const { std::cell::RefCell::new(None) };
}

/// The running task's assignment (cores, memory, GPU ids, named resources it declared and was
/// admitted with), or `None` for a task that declared none or runs where nothing is admitted
/// by this library (a Slurm job: read `SLURM_CPUS_PER_TASK` and friends there).
pub fn assigned() -> Option<Assignment> {
    ASSIGNED.with(|a| a.borrow().clone()).or_else(|| {
        std::env::var(ASSIGNED_ENV)
            .ok()
            .and_then(|v| serde_json::from_str(&v).ok())
    })
}

/// Runs `f` with `a` as [`assigned`]'s answer on this thread.
pub(crate) fn with_assignment<R>(a: Option<Assignment>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Assignment>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            ASSIGNED.with(|x| *x.borrow_mut() = prev);
        }
    }
    let prev = ASSIGNED.with(|x| x.replace(a));
    let _restore = Restore(prev);
    f()
}

/// A future run with an assignment as [`assigned`]'s answer (re-entered around each poll).
pub(crate) struct WithAssignment<F> {
    pub(crate) fut: std::pin::Pin<Box<F>>,
    pub(crate) assignment: Option<Assignment>,
}

impl<F: std::future::Future> std::future::Future for WithAssignment<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let a = self.assignment.clone();
        let fut = self.fut.as_mut();
        with_assignment(a, || fut.poll(cx))
    }
}

/// The free part of a capacity, shared by the nodes of one executor instance.
#[derive(Debug)]
pub struct Ledger {
    cap: Capacity,
    free: Mutex<Free>,
    changed: tokio::sync::Notify,
}

#[derive(Debug)]
struct Free {
    cpus: u32,
    memory: u64,
    gpus: Vec<u32>,
    custom: BTreeMap<String, u32>,
}

/// A node's admission: its assignment, returned to the ledger when dropped.
#[derive(Debug)]
pub struct Grant {
    ledger: Arc<Ledger>,
    /// What the node was given.
    pub assignment: Assignment,
}

impl Drop for Grant {
    fn drop(&mut self) {
        let a = &self.assignment;
        let mut f = self.ledger.free.lock().unwrap();
        f.cpus += a.cpus;
        f.memory = f.memory.saturating_add(a.memory);
        f.gpus.extend(&a.gpus);
        f.gpus.sort_unstable();
        for (k, v) in &a.custom {
            *f.custom.entry(k.clone()).or_default() += v;
        }
        drop(f);
        self.ledger.changed.notify_waiters();
    }
}

impl Ledger {
    /// A ledger with all of `cap` free.
    pub fn new(cap: Capacity) -> Arc<Ledger> {
        Arc::new(Ledger {
            free: Mutex::new(Free {
                cpus: cap.cpus,
                memory: cap.memory,
                gpus: cap.gpus.clone(),
                custom: cap.custom.clone(),
            }),
            cap,
            changed: tokio::sync::Notify::new(),
        })
    }

    /// What it has in all.
    pub fn capacity(&self) -> &Capacity {
        &self.cap
    }

    /// Why `needs` can never fit (more than the whole capacity), if so.
    pub fn never_fits(&self, needs: &Needs, executor: &str) -> Option<String> {
        let c = &self.cap;
        let mut over = Vec::new();
        if needs.cpus > c.cpus {
            over.push(format!("{} cpus (it has {})", needs.cpus, c.cpus));
        }
        if needs.memory > c.memory {
            over.push(format!(
                "{} of memory (it has {})",
                format_memory(needs.memory),
                format_memory(c.memory)
            ));
        }
        if needs.gpus as usize > c.gpus.len() {
            over.push(format!("{} GPUs (it has {})", needs.gpus, c.gpus.len()));
        }
        for (k, v) in needs.custom {
            let have = c.custom.get(*k).copied().unwrap_or(0);
            if *v > have {
                over.push(format!("{v} of `{k}` (it has {have})"));
            }
        }
        (!over.is_empty()).then(|| {
            format!(
                "needs {} on executor `{executor}`, more than it has in all, so it can never start: lower the electron's needs, or give the executor more (`cpus`, `memory`, `gpus`, `resources` in [executors.{executor}])",
                over.join(", ")
            )
        })
    }

    fn try_take(self: &Arc<Self>, needs: &Needs) -> Option<Grant> {
        let mut f = self.free.lock().unwrap();
        let fits = f.cpus >= needs.cpus
            && f.memory >= needs.memory
            && f.gpus.len() >= needs.gpus as usize
            && needs
                .custom
                .iter()
                .all(|(k, v)| f.custom.get(*k).copied().unwrap_or(0) >= *v);
        if !fits {
            return None;
        }
        f.cpus -= needs.cpus;
        f.memory -= needs.memory;
        let gpus: Vec<u32> = f.gpus.drain(..needs.gpus as usize).collect();
        let mut custom = BTreeMap::new();
        for (k, v) in needs.custom {
            if let Some(have) = f.custom.get_mut(*k) {
                *have -= v;
            }
            custom.insert(k.to_string(), *v);
        }
        Some(Grant {
            ledger: self.clone(),
            assignment: Assignment {
                cpus: needs.cpus,
                memory: needs.memory,
                gpus,
                custom,
            },
        })
    }

    /// Waits until `needs` fit what is free, and takes them (the caller has checked
    /// [`Ledger::never_fits`]).
    pub async fn admit(self: &Arc<Self>, needs: &Needs) -> Grant {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(g) = self.try_take(needs) {
                return g;
            }
            changed.await;
        }
    }
}

/// Capacity options an executor can take (`cpus`, `memory`, `gpus`, `resources`), and the
/// ledger made from them once; for executors whose nodes this library admits.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CapacityOptions {
    /// Cores its nodes share (default: this machine's).
    pub cpus: Option<u32>,
    /// Memory its nodes share, as in `"64G"` (default: this machine's).
    pub memory: Option<String>,
    /// GPUs its nodes share (default: those `CUDA_VISIBLE_DEVICES` lists, else the machine's).
    pub gpus: Option<u32>,
    /// Named resources and how many of each it has, as in `{ matlab = 2 }`.
    pub resources: BTreeMap<String, u32>,
    #[serde(skip)]
    ledger: Arc<std::sync::OnceLock<Arc<Ledger>>>,
}

impl PartialEq for CapacityOptions {
    fn eq(&self, other: &Self) -> bool {
        self.cpus == other.cpus
            && self.memory == other.memory
            && self.gpus == other.gpus
            && self.resources == other.resources
    }
}

impl CapacityOptions {
    /// The ledger of this executor instance (made on first use).
    pub fn ledger(&self) -> Arc<Ledger> {
        self.ledger
            .get_or_init(|| {
                let memory = self.memory.as_deref().and_then(|m| parse_memory(m).ok());
                Ledger::new(Capacity::of_machine(
                    self.cpus,
                    memory,
                    self.gpus,
                    &self.resources,
                ))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_memory("16G").unwrap(), 16 << 30);
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_memory("300").unwrap(), 300);
        assert!(
            parse_memory("lots")
                .unwrap_err()
                .contains("not a memory size")
        );
        assert!(
            parse_memory("3Q")
                .unwrap_err()
                .contains("unknown memory unit")
        );
        assert_eq!(format_memory(16 << 30), "16G");
        assert_eq!(format_memory(1536 << 20), "1536M");
    }

    #[test]
    fn a_ledger_gives_distinct_gpus_and_takes_them_back() {
        let l = Ledger::new(Capacity {
            cpus: 4,
            memory: 1 << 30,
            gpus: vec![0, 1],
            custom: BTreeMap::from([("lic".to_string(), 1)]),
        });
        let one = Needs {
            gpus: 1,
            cpus: 1,
            ..Needs::NONE
        };
        let a = l.try_take(&one).unwrap();
        let b = l.try_take(&one).unwrap();
        assert_ne!(a.assignment.gpus, b.assignment.gpus);
        assert!(l.try_take(&one).is_none(), "no third GPU");
        drop(a);
        assert!(l.try_take(&one).is_some(), "given back");
        let lic = Needs {
            custom: &[("lic", 1)],
            ..Needs::NONE
        };
        let held = l.try_take(&lic).unwrap();
        assert!(l.try_take(&lic).is_none());
        drop(held);
        let big = Needs {
            cpus: 8,
            custom: &[("lic", 2)],
            ..Needs::NONE
        };
        let why = l.never_fits(&big, "local").unwrap();
        assert!(
            why.contains("8 cpus (it has 4)") && why.contains("2 of `lic` (it has 1)"),
            "{why}"
        );
    }
}
