//! Indexing throughput: generates a workload of at least 50,000 events on a managed anvil
//! (licenses of a derivative model, each purchase emitting a Transfer, a LicensePurchased and
//! two PaymentCredited events), then indexes it from scratch into SQLite and into PostgreSQL
//! and prints events per second.
//!
//! `cargo bench -p registry --bench indexer` (or `bash scripts/bench-read-side.sh`). Set
//! `BENCH_EVENTS` to change the size, `REGISTRY_TEST_POSTGRES` to change the server.

#[path = "../tests/it/models.rs"]
#[allow(dead_code)]
mod models;

use std::time::{Duration, Instant};

use contracts::LicenseKind;
use ethers::providers::Middleware;
use ethers::types::{Address, U256};
use registry::chain;
use registry::content::{Store, Version};
use registry::db::Db;
use registry::deploy::deploy;
use registry::devnet::{Devnet, DevnetOptions};
use registry::indexer::{Indexer, Options};
use registry::market::{Market, OfferingTerms};
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;
use sea_orm::ConnectionTrait;

/// Events per purchase of a license of a model with one royalty-owing parent.
const EVENTS_PER_SALE: usize = 4;

fn terms(model: U256, kind: LicenseKind, price: U256, royalty: u16) -> OfferingTerms {
    OfferingTerms {
        model_id: model,
        kind: kind.into(),
        currency: Address::zero(),
        price,
        duration: 0,
        supply_cap: 0,
        transferable: false,
        commercial_use: false,
        royalty_bps: royalty,
        terms_uri: String::new(),
        terms_hash: [0; 32],
    }
}

async fn workload(
    devnet: &Devnet,
    store: &Store,
    dir: &std::path::Path,
    sales: usize,
) -> registry::deploy::Deployment {
    let deployer = chain::connect(devnet.endpoint(), devnet.wallet(0), None)
        .await
        .unwrap();
    let deployment = deploy(deployer).await.unwrap();
    let market = |i| {
        let deployment = deployment.clone();
        async move {
            let client = chain::connect(devnet.endpoint(), devnet.wallet(i), None)
                .await
                .unwrap();
            Market::new(client, deployment).await.unwrap()
        }
    };
    let (author, deriver) = (market(0).await, market(1).await);
    let request = |path: std::path::PathBuf, name: &str, parents| MintRequest {
        weights: path,
        name: name.into(),
        description: None,
        parents,
        to: None,
        sale_royalty_bps: 0,
        backend: fingerprint::BackendKind::Cpu,
        cid_version: Version::V1,
    };
    models::write_model(&dir.join("base.safetensors"), 1, 0.0);
    models::write_model(&dir.join("tuned.safetensors"), 1, 0.03);
    let base = mint(
        &author,
        store,
        &request(dir.join("base.safetensors"), "base", vec![]),
        &Silent,
    )
    .await
    .unwrap()
    .model;
    let (ft, _) = author
        .publish(terms(base, LicenseKind::FineTune, U256::from(1000), 2_000))
        .await
        .unwrap();
    let license = deriver
        .buy(ft, deriver.address(), U256::from(1000))
        .await
        .unwrap()
        .license;
    let tuned = mint(
        &deriver,
        store,
        &request(
            dir.join("tuned.safetensors"),
            "tuned",
            vec![(base, license)],
        ),
        &Silent,
    )
    .await
    .unwrap()
    .model;
    let price = U256::from(10_000);
    let (offering, _) = deriver
        .publish(terms(tuned, LicenseKind::Access, price, 0))
        .await
        .unwrap();

    // Sent back to back from several buyers with explicit nonces, without waiting for receipts
    // (anvil mines each as it arrives). Filling a mempool and mining it in bulk loses
    // transactions on anvil 1.7.
    let provider = chain::provider(devnet.endpoint()).unwrap();
    let buyers: Vec<Market> = futures::future::join_all((2..10).map(market)).await;
    let mut nonces = Vec::new();
    for b in &buyers {
        nonces.push(
            provider
                .get_transaction_count(b.address(), None)
                .await
                .unwrap(),
        );
    }
    let started = Instant::now();
    for i in 0..sales {
        let k = i % buyers.len();
        let (_, market_contract) = deployment.contracts(buyers[k].client().clone());
        let call = market_contract
            .buy(offering, buyers[k].address(), price)
            .value(price)
            .nonce(nonces[k])
            .gas(400_000);
        call.send().await.unwrap();
        nonces[k] += U256::one();
    }

    let (_, market_contract) = deployment.contracts(deriver.client().clone());
    let sold = market_contract.total_licenses().call().await.unwrap();
    assert_eq!(sold.as_usize(), sales + 1, "every purchase was mined");
    eprintln!(
        "workload: {sales} purchases sent and mined in {:.1} s, head at block {}",
        started.elapsed().as_secs_f64(),
        provider.get_block_number().await.unwrap()
    );
    deployment
}

async fn measure(
    label: &str,
    url: &str,
    devnet: &Devnet,
    deployment: &registry::deploy::Deployment,
    store: Store,
) {
    let db = Db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let options = Options {
        confirmations: 12,
        reorg_window: 256,
        max_range: 2_000,
        poll_interval: Duration::from_millis(100),
        max_retries: Some(10),
        content_timeout: Duration::from_secs(30),
    };
    let mut indexer = Indexer::open(
        db.clone(),
        devnet.endpoint(),
        deployment.clone(),
        Some(store),
        options,
    )
    .await
    .unwrap();
    let started = Instant::now();
    indexer.sync().await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let count = |table: &'static str| {
        let db = db.clone();
        async move {
            let row = db
                .conn()
                .query_one_raw(sea_orm::Statement::from_string(
                    db.backend(),
                    format!("SELECT COUNT(*) AS n FROM {table}"),
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap() as usize
        }
    };
    let events = count("licenses").await
        + count("transfers").await
        + count("credits").await
        + count("offerings").await
        + count("models").await;
    println!(
        "indexing into {label:<10} {events:>7} events in {seconds:>6.2} s = {:>8.0} events/s",
        events as f64 / seconds
    );
}

fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let sales = events.div_ceil(EVENTS_PER_SALE);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let options = DevnetOptions {
            accounts: 10,
            ..DevnetOptions::default()
        };
        let devnet = Devnet::start(&options).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::embedded(&dir.path().join("ipfs")).unwrap();
        let deployment = workload(&devnet, &store, dir.path(), sales).await;

        let sqlite = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        measure(
            "SQLite",
            &sqlite,
            &devnet,
            &deployment,
            Store::embedded(&dir.path().join("ipfs")).unwrap(),
        )
        .await;

        let server = std::env::var("REGISTRY_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("registry_bench_{}", std::process::id());
        let admin = sea_orm::Database::connect(format!("{server}/postgres"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        measure(
            "PostgreSQL",
            &format!("{server}/{name}"),
            &devnet,
            &deployment,
            Store::embedded(&dir.path().join("ipfs")).unwrap(),
        )
        .await;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    });
}
