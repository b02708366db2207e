//! # persistence-bookstore
//!
//! An example application on the `persistence` framework, used the way a
//! team would use it: an HTTP (axum) bookstore with
//!
//! * customers, stock, orders and order lines (rows, a relation) in the
//!   relational database `main` (PostgreSQL, or in-memory SQLite), one
//!   transaction per checkout that takes the stock with a guarded atomic
//!   decrement (`patch` with `inc(STOCK, -qty)` when `STOCK >= qty`; not
//!   enough stock → 409) and writes the order with its lines;
//! * the product catalog (nested attributes) and its reviews (documents
//!   naming their customer in `main`: a relation across stores) in the
//!   document database `catalog` (MongoDB, or the memory store), with a top-rated
//!   per category aggregation (a MongoDB pipeline; computed in the
//!   application on the memory store, and the API says which);
//! * read-through caching of products and catalog queries, invalidated by
//!   tag when a product changes (moka L1, Redis L2 when `REDIS_URL` is set);
//! * login sessions with expiry (Redis, or in process);
//! * a schema per demo shop (tenants) on PostgreSQL;
//! * the monitoring dashboard (`/dashboard`, `/metrics`) and a load generator.
//!
//! [`serve`] starts it in process on any address (tests use port 0).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod client;
pub mod http;
pub mod loadgen;
pub mod model;
pub mod search;
pub mod seed;
pub mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;

use persistence::{Error, Result};
use persistence_dashboard::{Dashboard, DashboardOptions};

pub use app::{App, AppConfig};

/// Namespaces name a PostgreSQL schema, a MongoDB database, tenant-id
/// prefixes and Redis key prefixes: `^[a-z][a-z0-9_]{0,39}$`.
pub fn validate_namespace(ns: &str) -> Result<()> {
    let mut chars = ns.chars();
    let ok = ns.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            "the namespace must match ^[a-z][a-z0-9_]{0,39}$",
        ))
    }
}

/// A running server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The application.
    pub app: Arc<App>,
    /// The dashboard.
    pub dashboard: Dashboard,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish()
    }
}

impl Running {
    /// Stop accepting, finish in-flight requests, stop the server.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| Error::backend(format!("server task: {e}")))?
            .map_err(|e| Error::backend(format!("server: {e}")))
    }

    /// Wait until the server ends (Ctrl-C in `main`).
    pub async fn wait(self) -> Result<()> {
        let Running { stop, task, .. } = self;
        let r = task.await;
        drop(stop);
        r.map_err(|e| Error::backend(format!("server task: {e}")))?
            .map_err(|e| Error::backend(format!("server: {e}")))
    }
}

/// Start the application and serve it on `bind` (port 0: any free port).
pub async fn serve(config: AppConfig, bind: SocketAddr) -> Result<Running> {
    // The dashboard's recorder goes in first, so start-up work is counted too.
    let _ = persistence_dashboard::Aggregator::global();
    let app = App::start(config).await?;
    let dashboard = Dashboard::start(app.db.clone(), DashboardOptions::default());
    let router = http::router(app.clone()).merge(dashboard.router());
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| Error::unavailable(format!("bind {bind}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::unavailable(format!("local address: {e}")))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Running {
        addr,
        app,
        dashboard,
        stop,
        task,
    })
}
