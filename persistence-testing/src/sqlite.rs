//! A temporary SQLite file of one's own.

use std::path::{Path, PathBuf};

use persistence_core::Result;
use persistence_postgres::{RelationalConfig, RelationalStore};

use crate::services;

/// A fresh SQLite database file in the temporary directory, removed (with
/// its `-wal`, `-shm` and `-journal` companions) when this value is dropped,
/// also when the test panics. Needs no server and never skips.
///
/// ```no_run
/// # async fn demo() {
/// use persistence_testing::TestSqlite;
/// let db = TestSqlite::new();
/// let store = db.store().await.expect("open");
/// # let _ = store;
/// # }
/// ```
#[derive(Debug)]
pub struct TestSqlite {
    path: PathBuf,
    kept: bool,
}

impl Default for TestSqlite {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSqlite {
    /// A fresh file path (the file is created by the first connection).
    pub fn new() -> TestSqlite {
        TestSqlite {
            path: std::env::temp_dir()
                .join(format!("persistence-test-{}.db", services::unique_suffix())),
            kept: false,
        }
    }

    /// Take over the file at `path` (and its companions): removed on drop.
    pub fn adopt(path: impl Into<PathBuf>) -> TestSqlite {
        TestSqlite {
            path: path.into(),
            kept: false,
        }
    }

    /// Keep the file: no removal on drop. Returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `sqlite://{path}?mode=rwc`.
    pub fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.path.display())
    }

    /// The backend configuration (a pool of 4 connections).
    pub fn config(&self) -> RelationalConfig {
        RelationalConfig::new(self.url()).max_connections(4)
    }

    /// A store on this file (a new pool per call).
    pub async fn store(&self) -> Result<RelationalStore> {
        RelationalStore::connect(&self.config()).await
    }
}

impl Drop for TestSqlite {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for ext in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(ext);
            let _ = std::fs::remove_file(p);
        }
    }
}
