//! Node paths (`3`, `3/1`: node ids joined by `/`) and the walk from a dispatch's top-level
//! graph down to the sublattice graph a path names, with the crumbs along the way.
//!
//! Shared by the node and sublattice answers and the event streams; it must not shape any
//! answer beyond the [`Crumb`]s, nor touch the store.

use covalent::Status;
use covalent::store::{DispatchRecord, NodeRecord};
use serde::Serialize;

use crate::ui::state::UiError;

/// A step of the way down to a sublattice.
#[derive(Serialize)]
pub struct Crumb {
    /// Its path (`3`, `3/1`).
    pub path: String,
    /// The sublattice node's name.
    pub name: String,
    /// The child lattice's name.
    pub lattice: String,
}

/// Parses `3/1` into node ids.
pub fn parse_path(path: &str) -> Result<Vec<usize>, UiError> {
    path.split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse().map_err(|_| {
                UiError::BadRequest(format!(
                    "`{path}` is not a node path (node ids joined by /, e.g. 3 or 3/1)"
                ))
            })
        })
        .collect()
}

/// The nodes of the graph at `path` (the top level for an empty path), with the status of
/// that graph and the crumbs down to it.
pub fn graph_at<'a>(
    r: &'a DispatchRecord,
    path: &[usize],
) -> Result<(&'a [NodeRecord], Status, Vec<Crumb>), UiError> {
    let mut nodes: &[NodeRecord] = &r.nodes;
    let mut status = r.status;
    let mut crumbs = Vec::new();
    let mut walked = Vec::new();
    for &id in path {
        walked.push(id.to_string());
        let node = nodes.iter().find(|n| n.id == id).ok_or_else(|| {
            UiError::NotFound(format!(
                "dispatch {} has no node {}",
                r.id,
                walked.join("/")
            ))
        })?;
        let sub = node.sublattice.as_ref().ok_or_else(|| {
            UiError::NotFound(format!(
                "node {} ({}) of dispatch {} has no sublattice graph{}",
                walked.join("/"),
                node.name,
                r.id,
                if node.status.is_terminal() {
                    ""
                } else {
                    " yet"
                }
            ))
        })?;
        crumbs.push(Crumb {
            path: walked.join("/"),
            name: node.name.clone(),
            lattice: sub.lattice.clone(),
        });
        nodes = &sub.nodes;
        status = sub.status;
    }
    Ok((nodes, status, crumbs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_paths_parse() {
        assert_eq!(parse_path("3/1").unwrap(), [3, 1]);
        assert_eq!(parse_path("").unwrap(), Vec::<usize>::new());
        assert!(parse_path("3/x").is_err());
    }
}
