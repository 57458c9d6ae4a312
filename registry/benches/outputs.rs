//! Output receipts at scale: a batch of 100,000 outputs (as their SHA-256s) is salted,
//! hashed into leaves and a tree, committed in one transaction on a managed anvil, and every
//! output's proof is made and folded back to the root; then the same outputs (salted afresh)
//! are published and committed, indexed into a SQLite database (the chain, then the leaf
//! list: fetched, checked, written), and the offline proof of the commitment is bundled and
//! checked. Prints the time of each step.
//!
//! `cargo bench -p registry --bench outputs [-- OUTPUTS]`

use std::time::Instant;

use contracts::LicenseKind;
use ethers::providers::Middleware;
use ethers::types::{Address, H256, U256};
use registry::chain;
use registry::deploy::deploy;
use registry::devnet::{Devnet, DevnetOptions};
use registry::indexer::leaves::{self, Fetched, LeafLists};
use registry::indexer::{Indexer, Options};
use registry::market::{Market, OfferingTerms};
use registry::metadata::ipfs_uri;
use registry::outputs::commit::{LeafList, LIST_FORMAT};
use registry::outputs::{tree, Batch, Scope};
use store::Db;

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("OUTPUTS is a number"))
        .unwrap_or(100_000);
    let devnet = Devnet::start(&DevnetOptions::default()).await.unwrap();
    let client = |i| chain::connect(devnet.endpoint(), devnet.wallet(i), None);
    let deployment = deploy(client(0).await.unwrap(), &[]).await.unwrap();
    let author = Market::new(client(0).await.unwrap(), deployment.clone())
        .await
        .unwrap();
    let provider = Market::new(client(1).await.unwrap(), deployment.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = content::Store::embedded(dir.path()).unwrap();
    let weights = store
        .store_bytes(b"weights", content::Version::V1)
        .await
        .unwrap();
    let (model, _) = author
        .mint(contracts::model_registry::MintParams {
            to: author.address(),
            weights_cid: weights.to_string(),
            content_root: [1; 32],
            fingerprint: [2; 32],
            metadata_uri: ipfs_uri(&weights),
            sale_royalty_bps: 0,
            derivative_royalty_bps: 0,
            encrypted: false,
            parents: vec![],
            licenses: vec![],
        })
        .await
        .unwrap();
    let (offering, _) = author
        .publish(OfferingTerms {
            model_id: model,
            kind: LicenseKind::Output.into(),
            currency: Address::zero(),
            price: U256::zero(),
            duration: 0,
            supply_cap: 0,
            transferable: false,
            commercial_use: true,
            royalty_bps: 0,
            renewal_period: 0,
            delivery_period: 0,
            terms_uri: String::new(),
            terms_hash: [0; 32],
        })
        .await
        .unwrap();
    let license = provider
        .buy(offering, provider.address(), U256::zero(), None)
        .await
        .unwrap()
        .license;

    let outputs: Vec<(H256, u64)> = (0..n)
        .map(|i| {
            (
                H256(ethers::utils::keccak256(i.to_le_bytes())),
                1_700_000_000,
            )
        })
        .collect();
    let start = Instant::now();
    let scope = Scope {
        chain_id: deployment.chain_id,
        market: deployment.market,
        license,
        model,
    };
    let batch = Batch::new(scope, &outputs).unwrap();
    let built = start.elapsed();
    let start = Instant::now();
    let committed = provider
        .commit_outputs(license, batch.root(), n, "")
        .await
        .unwrap();
    let sent = start.elapsed();
    let gas = provider
        .client()
        .get_transaction_receipt(committed.tx)
        .await
        .unwrap()
        .unwrap()
        .gas_used
        .unwrap();
    let start = Instant::now();
    let mut longest = 0;
    for leaf in &batch.leaves {
        let hash = leaf.hash();
        let proof = batch.tree.proof(&hash).unwrap();
        longest = longest.max(proof.len());
        assert_eq!(tree::fold(&hash, &proof), batch.root());
    }
    let proved = start.elapsed();
    let start = Instant::now();
    let first = batch.leaves[0].hash();
    let on_chain = provider
        .verify_output(batch.root(), first, &batch.tree.proof(&first).unwrap())
        .await
        .unwrap();
    assert!(on_chain);
    let checked = start.elapsed();
    println!("{n} outputs in one batch:");
    println!("  salt, leaves and tree: {:.3} s", built.as_secs_f64());
    println!(
        "  commit (one transaction, {gas} gas): {:.3} s",
        sent.as_secs_f64()
    );
    println!(
        "  every proof made and folded to the root (at most {longest} hashes): {:.3} s",
        proved.as_secs_f64()
    );
    println!(
        "  one proof checked by the market (eth_call): {:.3} s",
        checked.as_secs_f64()
    );

    // The read side: the outputs published (fresh salts) and indexed.
    let published = Batch::new(scope, &outputs).unwrap();
    let list = serde_json::to_vec(&LeafList {
        format: LIST_FORMAT.into(),
        root: published.root(),
        leaves: published.leaves.clone(),
    })
    .unwrap();
    let start = Instant::now();
    let uri = ipfs_uri(
        &store
            .store_bytes(&list, content::Version::V1)
            .await
            .unwrap(),
    );
    let stored = start.elapsed();
    let committed = provider
        .commit_outputs(license, published.root(), n, &uri)
        .await
        .unwrap();
    let db_dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        db_dir.path().join("bench.db").display()
    );
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let mut indexer = Indexer::open(
        db.clone(),
        devnet.endpoint(),
        deployment.clone(),
        None,
        Options::default(),
    )
    .await
    .unwrap();
    indexer.sync().await.unwrap();
    let lists = LeafLists::new(db, store, &deployment, leaves::Options::default());
    let start = Instant::now();
    let fetched = lists.drain().await.unwrap();
    let indexed = start.elapsed();
    assert_eq!(
        fetched,
        vec![Fetched::Indexed {
            root: format!("{:?}", published.root()),
            outputs: n as usize
        }]
    );
    let start = Instant::now();
    let inclusion = provider
        .inclusion(committed.tx, committed.block_hash)
        .await
        .unwrap();
    let bundled = start.elapsed();
    let start = Instant::now();
    inclusion.open(committed.block_hash).unwrap();
    let opened = start.elapsed();
    let size = serde_json::to_vec(&inclusion).unwrap().len();
    println!(
        "  leaf list ({:.1} MB of JSON) stored in the embedded store: {:.3} s",
        list.len() as f64 / 1e6,
        stored.as_secs_f64()
    );
    println!(
        "  leaf list fetched, checked against the root and its outputs written (SQLite): {:.3} s",
        indexed.as_secs_f64()
    );
    println!(
        "  offline proof (header and receipt proof, {size} bytes of JSON) bundled: {:.3} s, checked: {:.2} ms",
        bundled.as_secs_f64(),
        opened.as_secs_f64() * 1e3
    );
    devnet.stop().await;
}
