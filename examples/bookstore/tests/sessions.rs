//! Sessions expire: in process and in Redis.

use std::time::{Duration, Instant};

use persistence::cache::CacheLayer;
use persistence_bookstore::sessions::{SessionData, Sessions};
use uuid::Uuid;

async fn expires(sessions: Sessions) {
    let data = SessionData {
        customer_id: Uuid::now_v7(),
        name: "Reader".into(),
    };
    let long = sessions
        .create(data.clone(), Duration::from_secs(600))
        .await
        .expect("create");
    let short = sessions
        .create(data.clone(), Duration::from_millis(300))
        .await
        .expect("create");
    assert_ne!(long.token, short.token);
    assert_eq!(
        sessions
            .get(&long.token)
            .await
            .expect("get")
            .map(|s| s.data),
        Some(data.clone())
    );
    // Bounded wait: the short one disappears, the long one stays.
    let deadline = Instant::now() + Duration::from_secs(15);
    while sessions.get(&short.token).await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sessions.get(&long.token).await.expect("get").is_some());
    assert!(sessions.destroy(&long.token).await.expect("destroy"));
    assert!(sessions.get(&long.token).await.expect("get").is_none());
    assert!(sessions.get("not-a-token").await.expect("get").is_none());
}

#[tokio::test]
async fn in_process_sessions_expire() {
    expires(Sessions::new(None).expect("sessions")).await;
}

#[tokio::test]
async fn redis_sessions_expire() {
    // Its own key prefix, deleted when the guard drops (also on panic).
    let Some(redis) = persistence_testing::TestRedis::new().await else {
        return;
    };
    let layer = CacheLayer::builder()
        .prefix(redis.prefix())
        .redis_url(redis.url())
        .build()
        .expect("layer");
    expires(Sessions::new(Some(&layer)).expect("sessions")).await;
}
