//! Pool status of a relational store for the metrics and the health report:
//! the occupancy of its sqlx pool as a [`PoolStatus`] (the backend-neutral
//! type of `persistence_core::layer`), with the waiting count of the
//! manager's [`PoolProbe`].

use persistence_core::layer::{PoolProbe, PoolStatus};
use sea_orm::DatabaseConnectionType;

use crate::store::RelationalStore;

/// The status of a relational store's sqlx pool (`None` for a connection
/// that is not a sqlx pool).
pub fn relational_status(store: &RelationalStore, probe: &PoolProbe) -> Option<PoolStatus> {
    let conn = store.connection();
    let (max, size, idle) = match &conn.inner {
        #[cfg(feature = "postgres")]
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let p = conn.get_postgres_connection_pool();
            (p.options().get_max_connections(), p.size(), p.num_idle())
        }
        #[cfg(feature = "sqlite")]
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            let p = conn.get_sqlite_connection_pool();
            (p.options().get_max_connections(), p.size(), p.num_idle())
        }
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
    Some(PoolStatus {
        max,
        size,
        idle,
        in_use: size - idle,
        waiting: probe.waiting(),
    })
}
