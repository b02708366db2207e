//! Every configuration key, defined once (`databases.<name>.<key>` etc.).

/// Top level: named databases.
pub const DATABASES: &str = "databases";
/// Top level: cache policy.
pub const CACHE: &str = "cache";
/// Cache policy (`default` or per entity): lifetime of cached values at both
/// levels (default 5m).
pub const CACHE_TTL: &str = "ttl";
/// Cache policy: lifetime of a cached "not found" (default 30s; capped by
/// `l1_ttl` / `l2_ttl` at their level when those are set).
pub const CACHE_NEGATIVE_TTL: &str = "negative_ttl";
/// Cache policy: lifetime in L1 (in-process, moka per-entry expiry);
/// default the policy's `ttl`.
pub const CACHE_L1_TTL: &str = "l1_ttl";
/// Cache policy: lifetime in L2 (Redis `PX`); default the policy's `ttl`.
pub const CACHE_L2_TTL: &str = "l2_ttl";
/// Cache policy: L1 capacity in bytes of encoded entries (moka weigher by
/// the L2 encoding's size) for the entity type (each cached entity type has
/// its own L1); default none: 10000 entries (a `find` result counts its rows).
pub const CACHE_L1_MAX_BYTES: &str = "l1_max_bytes";
/// Cache policy: fail-safe on source failure, `{ max_age, throttle }`: a
/// load failing with a retryable error (`Unavailable`, `Timeout`, breaker
/// open) is answered with the last cached value if younger than `max_age`
/// and not invalidated since; the key is then not reloaded for `throttle`
/// (default 30s). Default: off.
pub const CACHE_FAIL_SAFE: &str = "fail_safe";
/// Fail-safe: oldest value served after a failed load (required).
pub const CACHE_FAIL_SAFE_MAX_AGE: &str = "max_age";
/// Fail-safe: no reload of a key for this long after a failed one (default 30s).
pub const CACHE_FAIL_SAFE_THROTTLE: &str = "throttle";
/// Cache policy: a load slower than this answers with the fail-safe's stale
/// value at once and finishes in the background (needs `fail_safe`;
/// default: none).
pub const CACHE_SOFT_TIMEOUT: &str = "soft_timeout";
/// Cache policy: a load slower than this, with nothing stale to serve, fails
/// with `Timeout` and finishes in the background (default: none).
pub const CACHE_HARD_TIMEOUT: &str = "hard_timeout";
/// Cache policy: a hit past this fraction of its TTL, in (0, 1), starts one
/// background reload (default: off).
pub const CACHE_EAGER_REFRESH: &str = "eager_refresh";
/// Cache policy: cross-process stampede protection, `true` or `{ ttl }`:
/// on an L2 miss one instance takes a short Redis lease on the key and
/// loads, the others wait for its value (or serve a fail-safe stale value
/// at once); needs `l2`. Default: off.
pub const CACHE_LEASE: &str = "lease";
/// Lease: its lifetime, the longest a dead holder keeps the others waiting
/// (default 3s; capped by `hard_timeout`).
pub const CACHE_LEASE_TTL: &str = "ttl";
/// Cache policy: write-through (default `true`): a write that returns the
/// stored row (`insert`, `update`, `upsert`, `patch`) and overlapped no
/// other write of the same key stores that row in L2 and this instance's
/// L1 instead of only invalidating them, so the next read is a hit; `false`:
/// invalidate only. See the README, "Write-through".
pub const CACHE_WRITE_THROUGH: &str = "write_through";
/// Cache (top level, `default` or per entity): cross-instance L1
/// invalidation over Redis pub/sub; default `true` where L2 is set.
pub const CACHE_BACKPLANE: &str = "backplane";
/// Cache: interval of the backplane heartbeat (default 250ms).
pub const CACHE_HEARTBEAT: &str = "heartbeat";
/// Cache: silence after which the backplane counts as lost and L1 is
/// dropped (default 3 heartbeats).
pub const CACHE_HEARTBEAT_TIMEOUT: &str = "heartbeat_timeout";
/// Cache: longest L1 lifetime while the backplane is lost (default 1s).
pub const CACHE_DEGRADED_TTL: &str = "degraded_ttl";
/// Cache: most entity keys whose invalidation may wait for Redis
/// (default 10000; beyond it the entity type is invalidated entirely).
pub const CACHE_MAX_QUEUED_INVALIDATIONS: &str = "max_queued_invalidations";
/// Top level: profile overlays.
pub const PROFILES: &str = "profiles";
/// Database: backend kind (`postgres`, `sqlite`, `mongo`, `redis`, `memory`).
pub const KIND: &str = "kind";
/// Database: connection URL (secret).
pub const URL: &str = "url";
/// Database (redis): the node URLs of a Redis Cluster (secrets; some of its
/// nodes, the client discovers the others), instead of `url`.
pub const CLUSTER: &str = "cluster";
/// Database: PostgreSQL schema.
pub const SCHEMA: &str = "schema";
/// Database: what the manager does with each entity's table / collection
/// when it first hands out its repository: `ensure` (the default: create
/// what is missing, see `Repository::ensure_schema`), `verify` (only
/// compare, `Repository::verify_schema`; any error refuses the repository
/// with a `Config` error listing every difference) or `off` (nothing).
/// Not `schema`, which names the PostgreSQL schema.
pub const SCHEMA_MODE: &str = "schema_mode";
/// Database: MongoDB database name.
pub const DATABASE: &str = "database";
/// Database: the entities (their `#[entity(name)]`) that live in this
/// database, e.g. `entities: [reviews]`; an entity listed nowhere lives in
/// the default database. The YAML form of `Persistence::place`: `repo`,
/// eager loading through the manager and cross-store relations follow it.
pub const ENTITIES: &str = "entities";
/// Database: how its tenants are isolated, `{ strategy, prefix,
/// auto_provision, tracked, window }` (see `Persistence::tenant_repo`).
pub const TENANCY: &str = "tenancy";
/// Tenancy: `schema` (PostgreSQL schema / MongoDB collection prefix per
/// tenant), `row` (an `#[entity(tenant)]` field) or `database` (MongoDB
/// database per tenant).
pub const TENANCY_STRATEGY: &str = "strategy";
/// Tenancy (`database` strategy): prefix of each tenant's database.
pub const TENANCY_PREFIX: &str = "prefix";
/// Tenancy (`schema` / `database`): provision a tenant when its first
/// repository is asked for (default false).
pub const TENANCY_AUTO_PROVISION: &str = "auto_provision";
/// Tenancy: most tenants whose activity is tracked (default 10000).
pub const TENANCY_TRACKED: &str = "tracked";
/// Tenancy: window of the per-tenant activity rates (default 10s).
pub const TENANCY_WINDOW: &str = "window";
/// Database: pool settings.
pub const POOL: &str = "pool";
/// Database: read replica URLs (secrets).
pub const REPLICAS: &str = "replicas";
/// Database: backup / failover URL (secret).
pub const BACKUP: &str = "backup";
/// Database: per-call timeout.
pub const TIMEOUT: &str = "timeout";
/// Database: retry settings.
pub const RETRY: &str = "retry";
/// Retry: resolve `insert`/`update`/`upsert` failures of unknown outcome
/// by reading the entity back (default `true`; see
/// [`persistence_core::layer::ResolveOutcome::ReadBack`]).
pub const RESOLVE_WRITES: &str = "resolve_writes";
/// Database: circuit breaker settings.
pub const BREAKER: &str = "breaker";
/// Database: TLS settings (`mode`, `root_cert`; for redis also
/// `client_cert` / `client_key`). PostgreSQL and Redis (`rediss://`);
/// MongoDB takes its TLS options in the URL.
pub const TLS: &str = "tls";
/// TLS: libpq-style mode; Redis accepts only `verify-full` (rustls always
/// verifies the certificate and the host name).
pub const TLS_MODE: &str = "mode";
/// TLS (redis only): client certificate (PEM) for mutual TLS, with `client_key`.
pub const TLS_CLIENT_CERT: &str = "client_cert";
/// TLS (redis only): the client certificate's private key (PEM).
pub const TLS_CLIENT_KEY: &str = "client_key";
/// Top level: metrics, slow-operation log and leak detection settings.
pub const METRICS: &str = "metrics";
/// Metrics: operations at least this slow are counted, warned about and
/// kept in the slow log (default 500ms).
pub const SLOW_THRESHOLD: &str = "slow_threshold";
/// Metrics: a connection, stream or transaction held longer than this is
/// reported as a possible leak (default 30s).
pub const LEAK_THRESHOLD: &str = "leak_threshold";
/// Metrics: warn once each time a pool's utilization (in use / max, percent)
/// rises to this or above (default 85; single-connection pools are exempt).
pub const POOL_WARN_UTILIZATION: &str = "pool_warn_utilization";
/// Metrics: how often pool gauges are sampled (default 1s).
pub const SAMPLE_INTERVAL: &str = "sample_interval";
/// Database: failover and replica routing settings.
pub const FAILOVER: &str = "failover";
/// Failover: how often the background checker pings every endpoint.
pub const CHECK_INTERVAL: &str = "check_interval";
/// Failover: how long one ping may take before the endpoint counts as
/// down (also the bound of `Persistence::health` and of the recovery
/// checker's pings for that database, with or without replicas; default 500ms).
pub const CHECK_TIMEOUT: &str = "check_timeout";
/// Failover: while the database's circuit breaker is open, how often one
/// ping checks whether it answers again (default 100ms); the first
/// answer lets a probe call through at once instead of after `breaker.open_for`.
pub const RECOVERY_INTERVAL: &str = "recovery_interval";
/// Failover: send reads to healthy replicas (round robin).
pub const READ_FROM_REPLICAS: &str = "read_from_replicas";
/// Database (mongo): the write concern, `{ w, journal, timeout }`;
/// default `{ w: majority, journal: true }`.
pub const WRITE_CONCERN: &str = "write_concern";
/// Write concern: acknowledgment, `majority`, a number of members or a tag set name.
pub const W: &str = "w";
/// Write concern: wait for the on-disk journal (default true).
pub const JOURNAL: &str = "journal";
/// Database (mongo): the read concern, `{ level }` (default: the server's, `local`).
pub const READ_CONCERN: &str = "read_concern";
/// Read concern: `local`, `available`, `majority`, `linearizable` or `snapshot`.
pub const LEVEL: &str = "level";
/// The environment variable selecting the profile.
pub const ENV_PROFILE: &str = "PERSISTENCE_ENV";
/// The prefix of override variables (`PERSISTENCE__DATABASES__MAIN__URL`).
pub const ENV_PREFIX: &str = "PERSISTENCE__";
/// Top level: the connection registry (`registry: { database, key_env, key_file, max_open_pools }`).
pub const REGISTRY: &str = "registry";
/// Registry: the name of the environment variable holding the key (base64 of 32 bytes).
pub const REGISTRY_KEY_ENV: &str = "key_env";
/// Registry: a file holding the key (base64 text or 32 raw bytes).
pub const REGISTRY_KEY_FILE: &str = "key_file";
/// Registry: most connection pools open at once (idle ones closed least recently used first).
pub const REGISTRY_MAX_OPEN_POOLS: &str = "max_open_pools";
/// The default variable holding the registry key (base64 of 32 bytes).
pub const ENV_REGISTRY_KEY: &str = "PERSISTENCE_REGISTRY_KEY";
/// The default variable naming a file that holds the registry key.
pub const ENV_REGISTRY_KEY_FILE: &str = "PERSISTENCE_REGISTRY_KEY_FILE";
