//! The web app's transaction builder against a real anvil: the calldata it builds pays
//! exactly the indexed price as `maxPrice` and `value`, names the buyer and (for an
//! encrypted model's access license) the buyer's age recipient; an output license of an
//! encrypted model needs none; what it builds, sent as a wallet would, buys the license.

use age::x25519::Identity;
use content::Version;
use contracts::license_market::{BuyCall, RenewCall};
use contracts::LicenseKind;
use ethers::abi::AbiDecode;
use ethers::providers::Middleware;
use ethers::types::{Bytes, TransactionRequest, U256};
use registry::keys::recipient_bytes;
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;
use serde_json::Value;
use web::{Limits, ServerConfig};

use crate::dbs::{Kind, TestDb};
use crate::models::write_model;
use crate::world::{milli, options, terms, World, DAY};

const AUTHOR: usize = 0;
const BUYER: usize = 4;

fn serve(db: store::Db, store: content::Store, chain: web::app::Chain) -> String {
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
                    keys: None,
                    cors_origins: Vec::new(),
                    ready_lag: 64,
                    chain: Some(chain),
                },
                move |address| tx.send(address).unwrap(),
            ))
            .unwrap();
    });
    let address = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    format!("http://{address}")
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn data(step: &Value) -> Vec<u8> {
    hex::decode(step["data"].as_str().unwrap().trim_start_matches("0x")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_built_for_a_wallet_pay_the_indexed_price_and_buy_the_license() {
    let world = World::start().await;
    let store = world.store();
    let deployment = world.deployment();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("sealed.safetensors");
    write_model(&weights, 81, 0.0);
    let author = Identity::generate();
    let request = MintRequest {
        weights,
        name: "sealed".into(),
        description: None,
        parents: vec![],
        to: None,
        sale_royalty_bps: 0,
        derivative_royalty_bps: 0,
        force: false,
        backend: fingerprint::BackendKind::Cpu,
        cid_version: Version::V1,
        encrypt_to: Some(vec![author.to_public()]),
    };
    let model = mint(&world.markets[AUTHOR], &store, &request, &Silent)
        .await
        .unwrap()
        .model;
    let mut access = terms(model, LicenseKind::Access, milli(30), 30 * DAY, 0, true);
    access.delivery_period = DAY;
    let access = world.offer(AUTHOR, access).await;
    let output = terms(model, LicenseKind::Output, milli(7), 7 * DAY, 0, false);
    let output = world.offer(AUTHOR, output).await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = world.indexer(&db, options()).await;
    indexer.sync().await.unwrap();
    let url = serve(
        db.open().await,
        world.store(),
        web::app::Chain {
            chain_id: deployment.chain_id,
            rpc_url: Some(world.url().to_string()),
            registry: format!("{:?}", deployment.registry),
            market: format!("{:?}", deployment.market),
            currencies: Vec::new(),
        },
    );
    let buyer = world.address(BUYER);

    // An encrypted model's access license buys its key: the recipient is required.
    let (status, refused) = get(&format!(
        "{url}/app/tx/buy?offering={access}&buyer={buyer:?}"
    ))
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("is encrypted"),
        "{refused}"
    );
    let recipient = Identity::generate().to_public();
    let (status, built) = get(&format!(
        "{url}/app/tx/buy?offering={access}&buyer={buyer:?}&recipient={recipient}"
    ))
    .await;
    assert_eq!(status, 200, "{built}");
    let steps = built["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "ether needs no approval: {built}");
    let call = BuyCall::decode(data(&steps[0])).unwrap();
    assert_eq!(call.offering_id, access);
    assert_eq!(call.holder, buyer);
    assert_eq!(call.max_price, milli(30));
    assert_eq!(call.recipient, recipient_bytes(&recipient));
    assert_eq!(steps[0]["value"], format!("{:#x}", milli(30)));
    assert_eq!(steps[0]["to"], format!("{:?}", deployment.market));

    // Sent as the wallet sends it (anvil's unlocked account): the license is bought, in escrow.
    let provider = registry::chain::provider(world.url()).unwrap();
    let send = |step: &Value| TransactionRequest {
        from: Some(buyer),
        to: Some(
            step["to"]
                .as_str()
                .unwrap()
                .parse::<ethers::types::Address>()
                .unwrap()
                .into(),
        ),
        data: Some(Bytes::from(data(step))),
        value: Some(
            U256::from_str_radix(step["value"].as_str().unwrap().trim_start_matches("0x"), 16)
                .unwrap(),
        ),
        ..Default::default()
    };
    let receipt = provider
        .send_transaction(send(&steps[0]), None)
        .await
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.status, Some(1.into()));
    indexer.sync().await.unwrap();
    let (_, held) = get(&format!(
        "{url}/graphql?query={{licenses(where:{{holder:\"{buyer:?}\"}}){{nodes{{id offering{{id}} price escrowed}}}}}}"
    ))
    .await;
    let nodes = held["data"]["licenses"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(nodes.len(), 1, "{held}");
    assert_eq!(nodes[0]["offering"]["id"], access.to_string());
    assert_eq!(nodes[0]["price"], milli(30).to_string());
    assert_eq!(nodes[0]["escrowed"], true);

    // An output license of the same model buys no key: no recipient needed.
    let (status, built) = get(&format!(
        "{url}/app/tx/buy?offering={output}&buyer={buyer:?}"
    ))
    .await;
    assert_eq!(status, 200, "{built}");
    let call = BuyCall::decode(data(&built["steps"][0])).unwrap();
    assert_eq!(
        (call.offering_id, call.max_price, call.recipient),
        (output, milli(7), [0; 32])
    );
    let receipt = provider
        .send_transaction(send(&built["steps"][0]), None)
        .await
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.status, Some(1.into()));
    indexer.sync().await.unwrap();

    // A renewal of the output license: its snapshotted price, as maxPrice and value.
    let (_, held) = get(&format!(
        "{url}/graphql?query={{licenses(where:{{holder:\"{buyer:?}\",kind:OUTPUT}}){{nodes{{id}}}}}}"
    ))
    .await;
    let license = held["data"]["licenses"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, built) = get(&format!(
        "{url}/app/tx/renew?license={license}&payer={buyer:?}"
    ))
    .await;
    assert_eq!(status, 200, "{built}");
    let call = RenewCall::decode(data(&built["steps"][0])).unwrap();
    assert_eq!(
        (call.license_id.to_string(), call.max_price),
        (license, milli(7))
    );
    assert_eq!(built["steps"][0]["value"], format!("{:#x}", milli(7)));

    // Unknown and malformed input: named.
    let (status, body) = get(&format!("{url}/app/tx/buy?offering=999&buyer={buyer:?}")).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (404, "there is no offering 999")
    );
    let (status, body) = get(&format!("{url}/app/tx/buy?offering={output}&buyer=0x12")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(&format!(
        "{url}/app/tx/buy?offering={access}&buyer={buyer:?}&recipient=age1nope"
    ))
    .await;
    assert_eq!(status, 400);
    db.drop_db().await;
}
