//! Throw-away servers for fault tests: a PostgreSQL cluster ([`LocalPg`]),
//! a redis-server ([`LocalRedis`]) and a SecantusDB (MongoDB-wire) server
//! ([`LocalMongo`]), each with its own data directory and a free loopback
//! port, started, restarted, killed (-9), paused (SIGSTOP) and resumed by
//! the test. Dropping one resumes it, stops it and deletes its directory,
//! also when the test panics. Never touches the shared servers on the
//! standard ports. Put a [`crate::proxy::Proxy`] in front of one to inject
//! network faults.
//!
//! A missing binary is a [`Missing`] error; [`or_skip`] turns it into a
//! failure under `CI=true` or a `SKIPPED` line otherwise.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A missing binary: the test fails under `CI=true` /
/// `PERSISTENCE_REQUIRE_SERVICES=1`, otherwise it says `SKIPPED` and returns.
#[derive(Debug)]
pub struct Missing(pub String);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Ok(v)`, or for a missing binary: a panic under `CI=true` /
/// `PERSISTENCE_REQUIRE_SERVICES=1`, else a `SKIPPED` line and `None`.
pub fn or_skip<T>(what: &str, started: Result<T, Missing>) -> Option<T> {
    match started {
        Ok(v) => Some(v),
        Err(m) if crate::services::services_required() => {
            panic!(
                "{what}: missing {m}; CI=true / PERSISTENCE_REQUIRE_SERVICES=1 make this a failure"
            )
        }
        Err(m) => {
            eprintln!("SKIPPED {what}: missing {m}");
            None
        }
    }
}

/// A free loopback port (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Poll every 20 ms until `port` accepts connections; panics after `limit`.
pub fn wait_port(port: u16, limit: Duration, what: &str) {
    let start = Instant::now();
    while !port_open(port) {
        assert!(
            start.elapsed() < limit,
            "{what} did not accept connections on port {port} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unique_dir(kind: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "persistence-faults-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Send `signal` (`-STOP`, `-CONT`, `-KILL`, ...) to `pids`.
fn kill(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// The children of `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may contain spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

mod cluster;
mod pg;
mod server;
pub use cluster::LocalRedisCluster;
pub use pg::LocalPg;
pub use server::{LocalMongo, LocalRedis, LocalServer};
