//! Child-process servers: redis-server ([`LocalRedis`]) and SecantusDB
//! ([`LocalMongo`]).

use super::*;

/// A server run as a child process on a fixed port, restartable.
pub(super) struct Daemon {
    pub(super) what: &'static str,
    pub(super) program: PathBuf,
    pub(super) args: Vec<String>,
    pub(super) port: u16,
    pub(super) log: PathBuf,
    pub(super) child: Option<Child>,
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
    pub(super) fn started(daemon: Daemon, dir: PathBuf, ready: Duration) -> LocalServer {
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
        Self::start_with(&[])
    }

    /// Start `redis-server` accepting only TLS (`--port 0 --tls-port`) with
    /// the server certificate of `certs`; clients are not asked for one.
    /// [`port`](LocalServer::port) is the TLS port.
    pub fn start_tls(certs: &crate::tls::TestCerts) -> Result<LocalRedis, Missing> {
        let path = |p: PathBuf| p.to_str().expect("utf-8 temp dir").to_string();
        Self::start_with(&[
            "--tls-cert-file".into(),
            path(certs.server_cert()),
            "--tls-key-file".into(),
            path(certs.server_key()),
            "--tls-ca-cert-file".into(),
            path(certs.ca()),
            "--tls-auth-clients".into(),
            "no".into(),
        ])
    }

    /// With TLS arguments, the port is the TLS port and plain TCP is off.
    fn start_with(tls: &[String]) -> Result<LocalRedis, Missing> {
        let program = redis_server()?;
        let dir = unique_dir("redis");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        let port = free_port();
        let port_arg = port.to_string();
        let (plain, tls_port) = if tls.is_empty() {
            (port_arg.as_str(), None)
        } else {
            ("0", Some(port_arg.as_str()))
        };
        let mut args = [
            "--port",
            plain,
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
        if let Some(p) = tls_port {
            args.extend(["--tls-port".to_string(), p.to_string()]);
            args.extend(tls.iter().cloned());
        }
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

/// `redis-server`: `REDIS_SERVER_BIN`, else from `PATH`.
pub(super) fn redis_server() -> Result<PathBuf, Missing> {
    match std::env::var("REDIS_SERVER_BIN") {
        Ok(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        Err(_) => find_in_path("redis-server"),
    }
    .ok_or_else(|| Missing("redis-server (REDIS_SERVER_BIN or PATH)".into()))
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

pub(super) fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
