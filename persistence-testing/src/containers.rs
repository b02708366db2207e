//! Servers in Docker containers (feature `containers`, testcontainers).
//!
//! For machines that have a Docker engine but not the servers: start one
//! container per test binary (or per test) and isolate tests inside it with
//! [`TestPostgres::create`](crate::TestPostgres::create),
//! [`TestMongo::at`](crate::TestMongo::at) and
//! [`TestRedis::at`](crate::TestRedis::at). The container is removed when
//! the [`Container`] is dropped.
//!
//! This compiles everywhere; it runs only where a Docker engine answers
//! (`DOCKER_HOST`, or `/var/run/docker.sock`). Check [`docker_available`]
//! first and skip, saying so, when it is false.
//!
//! Images: `postgres:16-alpine` (trust authentication), `mongo:5.0.6`
//! (standalone, no transactions), `redis:5.0`.
//!
//! ```no_run
//! # async fn demo() -> persistence_core::Result<()> {
//! use persistence_testing::containers::{self, docker_available};
//! use persistence_testing::services::Service;
//! use persistence_testing::{Isolation, TestPostgres};
//!
//! if !docker_available() {
//!     eprintln!("SKIPPED: no Docker engine");
//!     return Ok(());
//! }
//! let server = containers::start(Service::Postgres).await?;
//! let pg = TestPostgres::create(server.url(), Isolation::Schema).await?;
//! let store = pg.store().await?;
//! # let _ = store;
//! # Ok(()) }
//! ```

use std::any::Any;

use persistence_core::{Error, Result};
use testcontainers_modules::testcontainers::runners::AsyncRunner as _;
use testcontainers_modules::testcontainers::{ContainerAsync, Image, ImageExt as _};
use testcontainers_modules::{mongo::Mongo, postgres::Postgres, redis::Redis};

use crate::services::Service;

/// The default Docker socket.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Whether a Docker engine can be reached: `DOCKER_HOST` is set (for a
/// `unix://` host, the socket file exists) or `/var/run/docker.sock` exists.
pub fn docker_available() -> bool {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.trim().is_empty() => match host.strip_prefix("unix://") {
            Some(path) => std::path::Path::new(path).exists(),
            None => true,
        },
        _ => std::path::Path::new(DOCKER_SOCKET).exists(),
    }
}

/// A running server container; removed when dropped.
pub struct Container {
    service: Service,
    url: String,
    _container: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("service", &self.service)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Container {
    /// The service it runs.
    pub fn service(&self) -> Service {
        self.service
    }

    /// The URL to reach it from the host (no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Start a container for `service` and wait until it accepts connections.
/// Errors are `Unavailable` (no Docker engine, image pull failed, ...).
pub async fn start(service: Service) -> Result<Container> {
    match service {
        Service::Postgres => {
            let (host, port, c) = run(
                Postgres::default().with_host_auth().with_tag("16-alpine"),
                5432,
            )
            .await?;
            Ok(Container {
                service,
                url: format!("postgres://postgres@{host}:{port}/postgres"),
                _container: Box::new(c),
            })
        }
        Service::Mongo => {
            let (host, port, c) = run(Mongo::default().into(), 27017).await?;
            Ok(Container {
                service,
                url: format!("mongodb://{host}:{port}/?directConnection=true"),
                _container: Box::new(c),
            })
        }
        Service::PgVector => Err(Error::unavailable(
            "no container for pgvector: run `scripts/services up` (VECTOR_DATABASE_URL)",
        )),
        Service::Redis => {
            let (host, port, c) = run(Redis::default().into(), 6379).await?;
            Ok(Container {
                service,
                url: format!("redis://{host}:{port}"),
                _container: Box::new(c),
            })
        }
    }
}

async fn run<I: Image>(
    request: testcontainers_modules::testcontainers::ContainerRequest<I>,
    port: u16,
) -> Result<(String, u16, ContainerAsync<I>)> {
    let unavailable = |what: &'static str| {
        move |e: testcontainers_modules::testcontainers::TestcontainersError| {
            Error::unavailable(what).with_source(e)
        }
    };
    let container = request.start().await.map_err(unavailable(
        "cannot start the container (is Docker running?)",
    ))?;
    let host = container
        .get_host()
        .await
        .map_err(unavailable("cannot read the container's host"))?;
    let port = container
        .get_host_port_ipv4(port)
        .await
        .map_err(unavailable("cannot read the container's port"))?;
    Ok((host.to_string(), port, container))
}
