//! The history's health, as `warren doctor` asks for it: the file's integrity, read afresh
//! from disk by a connection of its own (the writer's cache could hide damage done to the
//! file), its size and the room left beside it.

use std::path::Path;
use warren_proto::v1::DatabaseHealth;

use super::{Location, Store};

/// At most this many of quick_check's complaints are reported.
const MAX_PROBLEMS: usize = 5;

impl Store {
    /// The history's health. Its checks run on a blocking thread, off the writer's path:
    /// neither commits nor the runtime wait for them.
    pub(crate) async fn health(&self) -> DatabaseHealth {
        let tasks = self
            .query(|conn| {
                conn.query_row("SELECT count(*) FROM tasks", [], |row| row.get::<_, i64>(0))
            })
            .await
            .map_or(0, |count| count.max(0) as u64);
        let mut health = match self.location().clone() {
            Location::Memory => DatabaseHealth {
                location: ":memory:".into(),
                integrity: "ok".into(),
                ..DatabaseHealth::default()
            },
            Location::File(path) => tokio::task::spawn_blocking(move || check_file(&path))
                .await
                .unwrap_or_else(|err| DatabaseHealth {
                    integrity: format!("the check failed: {err}"),
                    ..DatabaseHealth::default()
                }),
        };
        health.tasks = tasks;
        health
    }
}

/// Checks the file at `path` with a read-only connection of its own.
fn check_file(path: &Path) -> DatabaseHealth {
    use rusqlite::OpenFlags;
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let integrity = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|conn| {
        let mut statement = conn.prepare("PRAGMA quick_check")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        let problems: Vec<String> = rows.take(MAX_PROBLEMS).collect::<Result<_, _>>()?;
        Ok(problems.join("; "))
    })
    .unwrap_or_else(|err| err.to_string());
    let free_bytes = path
        .parent()
        .and_then(|dir| rustix::fs::statvfs(dir).ok())
        .map_or(0, |stat| stat.f_bavail.saturating_mul(stat.f_frsize));
    DatabaseHealth {
        location: path.display().to_string(),
        integrity,
        file_bytes: size(path),
        wal_bytes: size(Path::new(&wal)),
        tasks: 0,
        free_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sound_file_is_ok_and_a_damaged_one_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hub.db");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("create");
        drop(conn);
        let health = check_file(&path);
        assert_eq!(health.integrity, "ok");
        assert!(health.file_bytes > 0 && health.free_bytes > 0, "{health:?}");

        std::fs::write(
            &path,
            b"not a database, not at all; some bytes to be sure it is long enough",
        )
        .expect("write");
        let health = check_file(&path);
        assert_ne!(health.integrity, "ok");
        assert!(health.integrity.contains("not a database"), "{health:?}");
    }
}
