//! # persistence-testing
//!
//! Per-test isolated resources for tests of code built on the persistence
//! framework, created on demand and removed automatically:
//!
//! | resource | create | gives | removed on drop |
//! |---|---|---|---|
//! | PostgreSQL schema | [`TestPostgres::schema`] | [`RelationalConfig`] with the schema set, [`RelationalStore`] | `DROP SCHEMA .. CASCADE` |
//! | PostgreSQL database | [`TestPostgres::database`] | the database's URL, config, store | `DROP DATABASE .. WITH (FORCE)` |
//! | MongoDB database | [`TestMongo::database`] | [`MongoConfig`], [`MongoStore`] | `dropDatabase` |
//! | Redis key prefix | [`TestRedis::new`] | the prefix, the URL, a connection | `SCAN MATCH prefix:*` + `UNLINK` |
//! | SQLite file | [`TestSqlite::new`] | config, store | the file and its `-wal`/`-shm`/`-journal` |
//!
//! Names are `t_` (or `t`) plus 12 random hex digits, so parallel tests
//! (nextest runs each in its own process) never share anything.
//!
//! ## Where the servers are
//!
//! `DATABASE_URL`, `MONGODB_URL` and `REDIS_URL` when set, otherwise the
//! local defaults (`postgres://postgres@127.0.0.1:5432/postgres`,
//! `mongodb://127.0.0.1:27017/?directConnection=true`,
//! `redis://127.0.0.1:6379`) — the same rules as the conformance suite,
//! through [`services`] (re-exported from `persistence_core::conformance`).
//! When a server does not answer, the constructors return `None` after
//! printing a `SKIPPED` line, and the test returns early; with `CI=true` or
//! `PERSISTENCE_REQUIRE_SERVICES=1` they panic with a clear message instead,
//! so a missing service fails CI rather than passing silently.
//!
//! ## Servers of your own, and network faults
//!
//! For failure tests that restart, kill (-9) or pause (SIGSTOP) a server,
//! [`local`] starts throw-away PostgreSQL, Redis and SecantusDB servers on
//! free loopback ports, and [`proxy`] puts a TCP proxy in front of one that
//! stalls, drops or closes connections on command. The workspace's fault
//! suite (`tests/faults.rs`) is built on them.
//!
//! ## Cleanup
//!
//! Dropping a resource removes it, also when the test panics (drops run
//! while unwinding). `Drop` cannot await, so the cleanup runs on a dedicated
//! thread with its own runtime and fresh connections, and the drop waits
//! for it for at most [`CLEANUP_TIMEOUT`] (through `block_in_place` on a
//! multi-threaded tokio worker). It works in `#[tokio::test]` of either
//! flavor and in plain `#[test]`s. Failures are printed, never panicked on.
//! `cleanup().await` does the same explicitly and returns the error.
//!
//! Declare stores *after* the resource so they are dropped first.
//!
//! ```no_run
//! use persistence_core::{Entity, Repository};
//! use persistence_testing::{TestPostgres, TestRedis};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
//! #[entity(name = "users")]
//! struct User {
//!     #[entity(id)]
//!     id: i64,
//!     email: String,
//! }
//!
//! #[tokio::test]
//! async fn users_roundtrip() {
//!     // None = the server is missing and this is not CI: SKIPPED was printed.
//!     let Some(pg) = TestPostgres::schema().await else { return };
//!     let store = pg.store().await.expect("connect");
//!     let users = store.repository::<User>();
//!     users.ensure_schema().await.expect("schema");
//!     users.insert(&User { id: 1, email: "a@x.io".into() }).await.expect("insert");
//!     assert!(users.get(&1).await.expect("get").is_some());
//!
//!     let Some(redis) = TestRedis::new().await else { return };
//!     // e.g. CacheLayer::builder().prefix(redis.prefix()).redis_url(redis.url())
//!     assert!(redis.prefix().starts_with('t'));
//! } // store dropped, then the schema and every `{prefix}:*` key
//! ```
//!
//! ## Containers (feature `containers`)
//!
//! For machines with Docker but without the servers, [`containers`] starts
//! PostgreSQL, MongoDB or Redis with testcontainers and hands out its URL,
//! to be used with [`TestPostgres::create`], [`TestMongo::at`] and
//! [`TestRedis::at`]. The feature compiles anywhere; it is exercised only
//! where a Docker engine answers (its test skips, saying so, elsewhere).

#![forbid(unsafe_code)]

pub mod bench;
pub mod cleanup;
#[cfg(feature = "containers")]
pub mod containers;
pub mod local;
mod mongo;
mod postgres;
pub mod proxy;
mod redis_cluster;
mod redis_prefix;
mod sqlite;
pub mod tls;

pub use cleanup::CLEANUP_TIMEOUT;
pub use mongo::TestMongo;
/// Locating the servers (`DATABASE_URL` / `MONGODB_URL` / `REDIS_URL`, skip
/// or fail): the conformance suite's rules, shared.
pub use persistence_core::conformance::services;
#[doc(no_inline)]
pub use persistence_mongo::{MongoConfig, MongoStore};
#[doc(no_inline)]
pub use persistence_postgres::{RelationalConfig, RelationalStore};
pub use postgres::{Isolation, TestPostgres};
pub use redis_cluster::TestRedisCluster;
pub use redis_prefix::TestRedis;
pub use sqlite::TestSqlite;
