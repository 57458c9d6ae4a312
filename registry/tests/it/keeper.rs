//! The keeper against a chain that reorganises: a delivery that a reorg drops is delivered
//! again, even when the purchase lies far below the blocks a pass rescans.

use age::x25519::Identity;
use content::Version;
use contracts::LicenseKind;
use ethers::types::U256;
use registry::access::envelope_key;
use registry::chain;
use registry::keeper::{Keeper, Outcome, DEADLINE_MARGIN, REORG_MARGIN};
use registry::keys::recipient_bytes;
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;
use registry::provenance::metadata_of;
use registry::sealed::ModelKey;

use crate::models::write_model;
use crate::world::{milli, terms, World, DAY};

/// An encrypted model of account 0 whose envelope `keeper` opens, with an access offering
/// whose key is due within `delivery_period`; returns (model, offering).
async fn sealed_offering(
    world: &World,
    keeper: &Identity,
    seed: u32,
    delivery_period: u64,
) -> (U256, U256) {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("m.safetensors");
    write_model(&weights, seed, 0.0);
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
        encrypt_to: Some(vec![keeper.to_public()]),
    };
    let model = mint(&world.markets[0], &world.store(), &request, &Silent)
        .await
        .unwrap()
        .model;
    let mut access = terms(model, LicenseKind::Access, milli(1), 0, 0, false);
    access.delivery_period = delivery_period;
    (model, world.offer(0, access).await)
}

async fn buy(world: &World, offering: U256) -> U256 {
    world.markets[1]
        .buy(
            offering,
            world.address(1),
            milli(1),
            Some(recipient_bytes(&Identity::generate().to_public())),
        )
        .await
        .unwrap()
        .license
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_dropped_by_a_reorg_is_delivered_again() {
    let world = World::start().await;
    let store = world.store();
    let keeper_identity = Identity::generate();
    let (_, offering) = sealed_offering(&world, &keeper_identity, 81, DAY).await;
    world.markets[0]
        .set_keeper(world.address(2), true)
        .await
        .unwrap();
    let license = buy(&world, offering).await;

    // The purchase sinks far below what a pass rescans.
    let provider = chain::provider(world.url()).unwrap();
    let _: () = provider
        .request("anvil_mine", [U256::from(2 * REORG_MARGIN), U256::zero()])
        .await
        .unwrap();
    let mut keeper = Keeper::new(&world.markets[2], &store, keeper_identity, 0);
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

/// A reorg moves a license id from one buyer's purchase of model A to the same buyer's
/// purchase of model B (same recipient): the keeper delivers B's key, not the wrapped A key
/// it stored for that license (the contract releases the escrow for any wrapped key, and the
/// buyer would have paid for a key that opens nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_license_reorged_onto_another_model_gets_that_models_key() {
    let world = World::start().await;
    let store = world.store();
    let keeper_identity = Identity::generate();
    let (model_a, offering_a) = sealed_offering(&world, &keeper_identity, 82, DAY).await;
    let (model_b, offering_b) = sealed_offering(&world, &keeper_identity, 83, DAY).await;
    world.markets[0]
        .set_keeper(world.address(2), true)
        .await
        .unwrap();
    let buyer = Identity::generate();
    let recipient = recipient_bytes(&buyer.to_public());
    let (world, recipient) = (&world, &recipient);
    let buy_as_buyer = |offering| async move {
        world.markets[1]
            .buy(offering, world.address(1), milli(1), Some(*recipient))
            .await
            .unwrap()
            .license
    };
    let provider = chain::provider(world.url()).unwrap();
    let snapshot: U256 = provider.request("evm_snapshot", ()).await.unwrap();
    let license = buy_as_buyer(offering_a).await;
    let mut keeper = Keeper::new(&world.markets[2], &store, keeper_identity.clone(), 0);
    let first = keeper.pass().await.unwrap();
    assert!(
        matches!(&first[..], [Outcome::Delivered { model, .. }] if *model == model_a),
        "{first:?}"
    );

    let reverted: bool = provider.request("evm_revert", [snapshot]).await.unwrap();
    assert!(reverted);
    assert_eq!(
        buy_as_buyer(offering_b).await,
        license,
        "on the new branch B's purchase has the license id"
    );
    let second = keeper.pass().await.unwrap();
    let [Outcome::Delivered {
        model,
        wrapped_key_cid,
        ..
    }] = &second[..]
    else {
        panic!("{second:?}")
    };
    assert_eq!(*model, model_b);
    let wrapped = store
        .read_bytes(&wrapped_key_cid.parse().unwrap(), 1 << 16)
        .await
        .unwrap();
    let delivered = ModelKey::unwrap(&wrapped, &buyer, "the delivered key").unwrap();
    let view = world.markets[0].model(model_b).await.unwrap();
    let metadata = metadata_of(&store, &view.model).await.unwrap();
    let b_key = envelope_key(&store, view.id, &metadata, &keeper_identity)
        .await
        .unwrap();
    assert_eq!(
        delivered.identity().to_public().to_string(),
        b_key.identity().to_public().to_string(),
        "the buyer got model B's key"
    );
}

/// Deliveries in one pass each wait for their receipt: the deadline margin is checked against
/// the chain's time at each delivery, not at the start of the pass. Here each block moves the
/// chain's clock 400 s on: the first delivery's block puts the second purchase (500 s to its
/// deadline at the start of the pass) within the margin, so it is reported too late, not
/// delivered into a revert (its wrapped key public, the refund still the buyer's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_margin_is_checked_at_each_delivery_not_once_a_pass() {
    let world = World::start().await;
    let store = world.store();
    let keeper_identity = Identity::generate();
    let (_, offering) = sealed_offering(&world, &keeper_identity, 84, 500).await;
    world.markets[0]
        .set_keeper(world.address(2), true)
        .await
        .unwrap();
    let first = buy(&world, offering).await;
    let second = buy(&world, offering).await;
    let provider = chain::provider(world.url()).unwrap();
    let _: () = provider
        .request("anvil_setBlockTimestampInterval", [400u64])
        .await
        .unwrap();
    let mut keeper = Keeper::new(&world.markets[2], &store, keeper_identity, 0);
    let outcomes = keeper.pass().await.unwrap();
    assert!(
        matches!(&outcomes[..], [
            Outcome::Delivered { license: a, .. },
            Outcome::TooLate { license: b, .. },
        ] if *a == first && *b == second),
        "{outcomes:?}"
    );
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

/// A keeper waits for its confirmations, never delivers close to a deadline, and stores
/// nothing for an owner who has not approved it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_waits_for_confirmations_the_deadline_margin_and_approval() {
    let world = World::start().await;
    let store = world.store();
    let keeper_identity = Identity::generate();
    let provider = chain::provider(world.url()).unwrap();
    let blocks = |store: &content::Store| match store {
        content::Store::Embedded(b) => walk(&b.root().join("blocks")),
        _ => unreachable!(),
    };

    // Not approved: reported once, nothing stored, delivered once approved.
    let (_, offering) = sealed_offering(&world, &keeper_identity, 82, DAY).await;
    let license = buy(&world, offering).await;
    let mut keeper = Keeper::new(&world.markets[2], &store, keeper_identity.clone(), 3);
    let before = blocks(&store);
    let _: () = provider
        .request("anvil_mine", [U256::from(3), U256::zero()])
        .await
        .unwrap();
    let first = keeper.pass().await.unwrap();
    assert!(
        matches!(&first[..], [Outcome::NotApproved { license: l, .. }] if *l == license),
        "{first:?}"
    );
    assert!(keeper.pass().await.unwrap().is_empty(), "reported once");
    assert_eq!(
        blocks(&store),
        before,
        "nothing stored for an unapproved keeper"
    );
    world.markets[0]
        .set_keeper(world.address(2), true)
        .await
        .unwrap();

    // Confirmations: a fresh purchase waits until it is 3 blocks deep.
    let fresh = buy(&world, offering).await;
    let second = keeper.pass().await.unwrap();
    assert!(
        matches!(&second[..], [Outcome::Delivered { license: l, .. }] if *l == license),
        "{second:?}"
    );
    let _: () = provider
        .request("anvil_mine", [U256::from(3), U256::zero()])
        .await
        .unwrap();
    let third = keeper.pass().await.unwrap();
    assert!(
        matches!(&third[..], [Outcome::Delivered { license: l, .. }] if *l == fresh),
        "{third:?}"
    );

    // A purchase whose deadline is closer than the margin is left to its refund.
    let (_, short) = sealed_offering(&world, &keeper_identity, 83, DEADLINE_MARGIN - 60).await;
    let late = buy(&world, short).await;
    let _: () = provider
        .request("anvil_mine", [U256::from(3), U256::zero()])
        .await
        .unwrap();
    let fourth = keeper.pass().await.unwrap();
    assert!(
        matches!(&fourth[..], [Outcome::TooLate { license: l, .. }] if *l == late),
        "{fourth:?}"
    );
    assert!(world.markets[2]
        .pending_delivery(late)
        .await
        .unwrap()
        .is_some());
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| {
                    let path = e.unwrap().path();
                    if path.is_dir() {
                        walk(&path)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
