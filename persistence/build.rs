//! `cfg(relational)`: PostgreSQL or SQLite is compiled in (feature `postgres`
//! or `sqlite`), so the relational store, the registry and their code exist.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(relational)");
    if std::env::var_os("CARGO_FEATURE_POSTGRES").is_some()
        || std::env::var_os("CARGO_FEATURE_SQLITE").is_some()
    {
        println!("cargo::rustc-cfg=relational");
    }
}
