//! How repository statements reach sea-orm.
//!
//! `ConnectionTrait` is an `async_trait`: every call boxes a future as large
//! as the biggest backend's (about 18 KB here), and the boxed future is moved
//! (copied) three times per statement. Measured with callgrind on a point
//! read, those copies were ~55,000 of the ~110,000 client instructions.
//! On the store's own pool, statements therefore go to the sea-orm driver
//! connection (`DatabaseConnection::inner`, `SqlxPostgresPoolConnection` /
//! `SqlxSqlitePoolConnection`) whose inherent async methods are awaited in
//! place; inside a transaction (and for any other backend) the
//! `ConnectionTrait` methods are used as before.

use std::future::Future;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseConnectionType, DatabaseTransaction, DbErr,
    ExecResult, QueryResult, Statement,
};

/// A connection repository statements run on: the pool or a transaction.
pub(crate) trait Conn: ConnectionTrait + Sync {
    /// All rows of `stmt`.
    fn rows(&self, stmt: Statement)
    -> impl Future<Output = Result<Vec<QueryResult>, DbErr>> + Send;
    /// The first row of `stmt`, if any.
    fn row(
        &self,
        stmt: Statement,
    ) -> impl Future<Output = Result<Option<QueryResult>, DbErr>> + Send;
    /// Execute `stmt`.
    fn exec(&self, stmt: Statement) -> impl Future<Output = Result<ExecResult, DbErr>> + Send;
}

impl Conn for DatabaseConnection {
    async fn rows(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.inner {
            #[cfg(feature = "postgres")]
            DatabaseConnectionType::SqlxPostgresPoolConnection(c) => c.query_all(stmt).await,
            #[cfg(feature = "sqlite")]
            DatabaseConnectionType::SqlxSqlitePoolConnection(c) => c.query_all(stmt).await,
            _ => self.query_all_raw(stmt).await,
        }
    }

    async fn row(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.inner {
            #[cfg(feature = "postgres")]
            DatabaseConnectionType::SqlxPostgresPoolConnection(c) => c.query_one(stmt).await,
            #[cfg(feature = "sqlite")]
            DatabaseConnectionType::SqlxSqlitePoolConnection(c) => c.query_one(stmt).await,
            _ => self.query_one_raw(stmt).await,
        }
    }

    async fn exec(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match &self.inner {
            #[cfg(feature = "postgres")]
            DatabaseConnectionType::SqlxPostgresPoolConnection(c) => c.execute(stmt).await,
            #[cfg(feature = "sqlite")]
            DatabaseConnectionType::SqlxSqlitePoolConnection(c) => c.execute(stmt).await,
            _ => self.execute_raw(stmt).await,
        }
    }
}

/// `Conn` through sea-orm's generic raw calls (a transaction, or what a
/// migration's `SchemaManager` runs on: a connection or a transaction).
macro_rules! conn_via_raw {
    ($($ty:ty),+) => {$(
        impl Conn for $ty {
            async fn rows(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.query_all_raw(stmt).await
            }

            async fn row(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.query_one_raw(stmt).await
            }

            async fn exec(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.execute_raw(stmt).await
            }
        }
    )+};
}

conn_via_raw!(DatabaseTransaction, sea_orm::DatabaseExecutor<'_>);
