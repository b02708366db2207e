//! Smoke test of the `persistence-migrate` example CLI (its code, compiled
//! into this test): provision tenants, roll one back a step, then
//! `all-tenants status` shows it lagging, `all-tenants up --dry-run` lists
//! it and changes nothing, `all-tenants up` migrates it.
#[path = "support/tenant_migrators.rs"]
mod support;

#[allow(dead_code)]
#[path = "../examples/persistence_migrate.rs"]
mod cli;

use persistence_postgres::RelationalStore;
use support::*;

async fn run(args: &[&str]) -> Result<String, String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut out = Vec::new();
    match cli::run(&args, &mut out).await {
        Ok(()) => Ok(String::from_utf8(out).expect("utf-8")),
        Err(e) => Err(format!("{e:?}")),
    }
}

#[tokio::test]
async fn all_tenants_status_dry_run_and_up() {
    let Some(url) =
        persistence_testing::services::url(persistence_testing::services::Service::Postgres)
    else {
        return;
    };
    let sfx = persistence_testing::services::unique_suffix();
    with_control(4, move |store: RelationalStore| async move {
        let control = store.schema().expect("control").to_string();
        let (a, b) = (format!("cli{sfx}_a"), format!("cli{sfx}_b"));
        let on_control = ["--url", &url, "--schema", &control];
        for t in [&a, &b] {
            let out = run(&[&["tenant", "provision", t][..], &on_control].concat())
                .await
                .expect("provision");
            assert_eq!(out, format!("tenant provision {t}: done\n"));
        }
        // `verify`: a provisioned tenant's table matches; the control
        // schema has no `accounts` table, which is drift (exit 1).
        let verified = run(&["verify", "--url", &url, "--schema", &a])
            .await
            .expect("a tenant's tables match");
        assert!(verified.contains("matches"), "{verified}");
        let drift = run(&["verify", "--url", &url, "--schema", &control])
            .await
            .expect_err("no accounts table in the control schema");
        assert!(drift.contains("differs"), "{drift}");
        run(&["down", "--steps", "1", "--url", &url, "--schema", &b])
            .await
            .expect("down one step in b");

        let status = run(&[&["all-tenants", "status"][..], &on_control].concat())
            .await
            .expect("status");
        assert!(status.contains(&format!("{a} 2/2 done\n")), "{status}");
        assert!(
            status.contains(&format!(
                "{b} 1/2 done lagging: m0002_accounts_email_lower\n"
            )),
            "{status}"
        );
        assert!(status.ends_with("2 tenants, 1 lagging\n"), "{status}");

        let dry = run(&[&["all-tenants", "up", "--dry-run"][..], &on_control].concat())
            .await
            .expect("dry run");
        assert_eq!(
            dry,
            format!(
                "{b}: would apply m0002_accounts_email_lower\n\
                 dry run: 1 to migrate, 1 at head (nothing changed)\n"
            )
        );
        let again = run(&[&["all-tenants", "status"][..], &on_control].concat())
            .await
            .expect("status");
        assert_eq!(again, status, "the dry run changed nothing");

        let up = run(&[
            &["all-tenants", "up", "--concurrency", "2"][..],
            &on_control,
        ]
        .concat())
        .await
        .expect("up");
        assert_eq!(up, "1 migrated, 1 at head, 0 failed\n");
        let status = run(&[&["all-tenants", "status"][..], &on_control].concat())
            .await
            .expect("status");
        assert!(status.ends_with("2 tenants, 0 lagging\n"), "{status}");

        // Bad arguments are answered before connecting.
        for bad in [
            &["all-tenants", "down"][..],
            &["all-tenants", "up", "--concurrency", "x"],
            &["all-tenants", "up", "--bogus"],
        ] {
            let e = run(bad).await.expect_err("usage");
            assert!(e.starts_with("Usage("), "{e}");
        }
    })
    .await;
}
