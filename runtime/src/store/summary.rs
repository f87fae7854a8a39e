//! What a graph too large to draw node by node is drawn as: its top-level nodes grouped by
//! name and depth band, with the count, status counts and depth range of each group and the
//! number of edges between groups ([`Store::graph_summary`]); and the nodes one node is
//! linked to ([`Store::node_links`]), for a drawer that must not read every node.
//!
//! Both scan the stored graph's text as the page reader does (`read::Scan`: the tables parsed,
//! the nodes only split) and read each node's head (name, kind, executor, inputs) by hand; the
//! summary also splits the node log once (`read::json_elements`), taking each entry's first two
//! integers (node id and status) without parsing the rest. No record is built.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use rusqlite::OptionalExtension;
use serde::Serialize;
use uuid::Uuid;

use super::encode;
use super::read::{Scan, json_elements, leading_ints};
use super::{Store, StoreError};
use crate::status::Status;

/// How many depth bands a summary cuts a graph into at most (a chain of a million nodes is
/// drawn as this many groups).
pub const SUMMARY_BANDS: usize = 200;

/// A group of a [`GraphSummary`]: the shown nodes of one name in one depth band.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeGroup {
    /// Its index in [`GraphSummary::groups`] (groups are ordered by depth, then first node).
    pub key: usize,
    /// The electron's (or operation's) name its nodes share; `(other names)` for the rarest
    /// names, merged when there are more names than groups allowed.
    pub name: String,
    /// The executor of its nodes, if they all have the same one.
    pub executor: Option<String>,
    /// Whether its (first) node is internal: a parameter, collection or indexing node.
    pub internal: bool,
    /// Whether its (first) node is a sublattice.
    pub sublattice: bool,
    /// How many nodes.
    pub count: usize,
    /// Its lowest node id.
    pub first_id: usize,
    /// The depth of its shallowest and of its deepest node: the longest path from a source,
    /// counted in shown nodes (0 for a node without shown ancestors).
    pub depth: (usize, usize),
    /// How many of its nodes are in each status, in status order (statuses with none left out).
    pub statuses: Vec<(Status, usize)>,
    /// Edges between two of its own nodes (a chain cut into bands has many).
    pub inner_edges: usize,
}

/// Edges from the nodes of one group to the nodes of another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupEdge {
    /// The source group's key.
    pub source: usize,
    /// The target group's key.
    pub target: usize,
    /// How many node-to-node edges (an edge through hidden internal nodes joins its shown
    /// ends, as the UI draws it; a source reached along several hidden paths counts per path).
    pub count: usize,
}

/// A dispatch's top-level graph summarized ([`Store::graph_summary`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GraphSummary {
    /// Nodes of the graph, internal ones included.
    pub node_count: usize,
    /// Nodes in the groups (internal ones only when asked for).
    pub shown: usize,
    /// Depth levels of the shown nodes (the longest path, plus one).
    pub levels: usize,
    /// Depth bands the levels were cut into.
    pub bands: usize,
    /// The groups, ordered by depth, then first node id.
    pub groups: Vec<NodeGroup>,
    /// Edges between groups (an edge within a group is its `inner_edges`), ordered by source
    /// then target.
    pub edges: Vec<GroupEdge>,
    /// The group key of every node, by node id ([`GraphSummary::NO_GROUP`] for a hidden one).
    #[serde(skip)]
    pub members: Vec<u32>,
}

impl GraphSummary {
    /// The group of a node that is not shown.
    pub const NO_GROUP: u32 = u32::MAX;

    /// The ids of the nodes of group `key`, in id order.
    pub fn members_of(&self, key: usize) -> impl Iterator<Item = usize> + '_ {
        let key = u32::try_from(key).unwrap_or(Self::NO_GROUP);
        self.members
            .iter()
            .enumerate()
            .filter(move |(_, g)| **g == key && key != Self::NO_GROUP)
            .map(|(i, _)| i)
    }
}

/// A node's neighbours in the top-level graph ([`Store::node_links`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeLinks {
    /// The nodes it takes inputs from, each once, in input order (at most the limit).
    pub sources: Vec<usize>,
    /// How many nodes it takes inputs from.
    pub source_count: usize,
    /// The nodes that take its output, in id order (at most the limit).
    pub dependants: Vec<usize>,
    /// How many nodes take its output.
    pub dependant_count: usize,
}

impl Store {
    /// The top-level graph of dispatch `id` summarized for drawing: its nodes (internal ones
    /// only with `internal`) grouped by name and by band of depth (the longest path from a
    /// source, in shown nodes; at most [`SUMMARY_BANDS`] bands, fewer while there would be
    /// more than `max_groups` groups, and the rarest names merged if even one band has too
    /// many), each group with its count, executor, depth range and status counts, and the edges
    /// between groups with their counts. An edge through hidden internal nodes joins its shown
    /// ends. A fan-out of a million `tick` tasks into `sum_all` is two groups and one edge of
    /// a million; a chain of a million is [`SUMMARY_BANDS`] groups.
    ///
    /// One pass over the stored graph's text (each node's head read, nothing else) and one
    /// over the node log (each entry's id and status): a fraction of [`Store::get`]'s cost and
    /// memory. A dispatch stored without a graph has an empty summary.
    pub fn graph_summary(
        &self,
        id: Uuid,
        internal: bool,
        max_groups: usize,
    ) -> Result<GraphSummary, StoreError> {
        let status = self.status(id)?;
        let key = id.to_string();
        let text = self.graph_text(&key)?;
        // The graph's text is scanned on another thread while this one reads the node log.
        let (heads, logged) = std::thread::scope(|scope| {
            let scan = scope.spawn(|| text.as_deref().and_then(Heads::read));
            let logged = self.logged_statuses(&key);
            (scan.join(), logged)
        });
        let heads = heads.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let logged = logged?;
        drop(text);
        let Some(heads) = heads else {
            return Ok(GraphSummary::default());
        };
        let mut statuses: Vec<u8> = heads
            .kind
            .iter()
            .enumerate()
            .map(|(i, &k)| match logged.get(i) {
                Some(&s) if s != NOT_LOGGED => s,
                _ if k == encode::PARAMETER => Status::Completed as u8,
                _ => Status::New as u8,
            })
            .collect();
        drop(logged);
        if status == Status::Interrupted {
            // As a record reads: the unfinished nodes of an interrupted dispatch ended with it.
            for s in &mut statuses {
                if matches!(Status::from_u8(*s), Status::Running | Status::Pending) {
                    *s = Status::Interrupted as u8;
                }
            }
        }
        Ok(summarize(&heads, &statuses, internal, max_groups.max(1)))
    }

    /// The nodes top-level node `node` of dispatch `id` takes inputs from and the nodes that
    /// take its output, at most `limit` of each, with how many there are; `None` if the graph
    /// has no such node. Reads the stored graph's text once (each node's head), no node log.
    pub fn node_links(
        &self,
        id: Uuid,
        node: usize,
        limit: usize,
    ) -> Result<Option<NodeLinks>, StoreError> {
        self.status(id)?;
        let text = self.graph_text(&id.to_string())?;
        let Some(scan) = text.as_deref().and_then(Scan::read) else {
            return Ok(None);
        };
        let Some(raw) = scan.nodes.get(node) else {
            return Ok(None);
        };
        let mut inputs = Vec::new();
        if node_head(raw, &mut inputs).is_none() {
            let Ok(rec) = serde_json::from_str::<encode::NodeRec>(raw) else {
                return Ok(None);
            };
            inputs = rec.4.iter().map(|&(s, _)| s).collect();
        }
        let mut links = NodeLinks::default();
        let mut seen = HashSet::new();
        for s in inputs {
            if seen.insert(s) {
                links.source_count += 1;
                if links.sources.len() < limit {
                    links.sources.push(s as usize);
                }
            }
        }
        let target = node as u32;
        let mut scratch = Vec::new();
        for (i, raw) in scan.nodes.iter().enumerate() {
            scratch.clear();
            if node_head(raw, &mut scratch).is_none() {
                let Ok(rec) = serde_json::from_str::<encode::NodeRec>(raw) else {
                    continue;
                };
                scratch.extend(rec.4.iter().map(|&(s, _)| s));
            }
            if scratch.contains(&target) {
                links.dependant_count += 1;
                if links.dependants.len() < limit {
                    links.dependants.push(i);
                }
            }
        }
        Ok(Some(links))
    }

    /// The stored text of a dispatch's top-level graph, copied out of the database (so that it
    /// is scanned without holding the connection).
    fn graph_text(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT coalesce(d.graph, g.graph) FROM dispatches d
                 LEFT JOIN graphs g ON g.dispatch_id = d.id WHERE d.id = ?1",
                [id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
    }

    /// The latest logged status of every top-level node (by node id, [`NOT_LOGGED`] for a node
    /// without an entry), reading only each entry's id and status.
    fn logged_statuses(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let mut statuses = Vec::new();
        self.with(|c| {
            // As `node_rows_where` reads it: the batch written with the row first.
            let mut st = c.prepare_cached(
                "SELECT nodes FROM dispatches WHERE id = ?1 AND nodes IS NOT NULL
                 UNION ALL
                 SELECT * FROM (SELECT entries FROM node_log WHERE dispatch_id = ?1 AND path = ''
                                ORDER BY seq)",
            )?;
            let mut rows = st.query([id])?;
            while let Some(r) = rows.next()? {
                let entries: &str = r.get_ref(0)?.as_str()?;
                json_elements(entries, |e| {
                    if let (Some(n), Some(s)) = leading_ints(e)
                        && n < MAX_LOGGED_ID
                    {
                        let n = n as usize;
                        if n >= statuses.len() {
                            statuses.resize(n + 1, NOT_LOGGED);
                        }
                        statuses[n] = Status::from_u8(s.min(255) as u8) as u8;
                    }
                })
                .ok_or_else(|| {
                    rusqlite::Error::ToSqlConversionFailure(
                        format!("the node log of dispatch {id} is damaged: not a JSON array")
                            .into(),
                    )
                })?;
            }
            Ok(())
        })?;
        Ok(statuses)
    }
}

/// A node without an entry in the node log (see `Store::logged_statuses`).
const NOT_LOGGED: u8 = u8::MAX;

/// Node ids in the log from this one on are ignored (a damaged entry must not make a huge
/// table).
const MAX_LOGGED_ID: u64 = 1 << 26;

/// The heads of a stored graph's nodes, as columns: name, kind and executor index, and the
/// sources of each node's inputs (`sources[offsets[i]..offsets[i + 1]]`).
struct Heads {
    names: Vec<String>,
    executors: Vec<String>,
    name: Vec<u32>,
    kind: Vec<u8>,
    executor: Vec<i32>,
    offsets: Vec<u32>,
    sources: Vec<u32>,
}

impl Heads {
    fn read(text: &str) -> Option<Heads> {
        let scan = Scan::read(text)?;
        let n = scan.nodes.len();
        let mut h = Heads {
            names: scan.names,
            executors: scan.executors,
            name: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            executor: Vec::with_capacity(n),
            offsets: Vec::with_capacity(n + 1),
            sources: Vec::with_capacity(n),
        };
        h.offsets.push(0);
        for raw in &scan.nodes {
            let (name, kind, executor) = match node_head(raw, &mut h.sources) {
                Some(head) => head,
                None => {
                    let rec: encode::NodeRec = serde_json::from_str(raw).ok()?;
                    h.sources.extend(rec.4.iter().map(|&(s, _)| s));
                    (rec.0, rec.1, rec.3)
                }
            };
            h.name.push(name);
            h.kind.push(kind);
            h.executor.push(executor);
            h.offsets.push(u32::try_from(h.sources.len()).ok()?);
        }
        Some(h)
    }

    fn inputs(&self, i: usize) -> &[u32] {
        &self.sources[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// Reads the head of a stored node, `[name, kind, electron, executor, [[source, slot], ...],`
/// (`encode::NodeRec`), pushing its sources onto `sources`; `None` (and `sources` as it was)
/// if the text does not start that way.
fn node_head(raw: &str, sources: &mut Vec<u32>) -> Option<(u32, u8, i32)> {
    struct P<'a> {
        b: &'a [u8],
        at: usize,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.at < self.b.len() && self.b[self.at].is_ascii_whitespace() {
                self.at += 1;
            }
        }
        fn eat(&mut self, c: u8) -> bool {
            self.ws();
            let hit = self.b.get(self.at) == Some(&c);
            if hit {
                self.at += 1;
            }
            hit
        }
        fn int(&mut self) -> Option<i64> {
            self.ws();
            let negative = self.b.get(self.at) == Some(&b'-');
            if negative {
                self.at += 1;
            }
            let start = self.at;
            let mut v: i64 = 0;
            while let Some(d) = self.b.get(self.at).filter(|c| c.is_ascii_digit()) {
                v = v.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
                self.at += 1;
            }
            (self.at > start).then_some(if negative { -v } else { v })
        }
    }
    let mark = sources.len();
    let mut p = P {
        b: raw.as_bytes(),
        at: 0,
    };
    let mut head = || {
        let field = |p: &mut P<'_>| {
            let v = p.int()?;
            p.eat(b',').then_some(v)
        };
        if !p.eat(b'[') {
            return None;
        }
        let name = u32::try_from(field(&mut p)?).ok()?;
        let kind = u8::try_from(field(&mut p)?).ok()?;
        field(&mut p)?;
        let executor = i32::try_from(field(&mut p)?).ok()?;
        if !p.eat(b'[') {
            return None;
        }
        if !p.eat(b']') {
            loop {
                if !p.eat(b'[') {
                    return None;
                }
                let src = u32::try_from(p.int()?).ok()?;
                if !p.eat(b',') {
                    return None;
                }
                p.int()?;
                if !p.eat(b']') {
                    return None;
                }
                sources.push(src);
                if p.eat(b']') {
                    break;
                }
                if !p.eat(b',') {
                    return None;
                }
            }
        }
        Some((name, kind, executor))
    };
    let r = head();
    if r.is_none() {
        sources.truncate(mark);
    }
    r
}

/// The nodes of `h` in an order where every node comes after its inputs (Kahn's, the sources in id
/// order); nodes on a cycle, which a graph never has, at the end in id order.
fn topological(h: &Heads) -> Vec<u32> {
    let n = h.kind.len();
    if (0..n).all(|i| h.inputs(i).iter().all(|&s| (s as usize) < i)) {
        return (0..n as u32).collect();
    }
    let mut indeg = vec![0u32; n];
    let mut off = vec![0u32; n + 1];
    for (i, d) in indeg.iter_mut().enumerate() {
        for &s in h.inputs(i) {
            if (s as usize) < n {
                *d += 1;
                off[s as usize + 1] += 1;
            }
        }
    }
    for i in 0..n {
        off[i + 1] += off[i];
    }
    let mut fill = off.clone();
    let mut out = vec![0u32; off[n] as usize];
    for i in 0..n {
        for &s in h.inputs(i) {
            if (s as usize) < n {
                out[fill[s as usize] as usize] = i as u32;
                fill[s as usize] += 1;
            }
        }
    }
    drop(fill);
    let mut order: Vec<u32> = (0..n as u32).filter(|&i| indeg[i as usize] == 0).collect();
    let mut at = 0;
    while at < order.len() {
        let v = order[at] as usize;
        at += 1;
        for &w in &out[off[v] as usize..off[v + 1] as usize] {
            indeg[w as usize] -= 1;
            if indeg[w as usize] == 0 {
                order.push(w);
            }
        }
    }
    if order.len() < n {
        order.extend((0..n as u32).filter(|&i| indeg[i as usize] > 0));
    }
    order
}

/// What a hidden node carries down: `(group key, edges)` of the shown nodes above it.
type Carried = Rc<[(u32, usize)]>;

/// Groups the nodes of `h` (see [`Store::graph_summary`]); `statuses[i]` is node `i`'s.
fn summarize(h: &Heads, statuses: &[u8], internal: bool, max_groups: usize) -> GraphSummary {
    let n = h.kind.len();
    let shown: Vec<bool> = h
        .kind
        .iter()
        .map(|&k| internal || !matches!(k, encode::PARAMETER | encode::INTERNAL))
        .collect();

    // Nodes in an order where inputs come first (a parameter may have a higher id than the
    // node it feeds); `rank[i]` is node i's place in it. An input that does not come first
    // (only in a cycle, which a graph never has) is ignored.
    let order = topological(h);
    let mut rank = vec![0u32; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    let before = |s: u32, i: usize| (s as usize) < n && rank[s as usize] < rank[i];

    // Depth: for a shown node, the longest path to it in shown nodes; for a hidden one, the
    // depth of its deepest shown ancestor (-1 for none).
    let mut top = vec![-1i32; n];
    let mut deepest = -1i32;
    for &i in &order {
        let i = i as usize;
        let mut m = -1i32;
        for &s in h.inputs(i) {
            if before(s, i) {
                m = m.max(top[s as usize]);
            }
        }
        top[i] = if shown[i] { m + 1 } else { m };
        if shown[i] {
            deepest = deepest.max(top[i]);
        }
    }
    let levels = (deepest + 1).max(0) as usize;
    let band = |d: i32, bands: usize| (d.max(0) as usize * bands / levels.max(1)) as u32;

    // Bands: as many as fit the group limit.
    let distinct = |bands: usize| {
        let mut keys = HashSet::new();
        let mut last = None;
        for i in (0..n).filter(|&i| shown[i]) {
            let k = (h.name[i], band(top[i], bands));
            if last != Some(k) {
                keys.insert(k);
                last = Some(k);
            }
        }
        keys.len()
    };
    let mut bands = levels.clamp(1, SUMMARY_BANDS);
    while bands > 1 && distinct(bands) > max_groups {
        bands = bands.div_ceil(2);
    }
    // Still too many (many names): the rarest names share one group.
    const OTHER: u32 = u32::MAX;
    let mut kept: Option<HashSet<u32>> = None;
    if bands == 1 && distinct(1) > max_groups {
        let mut per_name: HashMap<u32, usize> = HashMap::new();
        for i in (0..n).filter(|&i| shown[i]) {
            *per_name.entry(h.name[i]).or_default() += 1;
        }
        let mut by_count: Vec<(u32, usize)> = per_name.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        kept = Some(
            by_count
                .iter()
                .take(max_groups.saturating_sub(1))
                .map(|(name, _)| *name)
                .collect(),
        );
    }
    let name_of = |i: usize| match &kept {
        Some(k) if !k.contains(&h.name[i]) => OTHER,
        _ => h.name[i],
    };

    // Groups, in node order first.
    struct Acc {
        name: u32,
        executor: i32,
        mixed: bool,
        kind: u8,
        count: usize,
        first: usize,
        depth: (i32, i32),
        statuses: [usize; 9],
    }
    let mut index: HashMap<(u32, u32), u32> = HashMap::new();
    let mut acc: Vec<Acc> = Vec::new();
    let mut members = vec![GraphSummary::NO_GROUP; n];
    let mut last: Option<((u32, u32), u32)> = None;
    for i in (0..n).filter(|&i| shown[i]) {
        let k = (name_of(i), band(top[i], bands));
        let g = match last {
            Some((lk, g)) if lk == k => g,
            _ => *index.entry(k).or_insert_with(|| {
                acc.push(Acc {
                    name: k.0,
                    executor: h.executor[i],
                    mixed: false,
                    kind: h.kind[i],
                    count: 0,
                    first: i,
                    depth: (top[i], top[i]),
                    statuses: [0; 9],
                });
                (acc.len() - 1) as u32
            }),
        };
        last = Some((k, g));
        let a = &mut acc[g as usize];
        a.count += 1;
        a.mixed |= a.executor != h.executor[i];
        a.depth = (a.depth.0.min(top[i]), a.depth.1.max(top[i]));
        a.statuses[usize::from(statuses[i].min(8))] += 1;
        members[i] = g;
    }
    let mut by_depth: Vec<u32> = (0..acc.len() as u32).collect();
    by_depth.sort_by_key(|&g| (acc[g as usize].depth.0, acc[g as usize].first));
    let mut key_of = vec![0u32; acc.len()];
    for (k, &g) in by_depth.iter().enumerate() {
        key_of[g as usize] = k as u32;
    }
    for m in members.iter_mut().filter(|m| **m != GraphSummary::NO_GROUP) {
        *m = key_of[*m as usize];
    }

    // Edges between groups; a hidden node carries the groups of the shown nodes above it.
    let mut through: Vec<Option<Carried>> = vec![None; n];
    let mut edges: HashMap<(u32, u32), usize> = HashMap::new();
    let mut inner = vec![0usize; acc.len()];
    let mut sum: HashMap<u32, usize> = HashMap::new();
    let mut direct: Vec<u32> = Vec::new();
    for &i in &order {
        let i = i as usize;
        let ins = h.inputs(i);
        if ins.is_empty() {
            continue;
        }
        if !shown[i] && ins.len() == 1 && before(ins[0], i) && !shown[ins[0] as usize] {
            through[i] = through[ins[0] as usize].clone();
            continue;
        }
        sum.clear();
        direct.clear();
        for &s in ins {
            if !before(s, i) {
                continue;
            }
            let s = s as usize;
            if shown[s] {
                direct.push(s as u32);
            } else if let Some(t) = &through[s] {
                for &(g, c) in t.iter() {
                    *sum.entry(g).or_default() += c;
                }
            }
        }
        if direct.len() > 1 {
            direct.sort_unstable();
            direct.dedup();
        }
        for &s in &direct {
            *sum.entry(members[s as usize]).or_default() += 1;
        }
        if !shown[i] {
            if !sum.is_empty() {
                through[i] = Some(sum.drain().collect::<Vec<_>>().into());
            }
            continue;
        }
        let t = members[i];
        for (g, c) in sum.drain() {
            if g == t {
                inner[t as usize] += c;
            } else {
                *edges.entry((g, t)).or_default() += c;
            }
        }
    }
    drop(through);
    let mut edges: Vec<GroupEdge> = edges
        .into_iter()
        .map(|((s, t), count)| GroupEdge {
            source: s as usize,
            target: t as usize,
            count,
        })
        .collect();
    edges.sort_by_key(|e| (e.source, e.target));

    let groups = by_depth
        .iter()
        .enumerate()
        .map(|(key, &g)| {
            let a = &acc[g as usize];
            NodeGroup {
                key,
                name: if a.name == OTHER {
                    "(other names)".to_string()
                } else {
                    h.names.get(a.name as usize).cloned().unwrap_or_default()
                },
                executor: (!a.mixed && a.executor >= 0)
                    .then(|| h.executors.get(a.executor as usize).cloned())
                    .flatten(),
                internal: matches!(a.kind, encode::PARAMETER | encode::INTERNAL),
                sublattice: a.kind == encode::SUBLATTICE,
                count: a.count,
                first_id: a.first,
                depth: (a.depth.0.max(0) as usize, a.depth.1.max(0) as usize),
                statuses: a
                    .statuses
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(s, c)| (Status::from_u8(s as u8), *c))
                    .collect(),
                inner_edges: inner[g as usize],
            }
        })
        .collect();
    GraphSummary {
        node_count: n,
        shown: shown.iter().filter(|s| **s).count(),
        levels,
        bands,
        groups,
        edges,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_heads_are_read_by_hand_or_not_at_all() {
        let mut s = vec![9];
        assert_eq!(
            node_head("[3,1,0,-1,[[4,0],[5,1]],null,0]", &mut s),
            Some((3, 1, -1))
        );
        assert_eq!(s, [9, 4, 5]);
        assert_eq!(
            node_head(" [ 0 , 0 , -1 , 2 , [ ] , 7 ]", &mut s),
            Some((0, 0, 2))
        );
        assert_eq!(node_head("[1,1,0,0,[[4,0],[x]]]", &mut s), None);
        assert_eq!(s, [9, 4, 5], "sources left as they were");
        assert_eq!(node_head("{}", &mut s), None);
    }

    /// `heads` from `(name, kind, inputs)` rows.
    fn heads(nodes: &[(u32, u8, &[u32])]) -> Heads {
        let mut h = Heads {
            names: vec!["p".into(), "tick".into(), "list".into(), "sum".into()],
            executors: vec!["local".into()],
            name: vec![],
            kind: vec![],
            executor: vec![],
            offsets: vec![0],
            sources: vec![],
        };
        for (name, kind, inputs) in nodes {
            h.name.push(*name);
            h.kind.push(*kind);
            h.executor
                .push(if *kind == encode::ELECTRON { 0 } else { -1 });
            h.sources.extend_from_slice(inputs);
            h.offsets.push(h.sources.len() as u32);
        }
        h
    }

    #[test]
    fn a_fan_out_is_two_groups_joined_through_its_hidden_list() {
        // p -> tick, three times, -> list (hidden) -> sum; as a graph is built, a node before
        // its inputs.
        let (p, e, l) = (encode::PARAMETER, encode::ELECTRON, encode::INTERNAL);
        let h = heads(&[
            (1, e, &[1]),
            (0, p, &[]),
            (1, e, &[3]),
            (0, p, &[]),
            (1, e, &[5]),
            (0, p, &[]),
            (3, e, &[7]),
            (2, l, &[0, 2, 4]),
        ]);
        let st = vec![3, 3, 4, 3, 3, 3, 0, 3];
        let s = summarize(&h, &st, false, 100);
        assert_eq!(s.node_count, 8);
        assert_eq!(s.shown, 4);
        assert_eq!(s.groups.len(), 2);
        assert_eq!((s.groups[0].name.as_str(), s.groups[0].count), ("tick", 3));
        assert_eq!(s.groups[0].executor.as_deref(), Some("local"));
        assert_eq!(
            s.groups[0].statuses,
            [(Status::Completed, 2), (Status::Failed, 1)]
        );
        assert_eq!(
            (s.groups[1].name.as_str(), s.groups[1].depth),
            ("sum", (1, 1))
        );
        assert_eq!(
            s.edges,
            [GroupEdge {
                source: 0,
                target: 1,
                count: 3
            }]
        );
        assert_eq!(s.members_of(0).collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!(s.members[1], GraphSummary::NO_GROUP);

        let all = summarize(&h, &st, true, 100);
        assert_eq!(all.shown, 8);
        let names: Vec<&str> = all.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["p", "tick", "list", "sum"]);
        let counts: Vec<usize> = all.edges.iter().map(|e| e.count).collect();
        assert_eq!(counts, [3, 3, 1]);
    }

    #[test]
    fn a_long_chain_is_cut_into_bands_and_fewer_when_groups_are_limited() {
        let e = encode::ELECTRON;
        let rows: Vec<(u32, u8, Vec<u32>)> = (0..1000u32)
            .map(|i| (1, e, if i == 0 { vec![] } else { vec![i - 1] }))
            .collect();
        let rows: Vec<(u32, u8, &[u32])> = rows.iter().map(|(a, b, c)| (*a, *b, &c[..])).collect();
        let h = heads(&rows);
        let st = vec![0; 1000];
        let s = summarize(&h, &st, false, 1000);
        assert_eq!(
            (s.levels, s.bands, s.groups.len()),
            (1000, SUMMARY_BANDS, SUMMARY_BANDS)
        );
        assert_eq!(s.groups.iter().map(|g| g.count).sum::<usize>(), 1000);
        assert_eq!(s.edges.len(), SUMMARY_BANDS - 1);
        assert!(
            s.edges
                .iter()
                .all(|e| e.count == 1 && e.target == e.source + 1)
        );
        assert_eq!(s.groups[0].inner_edges, 4);
        let few = summarize(&h, &st, false, 30);
        assert!(few.groups.len() <= 30, "{}", few.groups.len());
    }
}
