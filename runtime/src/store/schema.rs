//! The store's schema and its migrations, and the checks that keep us from touching a database
//! that is not ours (foreign, corrupt, or written by a newer version).
//!
//! Node states are kept as a log: each row of `node_log` holds one batch of the journal (a
//! JSON array of node entries, later entries win). A per-node row would cost the dispatcher's
//! writer a B-tree insert per node; a batch costs one, which is what keeps recording within a
//! small factor of not recording.
//!
//! This module owns DDL only; reading and writing rows is the rest of `store/`.

use rusqlite::Connection;

/// `PRAGMA application_id` of covalent stores ("COVL").
pub(crate) const APPLICATION_ID: i64 = 0x434F_564C;

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = 5;

/// Migrations: `MIGRATIONS[v]` takes a database from version `v` to `v + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the first schema.
    "
    CREATE TABLE dispatches (
        id            TEXT PRIMARY KEY,
        lattice       TEXT NOT NULL,
        status        TEXT NOT NULL,
        inputs        TEXT NOT NULL,
        output        TEXT,
        error         TEXT,
        created_at    INTEGER NOT NULL,
        ended_at      INTEGER,
        task_count    INTEGER NOT NULL,
        done_count    INTEGER NOT NULL DEFAULT 0,
        graph         TEXT,
        results_dir   TEXT,
        pid           INTEGER NOT NULL,
        pid_start     INTEGER,
        host          TEXT NOT NULL,
        heartbeat_at  INTEGER NOT NULL,
        reused_from   TEXT
    );
    CREATE INDEX dispatches_by_time ON dispatches(created_at);
    CREATE INDEX dispatches_by_status ON dispatches(status);
    CREATE TABLE node_log (
        dispatch_id  TEXT NOT NULL,
        path         TEXT NOT NULL,
        seq          INTEGER NOT NULL,
        entries      TEXT NOT NULL,
        PRIMARY KEY (dispatch_id, path, seq)
    ) WITHOUT ROWID;
    CREATE TABLE sublattices (
        dispatch_id  TEXT NOT NULL,
        path         TEXT NOT NULL,
        lattice      TEXT NOT NULL,
        status       TEXT NOT NULL,
        graph        TEXT,
        PRIMARY KEY (dispatch_id, path)
    ) WITHOUT ROWID;
    CREATE TABLE cancel_requests (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        dispatch_id  TEXT NOT NULL,
        node_id      INTEGER,
        created_at   INTEGER NOT NULL
    );
    ",
    // 1 → 2: graphs in their own table. A dispatch's row is updated while it runs (progress,
    // heartbeat, final status), and SQLite rewrites a whole row, overflow pages included, on
    // every update: with the graph in it, a 200,000-node dispatch rewrote megabytes each time.
    "
    CREATE TABLE graphs (
        dispatch_id  TEXT PRIMARY KEY,
        graph        TEXT NOT NULL
    );
    INSERT INTO graphs (dispatch_id, graph)
        SELECT id, graph FROM dispatches WHERE graph IS NOT NULL;
    ALTER TABLE dispatches DROP COLUMN graph;
    ",
    // 2 → 3: what another process needs to resume or cancel a dispatch whose dispatcher is
    // gone: the program that ran it, its build and working directory, the lattice's registered name, and the
    // dispatch that resumed it (so two resumes never adopt the same running attempts).
    "
    ALTER TABLE dispatches ADD COLUMN program TEXT;
    ALTER TABLE dispatches ADD COLUMN build TEXT;
    ALTER TABLE dispatches ADD COLUMN lattice_path TEXT;
    ALTER TABLE dispatches ADD COLUMN resumed_by TEXT;
    ALTER TABLE dispatches ADD COLUMN cwd TEXT;
    ",
    // 3 → 4: a dispatch that ended before anything of it was written (most small ones) is
    // written as one row, its graph and node log beside its state: three B-tree pages per
    // commit instead of a dozen. Dispatches written while they run keep using `graphs` and
    // `node_log` (their row is updated as they go, and would drag a large graph along). Only
    // running dispatches are looked up by status, so the status index holds only them: a
    // dispatch recorded as it ended never touches it. A result too large for a row is in a
    // value file (`values.rs`): `output_file` holds its reference.
    "
    ALTER TABLE dispatches ADD COLUMN output_file TEXT;
    ALTER TABLE dispatches ADD COLUMN graph TEXT;
    ALTER TABLE dispatches ADD COLUMN nodes TEXT;
    DROP INDEX dispatches_by_status;
    CREATE INDEX dispatches_running ON dispatches(status) WHERE status = 'RUNNING';
    ",
    // 4 → 5: a lattice input too large for the row is in a value file: `inputs` holds `null`
    // in its place and `input_files` its reference (`[[name, {"h", "n"}], ...]`). Graphs may
    // carry a parameter's reference as an eighth node field (older builds cannot read those,
    // hence the version).
    "
    ALTER TABLE dispatches ADD COLUMN input_files TEXT;
    ",
];

/// What an existing file turned out to be.
pub(crate) enum Found {
    /// An empty database (new file): create the schema.
    Empty,
    /// A covalent store at this version.
    Ours(i64),
    /// Another application's database.
    Foreign,
}

/// Looks at a database without changing it.
///
/// The header fields and the table count are read in one read transaction (unless the caller
/// has one open): read one by one, they could straddle another process's creation of the schema
/// and make a new store look like another application's.
pub(crate) fn inspect(conn: &Connection) -> rusqlite::Result<Found> {
    if !conn.is_autocommit() {
        return read_header(conn);
    }
    conn.execute_batch("BEGIN DEFERRED")?;
    let found = read_header(conn);
    let end = conn.execute_batch(if found.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let found = found?;
    end?;
    Ok(found)
}

fn read_header(conn: &Connection) -> rusqlite::Result<Found> {
    let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    Ok(if app == APPLICATION_ID {
        Found::Ours(version)
    } else if app == 0 && tables == 0 && version == 0 {
        Found::Empty
    } else {
        Found::Foreign
    })
}

/// Brings the schema up to [`SCHEMA_VERSION`] under the database's write lock, so several
/// processes opening a new store at once create it once. Returns the version found under the
/// lock (a foreign or newer database found then is left alone).
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<Found> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found = inspect(&tx)?;
    let from = match found {
        Found::Empty => {
            // Larger pages: node-log batches and graphs are large rows.
            tx.execute_batch("PRAGMA page_size = 4096;")?;
            0
        }
        Found::Ours(v) if v < SCHEMA_VERSION => v,
        other => return Ok(other),
    };
    for sql in &MIGRATIONS[from as usize..SCHEMA_VERSION as usize] {
        tx.execute_batch(sql)?;
    }
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))?;
    tx.commit()?;
    Ok(Found::Ours(SCHEMA_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_stores_move_their_graphs_to_the_graphs_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;"
        ))
        .unwrap();
        for (id, graph) in [("a", Some("{\"nodes\":[]}")), ("b", None)] {
            conn.execute(
                "INSERT INTO dispatches (id, lattice, status, inputs, created_at, task_count,
                     graph, pid, host, heartbeat_at)
                 VALUES (?1, 'flow', 'COMPLETED', '{}', 1, 1, ?2, 1, 'h', 1)",
                rusqlite::params![id, graph],
            )
            .unwrap();
        }
        assert!(matches!(
            migrate(&mut conn).unwrap(),
            Found::Ours(SCHEMA_VERSION)
        ));
        let graphs: Vec<(String, String)> = conn
            .prepare("SELECT dispatch_id, graph FROM graphs ORDER BY dispatch_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(graphs, vec![("a".into(), "{\"nodes\":[]}".into())]);
        // Both dispatches are still there; the graph column (back since version 4, for
        // dispatches written in one row) is empty for them.
        let (n, inline): (i64, i64) = conn
            .query_row("SELECT count(*), count(graph) FROM dispatches", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, inline), (2, 0));
        // Version 4 indexes running dispatches only.
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dispatches' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(indexes, ["dispatches_by_time", "dispatches_running"]);
    }
}
