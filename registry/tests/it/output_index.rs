//! The read side of output receipts against a real anvil: batches are recorded by the
//! indexer, published leaf lists are fetched beside it, checked against the committed batch and
//! indexed by content hash (a forged list, a URI that is not IPFS and a list the store does not
//! hold yet each end as they should), and a reorg that drops a batch drops its outputs.

use std::time::Duration;

use content::{Store, Version};
use ethers::providers::Middleware;
use ethers::types::{H256, U256};
use registry::chain;
use registry::indexer::leaves::{self, Fetched};
use registry::metadata::ipfs_uri;
use registry::outputs::commit::{LeafList, LIST_FORMAT};
use registry::outputs::{Batch, Scope};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use sha2::{Digest, Sha256};
use store::entity::{output_batches, outputs};

use crate::dbs::{Kind, TestDb};
use crate::world::{options, World};

fn sha(bytes: &[u8]) -> H256 {
    H256(Sha256::digest(bytes).into())
}

/// Retries are due at once.
fn eager() -> leaves::Options {
    leaves::Options {
        timeout: Duration::from_secs(20),
        retry_base: Duration::ZERO,
        ..leaves::Options::default()
    }
}

fn root_of(fetched: &Fetched) -> &str {
    match fetched {
        Fetched::Indexed { root, .. }
        | Fetched::Invalid { root, .. }
        | Fetched::Failed { root, .. }
        | Fetched::Gone { root } => root,
    }
}

fn hex(h: H256) -> String {
    format!("{h:?}")
}

/// A list's bytes: `leaves` published under `root`.
fn list(root: H256, batch: &Batch) -> Vec<u8> {
    serde_json::to_vec(&LeafList {
        format: LIST_FORMAT.into(),
        root,
        leaves: batch.leaves.clone(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_lists_are_checked_retried_and_indexed() {
    let world = World::start().await;
    let (model, offering) = world.output_offering(73).await;
    let license = world.buy(1, offering, U256::zero()).await;
    let dir = tempfile::tempdir().unwrap();
    let contents: [&[u8]; 3] = [b"alpha", b"beta", b"gamma"];
    let honest = world
        .commit_outputs(1, license, dir.path(), &contents, true)
        .await;
    let unpublished = world
        .commit_outputs(1, license, dir.path(), &[b"delta"], false)
        .await;
    let market = &world.markets[1];
    let scope = Scope {
        chain_id: market.deployment().chain_id,
        market: market.deployment().market,
        license,
        model,
    };
    let store = world.store();
    // A forged list: another batch's leaves published under a committed root.
    let forged = Batch::new(scope, &[(sha(b"x"), 1)]).unwrap();
    let impostor = Batch::new(scope, &[(sha(b"not committed"), 1)]).unwrap();
    let cid = store
        .store_bytes(&list(forged.root(), &impostor), Version::V1)
        .await
        .unwrap();
    market
        .commit_outputs(license, forged.root(), 1, &ipfs_uri(&cid))
        .await
        .unwrap();
    // A list the indexer's store does not hold yet.
    let elsewhere = tempfile::tempdir().unwrap();
    let late = Batch::new(scope, &[(sha(b"late"), 1)]).unwrap();
    let late_list = list(late.root(), &late);
    let late_cid = Store::embedded(elsewhere.path())
        .unwrap()
        .store_bytes(&late_list, Version::V1)
        .await
        .unwrap();
    market
        .commit_outputs(license, late.root(), 1, &ipfs_uri(&late_cid))
        .await
        .unwrap();
    // A URI that is not content-addressed.
    let web = Batch::new(scope, &[(sha(b"web"), 1)]).unwrap();
    market
        .commit_outputs(license, web.root(), 1, "https://example.com/list.json")
        .await
        .unwrap();

    let db = TestDb::new(Kind::Sqlite).await;
    world.indexer(&db, options()).await.sync().await.unwrap();
    let lists = world.leaf_lists(&db, eager()).await;
    let fetched = lists.drain().await.unwrap();
    let of = |root: H256| {
        fetched
            .iter()
            .find(|f| root_of(f) == hex(root))
            .unwrap_or_else(|| panic!("{root:?} was not fetched: {fetched:?}"))
            .clone()
    };
    assert_eq!(fetched.len(), 4, "the unpublished batch is not fetched");
    assert_eq!(
        of(honest.root),
        Fetched::Indexed {
            root: hex(honest.root),
            outputs: 3
        }
    );
    match of(forged.root()) {
        Fetched::Invalid { reason, .. } => assert!(reason.contains("build root"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match of(web.root()) {
        Fetched::Invalid { reason, .. } => {
            assert!(reason.contains("not an IPFS address"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    match of(late.root()) {
        Fetched::Failed { reason, .. } => {
            assert!(reason.contains("is not in the content store"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // The list reaches the store; its retry indexes it, and nothing else is tried again.
    assert_eq!(
        store.store_bytes(&late_list, Version::V1).await.unwrap(),
        late_cid
    );
    assert_eq!(
        lists.drain().await.unwrap(),
        vec![Fetched::Indexed {
            root: hex(late.root()),
            outputs: 1
        }]
    );
    assert_eq!(lists.drain().await.unwrap(), vec![]);

    let conn = db.open().await;
    let batches = output_batches::Entity::find()
        .order_by_asc(output_batches::Column::BlockNumber)
        .all(conn.conn())
        .await
        .unwrap();
    let status: Vec<(&str, i64)> = batches
        .iter()
        .map(|b| (b.leaves_status.as_str(), b.leaves_attempts))
        .collect();
    assert_eq!(
        status,
        vec![
            ("indexed", 1),
            ("unpublished", 0),
            ("invalid", 1),
            ("indexed", 2),
            ("invalid", 1)
        ]
    );
    let first = &batches[0];
    assert_eq!(first.root, hex(honest.root));
    assert_eq!(first.provider, format!("{:?}", world.address(1)));
    assert_eq!(
        (first.license_id, first.model_id, first.count),
        (license.as_u64() as i64, model.as_u64() as i64, 3)
    );
    assert_eq!(first.committed_at as u64, honest.committed_at);
    assert_eq!(batches[1].root, hex(unpublished.root));
    assert_eq!(batches[1].uri, None);

    let rows = outputs::Entity::find()
        .filter(outputs::Column::ContentHash.eq(hex(sha(b"beta"))))
        .all(conn.conn())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let beta = &rows[0];
    assert_eq!(beta.root, hex(honest.root));
    assert_eq!(
        (beta.license_id, beta.model_id, beta.produced_at),
        (
            license.as_u64() as i64,
            model.as_u64() as i64,
            1_700_000_000
        )
    );
    assert_eq!(beta.block_number as u64, honest.block);
    // Outputs of the honest and the late batch only: nothing of the forged list.
    assert_eq!(
        outputs::Entity::find()
            .all(conn.conn())
            .await
            .unwrap()
            .len(),
        4
    );
    let impostor_rows = outputs::Entity::find()
        .filter(outputs::Column::ContentHash.eq(hex(sha(b"not committed"))))
        .all(conn.conn())
        .await
        .unwrap();
    assert!(impostor_rows.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_that_drops_a_batch_drops_its_outputs() {
    let world = World::start().await;
    let (_, offering) = world.output_offering(74).await;
    let license = world.buy(1, offering, U256::zero()).await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = world.indexer(&db, options()).await;
    indexer.sync().await.unwrap();
    let provider = chain::provider(world.url()).unwrap();
    let snapshot: U256 = provider.request("evm_snapshot", ()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let committed = world
        .commit_outputs(1, license, dir.path(), &[b"one", b"two"], true)
        .await;
    indexer.sync().await.unwrap();
    let lists = world.leaf_lists(&db, eager()).await;
    assert_eq!(
        lists.drain().await.unwrap(),
        vec![Fetched::Indexed {
            root: hex(committed.root),
            outputs: 2
        }]
    );
    let conn = db.open().await;
    assert_eq!(
        outputs::Entity::find()
            .all(conn.conn())
            .await
            .unwrap()
            .len(),
        2
    );

    // The branch without the batch becomes the longer one.
    let reverted: bool = provider.request("evm_revert", [snapshot]).await.unwrap();
    assert!(reverted);
    let start = provider.get_block_number().await.unwrap().as_u64();
    while provider.get_block_number().await.unwrap().as_u64() < committed.block + 1 {
        let _: String = provider.request("evm_mine", ()).await.unwrap();
    }
    assert!(provider.get_block_number().await.unwrap().as_u64() > start);
    indexer.sync().await.unwrap();
    assert!(output_batches::Entity::find()
        .all(conn.conn())
        .await
        .unwrap()
        .is_empty());
    assert!(outputs::Entity::find()
        .all(conn.conn())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(lists.drain().await.unwrap(), vec![]);
    let replay = world.replay(Kind::Sqlite).await;
    assert_eq!(
        conn.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
}
