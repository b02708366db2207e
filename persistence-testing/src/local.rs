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

// ------------------------------------------------------------------ PostgreSQL

/// A PostgreSQL cluster of its own (initdb in a temp dir owned by the
/// `postgres` user when run as root; initdb refuses root).
pub struct LocalPg {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
}

impl LocalPg {
    /// The newest `/usr/lib/postgresql/*/bin` with `pg_ctl` (or `PG_BIN_DIR`).
    pub fn bin_dir() -> Result<PathBuf, Missing> {
        if let Ok(dir) = std::env::var("PG_BIN_DIR") {
            let dir = PathBuf::from(dir);
            return if dir.join("pg_ctl").is_file() {
                Ok(dir)
            } else {
                Err(Missing(format!("pg_ctl in PG_BIN_DIR={}", dir.display())))
            };
        }
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| {
                Missing(format!(
                    "PostgreSQL server binaries (/usr/lib/postgresql: {e})"
                ))
            })?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists() && p.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
            .ok_or_else(|| Missing("pg_ctl/initdb under /usr/lib/postgresql/*/bin".into()))
    }

    /// initdb + start. `synchronous_commit` stays on (a commit is
    /// acknowledged after its WAL reached the OS, so kill -9 of every
    /// server process loses nothing acknowledged); `fsync` is off (only
    /// a machine crash would need it).
    pub fn start() -> Result<LocalPg, Missing> {
        let bin = Self::bin_dir()?;
        let as_root = running_as_root();
        let dir = unique_dir("pg");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        let pg = LocalPg {
            port: free_port(),
            dir,
            bin,
            as_root,
        };
        if as_root {
            check(
                "chown",
                Command::new("chown")
                    .args(["postgres:postgres", pg.dir()])
                    .output(),
            );
        }
        check(
            "initdb",
            pg.command("initdb")
                .args(["-D", pg.dir(), "-U", "postgres", "--auth=trust", "-N"])
                .args(["-E", "UTF8", "--locale=C"])
                .output(),
        );
        pg.start_server();
        Ok(pg)
    }

    fn command(&self, program: &str) -> Command {
        let bin = self.bin.join(program);
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.current_dir(std::env::temp_dir()).stdin(Stdio::null());
        cmd
    }

    fn dir(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp dir")
    }

    /// The server's own port (the application goes through a proxy).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn url_at(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    fn options(&self) -> String {
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=on -c max_connections=100",
            self.port,
            self.dir()
        )
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let log = format!("{}/server.log", self.dir());
        let opts = self.options();
        check(
            &format!("pg_ctl {args:?}"),
            self.command("pg_ctl")
                .args(["-D", self.dir(), "-o", &opts, "-l", &log, "-w", "-t", "60"])
                .args(args)
                .output(),
        )
    }

    /// `pg_ctl start` (returns when the server accepts connections).
    pub fn start_server(&self) {
        self.pg_ctl(&["start"]);
    }

    /// `pg_ctl restart -m fast` (returns when it accepts connections again).
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "restart"]);
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn pids(&self) -> Vec<u32> {
        let Some(master) = self.postmaster_pid() else {
            return Vec::new();
        };
        let mut pids = vec![master];
        pids.extend(children_of(master));
        pids
    }

    /// SIGKILL the postmaster and every backend (a crash: the next start
    /// runs crash recovery).
    pub fn kill9(&self) {
        let pids = self.pids();
        kill("-KILL", &pids);
        let start = Instant::now();
        while pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGSTOP every server process: TCP still connects, nothing answers.
    pub fn pause(&self) {
        kill("-STOP", &self.pids());
    }

    /// SIGCONT them.
    pub fn resume(&self) {
        kill("-CONT", &self.pids());
    }

    /// Run SQL with psql on the server's own port (not through a proxy);
    /// returns the unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = check(
            "psql",
            Command::new(self.bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-At",
                    "-h",
                    "127.0.0.1",
                ])
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-c", sql])
                .stdin(Stdio::null())
                .output(),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for LocalPg {
    fn drop(&mut self) {
        kill("-CONT", &self.pids());
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                self.dir(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "30",
                "stop",
            ])
            .output();
        kill("-KILL", &self.pids());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ----------------------------------------------------------- child processes

/// A server run as a child process on a fixed port, restartable.
struct Daemon {
    what: &'static str,
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("opening {:?}: {e}", self.log));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("opening {:?}: {e}", self.log));
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} ({:?}): {e}", self.what, self.program));
        self.child = Some(child);
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            kill(sig, &[pid]);
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        while !port_open(self.port) {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("{} exited ({status}):\n{}", self.what, self.log_tail());
            }
            assert!(
                start.elapsed() < limit,
                "{} did not listen on {} within {limit:?}:\n{}",
                self.what,
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill9();
    }
}

// ----------------------------------------------------------------------- Redis

/// A server process of its own with its temp dir: what [`LocalRedis`] and
/// [`LocalMongo`] share (they deref to it). Dropping it resumes, kills and
/// deletes it, also on panic.
pub struct LocalServer {
    daemon: Daemon,
    dir: PathBuf,
    /// How long a start may take before it is a failure.
    ready: Duration,
}

impl LocalServer {
    fn started(daemon: Daemon, dir: PathBuf, ready: Duration) -> LocalServer {
        let mut server = LocalServer { daemon, dir, ready };
        server.start_server();
        server
    }

    /// The server's own port.
    pub fn port(&self) -> u16 {
        self.daemon.port
    }

    /// Start (again, on the same data dir) and wait until it listens.
    pub fn start_server(&mut self) {
        self.daemon.spawn();
        self.daemon.wait_ready(self.ready);
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        self.daemon.kill9();
    }

    /// SIGSTOP.
    pub fn pause(&self) {
        self.daemon.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.daemon.signal("-CONT");
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.daemon.signal("-CONT");
        self.daemon.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server of its own (nothing kept on disk: a kill loses all data).
pub struct LocalRedis(LocalServer);

impl std::ops::Deref for LocalRedis {
    type Target = LocalServer;
    fn deref(&self) -> &LocalServer {
        &self.0
    }
}

impl std::ops::DerefMut for LocalRedis {
    fn deref_mut(&mut self) -> &mut LocalServer {
        &mut self.0
    }
}

impl LocalRedis {
    /// Start `redis-server` (from `PATH`, or `REDIS_SERVER_BIN`).
    pub fn start() -> Result<LocalRedis, Missing> {
        let program = match std::env::var("REDIS_SERVER_BIN") {
            Ok(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
            Err(_) => find_in_path("redis-server"),
        }
        .ok_or_else(|| Missing("redis-server (REDIS_SERVER_BIN or PATH)".into()))?;
        let dir = unique_dir("redis");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        let port = free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.to_str().expect("utf-8 temp dir"),
        ]
        .map(str::to_string)
        .to_vec();
        Ok(LocalRedis(LocalServer::started(
            Daemon {
                what: "redis-server",
                program,
                args,
                port,
                log: dir.join("redis.log"),
                child: None,
            },
            dir,
            Duration::from_secs(20),
        )))
    }
}

// ------------------------------------------------------------------ SecantusDB

/// A SecantusDB (MongoDB-wire) server of its own, data on disk in a temp dir.
pub struct LocalMongo(LocalServer);

impl std::ops::Deref for LocalMongo {
    type Target = LocalServer;
    fn deref(&self) -> &LocalServer {
        &self.0
    }
}

impl std::ops::DerefMut for LocalMongo {
    fn deref_mut(&mut self) -> &mut LocalServer {
        &mut self.0
    }
}

impl LocalMongo {
    /// Where `secantusd-py` is: `SECANTUSD_BIN`, else
    /// `<workspace>/.venv-services/bin/secantusd-py` (installed by
    /// `scripts/services install`), else `PATH`.
    pub fn binary() -> Result<PathBuf, Missing> {
        if let Ok(p) = std::env::var("SECANTUSD_BIN") {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(Missing(format!(
                    "secantusd-py at SECANTUSD_BIN={}",
                    p.display()
                )))
            };
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let venv = root.join(".venv-services/bin/secantusd-py");
        if venv.exists() {
            return Ok(venv);
        }
        find_in_path("secantusd-py").ok_or_else(|| {
            Missing(format!(
                "secantusd-py (not at {} nor in PATH; run scripts/services install)",
                venv.display()
            ))
        })
    }

    /// Start the server and wait until it listens.
    pub fn start() -> Result<LocalMongo, Missing> {
        let program = Self::binary()?;
        let dir = unique_dir("mongo");
        std::fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        let port = free_port();
        let args = vec![
            "--host".to_string(),
            "127.0.0.1".to_string(),
            "--port".to_string(),
            port.to_string(),
            "--storage-path".to_string(),
            dir.join("data").to_string_lossy().into_owned(),
            "--cache-size".to_string(),
            "64M".to_string(),
        ];
        Ok(LocalMongo(LocalServer::started(
            Daemon {
                what: "secantusd-py",
                program,
                args,
                port,
                log: dir.join("mongo.log"),
                child: None,
            },
            dir,
            Duration::from_secs(60),
        )))
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
