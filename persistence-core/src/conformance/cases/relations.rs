//! Declared relations (issue #16): eager loading returns what per-row
//! loading returns, with a constant number of queries; `restrict`,
//! `cascade`, `set_null` and a missing parent where the backend enforces
//! relations.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt as _;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::error::ConflictKind;
use crate::filter::Filter;
use crate::layer::{Around, BoxFuture, Call, LayerExt, Op};
use crate::query::Query;
use crate::relation::{LoadExt, Repos};
use crate::repository::{Repository, SharedRepository};
use crate::update::{Guard, Update};

struct Shop {
    customers: SharedRepository<RelCustomer>,
    orders: SharedRepository<RelOrder>,
    lines: SharedRepository<RelLine>,
    notes: SharedRepository<RelNote>,
}

/// The four repositories, parents first (SQL creates the foreign keys
/// against existing tables).
async fn shop<B: Backend>(b: &B) -> Shop {
    Shop {
        customers: Arc::new(b.repo::<RelCustomer>().await),
        orders: Arc::new(b.repo::<RelOrder>().await),
        lines: Arc::new(b.repo::<RelLine>().await),
        notes: Arc::new(b.repo::<RelNote>().await),
    }
}

impl Shop {
    fn repos(&self) -> Repos {
        Repos::new()
            .with(self.customers.clone())
            .with(self.orders.clone())
            .with(self.lines.clone())
            .with(self.notes.clone())
    }

    /// `customers` customers (ids 1..), `orders` orders spread over all but
    /// the last customer, `lines` lines per order (ids in order), and two notes.
    async fn fill(&self, customers: i64, orders: i64, lines: i64) {
        let cs: Vec<RelCustomer> = (1..=customers)
            .map(|id| RelCustomer {
                id,
                name: format!("c{id}"),
            })
            .collect();
        self.customers.insert_many(&cs).await.unwrap();
        let spread = (customers - 1).max(1);
        let os: Vec<RelOrder> = (1..=orders)
            .map(|id| RelOrder {
                id,
                customer_id: 1 + (id * 7) % spread,
                note: format!("o{id}"),
            })
            .collect();
        self.orders.insert_many(&os).await.unwrap();
        let ls: Vec<RelLine> = (0..orders * lines)
            .map(|n| RelLine {
                id: n + 1,
                order_id: 1 + n % orders,
                qty: n,
            })
            .collect();
        if !ls.is_empty() {
            self.lines.insert_many(&ls).await.unwrap();
        }
        let ns = [
            RelNote {
                id: 1,
                customer_id: Some(customers),
                text: "last".into(),
            },
            RelNote {
                id: 2,
                customer_id: None,
                text: "none".into(),
            },
        ];
        self.notes.insert_many(&ns).await.unwrap();
    }

    async fn lines_of(&self, order: i64) -> Vec<RelLine> {
        self.lines
            .find(&Query::filter(RelLine::ORDER_ID.eq(order)))
            .await
            .unwrap()
    }
}

pub async fn relations_load_two_levels<B: Backend>(b: &B) {
    let shop = shop(b).await;
    shop.fill(4, 9, 3).await;
    let repos = shop.repos();
    // Orders with their customer and lines, against per-row loading.
    let all = Query::all();
    let loaded = shop
        .orders
        .find_with(&all, (RelOrder::CUSTOMER, RelOrder::LINES), &repos)
        .await
        .unwrap();
    assert_eq!(loaded.len(), 9);
    for w in &loaded {
        let customer = shop.customers.get(&w.customer_id).await.unwrap().unwrap();
        assert_eq!(w.related.0, customer, "customer of order {}", w.id);
        assert_eq!(
            w.related.1,
            shop.lines_of(w.id).await,
            "lines of order {}",
            w.id
        );
    }
    // Two levels down from the customers: orders, then their lines.
    let deep = shop
        .customers
        .find_with(&all, RelCustomer::ORDERS.then(RelOrder::LINES), &repos)
        .await
        .unwrap();
    assert_eq!(deep.len(), 4);
    for c in &deep {
        let orders = shop
            .orders
            .find(&Query::filter(RelOrder::CUSTOMER_ID.eq(c.id)))
            .await
            .unwrap();
        let got: Vec<RelOrder> = c.related.iter().map(|o| o.entity.clone()).collect();
        assert_eq!(got, orders, "orders of customer {}", c.id);
        for o in &c.related {
            assert_eq!(
                o.related,
                shop.lines_of(o.id).await,
                "lines of order {}",
                o.id
            );
        }
    }
    assert!(
        deep[3].related.is_empty(),
        "the last customer has no orders"
    );
    // An optional key gives an Option; a filter narrows the rows as in find.
    let notes = shop
        .notes
        .find_with(&all, RelNote::CUSTOMER, &repos)
        .await
        .unwrap();
    assert_eq!(notes[0].related.as_ref().map(|c| c.id), Some(4));
    assert_eq!(notes[1].related, None);
    let some = shop
        .orders
        .find_with(
            &Query::filter(RelOrder::ID.lte(2)),
            RelOrder::CUSTOMER,
            &repos,
        )
        .await
        .unwrap();
    assert_eq!(some.iter().map(|w| w.id).collect::<Vec<_>>(), vec![1, 2]);
    // page_with and stream_with load the same.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = shop
            .orders
            .page_with(
                &Query::all().limit(4),
                cursor.as_ref(),
                (RelOrder::CUSTOMER, RelOrder::LINES),
                &repos,
            )
            .await
            .unwrap();
        paged.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, loaded, "page_with");
    let streamed: Vec<_> = shop
        .orders
        .stream_with(&all, (RelOrder::CUSTOMER, RelOrder::LINES), &repos)
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(streamed, loaded, "stream_with");
}

/// Counts every repository call below it (one statement each on SQL).
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl Around for Counting {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        _op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, crate::Result<T>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        call()
    }
}

pub async fn relations_load_query_count_is_constant<B: Backend>(b: &B) {
    let shop = shop(b).await;
    shop.fill(101, 1000, 2).await;
    let count = Counting::default();
    let repos = Repos::new()
        .with(shop.customers.clone().layer(count.clone()))
        .with(shop.lines.clone().layer(count.clone()));
    let orders = shop.orders.clone().layer(count.clone());
    for limit in [10, 1000] {
        count.0.store(0, Ordering::SeqCst);
        let got = orders
            .find_with(
                &Query::all().limit(limit),
                (RelOrder::CUSTOMER, RelOrder::LINES),
                &repos,
            )
            .await
            .unwrap();
        assert_eq!(got.len() as u64, limit);
        assert!(got.iter().all(|w| w.related.1.len() == 2));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            3,
            "{limit} orders: one query for the orders, one per relation"
        );
    }
}

/// Needs: relations
pub async fn relations_missing_parent_is_refused<B: Backend>(b: &B) {
    let shop = shop(b).await;
    shop.fill(2, 2, 1).await;
    let orphan = RelOrder {
        id: 50,
        customer_id: 999,
        note: "orphan".into(),
    };
    let relation = |r: Result<RelOrder, crate::Error>, what: &str| match assert_conflict(r, what) {
        ConflictKind::MissingParent { relation } => {
            assert_eq!(relation, "conf_rel_orders.customer")
        }
        other => panic!("{what}: expected MissingParent, got {other:?}"),
    };
    relation(shop.orders.insert(&orphan).await, "insert");
    let c = assert_conflict(
        shop.orders.insert_many(std::slice::from_ref(&orphan)).await,
        "insert_many",
    );
    assert!(matches!(c, ConflictKind::MissingParent { .. }), "{c:?}");
    relation(shop.orders.upsert(&orphan).await, "upsert");
    let mut moved = shop.orders.get(&1).await.unwrap().unwrap();
    moved.customer_id = 999;
    relation(shop.orders.update(&moved).await, "update");
    let patch = Update::new().set(RelOrder::CUSTOMER_ID, 999_i64);
    relation(shop.orders.patch(&1, &patch, &Guard::none()).await, "patch");
    let c = assert_conflict(
        shop.orders.update_where(&Filter::all(), &patch).await,
        "update_where",
    );
    assert!(matches!(c, ConflictKind::MissingParent { .. }), "{c:?}");
    assert!(
        shop.orders.get(&50).await.unwrap().is_none(),
        "nothing stored"
    );
    let stored = shop.orders.get(&1).await.unwrap().unwrap();
    assert_ne!(stored.customer_id, 999, "nothing changed");
    // A null key names no parent; an existing parent is fine.
    let free = RelNote {
        id: 9,
        customer_id: None,
        text: "free".into(),
    };
    shop.notes.insert(&free).await.unwrap();
    let fine = RelOrder {
        customer_id: 2,
        ..orphan
    };
    shop.orders.insert(&fine).await.unwrap();
}

/// Needs: relations
pub async fn relations_restrict_refuses_delete<B: Backend>(b: &B) {
    let shop = shop(b).await;
    shop.fill(3, 4, 1).await;
    // Customer 1 has orders (restrict).
    let c = assert_conflict(shop.customers.delete(&1).await, "delete");
    match c {
        ConflictKind::Referenced { relation } => assert_eq!(relation, "conf_rel_orders.customer"),
        other => panic!("expected Referenced, got {other:?}"),
    }
    let c = assert_conflict(
        shop.customers.delete_many(&RelCustomer::ID.lte(2)).await,
        "delete_many",
    );
    assert!(matches!(c, ConflictKind::Referenced { .. }), "{c:?}");
    assert_eq!(
        shop.customers.count(&Filter::all()).await.unwrap(),
        3,
        "nothing deleted"
    );
    // Without its orders it goes.
    shop.orders
        .delete_many(&RelOrder::CUSTOMER_ID.eq(1_i64))
        .await
        .unwrap();
    assert!(shop.customers.delete(&1).await.unwrap());
}

/// Needs: relations
pub async fn relations_cascade_removes_children<B: Backend>(b: &B) {
    let shop = shop(b).await;
    shop.fill(2, 4, 3).await;
    // Read the children first, so a cache in front of them holds them.
    let lines = shop.lines_of(1).await;
    assert_eq!(lines.len(), 3);
    let line = lines[0].id;
    assert!(shop.lines.get(&line).await.unwrap().is_some());
    assert_eq!(shop.lines.count(&Filter::all()).await.unwrap(), 12);
    assert!(shop.orders.delete(&1).await.unwrap());
    assert!(
        shop.lines_of(1).await.is_empty(),
        "lines of order 1 went with it"
    );
    assert_eq!(
        shop.lines.get(&line).await.unwrap(),
        None,
        "a line read before its order's delete is gone"
    );
    assert_eq!(
        shop.lines.count(&Filter::all()).await.unwrap(),
        9,
        "the others stay"
    );
    let n = shop.orders.delete_many(&RelOrder::ID.gte(3)).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(shop.lines.count(&Filter::all()).await.unwrap(), 3);
    let popped = shop
        .orders
        .find_one_and_delete(&Query::all())
        .await
        .unwrap();
    assert_eq!(popped.map(|o| o.id), Some(2));
    assert_eq!(shop.lines.count(&Filter::all()).await.unwrap(), 0);
}

/// Needs: relations
pub async fn relations_set_null_clears_keys<B: Backend>(b: &B) {
    let shop = shop(b).await;
    // The last customer (3) has no orders, only note 1.
    shop.fill(3, 2, 0).await;
    // Read the child first, so a cache in front of it holds it.
    assert_eq!(
        shop.notes
            .get(&1)
            .await
            .unwrap()
            .and_then(|n| n.customer_id),
        Some(3)
    );
    assert!(shop.customers.delete(&3).await.unwrap());
    let note = shop.notes.get(&1).await.unwrap().unwrap();
    assert_eq!(note.customer_id, None, "the key was cleared");
    assert_eq!(note.text, "last", "the row stays");
    assert_eq!(shop.notes.count(&Filter::all()).await.unwrap(), 2);
}
