//! The caller-helps protocol: a `dispatch_sync` caller runs its own dispatch's pool nodes on
//! its thread while it waits, and parks (to be woken by the run's end or new pool nodes) only
//! when there is nothing to do.
//!
//! This module owns the helper's loop and its wake-up; the pool is `crate::pool`'s.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::pool::spin;

use super::run::Run;
use super::schedule::pool;

impl Run {
    /// Blocks the calling thread until the run has ended, running this run's pool nodes on it
    /// meanwhile: `first` (from [`Run::start`] with `keep_one`) and its continuations, then any
    /// of the run's nodes at the head of the pool's queue. So a small synchronous dispatch runs
    /// entirely on the caller's thread with no hand-off to a worker and back (each costs tens of
    /// microseconds where an idle core has to be woken), and a large one has one more thread.
    ///
    /// Before parking it spins briefly, since the last node usually ends within microseconds;
    /// parked, it is woken when the run ends or queues more pool nodes.
    pub(crate) fn help_until_done(self: &Arc<Self>, first: Option<u32>) {
        /// How long to look for work or the end before parking.
        const SPIN: Duration = Duration::from_micros(50);
        let pool = pool();
        let mut next = first;
        loop {
            if let Some(n) = next.take() {
                pool.run_chain(self, n);
            }
            if self.is_done() {
                return;
            }
            let found = spin(SPIN, |checkpoint| {
                if checkpoint {
                    next = pool.take_for(self);
                }
                next.is_some() || self.is_done()
            });
            if found {
                continue;
            }
            // Park. Wakers set their state first and then look at `helper_parked`; here the flag
            // is set first and the state looked at after, both with full fences, so a wake-up
            // cannot fall between the look and the park (and `unpark` before `park` is kept).
            self.helper.get_or_init(std::thread::current);
            self.helper_parked.store(true, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            next = pool.take_for(self);
            if next.is_none() && !self.is_done() {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            self.helper_parked.store(false, Ordering::SeqCst);
        }
    }

    /// Wakes a parked [`Run::help_until_done`] caller.
    pub(super) fn wake_helper(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.helper_parked.load(Ordering::SeqCst)
            && let Some(t) = self.helper.get()
        {
            t.unpark();
        }
    }
}
