//! Sublattices: a node whose body builds a child graph at run time. The child runs as its own
//! [`Run`] under the parent node (same dispatch id, the parent's cancel requests, its own
//! observer) and completes the parent node when it ends.
//!
//! This module owns the parent ↔ child link; the child runs like any run.

use std::sync::Arc;

use crate::electron::{Args, SubGraph, TaskError};
use crate::error::{ErrorKind, NodeError};
use crate::graph::Graph;
use crate::invoke;

use super::run::{Run, RunSpec};
use super::state::{CANCELLED, COMPLETED};

impl Run {
    /// Builds the sublattice of node `i` from its inputs and starts it.
    pub(super) fn start_sublattice(
        self: &Arc<Self>,
        i: u32,
        build: fn(&mut Args) -> Result<SubGraph, TaskError>,
        mut args: Args,
    ) {
        match invoke::catch(|| build(&mut args)) {
            Ok(sub) => {
                let child = Run::new(
                    Graph::from_sub(sub),
                    RunSpec {
                        id: self.id,
                        config: self.config.clone(),
                        handle: self.handle.clone(),
                        parent: Some((self.clone(), i)),
                        inherited_default: self.graph.default_executor.clone(),
                        observer: self.observer.as_ref().map(|o| o.child(i)),
                        reused: Vec::new(),
                        adopt: Default::default(),
                    },
                );
                self.states[i as usize].extra(|x| x.sub = Some(child.clone()));
                child.start(false);
            }
            Err(e) => {
                let err = NodeError::new(e.kind(), format!("building the sublattice failed: {e}"));
                self.complete_async(i, Err(err));
            }
        }
    }

    /// For a sublattice's run that ended with `status`: completes its parent node.
    pub(super) fn complete_parent(self: &Arc<Self>, status: u8) {
        let parent = self.parent.lock().unwrap().take();
        let Some((parent, node)) = parent else {
            return;
        };
        let result = match status {
            COMPLETED => Ok(self.output().expect("output set").clone()),
            CANCELLED => Err(NodeError::new(ErrorKind::Cancelled, "cancelled")),
            _ => Err(NodeError::new(
                ErrorKind::UpstreamFailed,
                format!(
                    "sublattice `{}` failed: {}",
                    self.graph.name,
                    self.error().unwrap_or("")
                ),
            )),
        };
        parent.complete_async(node, result);
    }
}
