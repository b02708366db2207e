//! `bookstore`: run the example application, or drive one with load.
//!
//! ```text
//! bookstore [--bind 127.0.0.1:8080] [--no-seed] [--self-load SECONDS]
//! bookstore --drop
//! bookstore --loadgen [--target 127.0.0.1:8080] [--requests N] [--seconds S] [--concurrency C]
//! ```
//!
//! Stores: `DATABASE_URL`, `MONGODB_URL`, `REDIS_URL` when set, else the
//! embedded defaults (in-memory SQLite, memory document store, moka).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use persistence_bookstore::loadgen::{LoadgenOptions, run};
use persistence_bookstore::{AppConfig, serve};

const USAGE: &str = "usage:
  bookstore [--bind ADDR] [--no-seed] [--self-load SECONDS]
      serve the bookstore (default 127.0.0.1:8080); --self-load runs the load
      generator against it for SECONDS after start, so the dashboard has data
  bookstore --drop
      drop this namespace's schema, tenant schemas and MongoDB database, then exit
  bookstore --loadgen [--target ADDR] [--requests N] [--seconds S] [--concurrency C]
      drive a running bookstore on this machine (loopback only) and print
      ops/s and latency percentiles (defaults: 20000 requests, 30 s, 8 clients)
environment: DATABASE_URL, MONGODB_URL, REDIS_URL (unset: embedded defaults),
  BOOKSTORE_NAMESPACE (schema / database / key prefix, default bookstore)";

struct Args {
    loadgen: bool,
    bind: SocketAddr,
    target: SocketAddr,
    requests: u64,
    seconds: u64,
    concurrency: usize,
    seed: bool,
    drop: bool,
    self_load: Option<u64>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        loadgen: false,
        bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
        target: SocketAddr::from(([127, 0, 0, 1], 8080)),
        requests: 20_000,
        seconds: 30,
        concurrency: 8,
        seed: true,
        drop: false,
        self_load: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--loadgen" => a.loadgen = true,
            "--no-seed" => a.seed = false,
            "--drop" => a.drop = true,
            "--bind" => {
                a.bind = value("--bind")?
                    .parse()
                    .map_err(|e| format!("--bind: {e}"))?
            }
            "--target" => {
                a.target = value("--target")?
                    .parse()
                    .map_err(|e| format!("--target: {e}"))?
            }
            "--requests" => {
                a.requests = value("--requests")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?
            }
            "--seconds" => {
                a.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--concurrency" => {
                a.concurrency = value("--concurrency")?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?
            }
            "--self-load" => {
                a.self_load = Some(
                    value("--self-load")?
                        .parse()
                        .map_err(|e| format!("--self-load: {e}"))?,
                )
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

fn loadgen_options(a: &Args, target: SocketAddr, seconds: u64) -> LoadgenOptions {
    LoadgenOptions {
        requests: a.requests,
        duration: Duration::from_secs(seconds),
        concurrency: a.concurrency,
        ..LoadgenOptions::new(target)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // INFO for the application and the framework; the driver's notices only from WARN up.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("sqlx", tracing::Level::WARN)
        // Slow operations are listed on the dashboard; at the demo's low
        // threshold (25 ms) one warning each would flood the console.
        .with_target("persistence_core::layer::metrics", tracing::Level::ERROR);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(false))
        .with(filter)
        .init();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bookstore: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.loadgen {
        return match run(loadgen_options(&args, args.target, args.seconds)).await {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bookstore --loadgen: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let mut config = AppConfig::from_env();
    config.seed = args.seed && !args.drop;
    if args.drop {
        let dropped = match persistence_bookstore::App::start(config).await {
            Ok(app) => app.destroy().await,
            Err(e) => Err(e),
        };
        return match dropped {
            Ok(()) => {
                println!("bookstore: dropped the namespace's data");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bookstore --drop: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let running = match serve(config, args.bind).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bookstore: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("bookstore listening on http://{}", running.addr);
    for c in running.app.choices() {
        println!("  {c}");
    }
    println!(
        "  dashboard: http://{}/dashboard   metrics: http://{}/metrics",
        running.addr, running.addr
    );
    println!(
        "  try: curl -s http://{}/api/top-rated   (demo login: {} / {})",
        running.addr,
        persistence_bookstore::seed::customer_email(0),
        persistence_bookstore::app::DEMO_PASSWORD
    );
    if let Some(seconds) = args.self_load {
        let opts = loadgen_options(&args, running.addr, seconds);
        tokio::spawn(async move {
            match run(opts).await {
                Ok(report) => print!("{report}"),
                Err(e) => eprintln!("self-load: {e}"),
            }
        });
    }
    let app = running.app.clone();
    tokio::select! {
        r = running.wait() => {
            if let Err(e) = r {
                eprintln!("bookstore: {e}");
                return ExitCode::FAILURE;
            }
        }
        _ = tokio::signal::ctrl_c() => {
            println!("bookstore: stopping");
        }
    }
    app.db.shutdown().await;
    ExitCode::SUCCESS
}
