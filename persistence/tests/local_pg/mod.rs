//! A throw-away PostgreSQL cluster for failure tests: its own data directory
//! under /tmp, its own loopback port, started and stopped by the test (as the
//! `postgres` user: initdb refuses root). Dropping it resumes, stops and
//! deletes it, also when the test panics. Never touches the shared server.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("pg_ctl under /usr/lib/postgresql/*/bin")
}

fn as_postgres(program: &str, args: &[&str]) -> std::process::Output {
    let bin = bin_dir().join(program);
    let bin = bin.to_str().expect("utf-8 path");
    let mut cmd = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .current_dir("/tmp")
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn check(program: &str, out: std::process::Output) {
    assert!(
        out.status.success(),
        "{program} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One local cluster (a primary, or a streaming replica of one).
pub struct LocalPg {
    pub port: u16,
    dir: PathBuf,
    paused: bool,
}

impl LocalPg {
    /// initdb + start a new primary.
    pub fn start() -> LocalPg {
        let dir = PathBuf::from(format!(
            "/tmp/persistence-failover-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        let d = dir.to_str().expect("utf-8");
        check(
            "initdb",
            as_postgres(
                "initdb",
                &[
                    "-D",
                    d,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-N",
                    "-E",
                    "UTF8",
                ],
            ),
        );
        let pg = LocalPg {
            port: free_port(),
            dir,
            paused: false,
        };
        pg.start_server();
        pg
    }

    /// A streaming replica of `primary` (pg_basebackup -R), started.
    pub fn replica_of(primary: &LocalPg) -> LocalPg {
        let dir = PathBuf::from(format!(
            "/tmp/persistence-failover-{}-{}-replica",
            std::process::id(),
            uuid_like()
        ));
        let d = dir.to_str().expect("utf-8");
        let port = primary.port.to_string();
        check(
            "pg_basebackup",
            as_postgres(
                "pg_basebackup",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-D",
                    d,
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                ],
            ),
        );
        let pg = LocalPg {
            port: free_port(),
            dir,
            paused: false,
        };
        pg.start_server();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn dir(&self) -> &str {
        self.dir.to_str().expect("utf-8")
    }

    /// pg_ctl start (waits until it accepts connections).
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir()
        );
        let log = format!("{}/server.log", self.dir());
        check(
            "pg_ctl start",
            as_postgres(
                "pg_ctl",
                &[
                    "-D",
                    self.dir(),
                    "-o",
                    &opts,
                    "-l",
                    &log,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
        );
    }

    /// pg_ctl stop -m fast (the server is gone; connections are refused).
    pub fn stop_server(&self) {
        check(
            "pg_ctl stop",
            as_postgres(
                "pg_ctl",
                &["-D", self.dir(), "-m", "fast", "-w", "-t", "60", "stop"],
            ),
        );
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The postmaster and every backend it forked.
    fn pids(&self) -> Vec<u32> {
        let Some(master) = self.postmaster_pid() else {
            return Vec::new();
        };
        let mut pids = vec![master];
        if let Ok(entries) = std::fs::read_dir("/proc") {
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
                if ppid == Some(master) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    fn signal(&self, sig: &str) {
        for pid in self.pids() {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    /// SIGSTOP the postmaster and its backends: TCP still connects, nothing answers.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    /// SIGCONT them.
    pub fn resume(&mut self) {
        self.signal("-CONT");
        self.paused = false;
    }

    /// SIGKILL the postmaster and every backend (a crash: no shutdown, no
    /// checkpoint); `start_server` then runs crash recovery.
    pub fn kill(&self) {
        self.signal("-KILL");
        // Until the kernel has reaped them, the next start may see the old postmaster alive.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.postmaster_pid().is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| !st.contains(") Z"))
        }) && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        // A dead but unreaped (zombie) postmaster still "exists" for the next
        // start's lock-file check: remove the lock files of the dead cluster.
        let _ = std::fs::remove_file(self.dir.join("postmaster.pid"));
        let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LocalPg {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.dir(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "30",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}

/// Poll `f` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn within<T, F, Fut>(limit: Duration, mut f: F) -> Option<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
