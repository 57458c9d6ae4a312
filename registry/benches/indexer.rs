//! Indexing throughput: generates a workload of at least 50,000 events on a managed anvil
//! (licenses of the eighth generation of a lineage of fine-tunes, each purchase emitting a
//! Transfer, a Locked, a LicensePurchased and nine PaymentCredited events: royalties up the
//! lineage),
//! then indexes it from scratch into SQLite and into PostgreSQL and prints events per second;
//! then into SQLite again through an HTTP proxy that adds `BENCH_RPC_DELAY_MS` (default 50)
//! to every call, as a node across a network would.
//!
//! `cargo bench -p registry --bench indexer` (or `bash scripts/bench-read-side.sh`). Set
//! `BENCH_EVENTS` to change the size, `REGISTRY_TEST_POSTGRES` to change the server.

use std::time::{Duration, Instant};
use test_support::models;

use content::{Store, Version};
use contracts::LicenseKind;
use ethers::providers::Middleware;
use ethers::types::{Address, U256};
use registry::chain;
use registry::deploy::deploy;
use registry::devnet::{Devnet, DevnetOptions};
use registry::indexer::{Indexer, Options};
use registry::market::{Market, OfferingTerms};
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;
use sea_orm::ConnectionTrait;
use store::Db;

/// Derivative generations above the base model whose licenses are sold: each purchase credits
/// the model's owner and every ancestor (each generation owes its parent 20%).
const GENERATIONS: usize = 8;
/// Events per purchase: a Transfer, a Locked (the licenses are not transferable), a
/// LicensePurchased and a PaymentCredited per generation.
const EVENTS_PER_SALE: usize = 3 + GENERATIONS + 1;

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
        renewal_period: 0,
        delivery_period: 0,
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
    let deployment = deploy(deployer, &[]).await.unwrap();
    let market = |i| {
        let deployment = deployment.clone();
        async move {
            let client = chain::connect(devnet.endpoint(), devnet.wallet(i), None)
                .await
                .unwrap();
            Market::new(client, deployment).await.unwrap()
        }
    };
    // Generation g is minted by owner g % 2 under a fine-tune license of generation g − 1.
    let owners = [market(0).await, market(1).await];
    let request = |path: std::path::PathBuf, name: String, parents| MintRequest {
        weights: path,
        name,
        description: None,
        parents,
        to: None,
        sale_royalty_bps: 0,
        derivative_royalty_bps: 0,
        encrypt_to: None,
        force: false,
        backend: fingerprint::BackendKind::Cpu,
        cid_version: Version::V1,
    };
    let mut model = U256::zero();
    for g in 0..=GENERATIONS {
        let path = dir.join(format!("gen-{g}.safetensors"));
        models::write_model(&path, 1, 0.005 * g as f32);
        let owner = &owners[g % 2];
        let parents = if g == 0 {
            vec![]
        } else {
            let (ft, _) = owners[(g - 1) % 2]
                .publish(terms(model, LicenseKind::FineTune, U256::from(1000), 2_000))
                .await
                .unwrap();
            let license = owner
                .buy(ft, owner.address(), U256::from(1000), None)
                .await
                .unwrap()
                .license;
            vec![(model, license)]
        };
        model = mint(
            owner,
            store,
            &request(path, format!("gen-{g}"), parents),
            &Silent,
        )
        .await
        .unwrap()
        .model;
    }
    // Large enough that the deepest ancestor's share (0.2^8 of it) is not rounded to zero.
    let price = U256::exp10(15);
    let (offering, _) = owners[GENERATIONS % 2]
        .publish(terms(model, LicenseKind::Access, price, 0))
        .await
        .unwrap();

    // Eight buyers send concurrently, each its next purchase once the last one is mined (anvil
    // 1.7 drops transactions from a pool filled faster than it mines; a dropped purchase is
    // sent again with the same nonce).
    let provider = chain::provider(devnet.endpoint()).unwrap();
    let buyers: Vec<Market> = futures::future::join_all((2..10).map(market)).await;
    let started = Instant::now();
    let count = buyers.len();
    futures::future::join_all(buyers.iter().enumerate().map(|(k, buyer)| {
        let deployment = deployment.clone();
        let provider = provider.clone();
        async move {
            let (_, market_contract) = deployment.contracts(buyer.client().clone());
            for _ in (k..sales).step_by(count) {
                let call = market_contract
                    .buy(offering, buyer.address(), price, [0; 32])
                    .value(price)
                    .gas(1_500_000);
                loop {
                    let hash = *call.send().await.unwrap();
                    // Polled by hash: anvil with --prune-history sometimes refuses the block
                    // reads a pending transaction's own wait makes.
                    match receipt_of(&provider, hash).await {
                        Some(receipt) => {
                            assert_eq!(receipt.status, Some(1.into()), "a purchase reverted");
                            break;
                        }
                        None => eprintln!("a purchase was dropped by anvil; sending it again"),
                    }
                }
            }
        }
    }))
    .await;

    let (_, market_contract) = deployment.contracts(owners[0].client().clone());
    let sold = market_contract.total_licenses().call().await.unwrap();
    assert_eq!(
        sold.as_usize(),
        sales + GENERATIONS,
        "every purchase was mined"
    );
    eprintln!(
        "workload: {sales} purchases sent and mined in {:.1} s, head at block {}",
        started.elapsed().as_secs_f64(),
        provider.get_block_number().await.unwrap()
    );
    deployment
}

/// Starts an HTTP proxy in front of `upstream` that answers each request `delay` late.
async fn delaying_proxy(upstream: String, delay: Duration) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::new();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (http, upstream) = (http.clone(), upstream.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.is_err() {
                            return;
                        }
                        let header = line.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    let Ok(answer) = http
                        .post(&upstream)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    let Ok(answer) = answer.bytes().await else {
                        return;
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    let socket = reader.get_mut();
                    if socket.write_all(head.as_bytes()).await.is_err()
                        || socket.write_all(&answer).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// The receipt of `hash` once mined; `None` when it is not mined within 20 s (dropped).
async fn receipt_of(
    provider: &ethers::providers::Provider<ethers::providers::Http>,
    hash: ethers::types::H256,
) -> Option<ethers::types::TransactionReceipt> {
    for _ in 0..1_000 {
        if let Ok(Some(receipt)) = provider.get_transaction_receipt(hash).await {
            return Some(receipt);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn measure(
    label: &str,
    url: &str,
    rpc: &str,
    devnet: &Devnet,
    deployment: &registry::deploy::Deployment,
    store: Store,
) {
    let db = Db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let options = Options {
        finality: registry::indexer::Finality::Tag,
        confirmations: 12,
        reorg_window: 256,
        max_range: 2_000,
        poll_interval: Duration::from_millis(100),
        max_retries: Some(10),
        content_timeout: Duration::from_secs(30),
        parallel_calls: 32,
    };
    let _ = devnet;
    let mut indexer = Indexer::open(db.clone(), rpc, deployment.clone(), Some(store), options)
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
        "indexing into {label:<26} {events:>7} events in {seconds:>6.2} s = {:>8.0} events/s",
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
            prune_history: true,
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
            devnet.endpoint(),
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
            devnet.endpoint(),
            &devnet,
            &deployment,
            Store::embedded(&dir.path().join("ipfs")).unwrap(),
        )
        .await;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();

        let delay: u64 = std::env::var("BENCH_RPC_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50);
        let proxy =
            delaying_proxy(devnet.endpoint().to_string(), Duration::from_millis(delay)).await;
        let far = format!("sqlite://{}?mode=rwc", dir.path().join("far.db").display());
        measure(
            &format!("SQLite, node {delay} ms away"),
            &far,
            &proxy,
            &devnet,
            &deployment,
            Store::embedded(&dir.path().join("ipfs")).unwrap(),
        )
        .await;
    });
}
