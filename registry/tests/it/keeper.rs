//! The keeper against a chain that reorganises: a delivery that a reorg drops is delivered
//! again, even when the purchase lies far below the blocks a pass rescans.

use age::x25519::Identity;
use contracts::LicenseKind;
use ethers::types::U256;
use registry::chain;
use registry::content::Version;
use registry::keeper::{Keeper, Outcome, REORG_MARGIN};
use registry::keys::recipient_bytes;
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;

use crate::models::write_model;
use crate::world::{milli, terms, World, DAY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_dropped_by_a_reorg_is_delivered_again() {
    let world = World::start().await;
    let store = world.store();
    let keeper_identity = Identity::generate();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("m.safetensors");
    write_model(&weights, 81, 0.0);
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
        encrypt_to: Some(vec![keeper_identity.to_public()]),
    };
    let model = mint(&world.markets[0], &store, &request, &Silent)
        .await
        .unwrap()
        .model;
    world.markets[0]
        .set_keeper(world.address(2), true)
        .await
        .unwrap();
    let mut access = terms(model, LicenseKind::Access, milli(1), 0, 0, false);
    access.delivery_period = DAY;
    let offering = world.offer(0, access).await;
    let license = world.markets[1]
        .buy(
            offering,
            world.address(1),
            milli(1),
            Some(recipient_bytes(&Identity::generate().to_public())),
        )
        .await
        .unwrap()
        .license;

    // The purchase sinks far below what a pass rescans.
    let provider = chain::provider(world.url()).unwrap();
    let _: () = provider
        .request("anvil_mine", [U256::from(2 * REORG_MARGIN), U256::zero()])
        .await
        .unwrap();
    let mut keeper = Keeper::new(&world.markets[2], &store, keeper_identity);
    let snapshot: U256 = provider.request("evm_snapshot", ()).await.unwrap();
    let first = keeper.pass().await.unwrap();
    assert!(
        matches!(&first[..], [Outcome::Delivered { license: l, .. }] if *l == license),
        "{first:?}"
    );
    assert!(world.markets[2]
        .pending_delivery(license)
        .await
        .unwrap()
        .is_none());

    // A reorg drops the delivery (and a block more is mined on the new branch).
    let reverted: bool = provider.request("evm_revert", [snapshot]).await.unwrap();
    assert!(reverted);
    let _: String = provider.request("evm_mine", ()).await.unwrap();
    assert!(world.markets[2]
        .pending_delivery(license)
        .await
        .unwrap()
        .is_some());
    let second = keeper.pass().await.unwrap();
    assert!(
        matches!(&second[..], [Outcome::Delivered { license: l, .. }] if *l == license),
        "{second:?}"
    );
    assert!(world.markets[2]
        .pending_delivery(license)
        .await
        .unwrap()
        .is_none());
    // And once settled, nothing more.
    assert!(keeper.pass().await.unwrap().is_empty());
}

/// Our EIP-712 digest of a key request is the standard one: foundry's `cast wallet sign --data`
/// signs the same typed data to the same signature.
#[test]
fn key_requests_are_signed_as_cast_signs_eip712_typed_data() {
    use registry::key_request::KeyRequest;
    let cast = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../node_modules/@foundry-rs/cast-linux-amd64/bin/cast");
    let wallet = chain::dev_wallet(1).unwrap();
    let market = ethers::types::Address::repeat_byte(0x42);
    let request = KeyRequest {
        license: U256::from(7),
        recipient: [9; 32],
        deadline: 1_900_000_000,
    };
    let ours = request.sign(&wallet, 31337, market).unwrap().signature;
    let typed = request.typed_data_json(31337, market).to_string();
    let key = format!("0x{}", hex::encode(wallet.signer().to_bytes()));
    let out = std::process::Command::new(&cast)
        .args(["wallet", "sign", "--private-key", &key, "--data", &typed])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (npm ci installs cast)", cast.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ours);
}
