//! One `tracing` span per repository operation with OpenTelemetry's database
//! fields, captured by a subscriber of the test's own: the right fields, the
//! retry attempts, the outcome, and no value or secret anywhere in them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::layer::trace::fields;
use persistence::layer::{
    Around, BoxFuture, Call, DbSystem, LayerExt, Op, Retry, RetryConfig, Tracing,
};
use persistence::{Entity, Error, MemoryRepository, Persistence, Query, Repository};
use persistence_testing::{TestMongo, TestPostgres};
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One captured span: its name and every field recorded, as text.
#[derive(Debug, Clone, Default)]
struct Captured {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Capture {
    spans: Mutex<Vec<Captured>>,
    events: Mutex<Vec<BTreeMap<String, String>>>,
    next: AtomicU64,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut c = Captured {
            name: attrs.metadata().name(),
            ..Captured::default()
        };
        attrs.record(&mut Fields(&mut c.fields));
        let mut spans = self.spans.lock().expect("lock");
        spans.push(c);
        self.next.fetch_add(1, Ordering::SeqCst);
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().expect("lock");
        if let Some(c) = usize::try_from(id.into_u64())
            .ok()
            .and_then(|i| spans.get_mut(i - 1))
        {
            values.record(&mut Fields(&mut c.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = BTreeMap::new();
        event.record(&mut Fields(&mut f));
        self.events.lock().expect("lock").push(f);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    /// The `db` spans captured so far, in creation order.
    fn db_spans(&self) -> Vec<Captured> {
        self.spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.name == "db")
            .cloned()
            .collect()
    }
}

/// Install a capturing subscriber for this (current-thread) test.
fn capture() -> (Arc<Capture>, tracing::dispatcher::DefaultGuard) {
    let c = Arc::new(Capture::default());
    let guard = tracing::dispatcher::set_default(&tracing::Dispatch::from(c.clone()));
    (c, guard)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "traced_people")]
struct Person {
    #[entity(id)]
    id: i64,
    email: String,
    #[entity(version)]
    version: i64,
}

const SECRET_EMAIL: &str = "very-private-value@example.org";

fn person(id: i64) -> Person {
    Person {
        id,
        email: format!("{id}-{SECRET_EMAIL}"),
        version: 0,
    }
}

/// No field of any span carries a value the test wrote, nor a URL.
fn assert_no_values(spans: &[Captured], forbidden: &[&str]) {
    for s in spans {
        for (k, v) in &s.fields {
            for f in forbidden {
                assert!(!v.contains(f), "field {k} = {v:?} carries {f:?}");
            }
            assert!(!v.contains("://"), "field {k} = {v:?} carries a URL");
        }
    }
}

/// Fails the next `n` calls with `Unavailable`.
#[derive(Clone, Default)]
struct Flaky(Arc<AtomicU32>);

impl Around for Flaky {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _: &'static str,
        _: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, persistence::Result<T>> {
        Box::pin(async move {
            let fail = self
                .0
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if fail {
                Err(Error::unavailable("injected outage"))
            } else {
                call().await
            }
        })
    }
}

#[tokio::test]
async fn one_span_per_operation_with_attempts_and_outcome() {
    let (cap, _guard) = capture();
    let flaky = Flaky::default();
    let repo = MemoryRepository::<Person>::new()
        .layer(flaky.clone())
        .layer(Retry::new(RetryConfig {
            max_attempts: 3,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(2),
            resolve_writes: false,
        }))
        .layer(Tracing::new(DbSystem::Memory, "main"));

    repo.insert(&person(1)).await.expect("insert");
    flaky.0.store(2, Ordering::SeqCst);
    assert!(repo.get(&1).await.expect("third attempt").is_some());
    flaky.0.store(5, Ordering::SeqCst);
    let err = repo.get(&1).await.expect_err("three failures");
    assert!(err.is_retryable());
    flaky.0.store(0, Ordering::SeqCst);
    assert!(repo.get(&99).await.expect("a miss is an answer").is_none());
    let rows: Vec<_> = repo.stream(&Query::all()).collect().await;
    assert_eq!(rows.len(), 1);

    let spans = cap.db_spans();
    assert_eq!(spans.len(), 5, "one span per operation: {spans:#?}");
    for s in &spans {
        assert_eq!(s.get(fields::DB_SYSTEM), Some("memory"));
        assert_eq!(s.get(fields::DB_NAMESPACE), Some("main"));
        assert_eq!(s.get(fields::DB_COLLECTION_NAME), Some("traced_people"));
        assert_eq!(s.get(fields::OTEL_KIND), Some("client"));
        assert_eq!(
            s.get(fields::DB_QUERY_TEXT),
            None,
            "memory runs no statements"
        );
    }
    let ops: Vec<_> = spans
        .iter()
        .map(|s| s.get(fields::DB_OPERATION_NAME).unwrap_or("?"))
        .collect();
    assert_eq!(ops, ["insert", "get", "get", "get", "stream"]);
    assert_eq!(
        spans[0].get(fields::OTEL_NAME),
        Some("insert traced_people")
    );
    let attempts_outcome = |i: usize| {
        (
            spans[i].get(fields::ATTEMPT),
            spans[i].get(fields::OUTCOME),
            spans[i].get(fields::ERROR_TYPE),
            spans[i].get(fields::OTEL_STATUS_CODE),
        )
    };
    assert_eq!(attempts_outcome(0), (Some("1"), Some("ok"), None, None));
    assert_eq!(
        attempts_outcome(1),
        (Some("3"), Some("ok"), None, None),
        "recovered on the third attempt"
    );
    assert_eq!(
        attempts_outcome(2),
        (
            Some("3"),
            Some("unavailable"),
            Some("unavailable"),
            Some("ERROR")
        )
    );
    assert_eq!(attempts_outcome(3), (Some("1"), Some("ok"), None, None));
    assert_eq!(spans[4].get(fields::DB_RETURNED_ROWS), Some("1"));
    assert_eq!(spans[4].get(fields::OUTCOME), Some("ok"));
    // The failure is followable: an event with the error inside the span.
    assert!(
        cap.events.lock().expect("lock").iter().any(|e| e
            .get("message")
            .is_some_and(|m| m == "database operation failed")
            && e.get("error")
                .is_some_and(|m| m.contains("injected outage"))),
        "a debug event carries the infrastructure error"
    );
    assert_no_values(&spans, &[SECRET_EMAIL, "99"]);
}

fn manager(yaml: &str) -> Persistence {
    let config: PersistenceConfig = ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    Persistence::new(config).expect("manager")
}

/// The same operations through the manager: its default stack has the
/// layer; statements are recorded as shapes.
async fn through_manager(p: &Persistence, db: &str) -> Vec<Captured> {
    let (cap, guard) = capture();
    let repo = p.repo_in::<Person>(db).await.expect("repo");
    let first = cap.db_spans().len();
    let stored = repo.insert(&person(1)).await.expect("insert");
    repo.update(&stored).await.expect("update");
    let found = repo
        .find(&Query::filter(Person::EMAIL.eq(person(1).email)))
        .await
        .expect("find");
    assert_eq!(found.len(), 1);
    let dup = repo.insert(&person(1)).await.expect_err("duplicate id");
    assert!(dup.is_conflict(), "{dup}");
    drop(guard);
    let spans = cap.db_spans().split_off(first);
    let ops: Vec<_> = spans
        .iter()
        .map(|s| s.get(fields::DB_OPERATION_NAME).unwrap_or("?"))
        .collect();
    assert_eq!(ops, ["insert", "update", "find", "insert"], "{spans:#?}");
    assert_eq!(spans[3].get(fields::OUTCOME), Some("conflict"));
    assert_eq!(spans[3].get(fields::ERROR_TYPE), Some("conflict"));
    for s in &spans {
        assert_eq!(s.get(fields::DB_COLLECTION_NAME), Some("traced_people"));
        assert_eq!(s.get(fields::ATTEMPT), Some("1"));
        assert!(
            s.get(fields::DB_QUERY_TEXT).is_some_and(|q| !q.is_empty()),
            "statement shape recorded: {s:#?}"
        );
    }
    assert_no_values(&spans, &[SECRET_EMAIL]);
    spans
}

#[tokio::test]
async fn postgres_spans_carry_the_statement_shape() {
    let Some(pg) = TestPostgres::schema().await else {
        return;
    };
    let p = manager(&format!(
        "databases:\n  main: {{ kind: postgres, url: \"{}\", schema: {} }}\ncache: {{ default: {{ disabled: true }} }}\n",
        pg.url(),
        pg.name()
    ));
    let spans = through_manager(&p, "main").await;
    for s in &spans {
        assert_eq!(s.get(fields::DB_SYSTEM), Some("postgresql"));
        assert_eq!(s.get(fields::DB_NAMESPACE), Some(pg.name()));
    }
    let find = spans[2].get(fields::DB_QUERY_TEXT).unwrap_or_default();
    assert!(
        find.contains("SELECT") && find.contains("$1"),
        "placeholders, not values: {find}"
    );
    p.shutdown().await;
    pg.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn mongo_spans_carry_the_command_shape() {
    let Some(mongo) = TestMongo::database().await else {
        return;
    };
    let p = manager(&format!(
        "databases:\n  docs: {{ kind: mongo, url: \"{}\", database: {} }}\ncache: {{ default: {{ disabled: true }} }}\n",
        mongo.url(),
        mongo.name()
    ));
    let spans = through_manager(&p, "docs").await;
    for s in &spans {
        assert_eq!(s.get(fields::DB_SYSTEM), Some("mongodb"));
        assert_eq!(s.get(fields::DB_NAMESPACE), Some(mongo.name()));
    }
    let find = spans[2].get(fields::DB_QUERY_TEXT).unwrap_or_default();
    assert!(find.contains("find"), "command shape: {find}");
    p.shutdown().await;
    mongo.cleanup().await.expect("cleanup");
}
