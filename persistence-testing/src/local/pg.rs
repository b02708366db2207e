//! [`LocalPg`]: a PostgreSQL cluster of the test's own.

use super::*;

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
