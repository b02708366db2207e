//! [`PoolStatus`]: the occupancy of a backend's connection pool, as each
//! backend reports it (`persistence_postgres::pool`, the MongoDB driver's
//! pool events) for the pool gauges and the health report.

/// Occupancy of one database's connection pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Most connections the pool opens.
    pub max: u32,
    /// Connections open now (idle + in use).
    pub size: u32,
    /// Open connections idle in the pool.
    pub idle: u32,
    /// Connections handed out.
    pub in_use: u32,
    /// Waiting for a connection: PostgreSQL/SQLite — repository operations
    /// through the manager that have not got their connection yet (direct
    /// users of the sqlx pool are not seen); MongoDB — the driver's pending
    /// check-outs.
    pub waiting: u32,
}

impl PoolStatus {
    /// `in_use / max` in percent (0 when `max` is 0).
    pub fn utilization_percent(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            f64::from(self.in_use) * 100.0 / f64::from(self.max)
        }
    }
}
