//! A subscriber to new licenses across a reorg: the new fork's licenses reuse the ids of the
//! undone ones (the market's counter), and arrive all the same, even when the reorg and the
//! new fork's rows land between two reads of the change feed.

use ethers::providers::Middleware;
use ethers::types::U256;
use serde_json::Value;

use crate::api::{next_message, Api};
use crate::dbs::{Kind, TestDb};
use crate::world::{options, World};

/// The next `n` licenses the subscription sends: (id, price).
async fn licenses(ws: &mut crate::api::Socket, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let message = next_message(ws).await;
        let license = &message["payload"]["data"]["newLicenses"];
        assert!(license.is_object(), "{message}");
        out.push((
            license["id"].as_str().unwrap().to_string(),
            license["price"].as_str().unwrap().to_string(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_licenses_of_a_new_fork_reach_a_subscriber_under_the_same_ids() {
    let world = World::start().await;
    world.workload().await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = world.indexer(&db, options()).await;
    indexer.sync().await.unwrap();
    let api = Api::start(db.open().await, world.store());
    let newest = api
        .data(
            "{ licenses(first: 1, orderBy: ID_DESC) { nodes { id } } }",
            Value::Null,
        )
        .await;
    let newest = newest["licenses"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ws = api
        .subscribe(&format!(
            r#"subscription {{ newLicenses(after: "{newest}") {{ id price }} }}"#
        ))
        .await;

    let provider = registry::chain::provider(world.url()).unwrap();
    let snapshot: U256 = provider.request("evm_snapshot", ()).await.unwrap();
    world.activity(2, 1).await;
    indexer.sync().await.unwrap();
    let first = licenses(&mut ws, 2).await;

    // Another fork from the snapshot, longer than the first: two other licenses, whose
    // prices differ, under the same ids. Indexed in one go: the feed may never see the
    // newest id go down.
    let depth = provider.get_block_number().await.unwrap().as_u64();
    assert!(provider
        .request::<_, bool>("evm_revert", [snapshot])
        .await
        .unwrap());
    world.activity(2, 2).await;
    while provider.get_block_number().await.unwrap().as_u64() <= depth {
        let _: String = provider.request("evm_mine", ()).await.unwrap();
    }
    indexer.sync().await.unwrap();
    let second = licenses(&mut ws, 2).await;

    let ids = |l: &[(String, String)]| l.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&first),
        ids(&second),
        "the same ids: {first:?} {second:?}"
    );
    assert!(
        first.iter().zip(&second).all(|(a, b)| a.1 != b.1),
        "the new fork's prices: {first:?} {second:?}"
    );
}
