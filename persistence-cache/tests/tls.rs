//! L2 and the backplane over TLS (`rediss://`): a redis-server of the
//! test's own that accepts only TLS, with a certificate signed by a CA the
//! test made. Trusting that CA connects; the system roots or another CA are
//! refused; TLS settings with a `redis://` URL or a missing file are
//! `Config` errors up front.
mod common;

use std::time::{Duration, Instant};

use common::{Item, item};
use persistence_cache::{CacheLayer, RedisEndpoint, RedisTls};
use persistence_core::{ErrorKind, MemoryRepository, Repository};
use persistence_testing::local::{LocalRedis, or_skip};
use persistence_testing::tls::TestCerts;

fn trusting(port: u16, ca: std::path::PathBuf) -> RedisEndpoint {
    RedisEndpoint::with_tls(
        format!("rediss://127.0.0.1:{port}"),
        &RedisTls {
            root_cert: Some(ca),
            ..RedisTls::default()
        },
    )
    .expect("endpoint")
}

fn layer(prefix: &str, endpoint: RedisEndpoint) -> CacheLayer {
    CacheLayer::builder()
        .prefix(prefix)
        .redis_endpoint(endpoint)
        .l2_timeout(Duration::from_secs(2))
        .build()
        .expect("layer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_over_tls_needs_the_servers_ca() {
    let certs = TestCerts::new();
    let Some(server) = or_skip("redis-server", LocalRedis::start_tls(&certs)) else {
        return;
    };
    let port = server.port();
    let prefix = common::prefix("tls");

    // Trusting the CA that signed the server certificate: L2 answers.
    let good = layer(&prefix, trusting(port, certs.ca()));
    let rtt = good.ping_l2().await.expect("has L2");
    assert!(rtt.is_ok(), "{rtt:?}");
    let mem = MemoryRepository::<Item>::new();
    let repo = good.wrap(mem.clone());
    repo.insert(&item(1, "a", 1)).await.expect("insert");
    assert!(repo.get(&1).await.expect("get").is_some());
    // A second layer (another process, same prefix) finds it in L2 over TLS.
    let other = CacheLayer::builder()
        .prefix(&prefix)
        .without_l1()
        .redis_endpoint(trusting(port, certs.ca()))
        .l2_timeout(Duration::from_secs(2))
        .build()
        .expect("layer");
    let from_l2 = other.wrap(mem.clone());
    assert!(from_l2.get(&1).await.expect("get").is_some());
    let stats = from_l2.stats();
    assert_eq!((stats.l2_hits, stats.loads), (1, 0), "{stats:?}");

    // The system roots, or another CA: the handshake is refused.
    for refused in [
        RedisEndpoint::new(format!("rediss://127.0.0.1:{port}")),
        trusting(port, certs.other_ca()),
    ] {
        let layer = layer(&prefix, refused.clone());
        let err = layer
            .ping_l2()
            .await
            .expect("has L2")
            .expect_err("untrusted certificate");
        assert!(
            matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
            "{refused:?}: {err}"
        );
        // Reads still work (from the source), never from an unverified server.
        let repo = layer.wrap(mem.clone());
        assert!(repo.get(&1).await.expect("get from the source").is_some());
        assert_eq!(repo.stats().l2_hits, 0);
    }

    // Plain TCP is off on this server: a redis:// URL does not connect.
    let plain = layer(
        &prefix,
        RedisEndpoint::new(format!("redis://127.0.0.1:{port}")),
    );
    assert!(plain.ping_l2().await.expect("has L2").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backplane_subscribes_over_tls() {
    let certs = TestCerts::new();
    let Some(server) = or_skip("redis-server", LocalRedis::start_tls(&certs)) else {
        return;
    };
    let port = server.port();
    let prefix = common::prefix("tls-bp");
    let build = || {
        CacheLayer::builder()
            .prefix(&prefix)
            .redis_endpoint(trusting(port, certs.ca()))
            .l2_timeout(Duration::from_secs(2))
            .backplane(true)
            .build()
            .expect("layer")
    };
    let (a, b) = (build(), build());
    let mem = MemoryRepository::<Item>::new();
    let (ra, rb) = (a.wrap(mem.clone()), b.wrap(mem.clone()));
    mem.insert(&item(1, "old", 1)).await.expect("insert");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(a.status().backplane_connected == Some(true)
        && b.status().backplane_connected == Some(true))
    {
        assert!(
            Instant::now() < deadline,
            "backplane never connected over TLS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        rb.get(&1).await.expect("get").map(|i| i.name),
        Some("old".into())
    );
    // A write through A reaches B's L1 over the TLS backplane.
    let mut changed = ra.get(&1).await.expect("get").expect("row");
    changed.name = "new".into();
    ra.update(&changed).await.expect("update");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = rb.get(&1).await.expect("get").map(|i| i.name);
        if seen.as_deref() == Some("new") {
            break;
        }
        assert!(Instant::now() < deadline, "B kept {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn tls_settings_are_checked_up_front() {
    let certs = TestCerts::new();
    let err = RedisEndpoint::with_tls(
        "redis://127.0.0.1:6379",
        &RedisTls {
            root_cert: Some(certs.ca()),
            ..RedisTls::default()
        },
    )
    .expect_err("plain url");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("rediss://"), "{err}");

    let err = RedisEndpoint::with_tls(
        "rediss://:hunter2@127.0.0.1:6379",
        &RedisTls {
            root_cert: Some(certs.dir().join("missing.pem")),
            ..RedisTls::default()
        },
    )
    .expect_err("missing file");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("root_cert"), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let err = RedisEndpoint::with_tls(
        "rediss://127.0.0.1:6379",
        &RedisTls {
            client_cert: Some(certs.server_cert()),
            ..RedisTls::default()
        },
    )
    .expect_err("cert without key");
    assert!(err.to_string().contains("client_key"), "{err}");

    let ok = RedisEndpoint::with_tls(
        "rediss://:hunter2@127.0.0.1:6379",
        &RedisTls {
            root_cert: Some(certs.ca()),
            ..RedisTls::default()
        },
    )
    .expect("valid");
    assert!(!format!("{ok:?}").contains("hunter2"), "{ok:?}");
}
