//! Login sessions with expiry: in Redis through `persistence-cache`'s
//! session store when Redis is configured, otherwise in process (a map with
//! expiry times, swept every 30 s; expired sessions are never returned).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use persistence::Result;
use persistence::cache::CacheLayer;
use persistence::cache::sessions::SessionStore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a session remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// The customer.
    pub customer_id: Uuid,
    /// Their display name.
    pub name: String,
}

/// A live session.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSession {
    /// Token (256 random bits, hex).
    pub token: String,
    /// Data.
    pub data: SessionData,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

struct Local {
    data: SessionData,
    expires: Instant,
    expires_at: DateTime<Utc>,
}

/// The session store in use: Redis (shared by every instance, expiry by
/// Redis) or in this process only. Cheap to clone.
#[derive(Clone)]
pub struct Sessions(Store);

#[derive(Clone)]
enum Store {
    Redis(SessionStore<SessionData>),
    Local(Arc<Mutex<HashMap<String, Local>>>),
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl Sessions {
    /// Redis sessions on `layer`'s Redis, or in-process ones when it has none.
    pub fn new(layer: Option<&CacheLayer>) -> Result<Sessions> {
        match layer {
            Some(layer) => Ok(Sessions(Store::Redis(SessionStore::new(
                layer, "sessions",
            )?))),
            None => {
                let map: Arc<Mutex<HashMap<String, Local>>> = Arc::default();
                let weak = Arc::downgrade(&map);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(30));
                    loop {
                        tick.tick().await;
                        let Some(map) = weak.upgrade() else { break };
                        let now = Instant::now();
                        map.lock().retain(|_, s| s.expires > now);
                    }
                });
                Ok(Sessions(Store::Local(map)))
            }
        }
    }

    /// `redis` or `in-process`.
    pub fn describe(&self) -> &'static str {
        match &self.0 {
            Store::Redis(_) => "redis (persistence-cache session store)",
            Store::Local(_) => "in-process (no REDIS_URL)",
        }
    }

    /// Open a session for `data` valid for `ttl`.
    pub async fn create(&self, data: SessionData, ttl: Duration) -> Result<LiveSession> {
        match &self.0 {
            Store::Redis(store) => {
                let s = store
                    .create(&data.customer_id.to_string(), data, ttl)
                    .await?;
                Ok(LiveSession {
                    token: s.id,
                    data: s.data,
                    expires_at: s.expires_at,
                })
            }
            Store::Local(map) => {
                let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
                let expires_at =
                    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
                map.lock().insert(
                    token.clone(),
                    Local {
                        data: data.clone(),
                        expires: Instant::now() + ttl,
                        expires_at,
                    },
                );
                Ok(LiveSession {
                    token,
                    data,
                    expires_at,
                })
            }
        }
    }

    /// The live session of `token` (`None`: unknown or expired).
    pub async fn get(&self, token: &str) -> Result<Option<LiveSession>> {
        match &self.0 {
            Store::Redis(store) => Ok(store.get(token).await?.map(|s| LiveSession {
                token: s.id,
                data: s.data,
                expires_at: s.expires_at,
            })),
            Store::Local(map) => {
                let mut map = map.lock();
                match map.get(token) {
                    Some(s) if s.expires > Instant::now() => Ok(Some(LiveSession {
                        token: token.to_string(),
                        data: s.data.clone(),
                        expires_at: s.expires_at,
                    })),
                    Some(_) => {
                        map.remove(token);
                        Ok(None)
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// End a session; false when it did not exist.
    pub async fn destroy(&self, token: &str) -> Result<bool> {
        match &self.0 {
            Store::Redis(store) => store.destroy(token).await,
            Store::Local(map) => Ok(map.lock().remove(token).is_some()),
        }
    }
}
