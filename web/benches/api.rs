//! GraphQL service time and latency under load, for typical marketplace queries over a
//! database holding 100,000 licenses (plus 2,000 models with lineage and 6,000 offerings), on
//! SQLite and on PostgreSQL.
//!
//! The rows are written straight into the database (the indexer's throughput is measured by
//! `registry`'s `indexer` bench; here only the read side is under test), then the planner's
//! statistics are gathered (`ANALYZE`, `PRAGMA optimize`). The server runs in-process with two
//! workers. Two measurements:
//!
//! - **Service time**: one client, one request at a time, `BENCH_SAMPLES` requests of each
//!   query; p50, p99 and mean per query.
//! - **Open loop**: requests sent on a fixed schedule at each rate of `BENCH_RATES` (requests
//!   per second) for `BENCH_SECONDS`, whether or not earlier ones have been answered, by a load
//!   generator in a separate process (this bench run again with `BENCH_ROLE=load`); latency is
//!   counted from each request's scheduled time, so a server that falls behind shows it.
//!
//! `cargo bench -p web --bench api` (or `bash scripts/bench-read-side.sh`). `BENCH_LICENSES`,
//! `BENCH_SAMPLES`, `BENCH_RATES` (default `200,500,1000`) and `BENCH_SECONDS` (default 10)
//! change the size and the load; `BENCH_CACHE_MIB` the response cache (default 64, `0` turns
//! it off). The catalogue request is the same every time (the cache's best case); the model
//! pages, holders and rights checks cycle through 2,000 models and 500 accounts, so most of
//! those are misses, which pay the cache's version read.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde_json::{json, Value};
use store::entity::{balances, blocks, indexer_state, licenses, lineage, models, offerings};
use store::Db;
use web::{Limits, ServerConfig};

const MODELS: i64 = 2_000;
const ACCOUNTS: i64 = 500;
const T0: i64 = 1_700_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn account(i: i64) -> String {
    format!("0x{:040x}", 0x1000 + i)
}

async fn insert_chunks<A, E>(db: &Db, rows: Vec<A>)
where
    E: EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(400).collect();
        E::insert_many(chunk)
            .exec_without_returning(db.conn())
            .await
            .unwrap();
    }
}

async fn seed(db: &Db, licenses_n: i64) {
    let models_rows: Vec<models::ActiveModel> = (1..=MODELS)
        .map(|i| models::ActiveModel {
            vid: sea_orm::ActiveValue::NotSet,
            id: Set(i),
            owner: Set(account(i % 50)),
            creator: Set(account(i % 50)),
            minter: Set(account(i % 50)),
            weights_cid: Set(format!("bafkreimodel{i}")),
            content_root: Set(format!("0x{i:064x}")),
            fingerprint: Set(format!("0x{:064x}", i + 1)),
            metadata_uri: Set(format!("ipfs://bafkreimeta{i}")),
            name: Set(Some(format!("model-{i}"))),
            minted_at: Set(T0 + i),
            depth: Set(i32::from(i > 100)),
            sale_royalty_bps: Set(0),
            derivative_royalty_bps: Set(0),
            encrypted: Set(false),
            block_number: Set(i),
            tx_hash: Set(format!("0x{i:064x}")),
            flagged_model: Set(None),
            flagged_similarity: Set(None),
            valid_from: Set(i),
            valid_to: Set(None),
        })
        .collect();
    insert_chunks(db, models_rows).await;
    let edges: Vec<lineage::ActiveModel> = (101..=MODELS)
        .map(|i| lineage::ActiveModel {
            vid: sea_orm::ActiveValue::NotSet,
            child_id: Set(i),
            parent_id: Set(i % 100 + 1),
            license_id: Set(0),
            royalty_bps: Set(1_000),
            position: Set(0),
            block_number: Set(i),
            valid_from: Set(i),
            valid_to: Set(None),
        })
        .collect();
    insert_chunks(db, edges).await;
    let offering_rows: Vec<offerings::ActiveModel> = (1..=MODELS * 3)
        .map(|o| {
            let price = 1_000_000_000_000_000i64 * (o % 97 + 1);
            offerings::ActiveModel {
                vid: sea_orm::ActiveValue::NotSet,
                id: Set(o),
                model_id: Set((o - 1) / 3 + 1),
                publisher: Set(account(((o - 1) / 3 + 1) % 50)),
                kind: Set(((o - 1) % 3) as i32),
                currency: Set(format!("0x{:040x}", 0)),
                price: Set(price.to_string()),
                price_key: Set(format!("{price:0>78}")),
                duration: Set(if o % 2 == 0 { 0 } else { 30 * 86_400 }),
                supply_cap: Set(0),
                renewal_period: Set(0),
                delivery_period: Set(0),
                sold: Set(0),
                closed: Set(o % 10 == 0),
                transferable: Set(false),
                commercial_use: Set(false),
                royalty_bps: Set(if (o - 1) % 3 == 1 { 1_000 } else { 0 }),
                terms_uri: Set(String::new()),
                terms_hash: Set(format!("0x{:064x}", 0)),
                block_number: Set(MODELS + o),
                valid_from: Set(MODELS + o),
                valid_to: Set(None),
            }
        })
        .collect();
    insert_chunks(db, offering_rows).await;
    let license_rows: Vec<licenses::ActiveModel> = (1..=licenses_n)
        .map(|l| {
            let offering = l % (MODELS * 3) + 1;
            let start = T0 + l;
            licenses::ActiveModel {
                vid: sea_orm::ActiveValue::NotSet,
                id: Set(l),
                offering_id: Set(offering),
                model_id: Set((offering - 1) / 3 + 1),
                kind: Set(((offering - 1) % 3) as i32),
                holder: Set(account(l % ACCOUNTS)),
                payer: Set(account(l % ACCOUNTS)),
                currency: Set(format!("0x{:040x}", 0)),
                price: Set("1000".into()),
                price_key: Set(format!("{:0>78}", 1000)),
                duration: Set(86_400),
                transferable: Set(false),
                commercial_use: Set(false),
                royalty_bps: Set(0),
                terms_hash: Set(format!("0x{:064x}", 0)),
                start: Set(start),
                expiry: Set(if l % 5 == 0 {
                    0
                } else {
                    start + 86_400 * (l % 30)
                }),
                key_deadline: Set(0),
                recipient: Set(None),
                key_delivered_at: Set(0),
                key_cid: Set(None),
                keeper: Set(None),
                refunded: Set(false),
                block_number: Set(10 * MODELS + l),
                valid_from: Set(10 * MODELS + l),
                valid_to: Set(None),
            }
        })
        .collect();
    insert_chunks(db, license_rows).await;
    let balance_rows: Vec<balances::ActiveModel> = (0..ACCOUNTS)
        .map(|a| balances::ActiveModel {
            vid: sea_orm::ActiveValue::NotSet,
            account: Set(account(a)),
            currency: Set(format!("0x{:040x}", 0)),
            credited: Set((1000 * a).to_string()),
            withdrawn: Set("0".into()),
            valid_from: Set(1),
            valid_to: Set(None),
        })
        .collect();
    insert_chunks(db, balance_rows).await;
    let head = 10 * MODELS + licenses_n;
    blocks::Entity::insert(blocks::ActiveModel {
        number: Set(head),
        hash: Set(format!("0x{head:064x}")),
        parent_hash: Set(String::new()),
        timestamp: Set(T0 + licenses_n),
    })
    .exec_without_returning(db.conn())
    .await
    .unwrap();
    indexer_state::Entity::insert(indexer_state::ActiveModel {
        id: Set(1),
        chain_id: Set(31337),
        registry: Set(account(9_000)),
        market: Set(account(9_001)),
        start_block: Set(1),
        cursor_block: Set(head),
        cursor_hash: Set(format!("0x{head:064x}")),
        head_block: Set(head),
        finalized_block: Set(head - 12),
        updated_at: Set(T0),
        pruned_to: Set(0),
    })
    .exec_without_returning(db.conn())
    .await
    .unwrap();
}

/// The query mix: (name, query, variables for the n-th request).
fn request(kind: usize, n: u64, licenses_n: i64) -> (&'static str, Value) {
    let n = n as i64;
    match kind {
        0 => (
            "catalogue",
            json!({
                "query": "query($after: String) { models(first: 20, after: $after, where: { hasOfferingKind: ACCESS }) { pageInfo { endCursor } nodes { id name owner offerings(open: true) { id kind price } } } }",
                "variables": { "after": Value::Null }
            }),
        ),
        1 => (
            "model page",
            json!({
                "query": "query($id: ID!) { model(id: $id) { name owner depth final parents { royaltyBps parent { name } } children { childId } offerings { id kind price duration } } }",
                "variables": { "id": (n % MODELS + 1).to_string() }
            }),
        ),
        2 => (
            "licenses of a holder",
            json!({
                "query": "query($h: String!, $t: Int!) { licenses(first: 50, where: { holder: $h, activeAt: $t }) { nodes { id expiry model { name } } } }",
                "variables": { "h": account(n % ACCOUNTS), "t": T0 + licenses_n / 2 }
            }),
        ),
        _ => (
            "rights check",
            json!({
                "query": "query($a: String!, $m: ID!, $t: Int!) { rights(address: $a, model: $m, kind: ACCESS, at: $t) { allowed license { id expiry } } }",
                "variables": { "a": account(n % ACCOUNTS), "m": (n % MODELS + 1).to_string(), "t": T0 + licenses_n / 2 }
            }),
        ),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1_000.0
}

/// Sends one request; whether it was answered without errors.
async fn send(http: &reqwest::Client, endpoint: &str, body: &Value) -> bool {
    match http.post(endpoint).json(body).send().await {
        Ok(response) => match response.json::<Value>().await {
            Ok(answer) => answer.get("errors").is_none(),
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// Gathers the planner's statistics, as an operator would after a bulk load.
async fn optimize(db: &Db) {
    let statements: &[&str] = match db.backend() {
        sea_orm::DbBackend::Sqlite => &["ANALYZE", "PRAGMA optimize"],
        _ => &["ANALYZE"],
    };
    for statement in statements {
        db.conn().execute_unprepared(statement).await.unwrap();
    }
}

async fn measure(label: &str, url: &str, licenses_n: i64) {
    let db = Db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let started = Instant::now();
    seed(&db, licenses_n).await;
    optimize(&db).await;
    eprintln!(
        "{label}: seeded {licenses_n} licenses in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (tx, rx) = std::sync::mpsc::channel();
    let server_db = db.clone();
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(web::serve(
                server_db,
                ServerConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    limits: Limits {
                        response_cache_bytes: (env("BENCH_CACHE_MIB", 64) as usize) << 20,
                        ..Limits::default()
                    },
                    content: None,
                    workers: 2,
                    keys: None,
                    cors_origins: Vec::new(),
                    ready_lag: 64,
                    chain: None,
                },
                move |address| tx.send(address).unwrap(),
            ))
            .unwrap();
    });
    let address = rx.recv().unwrap();
    let endpoint = format!("http://{address}/graphql");

    // Service time: one request at a time.
    let samples = env("BENCH_SAMPLES", 1_000);
    let http = reqwest::Client::new();
    println!(
        "GraphQL on {label} ({licenses_n} licenses, response cache {} MiB): service time, one client, {samples} requests each",
        env("BENCH_CACHE_MIB", 64)
    );
    for kind in 0..4 {
        for n in 0..50 {
            let (_, body) = request(kind, n, licenses_n);
            assert!(send(&http, &endpoint, &body).await, "{body}");
        }
        let mut times = Vec::with_capacity(samples as usize);
        for n in 0..samples {
            let (_, body) = request(kind, n * 7_919, licenses_n);
            let sent = Instant::now();
            assert!(send(&http, &endpoint, &body).await, "{body}");
            times.push(sent.elapsed());
        }
        let mean = times.iter().sum::<Duration>().as_secs_f64() * 1_000.0 / times.len() as f64;
        times.sort();
        println!(
            "  {:<22} p50 {:>6.2} ms  p99 {:>6.2} ms  mean {:>6.2} ms",
            request(kind, 0, licenses_n).0,
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            mean
        );
    }

    // Open loop, from another process.
    let seconds = env("BENCH_SECONDS", 10);
    let rates = std::env::var("BENCH_RATES").unwrap_or_else(|_| "200,500,1000".into());
    for rate in rates
        .split(',')
        .filter_map(|r| r.trim().parse::<u64>().ok())
    {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .env("BENCH_ROLE", "load")
            .env("BENCH_ENDPOINT", &endpoint)
            .env("BENCH_RATE", rate.to_string())
            .env("BENCH_SECONDS", seconds.to_string())
            .env("BENCH_LICENSES", licenses_n.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the load generator failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        println!(
            "GraphQL on {label}: open loop at {rate} requests/s for {seconds} s (load generator in its own process)"
        );
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

/// The load generator (`BENCH_ROLE=load`): sends the query mix to `BENCH_ENDPOINT` at
/// `BENCH_RATE` requests per second on a fixed schedule and prints the latencies, each counted
/// from its request's scheduled time.
fn generate_load() {
    let endpoint = std::env::var("BENCH_ENDPOINT").unwrap();
    let rate = env("BENCH_RATE", 500);
    let seconds = env("BENCH_SECONDS", 10);
    let licenses_n = env("BENCH_LICENSES", 100_000) as i64;
    // One thread: the generator takes as little of the machine as it can.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1_024)
            .build()
            .unwrap();
        let total = rate * seconds;
        let start = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(at).await;
            let kind = (i % 4) as usize;
            let (_, body) = request(kind, i * 7_919, licenses_n);
            let (http, endpoint) = (http.clone(), endpoint.clone());
            tasks.push(tokio::spawn(async move {
                let ok = send(&http, &endpoint, &body).await;
                (kind, at.elapsed(), ok)
            }));
        }
        let sent_for = start.elapsed();
        let mut by_kind: Vec<Vec<Duration>> = vec![Vec::new(); 4];
        let mut failed = 0;
        for task in tasks {
            let (kind, took, ok) = task.await.unwrap();
            by_kind[kind].push(took);
            failed += usize::from(!ok);
        }
        for (kind, samples) in by_kind.iter_mut().enumerate() {
            samples.sort();
            println!(
                "  {:<22} p50 {:>7.2} ms  p99 {:>7.2} ms",
                request(kind, 0, licenses_n).0,
                percentile(samples, 0.50),
                percentile(samples, 0.99)
            );
        }
        let mut all = by_kind.concat();
        all.sort();
        println!(
            "  {:<22} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests over {:.1} s, {failed} failed)",
            "all",
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            all.len(),
            sent_for.as_secs_f64()
        );
    });
}

fn main() {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("load") {
        return generate_load();
    }
    let licenses_n = env("BENCH_LICENSES", 100_000) as i64;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // BENCH_SQLITE_FILE keeps the SQLite database there (to look at its query plans).
        let file = std::env::var("BENCH_SQLITE_FILE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| dir.path().join("bench.db"));
        let sqlite = format!("sqlite://{}?mode=rwc", file.display());
        measure("SQLite", &sqlite, licenses_n).await;

        let server = std::env::var("REGISTRY_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("registry_api_bench_{}", std::process::id());
        let admin = sea_orm::Database::connect(format!("{server}/postgres"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        measure("PostgreSQL", &format!("{server}/{name}"), licenses_n).await;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    });
}
