//! A database with a `tenancy` section shows its tenants: how many were
//! active in the window and the busiest ones, from what the manager's tenant
//! repositories did.

use std::sync::Arc;
use std::time::Duration;

use persistence::config::ConfigLoader;
use persistence::{Entity, Persistence, Repository};
use persistence_dashboard::{Dashboard, DashboardOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "dash_tickets", crate = "persistence")]
struct Ticket {
    #[entity(id)]
    id: i64,
    #[entity(tenant)]
    tenant: String,
    title: String,
}

#[tokio::test]
async fn the_busiest_tenants_are_listed_per_database() {
    let config = ConfigLoader::new()
        .text(
            "test.yaml",
            "databases:\n  main: { kind: memory, tenancy: { strategy: row } }\n  docs: { kind: memory }\n",
        )
        .env(Vec::new())
        .load()
        .expect("config");
    let p = Arc::new(Persistence::new(config).expect("persistence"));
    let dashboard = Dashboard::with_aggregator(
        p.clone(),
        None,
        DashboardOptions {
            interval: Duration::from_secs(3600),
            tenants_top: 2,
            ..DashboardOptions::default()
        },
    );
    // One table for all tenants: ids are unique across them.
    for (tenant, n, base) in [("acme", 5, 0), ("globex", 2, 100), ("initech", 1, 200)] {
        let repo = p.tenant_repo::<Ticket>("main", tenant).await.expect("repo");
        for id in base..base + n {
            let t = Ticket {
                id,
                tenant: String::new(),
                title: format!("{tenant} {id}"),
            };
            repo.insert(&t).await.expect("insert");
        }
    }
    let snap = dashboard.take_snapshot();
    let main = snap
        .databases
        .iter()
        .find(|d| d.name == "main")
        .expect("main");
    let ta = main.tenant_activity.as_ref().expect("tenancy configured");
    assert_eq!((ta.strategy, ta.active, ta.tracked), ("row", 3, 3));
    let top: Vec<(&str, u64)> = ta
        .top
        .iter()
        .map(|t| (t.tenant.as_str(), t.ops_total))
        .collect();
    assert_eq!(top, [("acme", 5), ("globex", 2)], "top 2 by activity");
    let docs = snap
        .databases
        .iter()
        .find(|d| d.name == "docs")
        .expect("docs");
    assert!(docs.tenant_activity.is_none(), "no tenancy section");
    let json = serde_json::to_value(&*snap).expect("json");
    assert_eq!(
        json["databases"][1]["tenant_activity"]["top"][0]["tenant"], "acme",
        "{json}"
    );
}
