//! Behaviour of the resilience layers under injected faults.
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use persistence_core::conformance::entities::{Person, person};
use persistence_core::layer::{
    Around, BoxFuture, BreakerConfig, BreakerState, Call, CircuitBreaker, LayerExt, Metrics, Op,
    Retry, RetryConfig, Timeout, metric_names,
};
use persistence_core::{
    Error, ErrorKind, Filter, Guard, MemoryRepository, Query, Repository, Update, WriteOutcome,
};

/// Fails the next `fail` calls with the given error kind, counting every call.
#[derive(Clone, Default)]
struct Faults {
    fail: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
    delay: Duration,
    invalid: bool,
}

impl Faults {
    fn failing(n: u32) -> Self {
        let f = Faults::default();
        f.fail.store(n, Ordering::SeqCst);
        f
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Around for Faults {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        _op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, persistence_core::Result<T>> {
        Box::pin(self.run(call))
    }
}

impl Faults {
    async fn run<T>(&self, call: Call<'_, T>) -> persistence_core::Result<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let failing = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(if self.invalid {
                Error::invalid_input("injected bad input")
            } else {
                Error::unavailable("injected outage")
            });
        }
        call().await
    }
}

fn fast_retry(attempts: u32) -> Retry {
    Retry::new(RetryConfig {
        max_attempts: attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        resolve_writes: false,
    })
}

#[tokio::test]
async fn retry_repeats_idempotent_reads_until_success() {
    let base = MemoryRepository::<Person>::new();
    base.insert(&person(1)).await.expect("seed");
    let faults = Faults::failing(2);
    let repo = base.clone().layer(faults.clone()).layer(fast_retry(3));
    let got = repo.get(&1).await.expect("third attempt succeeds");
    assert_eq!(got.map(|p| p.id), Some(1));
    assert_eq!(faults.calls(), 3);

    let faults = Faults::failing(5);
    let repo = base.clone().layer(faults.clone()).layer(fast_retry(3));
    let err = repo.count(&Filter::all()).await.expect_err("gives up");
    assert_eq!(err.kind(), &ErrorKind::Unavailable);
    assert_eq!(faults.calls(), 3, "max_attempts bounds the calls");
}

#[tokio::test]
async fn retry_never_repeats_non_idempotent_writes() {
    let base = MemoryRepository::<Person>::new();
    for (op, expected_calls) in [
        ("insert", 1),
        ("insert_many", 1),
        ("update", 1),
        ("upsert", 2),
        ("delete", 2),
        // An `inc` repeated after an unknown outcome would apply twice, a
        // repeated pop would lose a row.
        ("patch", 1),
        ("update_where", 1),
        ("find_one_and_delete", 1),
        ("purge", 2),
    ] {
        let faults = Faults::failing(1);
        let repo = base.clone().layer(faults.clone()).layer(fast_retry(3));
        let result = match op {
            "insert" => repo.insert(&person(10)).await.map(|_| ()),
            "insert_many" => repo.insert_many(&[person(11)]).await.map(|_| ()),
            "update" => repo.update(&person(12)).await.map(|_| ()),
            "upsert" => repo.upsert(&person(13)).await.map(|_| ()),
            "patch" => repo
                .patch(&13, &Update::new().inc(Person::AGE, 1), &Guard::none())
                .await
                .map(|_| ()),
            "update_where" => repo
                .update_where(&Filter::all(), &Update::new().inc(Person::AGE, 1))
                .await
                .map(|_| ()),
            "find_one_and_delete" => repo.find_one_and_delete(&Query::all()).await.map(|_| ()),
            "purge" => repo.purge(&Person::ID.eq(13)).await.map(|_| ()),
            _ => repo.delete(&13).await.map(|_| ()),
        };
        assert_eq!(faults.calls(), expected_calls, "{op}");
        if expected_calls == 1 {
            assert_eq!(
                result.expect_err(op).kind(),
                &ErrorKind::Unavailable,
                "{op} surfaces the outage"
            );
        } else {
            result.expect(op);
        }
    }
    assert_eq!(
        base.count(&Filter::all()).await.expect("count"),
        0,
        "insert was not retried into existence"
    );
}

#[tokio::test]
async fn retry_ignores_non_retryable_errors() {
    let faults = Faults {
        invalid: true,
        ..Faults::failing(1)
    };
    let repo = MemoryRepository::<Person>::new()
        .layer(faults.clone())
        .layer(fast_retry(5));
    let err = repo.get(&1).await.expect_err("invalid input is final");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    assert_eq!(faults.calls(), 1);
}

#[test]
fn full_jitter_backoff_is_bounded() {
    let r = Retry::new(RetryConfig {
        max_attempts: 10,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        resolve_writes: false,
    });
    for attempt in 1..12 {
        let cap =
            Duration::from_millis(10 * (1u64 << (attempt - 1))).min(Duration::from_millis(100));
        for _ in 0..50 {
            assert!(r.backoff(attempt) <= cap, "attempt {attempt}");
        }
    }
}

#[tokio::test]
async fn breaker_opens_fails_fast_and_closes_after_a_good_probe() {
    let faults = Faults::failing(3);
    let breaker = CircuitBreaker::new(
        "main",
        BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_millis(50),
        },
    );
    let base = MemoryRepository::<Person>::new();
    let repo = base.clone().layer(faults.clone()).layer(breaker.clone());
    for _ in 0..3 {
        assert_eq!(
            repo.get(&1).await.expect_err("outage").kind(),
            &ErrorKind::Unavailable
        );
    }
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
    let err = repo.get(&1).await.expect_err("fails fast");
    assert!(err.to_string().contains("circuit breaker"), "{err}");
    assert!(err.is_retryable());
    assert_eq!(faults.calls(), 3, "no call reached the backend while open");
    // Another repository of the same database shares the breaker.
    let other = MemoryRepository::<Person>::new().layer(breaker.clone());
    assert!(other.count(&Filter::all()).await.is_err(), "shared state");

    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(repo.get(&1).await.expect("probe succeeds"), None);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(faults.calls(), 4);
}

#[tokio::test]
async fn breaker_reopens_when_the_probe_fails_and_ignores_answers() {
    let faults = Faults::failing(3);
    let breaker = CircuitBreaker::new(
        "main",
        BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_millis(30),
        },
    );
    let repo = MemoryRepository::<Person>::new()
        .layer(faults.clone())
        .layer(breaker.clone());
    let _ = repo.get(&1).await;
    let _ = repo.get(&1).await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(repo.get(&1).await.is_err(), "probe fails");
    assert!(
        matches!(breaker.state(), BreakerState::Open { .. }),
        "failed probe reopens"
    );
    tokio::time::sleep(Duration::from_millis(40)).await;
    repo.get(&1).await.expect("healthy again");
    // Conflicts and invalid input are answers, not outages.
    repo.insert(&person(1)).await.expect("insert");
    for _ in 0..5 {
        assert!(repo.insert(&person(1)).await.is_err());
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_reachable_endpoint_lets_the_probe_through_before_open_for() {
    let faults = Faults::failing(2);
    let breaker = CircuitBreaker::new(
        "main",
        BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_secs(3600),
        },
    );
    let repo = MemoryRepository::<Person>::new()
        .layer(faults.clone())
        .layer(breaker.clone());
    assert!(!breaker.endpoint_reachable(), "closed: nothing to do");
    // A waiter for "opened" wakes when the circuit opens.
    let waiter = {
        let b = breaker.clone();
        tokio::spawn(async move { b.opened().await })
    };
    let _ = repo.get(&1).await;
    let _ = repo.get(&1).await;
    assert!(breaker.is_open());
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken when the circuit opened")
        .expect("task");
    breaker.opened().await; // already open: returns at once
    let err = repo.get(&1).await.expect_err("open for an hour");
    assert!(err.to_string().contains("circuit breaker"), "{err}");
    assert!(breaker.endpoint_reachable(), "was open");
    assert_eq!(repo.get(&1).await.expect("probe let through"), None);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(faults.calls(), 3);
}

#[tokio::test]
async fn timeout_turns_a_hung_call_into_a_retryable_timeout() {
    let slow = Faults {
        delay: Duration::from_millis(200),
        ..Faults::default()
    };
    let repo = MemoryRepository::<Person>::new()
        .layer(slow)
        .layer(Timeout::new(Duration::from_millis(20)));
    let started = std::time::Instant::now();
    let err = repo.find(&Query::all()).await.expect_err("times out");
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert!(err.is_retryable());
    assert_eq!(err.operation(), Some("find"));
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "did not wait for the hung call"
    );
}

/// Takes `per_row` for every input row of a batch call (and nothing for others).
struct PerRow(Duration);

impl Around for PerRow {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        _op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, persistence_core::Result<T>> {
        call()
    }

    fn around_rows<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        _op: Op,
        rows: usize,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, persistence_core::Result<T>> {
        let wait = self.0 * u32::try_from(rows).unwrap_or(u32::MAX);
        Box::pin(async move {
            tokio::time::sleep(wait).await;
            call().await
        })
    }
}

// Paused clock: the sleeps advance virtual time, so the bounds are exact.
#[tokio::test(start_paused = true)]
async fn insert_many_gets_one_limit_per_thousand_rows() {
    let timeout = Timeout::new(Duration::from_secs(1));
    assert_eq!(timeout.limit_for_rows(0), Duration::from_secs(1));
    assert_eq!(timeout.limit_for_rows(1_000), Duration::from_secs(1));
    assert_eq!(timeout.limit_for_rows(1_001), Duration::from_secs(2));
    // No overflow on absurd sizes.
    assert!(timeout.limit_for_rows(usize::MAX) > Duration::from_secs(1 << 31));

    // 0.9 ms a row: 5,000 rows take 4.5 s, within 5 × the 1 s limit.
    let repo = MemoryRepository::<Person>::new()
        .layer(PerRow(Duration::from_micros(900)))
        .layer(timeout);
    let people: Vec<_> = (0..5_000).map(person).collect();
    assert_eq!(
        repo.insert_many(&people).await.expect("bounded by size"),
        5_000
    );
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 5_000);

    // 1.1 ms a row: 5.5 s is over the 5 s the batch gets; other calls keep 1 s.
    let repo = MemoryRepository::<Person>::new()
        .layer(PerRow(Duration::from_micros(1_100)))
        .layer(timeout);
    let err = repo
        .insert_many(&people)
        .await
        .expect_err("over the scaled limit");
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert_eq!(err.outcome(), WriteOutcome::Unknown);
    assert!(err.to_string().contains("within 5s"), "{err}");
}

#[tokio::test]
async fn timed_out_writes_have_an_unknown_outcome() {
    let slow = Faults {
        delay: Duration::from_secs(30),
        ..Faults::default()
    };
    let repo = MemoryRepository::<Person>::new()
        .layer(slow)
        .layer(Timeout::new(Duration::from_millis(20)));
    let results = [
        ("insert", repo.insert(&person(1)).await.map(|_| ())),
        (
            "insert_many",
            repo.insert_many(&[person(2)]).await.map(|_| ()),
        ),
        ("update", repo.update(&person(1)).await.map(|_| ())),
        ("upsert", repo.upsert(&person(1)).await.map(|_| ())),
        ("delete", repo.delete(&1).await.map(|_| ())),
        ("get", repo.get(&1).await.map(|_| ())),
        ("count", repo.count(&Filter::all()).await.map(|_| ())),
    ];
    for (op, result) in results {
        let err = result.expect_err(op);
        assert_eq!(err.kind(), &ErrorKind::Timeout, "{op}");
        assert_eq!(err.operation(), Some(op));
        let write = !matches!(op, "get" | "count");
        let expected = if write {
            WriteOutcome::Unknown
        } else {
            WriteOutcome::NotApplied
        };
        assert_eq!(err.outcome(), expected, "{op}");
        assert_eq!(
            err.to_string().contains("may have been applied"),
            write,
            "{op}: {err}"
        );
        // Retryable unless a blind repeat could write twice.
        let retryable = !matches!(op, "insert" | "insert_many" | "update");
        assert_eq!(err.is_retryable(), retryable, "{op}: {err}");
    }
}

#[test]
fn metrics_count_operations_by_outcome() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let repo = MemoryRepository::<Person>::new().layer(Metrics::new("main"));
            repo.insert(&person(1)).await.expect("insert");
            assert!(repo.insert(&person(1)).await.is_err());
            repo.get(&1).await.expect("get");
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let count = |op: &str, outcome: &str| {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| {
                let k = key.key();
                k.name() == metric_names::OPERATIONS
                    && k.labels().any(|l| l.key() == "op" && l.value() == op)
                    && k.labels()
                        .any(|l| l.key() == "outcome" && l.value() == outcome)
                    && k.labels().any(|l| l.key() == "db" && l.value() == "main")
                    && k.labels()
                        .any(|l| l.key() == "entity" && l.value() == "conf_people")
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(c) => *c,
                _ => 0,
            })
            .sum::<u64>()
    };
    assert_eq!(count("insert", "ok"), 1);
    assert_eq!(count("insert", "conflict"), 1);
    assert_eq!(count("get", "ok"), 1);
    assert!(
        snapshot
            .iter()
            .any(|(k, _, _, _)| k.key().name() == metric_names::OPERATION_DURATION),
        "latency histogram recorded"
    );
}

#[test]
fn write_resolutions_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use persistence_core::conformance::faults::{AckFault, LostAck};
    use persistence_core::layer::ResolveOutcome;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let resolving = fast_retry(2).writes(ResolveOutcome::ReadBack);
            let applied = LostAck::new(
                MemoryRepository::<Person>::new(),
                AckFault::AppliedThenLost,
                1,
            )
            .layer(resolving);
            applied
                .insert(&person(1))
                .await
                .expect("resolved as applied");
            let lost = LostAck::new(
                MemoryRepository::<Person>::new(),
                AckFault::LostBeforeApplied,
                2,
            )
            .layer(resolving);
            // Not applied → repeated; lost again → attempts exhausted.
            let err = lost.insert(&person(2)).await.expect_err("unresolved");
            assert_eq!(err.outcome(), WriteOutcome::Unknown);
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let count = |result: &str| {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| {
                let k = key.key();
                k.name() == metric_names::WRITE_RESOLUTIONS
                    && k.labels().any(|l| l.key() == "op" && l.value() == "insert")
                    && k.labels()
                        .any(|l| l.key() == metric_names::LABEL_RESULT && l.value() == result)
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(c) => *c,
                _ => 0,
            })
            .sum::<u64>()
    };
    assert_eq!(count(metric_names::RESULT_APPLIED), 1);
    assert_eq!(count(metric_names::RESULT_NOT_APPLIED), 1);
    assert_eq!(count(metric_names::RESULT_UNRESOLVED), 1);
}
