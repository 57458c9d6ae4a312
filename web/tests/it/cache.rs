//! The response cache answers a repeated query from memory, and never after the data it was
//! computed from changed: not when the indexer applies new blocks (the cursor moves), and not
//! when a worker beside it records fingerprints or indexes a leaf list (the cursor stays where
//! it was).

use ethers::types::U256;
use registry::indexer::leaves;
use registry::indexer::Step;
use serde_json::{json, Value};

use crate::api::{sample, Api};
use crate::dbs::{Kind, TestDb};
use crate::world::{options, World};

/// The response cache's hits so far, from `/metrics`.
async fn hits(api: &Api) -> f64 {
    let text = api.text("/metrics").await;
    sample(&text, "registry_graphql_cache_hits_total ")
        .unwrap_or_else(|| panic!("no cache hits in {text}"))
}

fn statuses(data: &Value) -> Vec<String> {
    data["models"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["fingerprintSummary"]["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_never_outlives_a_write() {
    let world = World::start().await;
    world.workload().await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = world.indexer(&db, options()).await;
    // The chain only: every fingerprint is still pending.
    while !matches!(indexer.step().await.unwrap(), Step::CaughtUp { .. }) {}
    let api = Api::start(db.open().await, world.store());

    let fingerprints = "{ models(first: 50) { nodes { id fingerprintSummary { status } } } }";
    let before = api.data(fingerprints, Value::Null).await;
    assert!(!statuses(&before).is_empty());
    assert!(statuses(&before).iter().all(|s| s == "pending"), "{before}");
    let hits_before = hits(&api).await;
    assert_eq!(api.data(fingerprints, Value::Null).await, before);
    assert_eq!(hits(&api).await, hits_before + 1.0, "a repeat is a hit");

    // The worker records the fingerprints; the cursor does not move.
    let cursor = indexer.cursor();
    indexer.sync().await.unwrap();
    assert_eq!(indexer.cursor(), cursor);
    let after = api.data(fingerprints, Value::Null).await;
    assert!(statuses(&after).iter().all(|s| s == "ok"), "{after}");

    // New blocks: the cursor moves, and the answer with it.
    let licenses = "{ licenses(first: 100) { nodes { id } } }";
    let count = |data: &Value| data["licenses"]["nodes"].as_array().unwrap().len();
    let before = count(&api.data(licenses, Value::Null).await);
    world.activity(3, 11).await;
    indexer.sync().await.unwrap();
    let after = count(&api.data(licenses, Value::Null).await);
    assert!(after > before, "{before} licenses, then {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_indexed_by_the_leaf_list_worker_are_not_hidden_by_the_cache() {
    let world = World::start().await;
    let (_, offering) = world.output_offering(31).await;
    let license = world.buy(1, offering, U256::zero()).await;
    let dir = tempfile::tempdir().unwrap();
    world
        .commit_outputs(1, license, dir.path(), &[b"alpha", b"beta"], true)
        .await;
    let sha =
        registry::outputs::batch::sha256_file(&dir.path().join("output-1-1.txt"), &|_| {}).unwrap();
    let db = TestDb::new(Kind::Sqlite).await;
    world.indexer(&db, options()).await.sync().await.unwrap();
    let api = Api::start(db.open().await, world.store());

    let query = "query($h: String!) { output(contentHash: $h) { position } }";
    let variables = json!({ "h": format!("{sha:?}") });
    // The batch is indexed, its leaf list not yet: the output is not found (and cached so).
    for _ in 0..2 {
        let pending = api.data(query, variables.clone()).await;
        assert_eq!(pending["output"], Value::Null, "{pending}");
    }
    let lists = world.leaf_lists(&db, leaves::Options::default()).await;
    assert_eq!(lists.drain().await.unwrap().len(), 1);
    let found = api.data(query, variables).await;
    assert_eq!(found["output"]["position"], 1, "{found}");
}
