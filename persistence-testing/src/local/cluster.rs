//! [`LocalRedisCluster`]: a Redis Cluster of its own — N masters, with or
//! without replicas, nothing kept on disk but each node's `nodes.conf` (so
//! a node restarted on its directory rejoins with its id and slots, empty)
//! — for fault tests and benchmarks. Made as the project's scripts make
//! one: `redis-server --cluster-enabled yes` per node, then
//! `redis-cli --cluster create … --cluster-replicas R`.
//!
//! With replicas, [`LocalRedisCluster::failover`] runs a manual
//! `CLUSTER FAILOVER` on a replica and waits (on the nodes' own reports, no
//! fixed sleeps) until the roles have changed everywhere and the cluster
//! is ok again.
//!
//! Ports: a cluster node also listens on its port + 10000 (the cluster
//! bus), so node ports are taken from `PERSISTENCE_CLUSTER_PORTS`
//! (`LOW-HIGH`, default `20000-29999`, at most 55535), each checked free
//! together with its bus port.

use super::server::{Daemon, LocalServer, find_in_path, redis_server};
use super::*;

/// Offset of a node's cluster bus port.
const BUS_OFFSET: u16 = 10_000;

/// A Redis Cluster of its own; dropping it kills every node and deletes
/// their directories (also on panic).
pub struct LocalRedisCluster {
    nodes: Vec<LocalServer>,
    cli: PathBuf,
}

/// How long the cluster may take to settle (create, restart, failover)
/// before that is a failure: generous, for a loaded machine.
const SETTLE: Duration = Duration::from_secs(60);

fn port_range() -> (u16, u16) {
    let parsed = std::env::var("PERSISTENCE_CLUSTER_PORTS")
        .ok()
        .and_then(|v| {
            let (lo, hi) = v.trim().split_once('-')?;
            Some((lo.parse::<u16>().ok()?, hi.parse::<u16>().ok()?))
        });
    match parsed {
        Some((lo, hi)) if lo < hi && hi <= u16::MAX - BUS_OFFSET => (lo, hi),
        Some(_) => panic!("PERSISTENCE_CLUSTER_PORTS must be LOW-HIGH with HIGH <= 55535"),
        None => (20_000, 29_999),
    }
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A node port from the range whose bus port is free too.
fn node_port(taken: &[u16]) -> u16 {
    let (lo, hi) = port_range();
    for _ in 0..500 {
        let p = fastrand_port(lo, hi);
        if !taken.contains(&p) && bindable(p) && bindable(p + BUS_OFFSET) {
            return p;
        }
    }
    panic!("no free cluster node port (and bus port) in {lo}-{hi}")
}

/// A pseudo-random port in `lo..=hi` (process id and a counter mixed with
/// the clock: parallel test processes start at different places).
fn fastrand_port(lo: u16, hi: u16) -> u16 {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 20) ^ N.fetch_add(0x9E37_79B9, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let span = u64::from(hi - lo) + 1;
    lo + u16::try_from(x % span).unwrap_or(0)
}

impl LocalRedisCluster {
    /// Start `masters` nodes (at least 3 for a healthy cluster) and join
    /// them, all slots assigned; returns once every node reports
    /// `cluster_state:ok`.
    pub fn start(masters: usize) -> Result<LocalRedisCluster, Missing> {
        Self::start_with_replicas(masters, 0)
    }

    /// Start `masters * (1 + replicas)` nodes and join them with
    /// `replicas` replicas per master; returns once every node reports
    /// `cluster_state:ok` and every replica has finished its initial sync.
    pub fn start_with_replicas(
        masters: usize,
        replicas: usize,
    ) -> Result<LocalRedisCluster, Missing> {
        let count = masters * (1 + replicas);
        let program = redis_server()?;
        let cli = program
            .parent()
            .map(|d| d.join("redis-cli"))
            .filter(|p| p.is_file())
            .or_else(|| find_in_path("redis-cli"))
            .ok_or_else(|| Missing("redis-cli (next to redis-server or in PATH)".into()))?;
        let mut ports = Vec::with_capacity(count);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            let port = node_port(&ports);
            ports.push(port);
            let dir = unique_dir("redis-cluster");
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
            let args = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                dir.to_str().expect("utf-8 temp dir"),
            ]
            .map(str::to_string)
            .to_vec();
            nodes.push(LocalServer::started(
                Daemon {
                    what: "redis-server (cluster node)",
                    program: program.clone(),
                    args,
                    port,
                    log: dir.join("redis.log"),
                    child: None,
                },
                dir,
                Duration::from_secs(20),
            ));
        }
        let cluster = LocalRedisCluster { nodes, cli };
        let mut create = Command::new(&cluster.cli);
        create.arg("--cluster").arg("create");
        create.args(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        check("redis-cli --cluster create", create.output());
        cluster.wait_ok();
        for i in 0..count {
            if !cluster.is_master(i) {
                cluster.wait_synced(i);
            }
        }
        Ok(cluster)
    }

    /// `redis://127.0.0.1:{port}` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect()
    }

    /// Node `i` (to kill, pause, resume or start it again).
    pub fn node(&mut self, i: usize) -> &mut LocalServer {
        &mut self.nodes[i]
    }

    /// Which node serves `key` (by `CLUSTER KEYSLOT` and `CLUSTER SLOTS`).
    pub fn node_of(&self, key: &str) -> usize {
        let port = self.nodes[0].port();
        let slot: u16 =
            String::from_utf8_lossy(&self.cli(port, &["cluster", "keyslot", key]).stdout)
                .trim()
                .parse()
                .expect("CLUSTER KEYSLOT");
        // `CLUSTER SHARDS` is 7.0+; `CLUSTER NODES` lines end with slot ranges.
        let nodes =
            String::from_utf8_lossy(&self.cli(port, &["cluster", "nodes"]).stdout).to_string();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(addr) = fields.get(1) else { continue };
            let owner_port: u16 = addr
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let owns = fields.iter().skip(8).any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if owns {
                if let Some(i) = self.nodes.iter().position(|n| n.port() == owner_port) {
                    return i;
                }
            }
        }
        panic!("no node serves slot {slot} of {key:?}:\n{nodes}")
    }

    /// Kill node `i` (SIGKILL: it loses its data), start it again on its
    /// directory and wait until the cluster is ok.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill9();
        self.nodes[i].start_server();
        self.wait_ok();
    }

    /// `INFO replication` of node `i` (empty when it does not answer).
    fn replication(&self, i: usize) -> String {
        Command::new(&self.cli)
            .args(["-h", "127.0.0.1", "-p", &self.nodes[i].port().to_string()])
            .args(["info", "replication"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).replace('\r', ""))
            .unwrap_or_default()
    }

    /// The value of `field` in `INFO replication` of node `i`.
    fn replication_field(&self, i: usize, field: &str) -> Option<String> {
        let prefix = format!("{field}:");
        self.replication(i)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    /// Whether node `i` is a master now (by its own `INFO replication`).
    pub fn is_master(&self, i: usize) -> bool {
        self.replication_field(i, "role").as_deref() == Some("master")
    }

    /// The master node `i` replicates (None for a master).
    pub fn master_of(&self, i: usize) -> Option<usize> {
        if self.replication_field(i, "role").as_deref() != Some("slave") {
            return None;
        }
        let port: u16 = self.replication_field(i, "master_port")?.parse().ok()?;
        self.nodes.iter().position(|n| n.port() == port)
    }

    /// A replica of master `master` (by the replicas' own reports).
    pub fn replica_of(&self, master: usize) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| i != master && self.master_of(i) == Some(master))
    }

    /// Wait until replica `i` is linked to its master and done syncing.
    pub fn wait_synced(&self, i: usize) {
        let start = Instant::now();
        loop {
            let info = self.replication(i);
            if info.contains("role:slave")
                && info.contains("master_link_status:up")
                && info.contains("master_sync_in_progress:0")
            {
                return;
            }
            assert!(
                start.elapsed() < SETTLE,
                "replica {i} did not sync within {SETTLE:?}:\n{info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A manual `CLUSTER FAILOVER` on replica `replica`: it waits until it
    /// has applied every write its master acknowledged (the master pauses
    /// its writers meanwhile), then takes the master's slots; the old master
    /// becomes its replica. Returns once both report their new roles, every
    /// node's `CLUSTER NODES` agrees, the cluster is ok and the old master
    /// has synced from the new one. Retried if the failover is abandoned
    /// (the server gives a manual failover 5 s). Returns the old master.
    pub fn failover(&self, replica: usize) -> usize {
        let old = self
            .master_of(replica)
            .unwrap_or_else(|| panic!("node {replica} is not a replica"));
        let start = Instant::now();
        'attempt: loop {
            self.wait_synced(replica);
            let out = self.cli(self.nodes[replica].port(), &["cluster", "failover"]);
            let reply = String::from_utf8_lossy(&out.stdout);
            assert!(reply.trim() == "OK", "CLUSTER FAILOVER: {reply}");
            // The server abandons a manual failover after 5 s: wait longer
            // than that for the roles to change, then ask again.
            let asked = Instant::now();
            while asked.elapsed() < Duration::from_secs(15) {
                if self.is_master(replica) && self.master_of(old) == Some(replica) {
                    break 'attempt;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                start.elapsed() < SETTLE,
                "CLUSTER FAILOVER of node {replica} did not take effect within {SETTLE:?}"
            );
        }
        // Every node sees the new roles (the new master's config reached them).
        let ids: Vec<String> = [replica, old]
            .iter()
            .map(|&i| {
                String::from_utf8_lossy(
                    &self.cli(self.nodes[i].port(), &["cluster", "myid"]).stdout,
                )
                .trim()
                .to_string()
            })
            .collect();
        loop {
            let agreed = (0..self.nodes.len()).all(|n| {
                let view = String::from_utf8_lossy(
                    &self.cli(self.nodes[n].port(), &["cluster", "nodes"]).stdout,
                )
                .to_string();
                let flags = |id: &str| {
                    view.lines()
                        .find(|l| l.starts_with(id))
                        .and_then(|l| l.split_whitespace().nth(2))
                        .map(str::to_string)
                        .unwrap_or_default()
                };
                flags(&ids[0]).contains("master") && flags(&ids[1]).contains("slave")
            });
            if agreed {
                break;
            }
            assert!(
                start.elapsed() < SETTLE,
                "the nodes do not agree on the failover of node {replica} within {SETTLE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_ok();
        self.wait_synced(old);
        old
    }

    fn cli(&self, port: u16, args: &[&str]) -> Output {
        check(
            "redis-cli",
            Command::new(&self.cli)
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(args)
                .output(),
        )
    }

    /// Wait (up to 60 s) until every node reports `cluster_state:ok` and
    /// knows every node: after the create, a restart or a failover.
    pub fn wait_ok(&self) {
        let start = Instant::now();
        let want = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let ok = self.nodes.iter().all(|n| {
                let out = Command::new(&self.cli)
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &n.port().to_string(),
                        "cluster",
                        "info",
                    ])
                    .output();
                out.is_ok_and(|o| {
                    let text = String::from_utf8_lossy(&o.stdout);
                    text.contains("cluster_state:ok")
                        && text.contains("cluster_slots_ok:16384")
                        && text.contains(&want)
                })
            });
            if ok {
                return;
            }
            assert!(
                start.elapsed() < SETTLE,
                "the local redis cluster is not ok after {SETTLE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
