//! Workspace-level tests of the persistence framework.
//!
//! The library holds the fault-suite harness: [`servers`] starts throw-away
//! PostgreSQL, Redis and SecantusDB (MongoDB-wire) servers on free loopback
//! ports and injects process faults (restart, kill -9, SIGSTOP); [`proxy`]
//! is a loopback TCP proxy that injects network faults (stall, drop,
//! close-on-accept). The suite itself is the `faults` test target
//! (`cargo nextest run -p persistence-tests`).
#![forbid(unsafe_code)]

pub mod proxy;
pub mod servers;
