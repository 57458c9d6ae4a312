//! Output receipts through GraphQL, on SQLite and PostgreSQL: a published batch answers
//! `output(contentHash)` with its license, model and batch; an unpublished one is listed among
//! `outputBatches` but its content is not found; filters, pages and bad input.

use ethers::types::U256;
use registry::indexer::leaves;
use serde_json::{json, Value};

use crate::api::{addr, Api};
use crate::dbs::{Kind, TestDb};
use crate::world::{options, World};

async fn outputs_answer_by_content_hash(kind: Kind) {
    let world = World::start().await;
    let (model, offering) = world.output_offering(75).await;
    let license = world.buy(1, offering, U256::zero()).await;
    let dir = tempfile::tempdir().unwrap();
    let published = world
        .commit_outputs(1, license, dir.path(), &[b"alpha", b"beta", b"gamma"], true)
        .await;
    let unpublished = world
        .commit_outputs(1, license, dir.path(), &[b"delta"], false)
        .await;
    let sha = |name: &str| {
        let sha = registry::outputs::batch::sha256_file(&dir.path().join(name), &|_| {}).unwrap();
        format!("{sha:?}")
    };
    let db = TestDb::new(kind).await;
    world.indexer(&db, options()).await.sync().await.unwrap();
    let lists = world.leaf_lists(&db, leaves::Options::default()).await;
    assert_eq!(lists.drain().await.unwrap().len(), 1);
    let api = Api::start(db.open().await, world.store());

    let query = r#"query($h: String!) { output(contentHash: $h) {
        contentHash producedAt position licenseId modelId
        license { id kind holder } model { id }
        batch { root provider count uri committedAt leafList { status detail attempts } } } }"#;
    let beta = sha("output-1-1.txt");
    let found = api.data(query, json!({ "h": beta })).await;
    let o = &found["output"];
    assert_eq!(o["contentHash"], beta);
    assert_eq!(o["producedAt"], 1_700_000_000);
    assert_eq!(o["position"], 1);
    assert_eq!(o["licenseId"], license.to_string());
    assert_eq!(o["modelId"], model.to_string());
    assert_eq!(o["license"]["kind"], "OUTPUT");
    assert_eq!(o["license"]["holder"], addr(world.address(1)));
    assert_eq!(o["model"]["id"], model.to_string());
    let b = &o["batch"];
    assert_eq!(b["root"], format!("{:?}", published.root));
    assert_eq!(b["provider"], addr(world.address(1)));
    assert_eq!(b["count"], 3);
    assert_eq!(b["uri"], published.uri.clone().unwrap());
    assert_eq!(b["committedAt"], published.committed_at);
    assert_eq!(
        b["leafList"],
        json!({ "status": "INDEXED", "detail": null, "attempts": 1 })
    );
    // Hashes are matched whatever their case.
    let upper = format!("0x{}", beta[2..].to_uppercase());
    let again = api.data(query, json!({ "h": upper })).await;
    assert_eq!(again["output"]["contentHash"], beta);
    // An unpublished batch's output, and content never committed, are not found.
    for absent in [sha("output-0-0.txt"), format!("0x{}", "ab".repeat(32))] {
        let none = api.data(query, json!({ "h": absent })).await;
        assert_eq!(none["output"], Value::Null, "{absent}");
    }
    assert_eq!(
        api.code(r#"{ output(contentHash: "0x1234") { id } }"#)
            .await,
        "BAD_USER_INPUT"
    );

    // Batches: both, newest first; by provider, model and list status.
    let roots = |data: &Value| -> Vec<String> {
        data["outputBatches"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["root"].as_str().unwrap().to_string())
            .collect()
    };
    let batches = |filter: String| {
        let api = &api;
        async move {
            api.data(
                &format!(
                    "{{ outputBatches(where: {{ {filter} }}) {{ edges {{ node {{ root uri leafList {{ status }} }} }} }} }}"
                ),
                Value::Null,
            )
            .await
        }
    };
    let by_license = batches(format!("license: \"{license}\"")).await;
    assert_eq!(
        roots(&by_license),
        vec![
            format!("{:?}", unpublished.root),
            format!("{:?}", published.root)
        ]
    );
    let newest = &by_license["outputBatches"]["edges"][0]["node"];
    assert_eq!(newest["uri"], Value::Null);
    assert_eq!(newest["leafList"]["status"], "UNPUBLISHED");
    let by_model = batches(format!("model: \"{model}\", leafList: INDEXED")).await;
    assert_eq!(roots(&by_model), vec![format!("{:?}", published.root)]);
    let nobody = batches(format!("provider: \"{}\"", addr(world.address(2)))).await;
    assert!(roots(&nobody).is_empty());
    let oldest = api
        .data(
            "{ outputBatches(orderBy: OLDEST_FIRST, first: 1) { edges { node { root } } } }",
            Value::Null,
        )
        .await;
    assert_eq!(roots(&oldest), vec![format!("{:?}", published.root)]);

    // A batch's outputs, two to a page, in the list's order.
    let page = r#"query($root: String!, $after: String) {
        outputs(where: { batch: $root }, first: 2, after: $after) {
            pageInfo { hasNextPage endCursor } edges { node { contentHash } } } }"#;
    let mut hashes = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = api
            .data(
                page,
                json!({ "root": format!("{:?}", published.root), "after": after }),
            )
            .await;
        let c = &data["outputs"];
        for e in c["edges"].as_array().unwrap() {
            hashes.push(e["node"]["contentHash"].as_str().unwrap().to_string());
        }
        if !c["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = c["pageInfo"]["endCursor"].clone();
    }
    let expected: Vec<String> = (0..3).map(|i| sha(&format!("output-{i}-1.txt"))).collect();
    assert_eq!(hashes, expected);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_answer_by_content_hash_on_sqlite() {
    outputs_answer_by_content_hash(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_answer_by_content_hash_on_postgres() {
    outputs_answer_by_content_hash(Kind::Postgres).await;
}
