//! Cross-instance coherence under Redis faults: two cache instances (two
//! layers = two "processes", each with L1, L2 and a backplane) over one
//! backing repository and a private redis-server (own loopback port, own data
//! dir, append-only so L2 entries survive a restart). A writer on instance A
//! updates one entity every few milliseconds, a reader on instance B reads it
//! in a loop, while Redis is killed (SIGKILL) and started again, paused
//! (SIGSTOP) and resumed, or shut down (SIGTERM) and started again. A third
//! instance C reads before and after the fault but not during it: it must
//! not serve what L2 kept from before the outage.
//!
//! Asserted: B never returns a value older than the last update acknowledged
//! more than the stated bound before its read began (3x the bound, generous
//! for a loaded machine); the writer never fails; every queued invalidation
//! is sent once Redis is back; B's backplane noticed the fault (for a pause:
//! through the heartbeat, since the connection stays open).
mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Item, item};
use parking_lot::Mutex;
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::conformance::services::{services_required, unique_suffix};
use persistence_core::{MemoryRepository, Repository};

const HEARTBEAT: Duration = Duration::from_millis(250);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(750);
const DEGRADED_TTL: Duration = Duration::from_secs(1);
const L2_TIMEOUT: Duration = Duration::from_millis(250);
/// The normal TTL: far longer than any test, so only invalidation (not
/// expiry) can end a stale entry outside the degraded periods.
const TTL: Duration = Duration::from_secs(60);

/// The stated bound (README, "Guarantees under failure"): max(heartbeat
/// timeout plus its check granularity, degraded TTL) plus one L2 timeout.
fn stated_bound() -> Duration {
    (HEARTBEAT_TIMEOUT + HEARTBEAT_TIMEOUT / 4).max(DEGRADED_TTL) + L2_TIMEOUT
}

/// A private redis-server; killed (after a SIGCONT) when dropped.
struct Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} failed");
}

impl Server {
    fn start() -> Option<Server> {
        let dir =
            std::env::temp_dir().join(format!("persistence-cache-coherence-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut s = Server {
            child: None,
            port: free_port(),
            dir,
        };
        if !s.spawn() {
            return None;
        }
        Some(s)
    }

    /// Start redis-server on the port (false: not installed, test skipped).
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--dir",
                self.dir.to_str().expect("utf8 dir"),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => self.child = Some(c),
            Err(e) => {
                if services_required() {
                    panic!("redis-server is needed for the coherence fault tests: {e}");
                }
                eprintln!("SKIPPED (redis-server not installed, not a pass under CI): {e}");
                return false;
            }
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("private redis-server did not start on port {}", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn child(&self) -> &Child {
        self.child.as_ref().expect("server running")
    }

    /// Stop with `sig` and reap the process.
    fn stop_with(&mut self, sig: &str) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "-CONT");
            signal(&c, sig);
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_with("-KILL");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL, then a new server on the same port and data dir.
    Kill,
    /// SIGSTOP, then SIGCONT: connections stay open, nothing is answered.
    Pause,
    /// SIGTERM (clean shutdown), then a new server.
    Restart,
}

fn instance(url: &str) -> CacheLayer {
    CacheLayer::builder()
        .prefix("coherence")
        .redis_url(url)
        .l2_timeout(L2_TIMEOUT)
        .ttl(TTL)
        .negative_ttl(TTL)
        .backplane(true)
        .heartbeat(HEARTBEAT)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .backplane_degraded_ttl(DEGRADED_TTL)
        .build()
        .expect("layer")
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: not within {limit:?}");
}

type Repo = CachedRepository<Item, MemoryRepository<Item>>;

/// What the reader saw.
#[derive(Debug, Default)]
struct Seen {
    reads: u64,
    stale_reads: u64,
    max_staleness: Duration,
    disconnected_seen: bool,
}

/// Read entity 1 in a loop (while `active`, when given) until `stop`,
/// measuring how stale each read was.
async fn read_loop(
    repo: Repo,
    layer: CacheLayer,
    acks: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    active: Option<Arc<AtomicBool>>,
) -> Seen {
    let mut seen = Seen::default();
    while !stop.load(Ordering::SeqCst) {
        if active.as_ref().is_some_and(|a| !a.load(Ordering::SeqCst)) {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let began = Instant::now();
        let got = repo.get(&1).await.expect("read").expect("row").n;
        seen.reads += 1;
        // The first update after the value read: acknowledged before this
        // read began means the read was stale by that long.
        let next = usize::try_from(got + 1).expect("n");
        if let Some(&acked) = acks.lock().get(next) {
            if acked < began {
                seen.stale_reads += 1;
                seen.max_staleness = seen.max_staleness.max(began - acked);
            }
        }
        seen.disconnected_seen |= !layer.backplane_connected();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    seen
}

async fn fault_case(fault: Fault) {
    let Some(mut server) = Server::start() else {
        return;
    };
    let url = server.url();
    let (la, lb, lc) = (instance(&url), instance(&url), instance(&url));
    let mem = MemoryRepository::<Item>::new();
    let a: Repo = la.wrap(mem.clone());
    let b: Repo = lb.wrap(mem.clone());
    wait_for("backplanes connect", Duration::from_secs(5), || {
        la.backplane_connected() && lb.backplane_connected() && lc.backplane_connected()
    })
    .await;
    let first = a.insert(&item(1, "v", 0)).await.expect("insert");

    // acks[n] = when the update setting n = n was acknowledged.
    let acks: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(vec![Instant::now()]));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (a, acks, stop) = (a.clone(), acks.clone(), stop.clone());
        tokio::spawn(async move {
            let mut cur = first;
            while !stop.load(Ordering::SeqCst) {
                let mut next = cur.clone();
                next.n += 1;
                cur = a
                    .update(&next)
                    .await
                    .expect("update (the cache never fails a write)");
                acks.lock().push(Instant::now());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cur.n
        })
    };
    let reader = tokio::spawn(read_loop(
        b.clone(),
        lb.clone(),
        acks.clone(),
        stop.clone(),
        None,
    ));
    // C reads before and after the fault, not during it: it learns of the
    // outage only from its backplane, and must not trust what L2 kept.
    let c: Repo = lc.wrap(mem.clone());
    let c_active = Arc::new(AtomicBool::new(true));
    let late = tokio::spawn(read_loop(
        c.clone(),
        lc.clone(),
        acks.clone(),
        stop.clone(),
        Some(c_active.clone()),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    c_active.store(false, Ordering::SeqCst);
    let down_at = Instant::now();
    match fault {
        Fault::Kill => server.stop_with("-KILL"),
        Fault::Pause => signal(server.child(), "-STOP"),
        Fault::Restart => server.stop_with("-TERM"),
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // On a loaded machine the writer may not have reached Redis's failure
    // yet after 2.5 s: wait for the event (a write queued), not for a time.
    wait_for(
        "a write during the outage is queued",
        Duration::from_secs(30),
        || la.status().queued_invalidations > 0,
    )
    .await;
    let queued_during = la.status().queued_invalidations;
    let up_at = Instant::now();
    match fault {
        Fault::Kill | Fault::Restart => assert!(server.spawn(), "restart redis-server"),
        Fault::Pause => signal(server.child(), "-CONT"),
    }
    c_active.store(true, Ordering::SeqCst);
    wait_for("B's backplane reconnects", Duration::from_secs(5), || {
        lb.backplane_connected()
    })
    .await;
    let reconnected = up_at.elapsed();
    wait_for("A's queue is sent", Duration::from_secs(5), || {
        la.status().queued_invalidations == 0
    })
    .await;
    let drained = up_at.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let last = writer.await.expect("writer");
    let seen = reader.await.expect("reader");
    let seen_c = late.await.expect("late reader");
    let writes = acks.lock().len() - 1;

    // Quiet again: B converges to the last write (through the backplane).
    let converged = {
        let start = Instant::now();
        loop {
            if b.get(&1).await.expect("get").map(|x| x.n) == Some(last) {
                break start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "B did not converge"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let bound = stated_bound();
    eprintln!(
        "coherence under {fault:?}: {writes} writes, {} reads on B ({} stale), max staleness {:?} \
         (stated bound {bound:?}); outage {:?}; queued at recovery {queued_during}; \
         B reconnected {reconnected:?} and A's queue sent {drained:?} after Redis was back; converged in {converged:?}; \
         C (idle during the fault): {} reads ({} stale), max staleness {:?}",
        seen.reads,
        seen.stale_reads,
        seen.max_staleness,
        up_at - down_at,
        seen_c.reads,
        seen_c.stale_reads,
        seen_c.max_staleness,
    );
    assert!(queued_during > 0, "writes during the outage were queued");
    assert!(
        seen.disconnected_seen,
        "B's backplane noticed the {fault:?} (heartbeat for a pause)"
    );
    assert!(
        seen.max_staleness <= bound * 3,
        "B served a value {:?} older than an acknowledged write (bound {bound:?})",
        seen.max_staleness
    );
    assert!(
        seen_c.max_staleness <= bound * 3,
        "C served a value {:?} older than an acknowledged write (bound {bound:?})",
        seen_c.max_staleness
    );
    assert!(seen.reads > 100, "the reader kept reading: {seen:?}");
    assert!(seen_c.reads > 50, "the late reader read: {seen_c:?}");
    // Redis answers both layers again, and their status says so. The flag
    // is the last call's outcome: one call that was late under load, say
    // the writer's last, leaves it false until the next call answers; so
    // ping, polled (bounded), since under load one ping can be late too.
    let before = (la.status(), a.stats());
    for (name, l) in [("A", &la), ("B", &lb)] {
        let start = Instant::now();
        loop {
            let ping = l.ping_l2().await.expect("L2");
            let status = l.status();
            if ping.is_ok() && status.l2_up == Some(true) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{name}: {ping:?}, {status:?}; A before the pings: {before:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_kill_and_restart() {
    fault_case(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_paused_and_resumed() {
    fault_case(Fault::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_clean_restart() {
    fault_case(Fault::Restart).await;
}
