//! Redis over TLS from YAML: `kind: redis`, a `rediss://` URL and
//! `tls: { mode: verify-full, root_cert: ca.pem }` (mutual TLS with
//! `client_cert` / `client_key`). The test runs a redis-server of its own
//! that accepts only TLS, with a certificate from a CA the test made.

use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, ErrorKind, HealthState, Persistence, Repository};
use persistence_testing::local::{LocalRedis, or_skip};
use persistence_testing::tls::TestCerts;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "tls_items")]
struct Item {
    #[entity(id)]
    id: i64,
    name: String,
}

fn load(yaml: &str) -> persistence::Result<PersistenceConfig> {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
}

fn yaml(port: u16, tls: &str) -> String {
    format!(
        "databases:\n  main: {{ kind: memory }}\n  cache: {{ kind: redis, url: \"rediss://127.0.0.1:{port}\", failover: {{ check_timeout: 2s }}{tls} }}\ncache:\n  default: {{ ttl: 30s, l2: cache }}\n"
    )
}

/// With the CA: healthy, and the cache uses L2 and the backplane over TLS.
/// Without it (system roots) or with another CA: the cache is `Degraded`
/// (the handshake is refused) and the repositories still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_from_yaml() {
    let certs = TestCerts::new();
    let Some(server) = or_skip("redis-server", LocalRedis::start_tls(&certs)) else {
        return;
    };
    let port = server.port();
    let trusted = format!(
        ", tls: {{ mode: verify-full, root_cert: \"{}\" }}",
        certs.ca().display()
    );
    let other = format!(
        ", tls: {{ mode: verify-full, root_cert: \"{}\" }}",
        certs.other_ca().display()
    );
    for (tls, up) in [
        (trusted.as_str(), true),
        ("", false),
        (other.as_str(), false),
    ] {
        let p = Persistence::new(load(&yaml(port, tls)).expect("config")).expect("manager");
        let items = p.repo::<Item>().await.expect("repo");
        items
            .insert(&Item {
                id: 1,
                name: "a".into(),
            })
            .await
            .expect("insert");
        assert!(items.get(&1).await.expect("get").is_some());
        let report = p.health().await;
        let cache = report
            .databases
            .iter()
            .find(|d| d.name == "cache")
            .expect("cache")
            .clone();
        let layer = p.cache_status().into_iter().next().expect("one layer");
        if up {
            assert_eq!(cache.state, HealthState::Healthy, "{tls}: {cache:?}");
            assert_eq!(layer.status.l2_up, Some(true), "{layer:?}");
        } else {
            assert_eq!(cache.state, HealthState::Degraded, "{tls}: {cache:?}");
            assert_eq!(layer.status.l2_up, Some(false), "{layer:?}");
            let reason = cache.error.unwrap_or_default();
            assert!(!reason.contains("rediss://"), "no URL: {reason}");
        }
        p.shutdown().await;
    }
}

/// The `tls` section is checked when the configuration loads.
#[test]
fn tls_settings_are_validated() {
    let certs = TestCerts::new();
    let ca = certs.ca();
    let ca = ca.display();
    let cases = [
        (
            format!(
                "databases:\n  c: {{ kind: redis, url: \"redis://127.0.0.1:6379\", tls: {{ mode: verify-full, root_cert: \"{ca}\" }} }}\n"
            ),
            "databases.c.tls needs a rediss:// url",
        ),
        (
            format!(
                "databases:\n  c: {{ kind: redis, url: \"rediss://127.0.0.1:6379\", tls: {{ mode: require, root_cert: \"{ca}\" }} }}\n"
            ),
            "databases.c.tls.mode",
        ),
        (
            format!(
                "databases:\n  c: {{ kind: redis, url: \"rediss://127.0.0.1:6379\", tls: {{ mode: verify-full, client_cert: \"{ca}\" }} }}\n"
            ),
            "go together",
        ),
        (
            format!(
                "databases:\n  m: {{ kind: mongo, url: \"mongodb://127.0.0.1:27017\", tls: {{ mode: verify-full, root_cert: \"{ca}\" }} }}\n"
            ),
            "databases.m.tls applies to kinds postgres and redis, not mongo",
        ),
        (
            format!(
                "databases:\n  p: {{ kind: postgres, url: \"postgres://127.0.0.1/x\", tls: {{ mode: verify-full, client_cert: \"{ca}\", client_key: \"{ca}\" }} }}\n"
            ),
            "client certificates are supported for kind redis only",
        ),
    ];
    for (yaml, expected) in cases {
        let err = load(&yaml).and_then(Persistence::new).expect_err(&yaml);
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(expected), "{yaml}\n{err}");
    }
}

/// A CA file that does not exist fails when the cache is built, naming the
/// setting and the file, never the URL's password.
#[tokio::test]
async fn a_missing_ca_file_is_a_config_error() {
    let yaml = "databases:\n  main: { kind: memory }\n  cache: { kind: redis, url: \"rediss://:hunter2@127.0.0.1:1\", tls: { mode: verify-full, root_cert: /nonexistent/ca.pem } }\ncache:\n  default: { ttl: 30s, l2: cache }\n";
    let p = Persistence::new(load(yaml).expect("config")).expect("manager");
    let err = p.repo::<Item>().await.expect_err("missing CA file");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("root_cert") && text.contains("/nonexistent/ca.pem"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
