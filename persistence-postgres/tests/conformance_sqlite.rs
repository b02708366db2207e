//! The conformance suite on SQLite: every case in its own temporary database
//! file, deleted afterwards (also on failure). `harness = false`: the macro
//! defines `main`.
use std::path::PathBuf;

use persistence_core::conformance::Backend;
use persistence_core::conformance::services::unique_suffix;
use persistence_core::{Capabilities, Entity};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};

struct Sqlite {
    store: RelationalStore,
    path: PathBuf,
}

impl Backend for Sqlite {
    type Repo<E: Entity> = RelationalRepository<E>;

    fn capabilities() -> Capabilities {
        // SQLite stores NaN as NULL and drops the sign of -0.0 in REAL columns.
        let mut caps = Capabilities::full("sqlite");
        caps.non_finite_floats = false;
        caps.signed_zero = false;
        // SQLite locks the database, not rows (see persistence_postgres::transaction::lock).
        caps.row_locks = false;
        // Built-in lower()/LIKE fold ASCII letters only.
        caps.unicode_case_folding = false;
        caps
    }

    async fn repo<E: Entity>(&self) -> RelationalRepository<E> {
        let repo = self.store.repository::<E>();
        if let Err(e) = persistence_core::Repository::ensure_schema(&repo).await {
            panic!("ensure_schema for {} failed: {e:?}", E::meta().name);
        }
        repo
    }

    async fn cleanup(&self) {
        self.store.close().await;
        for ext in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.path.display()));
        }
    }
}

async fn make() -> Sqlite {
    let path = std::env::temp_dir().join(format!("persistence-conformance-{}.db", unique_suffix()));
    let config =
        RelationalConfig::new(format!("sqlite://{}?mode=rwc", path.display())).max_connections(8);
    match RelationalStore::connect(&config).await {
        Ok(store) => Sqlite { store, path },
        Err(e) => panic!("cannot open SQLite at {}: {e}", path.display()),
    }
}

persistence_core::conformance_tests!(make);
