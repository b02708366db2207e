//! Configuration loading, errors and environment detection.
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use persistence::ErrorKind;
use persistence::config::{ConfigLoader, DatabaseKind, Probe, detect, interpolate};

const FULL: &str = r#"
databases:
  main:
    kind: postgres
    url: ${DB_URL:-postgres://app:hunter2@db.internal:5432/app}
    schema: app
    pool:
      max_connections: 20
      acquire_timeout: 5s
      statement_timeout: 30s
      statement_cache_capacity: 400
      tenant_shards: 4
      tenant_statements: search_path
    replicas: ["postgres://app:hunter2@replica:5432/app"]
    timeout: 2s
    retry: { max_attempts: 4, base_delay: 10ms, max_delay: 500ms }
    breaker: { failure_threshold: 3, open_for: 15s }
  catalog: { kind: mongo, url: "mongodb://127.0.0.1:27017", database: catalog }
  cache: { kind: redis, url: "redis://:s3cret@127.0.0.1:6379" }
  local: { kind: memory }
cache:
  default: { ttl: 5m, negative_ttl: 30s, l2: cache }
  entities:
    users: { ttl: 1m }
profiles:
  production:
    databases:
      main:
        pool: { max_connections: 50 }
"#;

fn load(
    text: &str,
    vars: &[(&str, &str)],
) -> persistence::Result<persistence::config::PersistenceConfig> {
    ConfigLoader::new()
        .text("persistence.yaml", text)
        .env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .load()
}

fn config_error(text: &str, vars: &[(&str, &str)]) -> String {
    let err = load(text, vars).expect_err("config error");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    err.to_string()
}

#[test]
fn loads_a_full_file() {
    let c = load(FULL, &[]).expect("valid");
    let main = &c.databases["main"];
    assert_eq!(main.kind, DatabaseKind::Postgres);
    assert_eq!(main.pool.max_connections, Some(20));
    assert_eq!(main.pool.acquire_timeout, Some(Duration::from_secs(5)));
    assert_eq!(main.pool.statement_cache_capacity, Some(400));
    assert_eq!(main.pool.tenant_shards, Some(4));
    assert_eq!(
        main.pool.tenant_statements,
        Some(persistence::config::TenantStatementsConfig::SearchPath)
    );
    assert_eq!(main.retry.as_ref().map(|r| r.max_attempts), Some(4));
    // Writes of unknown outcome are resolved unless turned off.
    assert_eq!(main.retry.as_ref().map(|r| r.resolve_writes), Some(true));
    assert_eq!(c.databases["catalog"].database.as_deref(), Some("catalog"));
    assert_eq!(c.cache_policy("users").ttl, Some(Duration::from_secs(60)));
    assert_eq!(c.cache_policy("orders").ttl, Some(Duration::from_secs(300)));
    assert_eq!(
        main.url.as_ref().map(|u| u.expose()),
        Some("postgres://app:hunter2@db.internal:5432/app")
    );
}

#[test]
fn retry_resolve_writes_defaults_to_on_and_can_be_turned_off() {
    use persistence::layer::{ResolveOutcome, Retry};
    let c = load(FULL, &[]).expect("valid");
    let main = &c.databases["main"];
    assert_eq!(
        Retry::from_config(main.retry.as_ref()).resolution(),
        ResolveOutcome::ReadBack
    );
    assert_eq!(
        Retry::from_config(main.retry.as_ref())
            .config()
            .max_attempts,
        4
    );
    // No retry section at all: the defaults, writes resolved.
    assert_eq!(
        Retry::from_config(None).resolution(),
        ResolveOutcome::ReadBack
    );
    let off = FULL.replace(
        "max_delay: 500ms }",
        "max_delay: 500ms, resolve_writes: false }",
    );
    let c = load(&off, &[]).expect("valid");
    let main = &c.databases["main"];
    assert_eq!(main.retry.as_ref().map(|r| r.resolve_writes), Some(false));
    assert_eq!(
        Retry::from_config(main.retry.as_ref()).resolution(),
        ResolveOutcome::Never
    );
    let bad = FULL.replace(
        "max_delay: 500ms }",
        "max_delay: 500ms, resolve_writes: maybe }",
    );
    let err = config_error(&bad, &[]);
    assert!(err.contains("resolve_writes"), "{err}");
}

#[test]
fn secrets_never_show() {
    let c = load(FULL, &[]).expect("valid");
    let described = c.describe();
    let debugged = format!("{c:?}");
    for shown in [&described, &debugged] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    assert!(
        described.contains("main: postgres at postgres://app:***@db.internal:5432/app"),
        "{described}"
    );
}

#[test]
fn interpolates_variables_with_defaults_and_escapes() {
    let get = |k: &str| (k == "HOST").then(|| "db1".to_string());
    assert_eq!(
        interpolate("a ${HOST} b ${PORT:-5432} $${LITERAL} $x", get).expect("ok"),
        "a db1 b 5432 ${LITERAL} $x"
    );
    let c = load(FULL, &[("DB_URL", "postgres://u@elsewhere/x")]).expect("valid");
    assert_eq!(
        c.databases["main"].url.as_ref().map(|u| u.expose()),
        Some("postgres://u@elsewhere/x")
    );
}

#[test]
fn missing_variable_names_it_and_the_line() {
    let msg = config_error(
        "databases:\n  main:\n    kind: postgres\n    url: ${MISSING_DB_URL}\n",
        &[],
    );
    assert!(
        msg.contains("MISSING_DB_URL") && msg.contains("line 4"),
        "{msg}"
    );
    let msg = config_error("databases:\n  main:\n    url: \"${OOPS\"\n", &[]);
    assert!(msg.contains("line 3") && msg.contains("unclosed"), "{msg}");
    let msg = config_error(
        "databases:\n  main: { kind: postgres, url: \"${OOPS\" }\n",
        &[],
    );
    assert!(
        msg.contains("line 2") && msg.contains("not a valid variable reference"),
        "{msg}"
    );
}

#[test]
fn unknown_key_is_rejected_with_path_and_line() {
    let text = "databases:\n  main:\n    kind: postgres\n    url: postgres://h/db\n    pool:\n      max_conections: 5\n";
    let msg = config_error(text, &[]);
    assert!(msg.contains("databases.main.pool.max_conections"), "{msg}");
    assert!(msg.contains("line 6"), "{msg}");
    assert!(
        msg.contains("max_connections"),
        "lists the expected keys: {msg}"
    );
    let msg = config_error("databses: {}\n", &[]);
    assert!(msg.contains("databses") && msg.contains("line 1"), "{msg}");
}

#[test]
fn wrong_type_names_the_key_without_echoing_the_value() {
    let text = "databases:\n  main:\n    kind: postgres\n    url: postgres://h/db\n    pool:\n      max_connections: hunter2\n";
    let msg = config_error(text, &[]);
    assert!(msg.contains("databases.main.pool.max_connections"), "{msg}");
    assert!(msg.contains("line 6"), "{msg}");
    assert!(!msg.contains("hunter2"), "the value may be a secret: {msg}");
    let msg = config_error("databases:\n  main: { kind: oracle, url: x }\n", &[]);
    assert!(
        msg.contains("databases.main.kind") && msg.contains("postgres"),
        "{msg}"
    );
    let msg = config_error(
        "databases:\n  main: { kind: postgres, url: x, timeout: soon }\n",
        &[],
    );
    assert!(msg.contains("databases.main.timeout"), "{msg}");
}

#[test]
fn bad_yaml_names_the_line() {
    let msg = config_error("databases:\n  main: [unclosed\n", &[]);
    assert!(msg.to_lowercase().contains("line"), "{msg}");
}

#[test]
fn bad_urls_and_references_are_config_errors() {
    let msg = config_error(
        "databases:\n  main: { kind: postgres, url: \"mysql://root:pw@h/db\" }\n",
        &[],
    );
    assert!(
        msg.contains("databases.main.url") && msg.contains("postgres://"),
        "{msg}"
    );
    assert!(!msg.contains(":pw@"), "{msg}");
    let msg = config_error("databases:\n  main: { kind: postgres }\n", &[]);
    assert!(msg.contains("databases.main.url is required"), "{msg}");
    let msg = config_error(
        "databases:\n  m: { kind: memory }\ncache:\n  default: { l2: m }\n",
        &[],
    );
    assert!(
        msg.contains("cache.default.l2") && msg.contains("redis"),
        "{msg}"
    );
    let msg = config_error("databases:\n  \"bad name\": { kind: memory }\n", &[]);
    assert!(msg.contains("bad name"), "{msg}");
}

#[test]
fn reserved_and_hostile_names_are_refused_at_load_with_the_key() {
    for (db, words) in [
        (
            "{ kind: postgres, url: \"postgres://h/db\", schema: public }",
            "databases.main.schema: \"public\" is reserved",
        ),
        (
            "{ kind: postgres, url: \"postgres://h/db\", schema: information_schema }",
            "databases.main.schema: \"information_schema\" is reserved",
        ),
        (
            "{ kind: postgres, url: \"postgres://h/db\", schema: pg_temp }",
            "databases.main.schema: \"pg_temp\" is reserved",
        ),
        (
            "{ kind: postgres, url: \"postgres://h/db\", schema: 'x\"; DROP TABLE t; --' }",
            "databases.main.schema: \"x\\\"; DROP TABLE t; --\" is not a valid schema name",
        ),
        (
            "{ kind: mongo, url: \"mongodb://h\", database: admin }",
            "databases.main.database: \"admin\" is reserved",
        ),
        (
            "{ kind: mongo, url: \"mongodb://h\", database: local }",
            "databases.main.database: \"local\" is reserved",
        ),
    ] {
        let msg = config_error(&format!("databases:\n  main: {db}\n"), &[]);
        assert!(msg.contains(words), "{msg}");
    }
    // Unset, the schema is the default one (not an error).
    load(
        "databases:\n  main: { kind: postgres, url: \"postgres://h/db\" }\n",
        &[],
    )
    .expect("no schema");
}

#[test]
fn profiles_and_environment_overrides_layer_in_order() {
    let c = load(FULL, &[("PERSISTENCE_ENV", "production")]).expect("valid");
    assert_eq!(
        c.databases["main"].pool.max_connections,
        Some(50),
        "profile overlay"
    );
    assert_eq!(
        c.databases["main"].pool.acquire_timeout,
        Some(Duration::from_secs(5)),
        "rest of the file kept"
    );
    let c = load(
        FULL,
        &[
            ("PERSISTENCE_ENV", "production"),
            (
                "PERSISTENCE__DATABASES__MAIN__URL",
                "postgres://over@ride/x",
            ),
            ("PERSISTENCE__DATABASES__MAIN__POOL__MAX_CONNECTIONS", "7"),
        ],
    )
    .expect("valid");
    assert_eq!(
        c.databases["main"].url.as_ref().map(|u| u.expose()),
        Some("postgres://over@ride/x")
    );
    assert_eq!(
        c.databases["main"].pool.max_connections,
        Some(7),
        "environment beats the profile"
    );
    let msg = config_error(
        FULL,
        &[("PERSISTENCE__DATABASES__MAIN__POOL__MAX_CONECTIONS", "7")],
    );
    assert!(
        msg.contains("max_conections"),
        "typos in overrides are rejected too: {msg}"
    );
}

#[test]
fn toml_and_json_work_too() {
    let toml = "[databases.main]\nkind = \"sqlite\"\nurl = \"sqlite::memory:\"\n";
    let c = ConfigLoader::new()
        .text("p.toml", toml)
        .env(Vec::new())
        .load()
        .expect("toml");
    assert_eq!(c.databases["main"].kind, DatabaseKind::Sqlite);
    let json = r#"{"databases": {"docs": {"kind": "memory"}}}"#;
    let c = ConfigLoader::new()
        .text("p.json", json)
        .env(Vec::new())
        .load()
        .expect("json");
    assert_eq!(c.databases["docs"].kind, DatabaseKind::Memory);
}

fn closed_port() -> SocketAddr {
    // Bind then drop: nothing listens there afterwards.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

fn vars(v: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    Some(
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn detection_prefers_env_urls_then_local_servers_then_embedded() {
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open_addr = open.local_addr().expect("addr");
    let nothing = Probe {
        postgres: closed_port(),
        mongo: closed_port(),
        redis: closed_port(),
        env: vars(&[]),
        ..Probe::default()
    };

    let d = detect("development", &nothing).expect("embedded");
    assert_eq!(d.config.databases["main"].kind, DatabaseKind::Sqlite);
    assert_eq!(d.config.databases["documents"].kind, DatabaseKind::Memory);
    assert!(!d.config.databases.contains_key("cache"));
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("embedded in-memory SQLite")),
        "{:?}",
        d.reasons
    );

    let local = Probe {
        postgres: open_addr,
        redis: open_addr,
        ..nothing.clone()
    };
    let d = detect("development", &local).expect("probe");
    assert_eq!(d.config.databases["main"].kind, DatabaseKind::Postgres);
    assert!(
        d.reasons.iter().any(|r| r.contains("answering on")),
        "{:?}",
        d.reasons
    );
    assert_eq!(d.config.cache.default.l2.as_deref(), Some("cache"));

    let env = Probe {
        env: vars(&[
            ("DATABASE_URL", "postgres://u:pw@envhost/db"),
            ("MONGODB_URL", "mongodb://m/"),
        ]),
        ..local.clone()
    };
    let d = detect("development", &env).expect("env");
    assert_eq!(
        d.config.databases["main"].url.as_ref().map(|u| u.expose()),
        Some("postgres://u:pw@envhost/db")
    );
    assert_eq!(d.config.databases["documents"].kind, DatabaseKind::Mongo);
    assert!(d.reasons.iter().any(|r| r.contains("from DATABASE_URL")));
    assert!(
        d.reasons.iter().all(|r| !r.contains(":pw@")),
        "{:?}",
        d.reasons
    );
    drop(open);
}

#[test]
fn production_has_no_embedded_fallback() {
    let nothing = Probe {
        postgres: closed_port(),
        mongo: closed_port(),
        redis: closed_port(),
        env: vars(&[]),
        ..Probe::default()
    };
    let err = detect("production", &nothing).expect_err("no fallback");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
}

#[test]
fn env_only_probe_never_picks_up_a_local_server() {
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open_addr = open.local_addr().expect("addr");
    let probe = Probe {
        postgres: open_addr,
        mongo: open_addr,
        redis: open_addr,
        env: vars(&[]),
        ..Probe::env_only()
    };
    let d = detect("development", &probe).expect("embedded");
    assert_eq!(d.config.databases["main"].kind, DatabaseKind::Sqlite);
    assert_eq!(d.config.databases["documents"].kind, DatabaseKind::Memory);
    assert!(!d.config.databases.contains_key("cache"));
    assert!(
        d.reasons
            .iter()
            .all(|r| r.contains("local servers not probed")),
        "{:?}",
        d.reasons
    );
    // Environment URLs still win.
    let probe = Probe {
        env: vars(&[("DATABASE_URL", "postgres://u@envhost/db")]),
        ..probe
    };
    let d = detect("development", &probe).expect("env");
    assert_eq!(d.config.databases["main"].kind, DatabaseKind::Postgres);
    drop(open);
}

#[test]
fn failover_section_defaults_overrides_and_errors() {
    let text = "databases:\n  main:\n    kind: postgres\n    url: postgres://h/db\n    replicas: [\"postgres://r/db\"]\n    backup: postgres://b/db\n    failover: { check_interval: 250ms }\n";
    let c = load(text, &[]).expect("valid");
    let f = c.databases["main"].failover.clone().expect("failover");
    assert_eq!(f.check_interval, Duration::from_millis(250));
    assert_eq!(f.check_timeout, Duration::from_millis(500), "default");
    assert!(f.read_from_replicas, "default");
    let c = load(
        text,
        &[(
            "PERSISTENCE__DATABASES__MAIN__FAILOVER__READ_FROM_REPLICAS",
            "false",
        )],
    )
    .expect("valid");
    assert_eq!(
        c.databases["main"]
            .failover
            .as_ref()
            .map(|f| f.read_from_replicas),
        Some(false)
    );

    let msg = config_error(&text.replace("check_interval", "check_intervall"), &[]);
    assert!(
        msg.contains("databases.main.failover.check_intervall") && msg.contains("line 7"),
        "{msg}"
    );
    let msg = config_error(&text.replace("250ms", "0s"), &[]);
    assert!(msg.contains("databases.main.failover"), "{msg}");
    let msg = config_error(
        "databases:\n  local: { kind: memory, replicas: [\"x\"] }\n",
        &[],
    );
    assert!(
        msg.contains("databases.local") && msg.contains("not supported"),
        "{msg}"
    );
}

#[test]
fn recovery_interval_defaults_and_must_be_positive() {
    let text = "databases:\n  main: { kind: postgres, url: postgres://h/db, failover: { recovery_interval: 50ms } }\n";
    let c = load(text, &[]).expect("valid");
    let f = c.databases["main"].failover.clone().expect("failover");
    assert_eq!(f.recovery_interval, Duration::from_millis(50));
    assert_eq!(
        persistence::config::FailoverSettings::default().recovery_interval,
        Duration::from_millis(100)
    );
    assert!(
        persistence::config::FailoverSettings::default().check_timeout <= Duration::from_secs(1),
        "health notices a hang within a second by default"
    );
    let msg = config_error(&text.replace("50ms", "0s"), &[]);
    assert!(msg.contains("recovery_interval"), "{msg}");
}

#[test]
fn mongo_concerns_default_durable_parse_and_validate() {
    use persistence::config::{ReadConcernLevel, WriteAck, WriteConcernSettings};
    let d = WriteConcernSettings::default();
    assert_eq!(
        (d.w, d.journal, d.timeout),
        (WriteAck::Majority, true, None)
    );
    let c = load(
        "databases:\n  docs:\n    kind: mongo\n    url: mongodb://h\n    write_concern: { w: 1, timeout: 2s }\n    read_concern: { level: majority }\n  tagged: { kind: mongo, url: mongodb://h, write_concern: { w: dc2 } }\n  plain: { kind: mongo, url: mongodb://h, write_concern: {} }\n",
        &[],
    )
    .expect("valid");
    let wc = c.databases["docs"].write_concern.clone().expect("set");
    assert_eq!(wc.w, WriteAck::Nodes(1));
    assert!(wc.journal, "journal stays on unless switched off");
    assert_eq!(wc.timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        c.databases["docs"].read_concern.as_ref().map(|r| r.level),
        Some(ReadConcernLevel::Majority)
    );
    assert_eq!(
        c.databases["tagged"]
            .write_concern
            .as_ref()
            .map(|w| w.w.clone()),
        Some(WriteAck::Tag("dc2".into()))
    );
    assert_eq!(
        c.databases["plain"].write_concern,
        Some(WriteConcernSettings::default())
    );

    let msg = config_error(
        "databases:\n  main: { kind: postgres, url: postgres://h/db, write_concern: { w: 1 } }\n",
        &[],
    );
    assert!(
        msg.contains("databases.main.write_concern") && msg.contains("mongo"),
        "{msg}"
    );
    let msg = config_error(
        "databases:\n  docs: { kind: mongo, url: mongodb://h, write_concern: { w: 0 } }\n",
        &[],
    );
    assert!(msg.contains("journal"), "{msg}");
    let msg = config_error(
        "databases:\n  docs: { kind: mongo, url: mongodb://h, read_concern: { level: eventually } }\n",
        &[],
    );
    assert!(msg.contains("read_concern"), "{msg}");
}
