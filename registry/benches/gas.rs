//! Gas of the market's main transactions as users pay it: real transactions (intrinsic gas and
//! calldata included) sent through the same library calls as the `registry` program, on a
//! managed anvil, with real content (the weights, fingerprint and metadata stored in a content
//! store, so CIDs and `ipfs://` URIs have their real lengths). Prints one row per transaction
//! with the receipt's `gasUsed`.
//!
//! `cargo bench -p registry --bench gas`

use content::{Store, Version};
use contracts::LicenseKind;
use ethers::providers::Middleware;
use ethers::types::{Address, H256, U256};
use registry::chain;
use registry::deploy::deploy;
use registry::devnet::{Devnet, DevnetOptions};
use registry::market::{Market, OfferingTerms};
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;
use test_support::models;

fn terms(
    model: U256,
    kind: LicenseKind,
    price: U256,
    duration: u64,
    royalty: u16,
) -> OfferingTerms {
    OfferingTerms {
        model_id: model,
        kind: kind.into(),
        currency: Address::zero(),
        price,
        duration,
        supply_cap: 0,
        transferable: kind == LicenseKind::FineTune,
        commercial_use: kind == LicenseKind::Output,
        royalty_bps: royalty,
        renewal_period: 0,
        delivery_period: 0,
        terms_uri: "ipfs://bafkreiem4twkqzsq2aj4shbycd4yvoj2cx72vezicletlhi7dijjciqpui".into(),
        terms_hash: [7; 32],
    }
}

struct Bench {
    dir: tempfile::TempDir,
    store: Store,
    rows: Vec<(String, u64)>,
    seed: u32,
}

impl Bench {
    async fn gas(&mut self, market: &Market, label: &str, tx: H256) -> u64 {
        let receipt = market
            .client()
            .get_transaction_receipt(tx)
            .await
            .unwrap()
            .expect("mined");
        let gas = receipt.gas_used.unwrap().as_u64();
        self.rows.push((label.into(), gas));
        gas
    }

    async fn mint(&mut self, market: &Market, parents: Vec<(U256, U256)>, label: &str) -> U256 {
        self.mint_sealed(market, parents, label, None).await
    }

    async fn mint_sealed(
        &mut self,
        market: &Market,
        parents: Vec<(U256, U256)>,
        label: &str,
        encrypt_to: Option<Vec<age::x25519::Recipient>>,
    ) -> U256 {
        self.seed += 1;
        let path = self.dir.path().join(format!("m{}.safetensors", self.seed));
        models::write_model(&path, self.seed, 0.0);
        let request = MintRequest {
            weights: path,
            name: format!("model {}", self.seed),
            description: None,
            parents,
            to: None,
            sale_royalty_bps: 0,
            derivative_royalty_bps: 500,
            encrypt_to,
            // Unrelated random weights; the provenance scan is not what is measured.
            force: true,
            backend: fingerprint::BackendKind::Cpu,
            cid_version: Version::V1,
        };
        let minted = mint(market, &self.store, &request, &Silent).await.unwrap();
        self.gas(market, label, minted.tx).await;
        minted.model
    }
}

#[tokio::main]
async fn main() {
    let devnet = Devnet::start(&DevnetOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::embedded(&dir.path().join("ipfs")).unwrap();
    let client = |i| chain::connect(devnet.endpoint(), devnet.wallet(i), None);
    let deployment = deploy(client(0).await.unwrap(), &[]).await.unwrap();
    let market = |i: usize| {
        let deployment = deployment.clone();
        let client = client(i);
        async move {
            Market::new(client.await.unwrap(), deployment)
                .await
                .unwrap()
        }
    };
    let (author, deriver, buyer) = (market(0).await, market(1).await, market(2).await);
    let mut bench = Bench {
        dir,
        store,
        rows: Vec::new(),
        seed: 0,
    };

    let a = bench
        .mint(&author, vec![], "mint base (the author's first model)")
        .await;
    let b = bench.mint(&author, vec![], "mint base").await;
    let c = bench.mint(&author, vec![], "mint base").await;
    // The deriver's first model, so that its derivatives below are compared with base mints of
    // an account that already holds a model (the first one also pays for its balance slot).
    bench
        .mint(&deriver, vec![], "mint base (another author's first model)")
        .await;

    let milli = U256::exp10(15);
    let mut fine_tune = Vec::new();
    for model in [a, b, c] {
        let (offering, tx) = author
            .publish(terms(model, LicenseKind::FineTune, milli, 0, 1_000))
            .await
            .unwrap();
        bench.gas(&author, "publish a fine-tune offering", tx).await;
        fine_tune.push(offering);
    }
    let mut licenses = Vec::new();
    for (i, offering) in fine_tune.iter().chain(&fine_tune[..1]).enumerate() {
        let sale = deriver
            .buy(*offering, deriver.address(), milli, None)
            .await
            .unwrap();
        let label = if i == 0 {
            "buy (the buyer's first license)"
        } else {
            "buy"
        };
        bench.gas(&deriver, label, sale.tx).await;
        licenses.push(sale.license);
    }
    let one = bench
        .mint(&deriver, vec![(a, licenses[0])], "mint with one parent")
        .await;
    bench
        .mint(
            &deriver,
            vec![(a, licenses[3]), (b, licenses[1]), (c, licenses[2])],
            "mint with three parents",
        )
        .await;

    // Sales of the derivative pay its parent: the buyer's first license, then another.
    let (access, _) = deriver
        .publish(terms(one, LicenseKind::Access, milli, 30 * 86_400, 0))
        .await
        .unwrap();
    let first = buyer
        .buy(access, buyer.address(), milli, None)
        .await
        .unwrap();
    bench
        .gas(
            &buyer,
            "buy a derivative's license (first license, 2 credits)",
            first.tx,
        )
        .await;
    let second = buyer
        .buy(access, buyer.address(), milli, None)
        .await
        .unwrap();
    bench
        .gas(&buyer, "buy a derivative's license (2 credits)", second.tx)
        .await;
    let renewed = buyer.renew(second.license, milli).await.unwrap();
    bench.gas(&buyer, "renew", renewed.tx).await;
    let (_, tx) = author
        .withdraw(Address::zero(), author.address())
        .await
        .unwrap();
    bench.gas(&author, "withdraw", tx).await;

    // Encrypted models: the mint, an escrowed purchase, the key's delivery, a refund.
    let keeper = age::x25519::Identity::generate();
    let sealed = bench
        .mint_sealed(
            &author,
            vec![],
            "mint base, encrypted",
            Some(vec![keeper.to_public()]),
        )
        .await;
    let mut escrowed = terms(sealed, LicenseKind::Access, milli, 30 * 86_400, 0);
    escrowed.delivery_period = 86_400;
    let (escrowed, _) = author.publish(escrowed).await.unwrap();
    let recipient = registry::keys::recipient_bytes(&keeper.to_public());
    let held = buyer
        .buy(escrowed, buyer.address(), milli, Some(recipient))
        .await
        .unwrap();
    bench
        .gas(&buyer, "buy, escrowed (an encrypted model)", held.tx)
        .await;
    let wrapped = bench
        .store
        .store_bytes(&[1; 200], Version::V1)
        .await
        .unwrap()
        .to_string();
    let delivery = author
        .deliver_key(held.license, sealed, buyer.address(), recipient, &wrapped)
        .await
        .unwrap();
    bench.gas(&author, "deliver a key", delivery.tx).await;
    let lapsed = buyer
        .buy(escrowed, buyer.address(), milli, Some(recipient))
        .await
        .unwrap();
    let provider = chain::provider(devnet.endpoint()).unwrap();
    let _: i64 = provider
        .request("evm_increaseTime", [86_400u64])
        .await
        .unwrap();
    let (_, _, tx) = buyer.refund(lapsed.license).await.unwrap();
    bench.gas(&buyer, "refund", tx).await;

    // Output batches: the gas is the same whatever the batch's size (one root is stored).
    let (output, _) = author
        .publish(terms(b, LicenseKind::Output, U256::zero(), 0, 0))
        .await
        .unwrap();
    let output = buyer
        .buy(output, buyer.address(), U256::zero(), None)
        .await
        .unwrap()
        .license;
    let list = bench
        .store
        .store_bytes(&[2; 5_000], Version::V1)
        .await
        .unwrap();
    for (label, root, uri) in [
        ("commit outputs", H256::repeat_byte(1), String::new()),
        (
            "commit outputs, published (ipfs:// uri)",
            H256::repeat_byte(2),
            registry::metadata::ipfs_uri(&list),
        ),
    ] {
        let committed = buyer
            .commit_outputs(output, root, 100_000, &uri)
            .await
            .unwrap();
        bench.gas(&buyer, label, committed.tx).await;
    }

    println!("| transaction | gasUsed |");
    println!("| --- | ---: |");
    for (label, gas) in &bench.rows {
        println!("| {label} | {gas} |");
    }
    let base = bench.rows.iter().find(|(l, _)| l == "mint base").unwrap().1;
    let parent = bench
        .rows
        .iter()
        .find(|(l, _)| l == "mint with one parent")
        .unwrap()
        .1;
    println!(
        "one parent adds {} gas to a base mint",
        parent as i64 - base as i64
    );
    devnet.stop().await;
}
