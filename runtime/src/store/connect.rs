//! Opening the database file: WAL mode, the schema check and migration, and the pragmas the
//! writer relies on; errors that say what to do about a read-only place.
//!
//! This module owns the connection set-up; queries are the rest of the store's.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, schema};

/// How long opening waits for other connections' locks.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection: refuses foreign, corrupt and newer databases without changing them,
/// then switches to WAL and migrates.
pub(super) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |reason: String| StoreError::Open {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            open_err(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_err(describe_open(path, &e)))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_err(e.to_string()))?;
    // A file SQLite cannot read as a database is damaged or not one; a refusal to write (a
    // WAL store in a read-only directory needs its shared-memory file) is about the location.
    let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(
            rusqlite::ErrorCode::ReadOnly
            | rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::PermissionDenied,
        ) => open_err(describe_open(path, &e)),
        _ => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    };
    let check = |found: schema::Found| match found {
        schema::Found::Foreign => Err(StoreError::Foreign {
            path: path.to_path_buf(),
        }),
        schema::Found::Ours(v) if v > schema::SCHEMA_VERSION => Err(StoreError::Newer {
            path: path.to_path_buf(),
            found: v,
            supported: schema::SCHEMA_VERSION,
        }),
        schema::Found::Ours(v) => Ok(v),
        schema::Found::Empty => Ok(0),
    };
    // Look first without writing anything: a foreign, corrupt or newer file stays as it was.
    let version = check(schema::inspect(&conn).map_err(corrupt)?)?;
    if version < schema::SCHEMA_VERSION {
        let found = when_unlocked(|| schema::migrate(&mut conn))
            .map_err(|e| open_err(describe_open(path, &e)))?;
        check(found)?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(corrupt)?;
    if !mode.eq_ignore_ascii_case("wal") {
        when_unlocked(|| {
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        })
        .map_err(|e| open_err(describe_open(path, &e)))?;
    }
    // Checkpoints are the writer's job (when idle, or when the log grows large), never the
    // dispatcher's: an automatic one would land on whichever commit crosses the threshold.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")
        .map_err(|e| open_err(describe_open(path, &e)))?;
    Ok(conn)
}

/// Runs `f` again while SQLite reports the database busy, for up to the busy timeout. SQLite
/// returns "database is locked" at once, without waiting, where waiting could deadlock (a
/// connection upgrading its lock while another holds a pending one, and switching a new store
/// to WAL while other processes open it); backing off and trying again is what it expects.
fn when_unlocked<R>(mut f: impl FnMut() -> rusqlite::Result<R>) -> rusqlite::Result<R> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

fn describe_open(path: &Path, e: &rusqlite::Error) -> String {
    let msg = e.to_string();
    let readonly = msg.contains("readonly")
        || msg.contains("read-only")
        || msg.contains("unable to open")
        || path
            .parent()
            .and_then(|d| std::fs::metadata(d).ok())
            .is_some_and(|m| m.permissions().readonly());
    if readonly {
        format!(
            "{msg} (is the location read-only? set COVALENT_HOME or `[sdk] data_dir` in covalent.toml to a writable directory)"
        )
    } else {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many connections creating and opening one new store at once (threads with their own
    /// connections race exactly as processes do: SQLite locks per connection).
    #[test]
    fn first_opens_of_a_new_store_do_not_race() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20 {
            let path = dir.path().join(format!("s{round}/covalent.db"));
            let start = std::sync::Arc::new(std::sync::Barrier::new(12));
            let handles: Vec<_> = (0..12)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        connect(&path).map(|_| ())
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
        }
    }
}
