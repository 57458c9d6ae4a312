//! GraphQL latency and throughput under concurrent load, for typical marketplace queries over a
//! database holding 100,000 licenses (plus 2,000 models with lineage and 6,000 offerings).
//!
//! The rows are written straight into the database (the indexer's throughput is measured by
//! `registry`'s `indexer` bench; here only the read side is under test). The server runs
//! in-process with two workers; 16 concurrent clients send a mix of four queries for 10 s and
//! the p50/p99 latency of each and the total throughput are printed, for SQLite and for
//! PostgreSQL.
//!
//! `cargo bench -p web --bench api` (or `bash scripts/bench-read-side.sh`). `BENCH_LICENSES`,
//! `BENCH_SECONDS` and `BENCH_CLIENTS` change the size, the duration and the load.

use std::time::{Duration, Instant};

use registry::db::entity::{balances, blocks, indexer_state, licenses, lineage, models, offerings};
use registry::db::Db;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde_json::{json, Value};
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

async fn load(label: &str, url: &str, licenses_n: i64, seconds: u64, clients: u64) {
    let db = Db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let started = Instant::now();
    seed(&db, licenses_n).await;
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
                    limits: Limits::default(),
                    content: None,
                    workers: 2,
                    keys: None,
                    cors_origins: Vec::new(),
                    ready_lag: 64,
                },
                move |address| tx.send(address).unwrap(),
            ))
            .unwrap();
    });
    let address = rx.recv().unwrap();
    let endpoint = format!("http://{address}/graphql");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, endpoint) = (http.clone(), endpoint.clone());
            tokio::spawn(async move {
                let mut samples: Vec<(usize, Duration)> = Vec::new();
                let mut n = c * 7_919;
                while Instant::now() < deadline {
                    let kind = (n % 4) as usize;
                    let (_, body) = request(kind, n, licenses_n);
                    let sent = Instant::now();
                    let response: Value = http
                        .post(&endpoint)
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert!(response.get("errors").is_none(), "{response}");
                    samples.push((kind, sent.elapsed()));
                    n += 1;
                }
                samples
            })
        })
        .collect();
    let mut by_kind: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    let mut total = 0usize;
    for task in tasks {
        for (kind, d) in task.await.unwrap() {
            by_kind[kind].push(d);
            total += 1;
        }
    }
    println!(
        "GraphQL on {label} ({licenses_n} licenses, {clients} concurrent clients, {seconds} s):"
    );
    for (kind, samples) in by_kind.iter_mut().enumerate() {
        samples.sort();
        println!(
            "  {:<22} {:>7} requests  p50 {:>7.2} ms  p99 {:>7.2} ms",
            request(kind, 0, licenses_n).0,
            samples.len(),
            percentile(samples, 0.50),
            percentile(samples, 0.99)
        );
    }
    let mut all: Vec<Duration> = by_kind.concat();
    all.sort();
    println!(
        "  {:<22} {:>7} requests  p50 {:>7.2} ms  p99 {:>7.2} ms  throughput {:.0} requests/s",
        "all",
        total,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        total as f64 / seconds as f64
    );
}

fn main() {
    let licenses_n = env("BENCH_LICENSES", 100_000) as i64;
    let seconds = env("BENCH_SECONDS", 10);
    let clients = env("BENCH_CLIENTS", 16);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        load("SQLite", &sqlite, licenses_n, seconds, clients).await;

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
        load(
            "PostgreSQL",
            &format!("{server}/{name}"),
            licenses_n,
            seconds,
            clients,
        )
        .await;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    });
}
