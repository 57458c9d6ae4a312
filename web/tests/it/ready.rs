//! `/ready` tells a load balancer when to send traffic: not before the indexer has run, not
//! while it is far behind the head, and yes once it is close; `/health` answers throughout.

use sea_orm::{ActiveModelTrait, EntityTrait};
use serde_json::Value;
use store::entity::indexer_state;

use crate::api::Api;
use crate::dbs::{Kind, TestDb};

async fn get(api: &Api, path: &str) -> (u16, Value) {
    let response = api
        .http
        .get(format!("{}{path}", api.url))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_once_the_indexer_is_close_to_the_head() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = tempfile::tempdir().unwrap();
    let api = Api::start(
        db.open().await,
        content::Store::embedded(store.path()).unwrap(),
    );
    let (status, body) = get(&api, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("has not run"));
    assert_eq!(get(&api, "/health").await.0, 200);

    // The indexer's row, far behind its head, then caught up (the limit is 64 blocks).
    let conn = db.open().await;
    let row = indexer_state::Model {
        id: 1,
        chain_id: 31_337,
        registry: "0x01".into(),
        market: "0x02".into(),
        start_block: 1,
        cursor_block: 100,
        cursor_hash: "0x03".into(),
        head_block: 1_000,
        finalized_block: 988,
        updated_at: 0,
        pruned_to: 0,
    };
    indexer_state::Entity::insert(indexer_state::ActiveModel::from(row.clone()))
        .exec(conn.conn())
        .await
        .unwrap();
    let (status, body) = get(&api, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("900 blocks behind"));

    let mut caught_up = indexer_state::ActiveModel::from(row);
    caught_up.cursor_block = sea_orm::ActiveValue::Set(990);
    caught_up.update(conn.conn()).await.unwrap();
    let (status, body) = get(&api, "/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lag"], 10);
    db.drop_db().await;
}
