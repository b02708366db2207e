//! MemoryRepository throughput: `cargo bench -p persistence-core --bench memory`.
//!
//! Prints a table (ops/s and mean latency) for point reads, single inserts,
//! batch inserts and filtered+sorted finds, next to the same work done on a
//! plain `RwLock<BTreeMap>` (the "raw" baseline), so the overhead of the
//! repository (serde record conversion, filter evaluation) shows as a ratio.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use persistence_core::conformance::entities::{Person, person};
use persistence_core::{Filter, MemoryRepository, Query, Repository};

fn time<F: FnMut()>(n: u64, mut f: F) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed()
}

fn row(name: &str, n: u64, repo: Duration, raw: Duration) {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "| {name:<36} | {:>12.0} | {:>9.2} | {:>9.2} | {:>6.1}x |",
        n as f64 / repo.as_secs_f64(),
        per(repo),
        per(raw),
        repo.as_secs_f64() / raw.as_secs_f64().max(1e-12)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    const N: i64 = 20_000;
    let repo = MemoryRepository::<Person>::new();
    let raw: RwLock<BTreeMap<i64, Person>> = RwLock::new(BTreeMap::new());
    println!(
        "| operation                            |   repo ops/s | repo µs/op | raw µs/op |  ratio |"
    );
    println!(
        "|--------------------------------------|--------------|-----------|-----------|--------|"
    );

    let people: Vec<Person> = (1..=N).map(person).collect();
    let mut i = 0;
    let d_repo = time(N as u64, || {
        rt.block_on(repo.insert(&people[i])).unwrap();
        i += 1;
    });
    let mut i = 0;
    let d_raw = time(N as u64, || {
        raw.write()
            .insert(people[i].id, black_box(people[i].clone()));
        i += 1;
    });
    row("insert (one at a time)", N as u64, d_repo, d_raw);

    let batch = MemoryRepository::<Person>::new();
    let d_repo = time(1, || {
        rt.block_on(batch.insert_many(&people)).unwrap();
    });
    let raw2: RwLock<BTreeMap<i64, Person>> = RwLock::new(BTreeMap::new());
    let d_raw = time(1, || {
        let mut w = raw2.write();
        for p in &people {
            w.insert(p.id, p.clone());
        }
    });
    row("insert_many (20k rows, per row)", N as u64, d_repo, d_raw);

    let gets = 200_000u64;
    let mut k = 0i64;
    let d_repo = time(gets, || {
        k = (k * 7919 + 13) % N + 1;
        black_box(rt.block_on(repo.get(&k)).unwrap());
    });
    let d_raw = time(gets, || {
        k = (k * 7919 + 13) % N + 1;
        black_box(raw.read().get(&k).cloned());
    });
    row("get by id", gets, d_repo, d_raw);

    let finds = 50u64;
    let q = Query::filter(Person::AGE.gt(40).and(Person::CITY.eq("Oslo")))
        .sort(Person::SCORE.desc())
        .limit(100);
    let d_repo = time(finds, || {
        black_box(rt.block_on(repo.find(&q)).unwrap());
    });
    let d_raw = time(finds, || {
        let r = raw.read();
        let mut v: Vec<Person> = r
            .values()
            .filter(|p| p.age.is_some_and(|a| a > 40) && p.city.as_deref() == Some("Oslo"))
            .cloned()
            .collect();
        v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        v.truncate(100);
        black_box(v);
    });
    row("find filter+sort (20k rows, top 100)", finds, d_repo, d_raw);

    let f: Filter = Person::AGE.is_null().or(Person::SCORE.lt(100.0));
    let d_repo = time(finds, || {
        black_box(rt.block_on(repo.count(&f)).unwrap());
    });
    let d_raw = time(finds, || {
        black_box(
            raw.read()
                .values()
                .filter(|p| p.age.is_none() || p.score < 100.0)
                .count(),
        );
    });
    row("count with filter (20k rows)", finds, d_repo, d_raw);
}
