//! The `persistence-cli` binary: `introspect` (PostgreSQL, MongoDB); for
//! `verify` an application builds its own binary listing its entities (see
//! the crate docs).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() {
    persistence_cli::Cli::new().main().await;
}
