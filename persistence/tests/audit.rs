//! The audit layer and the retention job, on memory and on PostgreSQL (own
//! schema per test).
use chrono::{Duration, Utc};
use persistence::audit::{
    AuditContext, AuditOperation, AuditRecord, Audited, OnAuditError, Retention,
};
use persistence::postgres::RelationalStore;
use persistence::{
    Entity, ErrorKind, Filter, Guard, MemoryRepository, Query, Repository, SoftDeleteExt as _,
    Update,
};
use persistence_testing::{TestMongo, TestPostgres};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "audited_docs")]
struct Doc {
    #[entity(id)]
    id: i64,
    title: String,
    body: Option<String>,
    #[entity(version)]
    version: i64,
}

fn doc(id: i64, title: &str, body: Option<&str>) -> Doc {
    Doc {
        id,
        title: title.into(),
        body: body.map(Into::into),
        version: 0,
    }
}

/// A store in its own schema (from `persistence-testing`: dropped with the
/// guard, also when the test panics) — derefs to the store.
struct PgStore {
    store: RelationalStore,
    _schema: TestPostgres,
}

impl std::ops::Deref for PgStore {
    type Target = RelationalStore;
    fn deref(&self) -> &RelationalStore {
        &self.store
    }
}

async fn pg_store() -> Option<PgStore> {
    let pg = TestPostgres::schema().await?;
    let store = RelationalStore::connect(&pg.config().max_connections(4))
        .await
        .expect("connect");
    Some(PgStore { store, _schema: pg })
}

/// Records of one entity id, oldest first.
async fn trail(log: &impl Repository<AuditRecord>, id: &str) -> Vec<AuditRecord> {
    log.find(
        &Query::filter(AuditRecord::ENTITY_ID.eq(id))
            .sort(AuditRecord::AT.asc())
            .sort(AuditRecord::ID.asc()),
    )
    .await
    .expect("trail")
}

fn summary(records: &[AuditRecord]) -> Vec<(AuditOperation, Vec<String>, Option<String>)> {
    records
        .iter()
        .map(|r| (r.operation, r.changed_fields.clone(), r.actor.clone()))
        .collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

async fn every_write_kind<D, L>(docs: D, log: L)
where
    D: Repository<Doc>,
    L: Repository<AuditRecord> + Clone,
{
    docs.ensure_schema().await.expect("schema");
    log.ensure_schema().await.expect("log schema");
    let repo = Audited::new(docs, log.clone()).default_actor("system");

    AuditContext::new("alice")
        .scope(async {
            let d = repo.insert(&doc(1, "first", None)).await.expect("insert");
            let mut edited = d.clone();
            edited.title = "first, edited".into();
            let d = repo.update(&edited).await.expect("update");
            let mut body = d.clone();
            body.body = Some("text".into());
            // Nested scope: the innermost actor wins.
            AuditContext::new("bob")
                .scope(async { repo.upsert(&body).await.expect("upsert existing") })
                .await;
            repo.upsert(&doc(2, "second", Some("b")))
                .await
                .expect("upsert new");
            assert!(repo.delete(&1).await.expect("delete"));
            assert!(!repo.delete(&1).await.expect("delete again"));
        })
        .await;
    // Outside any scope: the default actor.
    assert_eq!(
        repo.insert_many(&[
            doc(10, "x", None),
            doc(11, "y", Some("z")),
            doc(12, "keep", None)
        ])
        .await
        .expect("insert_many"),
        3
    );
    assert_eq!(
        repo.delete_many(&Doc::TITLE.ne("keep"))
            .await
            .expect("delete_many"),
        3,
        "10, 11 and 2"
    );

    let alice = Some("alice".to_string());
    assert_eq!(
        summary(&trail(&log, "1").await),
        vec![
            (AuditOperation::Insert, s(&["title"]), alice.clone()),
            (AuditOperation::Update, s(&["title"]), alice.clone()),
            (AuditOperation::Upsert, s(&["body"]), Some("bob".into())),
            (AuditOperation::Delete, vec![], alice.clone()),
        ]
    );
    let system = Some("system".to_string());
    assert_eq!(
        summary(&trail(&log, "2").await),
        vec![
            (AuditOperation::Upsert, s(&["title", "body"]), alice.clone()),
            (AuditOperation::Delete, vec![], system.clone()),
        ]
    );
    assert_eq!(
        summary(&trail(&log, "11").await),
        vec![
            (
                AuditOperation::Insert,
                s(&["title", "body"]),
                system.clone()
            ),
            (AuditOperation::Delete, vec![], system.clone()),
        ]
    );
    assert_eq!(
        summary(&trail(&log, "12").await),
        vec![(AuditOperation::Insert, s(&["title"]), system.clone())]
    );
    let all = log.find(&Query::all()).await.expect("all");
    assert_eq!(all.len(), 4 + 2 + 2 + 2 + 1);
    assert!(all.iter().all(|r| r.entity == "audited_docs"));
    // Reads go straight through and are not recorded.
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 1);
    assert_eq!(log.count(&Filter::all()).await.expect("count log"), 11);
}

#[tokio::test]
async fn memory_records_every_write_kind() {
    every_write_kind(
        MemoryRepository::<Doc>::new(),
        MemoryRepository::<AuditRecord>::new(),
    )
    .await;
}

#[tokio::test]
async fn postgres_records_every_write_kind() {
    let Some(store) = pg_store().await else {
        return;
    };
    every_write_kind(store.repository::<Doc>(), store.repository::<AuditRecord>()).await;
    store.drop_schema().await.expect("drop");
}

/// `patch`, `update_where` (in batches of 2 ids) and `find_one_and_delete`
/// are recorded once per entity they changed.
async fn partial_writes<D, L>(docs: D, log: L)
where
    D: Repository<Doc>,
    L: Repository<AuditRecord> + Clone,
{
    docs.ensure_schema().await.expect("schema");
    log.ensure_schema().await.expect("log schema");
    let repo = Audited::new(docs, log.clone())
        .default_actor("system")
        .delete_batch(2);
    let seed: Vec<Doc> = (1..=5).map(|i| doc(i, &format!("t{i}"), None)).collect();
    repo.insert_many(&seed).await.expect("seed");
    let patched = repo
        .patch(
            &1,
            &Update::new().set(Doc::TITLE, "patched"),
            &Guard::when(Doc::TITLE.eq("t1")),
        )
        .await
        .expect("patch");
    assert_eq!((patched.title.as_str(), patched.version), ("patched", 2));
    let n = repo
        .update_where(&Doc::ID.gte(2), &Update::new().set(Doc::BODY, "b"))
        .await
        .expect("update_where");
    assert_eq!(n, 4, "ids 2 to 5, in three batches");
    let popped = repo
        .find_one_and_delete(&Query::all().sort(Doc::ID.desc()))
        .await
        .expect("pop");
    assert_eq!(popped.map(|d| d.id), Some(5));
    // A failed guard writes nothing and records nothing.
    let err = repo
        .patch(
            &1,
            &Update::new().set(Doc::TITLE, "x"),
            &Guard::when(Doc::TITLE.eq("t1")),
        )
        .await
        .expect_err("guard");
    assert!(err.is_conflict(), "{err}");

    let system = Some("system".to_string());
    let insert = (AuditOperation::Insert, s(&["title"]), system.clone());
    assert_eq!(
        summary(&trail(&log, "1").await),
        vec![
            insert.clone(),
            (AuditOperation::Update, s(&["title"]), system.clone())
        ]
    );
    for id in ["2", "3", "4"] {
        assert_eq!(
            summary(&trail(&log, id).await),
            vec![
                insert.clone(),
                (AuditOperation::Update, s(&["body"]), system.clone())
            ],
            "id {id}"
        );
    }
    assert_eq!(
        summary(&trail(&log, "5").await),
        vec![
            insert,
            (AuditOperation::Update, s(&["body"]), system.clone()),
            (AuditOperation::Delete, vec![], system),
        ]
    );
    assert_eq!(
        log.count(&Filter::all()).await.expect("count"),
        5 + 1 + 4 + 1
    );
}

#[tokio::test]
async fn memory_records_partial_writes() {
    partial_writes(
        MemoryRepository::<Doc>::new(),
        MemoryRepository::<AuditRecord>::new(),
    )
    .await;
}

#[tokio::test]
async fn postgres_records_partial_writes() {
    let Some(store) = pg_store().await else {
        return;
    };
    partial_writes(store.repository::<Doc>(), store.repository::<AuditRecord>()).await;
    store.drop_schema().await.expect("drop");
}

/// A soft-deletable document (issue 15 item 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "audited_memos")]
struct Memo {
    #[entity(id)]
    id: i64,
    #[entity(soft_delete)]
    deleted_at: Option<chrono::DateTime<Utc>>,
}

/// Soft deletes are recorded as `Delete`, restores as updates, purges as
/// `Purge`; a batch of rows deleted before never ends `delete_many` early.
async fn soft_deletes<D, L>(memos: D, log: L)
where
    D: Repository<Memo>,
    L: Repository<AuditRecord> + Clone,
{
    memos.ensure_schema().await.expect("schema");
    log.ensure_schema().await.expect("log schema");
    let repo = Audited::new(memos, log.clone())
        .default_actor("system")
        .delete_batch(2);
    let seed: Vec<Memo> = (1..=6)
        .map(|id| Memo {
            id,
            deleted_at: None,
        })
        .collect();
    repo.insert_many(&seed).await.expect("seed");
    assert!(repo.delete(&1).await.expect("delete"));
    assert!(repo.delete(&2).await.expect("delete"));
    assert!(
        !repo.delete(&2).await.expect("delete again"),
        "nothing recorded"
    );
    // Ids 1 and 2 (deleted) come first: the batches must still reach 3..=6.
    let n = repo
        .delete_many(&Filter::all().with_deleted())
        .await
        .expect("delete_many");
    assert_eq!(n, 4);
    assert!(repo.restore(&3).await.expect("restore"));
    assert_eq!(
        repo.purge(&Filter::all().only_deleted())
            .await
            .expect("purge"),
        5
    );
    let ops = |id: &'static str| {
        let log = log.clone();
        async move {
            trail(&log, id)
                .await
                .into_iter()
                .map(|r| r.operation)
                .collect::<Vec<_>>()
        }
    };
    use AuditOperation::{Delete, Insert, Purge, Update as Upd};
    for id in ["1", "2", "4", "5", "6"] {
        assert_eq!(ops(id).await, vec![Insert, Delete, Purge], "id {id}");
    }
    assert_eq!(
        ops("3").await,
        vec![Insert, Delete, Upd],
        "restored, not purged"
    );
    assert_eq!(
        repo.count(&Filter::all().with_deleted())
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn memory_records_soft_deletes() {
    soft_deletes(
        MemoryRepository::<Memo>::new(),
        MemoryRepository::<AuditRecord>::new(),
    )
    .await;
}

#[tokio::test]
async fn postgres_records_soft_deletes() {
    let Some(store) = pg_store().await else {
        return;
    };
    soft_deletes(
        store.repository::<Memo>(),
        store.repository::<AuditRecord>(),
    )
    .await;
    store.drop_schema().await.expect("drop");
}

#[tokio::test]
async fn actor_follows_the_task_not_the_thread() {
    let log = MemoryRepository::<AuditRecord>::new();
    let repo = std::sync::Arc::new(Audited::new(MemoryRepository::<Doc>::new(), log.clone()));
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(AuditContext::new(format!("user{i}")).scope(
            async move {
                tokio::task::yield_now().await;
                repo.insert(&doc(i, "t", None)).await.expect("insert");
            },
        )));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for i in 0..8i64 {
        let records = trail(&log, &i.to_string()).await;
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].actor.as_deref(),
            Some(format!("user{i}").as_str())
        );
    }
    // No scope and no default actor: none.
    repo.insert(&doc(100, "t", None)).await.expect("insert");
    assert_eq!(trail(&log, "100").await[0].actor, None);
}

#[tokio::test]
async fn postgres_audit_in_the_same_transaction() {
    let Some(store) = pg_store().await else {
        return;
    };
    store
        .repository::<Doc>()
        .ensure_schema()
        .await
        .expect("schema");
    store
        .repository::<AuditRecord>()
        .ensure_schema()
        .await
        .expect("log schema");

    let rolled_back: Result<(), persistence::Error> = store
        .transaction(|tx| {
            Box::pin(async move {
                let repo = Audited::new(tx.repository::<Doc>(), tx.repository::<AuditRecord>());
                repo.insert(&doc(1, "never", None)).await?;
                Err(persistence::Error::invalid_input("abort"))
            })
        })
        .await;
    assert!(rolled_back.is_err());
    store
        .transaction(|tx| {
            Box::pin(async move {
                let repo = Audited::new(tx.repository::<Doc>(), tx.repository::<AuditRecord>());
                repo.insert(&doc(2, "kept", None)).await?;
                Ok::<_, persistence::Error>(())
            })
        })
        .await
        .expect("commit");
    let log = store.repository::<AuditRecord>();
    assert!(
        trail(&log, "1").await.is_empty(),
        "rolled back with the write"
    );
    assert_eq!(trail(&log, "2").await.len(), 1, "committed with the write");
    assert!(
        store
            .repository::<Doc>()
            .get(&1)
            .await
            .expect("get")
            .is_none()
    );
    store.drop_schema().await.expect("drop");
}

#[tokio::test]
async fn postgres_audit_failure_policy() {
    let Some(store) = pg_store().await else {
        return;
    };
    let docs = MemoryRepository::<Doc>::new();
    // The log table is never created: every audit write fails.
    let log = store.repository::<AuditRecord>();
    let strict = Audited::new(docs.clone(), log.clone());
    let err = strict
        .insert(&doc(1, "t", None))
        .await
        .expect_err("audit failed");
    assert_eq!(err.kind(), &ErrorKind::Backend, "{err}");
    assert!(!err.is_retryable(), "a retry would repeat the insert");
    assert_eq!(
        err.outcome(),
        persistence_core::WriteOutcome::Unknown,
        "never reported as not applied"
    );
    assert!(err.to_string().contains("succeeded"), "{err}");
    assert!(
        docs.get(&1).await.expect("get").is_some(),
        "the write happened"
    );

    let lenient = Audited::new(docs.clone(), log).on_error(OnAuditError::Log);
    lenient
        .insert(&doc(2, "t", None))
        .await
        .expect("logged only");
    assert!(docs.get(&2).await.expect("get").is_some());
    store.drop_schema().await.expect("drop");
}

async fn retention_in_batches<L: Repository<AuditRecord>>(log: L) {
    log.ensure_schema().await.expect("schema");
    let now = Utc::now();
    let record = |age_days: i64, n: usize| AuditRecord {
        id: Uuid::now_v7(),
        entity: "docs".into(),
        entity_id: format!("{age_days}-{n}"),
        operation: AuditOperation::Insert,
        actor: None,
        at: now - Duration::days(age_days) + Duration::seconds(n as i64),
        changed_fields: vec!["title".into()],
    };
    let old: Vec<AuditRecord> = (0..10).map(|n| record(45, n)).collect();
    let recent: Vec<AuditRecord> = (0..4).map(|n| record(5, n)).collect();
    log.insert_many(&old).await.expect("old");
    log.insert_many(&recent).await.expect("recent");

    let job = Retention::days(30)
        .batch_size(3)
        .pause(std::time::Duration::from_millis(1));
    let first = job
        .clone()
        .max_batches(2)
        .run(&log)
        .await
        .expect("bounded run");
    assert_eq!(
        (first.deleted, first.batches, first.truncated),
        (6, 2, true)
    );
    let rest = job.run(&log).await.expect("run");
    assert_eq!((rest.deleted, rest.batches, rest.truncated), (4, 2, false));
    let left = log.find(&Query::all()).await.expect("left");
    let mut ids: Vec<Uuid> = left.iter().map(|r| r.id).collect();
    ids.sort();
    let mut want: Vec<Uuid> = recent.iter().map(|r| r.id).collect();
    want.sort();
    assert_eq!(ids, want, "only records older than 30 days were deleted");
    let none = job.run(&log).await.expect("idle run");
    assert_eq!((none.deleted, none.batches), (0, 0));
}

#[tokio::test]
async fn memory_retention_deletes_old_records_in_batches() {
    retention_in_batches(MemoryRepository::<AuditRecord>::new()).await;
}

#[tokio::test]
async fn postgres_retention_deletes_old_records_in_batches() {
    let Some(store) = pg_store().await else {
        return;
    };
    retention_in_batches(store.repository::<AuditRecord>()).await;
    store.drop_schema().await.expect("drop");
}

/// A store on its own database (dropped with the guard, also on panic).
async fn mongo_store() -> Option<(persistence::mongo::MongoStore, TestMongo)> {
    let db = TestMongo::database().await?;
    let store = db.store().await.expect("connect");
    Some((store, db))
}

#[tokio::test]
async fn mongo_records_every_write_kind() {
    let Some((store, _db)) = mongo_store().await else {
        return;
    };
    every_write_kind(store.repository::<Doc>(), store.repository::<AuditRecord>()).await;
    store.database().drop().await.expect("drop");
}

#[tokio::test]
async fn mongo_retention_deletes_old_records_in_batches() {
    let Some((store, _db)) = mongo_store().await else {
        return;
    };
    retention_in_batches(store.repository::<AuditRecord>()).await;
    store.database().drop().await.expect("drop");
}
