//! Encrypted models on the read side and at a keeper's HTTP endpoint, against a real anvil:
//! the indexer's escrow fields in GraphQL (pending, delivered, refunded), the x402 answer an
//! agent starts from, and signed key requests: a resold license's new holder gets a fresh key
//! that opens the weights, while the old holder, an expired request, a replay and signatures
//! for another chain or market are refused.

use age::x25519::Identity;
use base64::Engine;
use content::Version;
use contracts::LicenseKind;
use ethers::types::{Address, U256};
use registry::access::request_key;
use registry::keeper::{Keeper, Outcome};
use registry::key_request::KeyRequest;
use registry::key_service::KeyService;
use registry::keys::recipient_bytes;
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;
use registry::sealed::{fetch_decrypted, ModelKey};
use serde_json::{json, Value};
use web::{Limits, ServerConfig};

use crate::dbs::{Kind, TestDb};
use crate::models::write_model;
use crate::world::{milli, options, terms, World, DAY};

const AUTHOR: usize = 0;
const BUYER: usize = 1;
const KEEPER: usize = 2;
const RESALE: usize = 3;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Serves `db` with a key service on a free port; returns the base URL.
fn serve(db: store::Db, keys: KeyService, store: content::Store) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(web::serve(
                db,
                ServerConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    limits: Limits::default(),
                    content: Some(store),
                    workers: 1,
                    keys: Some(std::sync::Arc::new(keys)),
                    cors_origins: Vec::new(),
                    ready_lag: 64,
                    chain: None,
                },
                move |address| tx.send(address).unwrap(),
            ))
            .unwrap();
    });
    let address = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    format!("http://{address}")
}

async fn graphql(url: &str, query: &str) -> Value {
    let response: Value = reqwest::Client::new()
        .post(format!("{url}/graphql"))
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(response.get("errors").is_none(), "{query}: {response}");
    response["data"].clone()
}

/// GET the access endpoint with a key request signed by `signer` (for `chain_id` and
/// `market`): the status and the JSON body.
async fn ask(
    url: &str,
    model: U256,
    request: &KeyRequest,
    signer: &ethers::signers::LocalWallet,
    chain_id: u64,
    market: Address,
) -> (u16, Value) {
    let signed = request.sign(signer, chain_id, market).unwrap();
    let payment = json!({ "x402Version": 2, "payload": signed });
    let header = base64::engine::general_purpose::STANDARD.encode(payment.to_string());
    let response = reqwest::Client::new()
        .get(format!("{url}/v1/models/{model}/access"))
        .header("PAYMENT-SIGNATURE", header)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_is_indexed_and_a_resold_license_gets_a_fresh_key_from_the_endpoint() {
    let world = World::start().await;
    let store = world.store();
    let deployment = world.deployment();
    let author = Identity::generate();
    let keeper = Identity::generate();

    // An encrypted model whose envelope the keeper opens; the keeper is approved.
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("sealed.safetensors");
    write_model(&weights, 71, 0.0);
    let request = MintRequest {
        weights: weights.clone(),
        name: "sealed".into(),
        description: None,
        parents: vec![],
        to: None,
        sale_royalty_bps: 0,
        derivative_royalty_bps: 0,
        force: false,
        backend: fingerprint::BackendKind::Cpu,
        cid_version: Version::V1,
        encrypt_to: Some(vec![author.to_public(), keeper.to_public()]),
    };
    let minted = mint(&world.markets[AUTHOR], &store, &request, &Silent)
        .await
        .unwrap();
    let model = minted.model;
    world.markets[AUTHOR]
        .set_keeper(world.address(KEEPER), true)
        .await
        .unwrap();
    let mut access = terms(model, LicenseKind::Access, milli(100), 30 * DAY, 0, true);
    access.delivery_period = DAY;
    let offering = world.offer(AUTHOR, access).await;

    // Two purchases: one delivered by the keeper, one left to lapse into a refund.
    let buyer = Identity::generate();
    let bought = world.markets[BUYER]
        .buy(
            offering,
            world.address(BUYER),
            milli(100),
            Some(recipient_bytes(&buyer.to_public())),
        )
        .await
        .unwrap();
    let delivered_license = bought.license;
    let mut keeper_run = Keeper::new(&world.markets[KEEPER], &store, keeper.clone(), 0);
    let outcomes = keeper_run.pass().await.unwrap();
    assert!(
        matches!(&outcomes[..], [Outcome::Delivered { license, .. }] if *license == delivered_license),
        "{outcomes:?}"
    );
    let stale = world.markets[BUYER]
        .buy(
            offering,
            world.address(BUYER),
            milli(100),
            Some(recipient_bytes(&buyer.to_public())),
        )
        .await
        .unwrap()
        .license;
    let refunded = world.markets[RESALE]
        .buy(offering, world.address(RESALE), milli(100), Some([7; 32]))
        .await
        .unwrap()
        .license;

    // The read side.
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = world.indexer(&db, options()).await;
    indexer.sync().await.unwrap();
    let keys = KeyService::new(
        world.markets[KEEPER].clone(),
        world.store(),
        keeper.clone(),
        0,
    );
    let url = serve(db.open().await, keys, world.store());
    let data = graphql(
        &url,
        &format!(
            r#"{{ model(id: "{model}") {{ encrypted }}
                 offerings(where: {{ model: "{model}" }}) {{ edges {{ node {{ deliveryPeriod }} }} }}
                 delivered: licenses(where: {{ pendingDelivery: false, model: "{model}" }}) {{ edges {{ node {{ id escrowed keyDelivered deliveredAt keyCid keeper pendingDelivery refunded start }} }} }}
                 licenses(where: {{ pendingDelivery: true }}) {{ edges {{ node {{ id keyDeadline recipient }} }} }} }}"#
        ),
    )
    .await;
    assert_eq!(data["model"]["encrypted"], true);
    assert_eq!(data["offerings"]["edges"][0]["node"]["deliveryPeriod"], DAY);
    let license = &data["delivered"]["edges"][0]["node"];
    assert_eq!(license["id"], delivered_license.to_string());
    assert_eq!(license["escrowed"], true);
    assert_eq!(license["keyDelivered"], true);
    assert_eq!(license["pendingDelivery"], false);
    assert_eq!(license["refunded"], false);
    assert_eq!(license["deliveredAt"], license["start"]);
    assert_eq!(license["keeper"], format!("{:?}", world.address(KEEPER)));
    assert!(license["keyCid"].as_str().unwrap().starts_with("baf"));
    let pending: Vec<&str> = data["licenses"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(pending, vec![stale.to_string(), refunded.to_string()]);
    assert_eq!(
        data["licenses"]["edges"][0]["node"]["recipient"],
        buyer.to_public().to_string()
    );

    // An agent's first call: 402 with the offering, the same object in the header.
    let response = reqwest::Client::new()
        .get(format!(
            "{url}/v1/models/{model}/access?holder={:?}&recipient={}",
            world.address(RESALE),
            buyer.to_public()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 402);
    let header = response.headers()["PAYMENT-REQUIRED"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    let decoded: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded, body);
    assert_eq!(body["x402Version"], 2);
    let accept = &body["accepts"][0];
    assert_eq!(accept["network"], "eip155:31337");
    assert_eq!(accept["amount"], milli(100).to_string());
    assert_eq!(accept["payTo"], format!("{:?}", deployment.market));
    assert_eq!(accept["maxTimeoutSeconds"], DAY);
    assert_eq!(accept["extra"]["offering"], offering.to_string());
    assert_eq!(accept["extra"]["calldataFilled"], true);
    // The calldata buys exactly this offering for the holder, to the recipient: replaying it
    // as a transaction is a purchase.
    let calldata = hex::decode(
        accept["extra"]["calldata"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    let tx = ethers::types::TransactionRequest::new()
        .to(deployment.market)
        .data(calldata)
        .value(milli(100));
    let receipt = ethers::providers::Middleware::send_transaction(
        world.markets[RESALE].client().as_ref(),
        tx,
        None,
    )
    .await
    .unwrap()
    .await
    .unwrap()
    .unwrap();
    assert_eq!(receipt.status, Some(1.into()));

    // The buyer sells its delivered license on; the new holder gets a fresh key.
    let (_, market_b) = world.chain.contracts(BUYER).await.unwrap();
    market_b
        .transfer_from(
            world.address(BUYER),
            world.address(RESALE),
            delivered_license,
        )
        .send()
        .await
        .unwrap()
        .await
        .unwrap();
    let new_holder = Identity::generate();
    let wrapped = request_key(
        &world.markets[RESALE],
        &url,
        model,
        delivered_license,
        &new_holder,
    )
    .await
    .unwrap();
    let key = ModelKey::unwrap(&wrapped, &new_holder, "the fresh key").unwrap();
    let out = dir.path().join("resold.safetensors");
    fetch_decrypted(&store, &minted.weights, &key, &out, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&weights).unwrap()
    );

    // The old holder is refused by name, as are expired, replayed and foreign requests.
    let wallet = |i: u32| world.chain.devnet.wallet(i as usize);
    let fresh = KeyRequest {
        license: delivered_license,
        recipient: recipient_bytes(&buyer.to_public()),
        deadline: now() + 60,
    };
    let (status, body) = ask(
        &url,
        model,
        &fresh,
        &wallet(BUYER as u32),
        31337,
        deployment.market,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&format!("is held by {:?}", world.address(RESALE))),
        "{body}"
    );
    let expired = KeyRequest {
        deadline: now() - 1,
        ..fresh
    };
    let (status, body) = ask(
        &url,
        model,
        &expired,
        &wallet(RESALE as u32),
        31337,
        deployment.market,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let (status, body) = ask(
        &url,
        model,
        &fresh,
        &wallet(RESALE as u32),
        31337,
        deployment.market,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ask(
        &url,
        model,
        &fresh,
        &wallet(RESALE as u32),
        31337,
        deployment.market,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let other_chain = KeyRequest {
        deadline: now() + 61,
        ..fresh
    };
    let (status, _) = ask(
        &url,
        model,
        &other_chain,
        &wallet(RESALE as u32),
        1,
        deployment.market,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = ask(
        &url,
        model,
        &other_chain,
        &wallet(RESALE as u32),
        31337,
        Address::repeat_byte(1),
    )
    .await;
    assert_eq!(status, 403);
    // A license still waiting for its key grants nothing yet.
    let waiting = KeyRequest {
        license: stale,
        ..other_chain
    };
    let (status, body) = ask(
        &url,
        model,
        &waiting,
        &wallet(BUYER as u32),
        31337,
        deployment.market,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("grants no access"),
        "{body}"
    );

    // A service reading holders 5 blocks deep: right after another sale of the license its
    // new holder waits for the confirmations, then gets its key.
    let (_, market_r) = world.chain.contracts(RESALE).await.unwrap();
    market_r
        .transfer_from(world.address(RESALE), world.address(4), delivered_license)
        .send()
        .await
        .unwrap()
        .await
        .unwrap();
    let deep = KeyService::new(
        world.markets[KEEPER].clone(),
        world.store(),
        keeper.clone(),
        5,
    );
    let request = KeyRequest {
        deadline: now() + 120,
        ..fresh
    };
    let signed = request.sign(&wallet(4), 31337, deployment.market).unwrap();
    let early = deep.key(model, &signed, now()).await.unwrap_err();
    assert_eq!(early.status(), 403, "{early:?}");
    // (Five blocks ago the license was still with an earlier holder.)
    assert!(early.message().contains("is held by 0x"), "{early:?}");
    assert!(
        !early
            .message()
            .contains(&format!("is held by {:?}", world.address(4))),
        "{early:?}"
    );
    let provider = registry::chain::provider(world.url()).unwrap();
    let _: () = provider
        .request("anvil_mine", [U256::from(5), U256::zero()])
        .await
        .unwrap();
    // (The refusal released the request: the same signed request is answered now.)
    assert!(deep.key(model, &signed, now()).await.is_ok());
    // A failed answer does not use the request up: retried, it fails the same way, not as a
    // replay.
    let stranger = KeyService::new(
        world.markets[KEEPER].clone(),
        world.store(),
        Identity::generate(),
        0,
    );
    let again = KeyRequest {
        deadline: now() + 121,
        ..fresh
    };
    let signed = again.sign(&wallet(4), 31337, deployment.market).unwrap();
    for _ in 0..2 {
        let refused = stranger.key(model, &signed, now()).await.unwrap_err();
        assert_eq!(refused.status(), 404, "{refused:?}");
    }

    // After the deadline the undelivered purchase is refunded, and the index says so.
    world.chain.advance(DAY).await.unwrap();
    world.markets[RESALE].refund(refunded).await.unwrap();
    world.chain.advance(1).await.unwrap();
    world.chain.advance(1).await.unwrap();
    indexer.sync().await.unwrap();
    let data = graphql(
        &url,
        &format!(r#"{{ licenses(where: {{ model: "{model}" }}) {{ edges {{ node {{ id refunded pendingDelivery holder }} }} }} }}"#),
    )
    .await;
    let row = data["licenses"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["id"] == refunded.to_string())
        .unwrap();
    assert_eq!(row["refunded"], true);
    assert_eq!(row["pendingDelivery"], false);
    assert_eq!(row["holder"], format!("{:?}", Address::zero()));
}
