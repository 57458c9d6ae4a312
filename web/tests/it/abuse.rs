//! Requests that would take the service down, each refused with a code at once: a document
//! whose fragments expand to billions of fields (with and without aliases), a batch of too many
//! operations, and a document nested beyond the parser's limit; the server answers after them.

use serde_json::{json, Value};

use crate::api::Api;
use crate::dbs::{Kind, TestDb};

/// A document of `levels` fragments, each spreading the next twice: 2^levels fields (the
/// schema refuses nesting, fragments included, beyond 32 levels).
fn fragment_bomb(levels: usize, alias: bool) -> String {
    let field = if alias { "x: id" } else { "id" };
    let mut doc = String::from("{ models { edges { node { ...F0 } } } }\n");
    for i in 0..levels {
        doc.push_str(&format!(
            "fragment F{i} on Model {{ {field} ...F{n} ...F{n} }}\n",
            n = i + 1
        ));
    }
    doc.push_str(&format!("fragment F{levels} on Model {{ {field} }}\n"));
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_documents_are_refused_with_codes() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store_dir = tempfile::tempdir().unwrap();
    let api = Api::start(
        db.open().await,
        content::Store::embedded(store_dir.path()).unwrap(),
    );
    let code = |response: &Value| response["errors"][0]["extensions"]["code"].clone();
    // Measured by its text, not expanded: refused well inside the client's patience.
    let bounded = |query: String| {
        let api = &api;
        async move {
            tokio::time::timeout(
                std::time::Duration::from_secs(20),
                api.post(&query, Value::Null),
            )
            .await
            .expect("answered, not expanded")
        }
    };
    for alias in [true, false] {
        let response = bounded(fragment_bomb(26, alias)).await;
        assert_eq!(code(&response), "FIELD_LIMIT", "{response}");
    }
    // Spreads alone, ending in a fragment that is not defined: refused before the schema
    // walks them (3^30 steps).
    let mut spreads = String::from("{ ...F0 }\n");
    for i in 0..30 {
        let n = i + 1;
        spreads.push_str(&format!(
            "fragment F{i} on Query {{ ...F{n} ...F{n} ...F{n} }}\n"
        ));
    }
    spreads.push_str("fragment F30 on Query { ...Nope }\n");
    let response = bounded(spreads).await;
    assert_eq!(code(&response), "GRAPHQL_VALIDATION_FAILED", "{response}");
    assert!(response["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("unknown fragment"));
    // A chain of 1,500 fragments (the body limit holds about that many) is refused by its
    // nesting, without recursing that deep.
    let mut chain = String::from("{...c0}");
    for i in 0..1_500 {
        chain.push_str(&format!("fragment c{i} on Query{{...c{}}}", i + 1));
    }
    chain.push_str("fragment c1500 on Query{__typename}");
    let response = bounded(chain).await;
    assert_eq!(code(&response), "GRAPHQL_VALIDATION_FAILED", "{response}");

    let batch: Vec<Value> = (0..11)
        .map(|_| json!({ "query": "{ _meta { chainId } }" }))
        .collect();
    let post_batch = |operations: Vec<Value>| {
        let api = &api;
        async move {
            api.http
                .post(format!("{}/graphql", api.url))
                .json(&operations)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let response = post_batch(batch.clone()).await;
    assert_eq!(code(&response), "BATCH_LIMIT", "{response}");
    let answers = post_batch(batch[..10].to_vec()).await;
    assert_eq!(answers.as_array().map(Vec::len), Some(10), "{answers}");

    let deep = format!("{}{}", "{ models ".repeat(2_000), "}".repeat(2_000));
    let response = bounded(deep).await;
    assert_eq!(code(&response), "GRAPHQL_PARSE_FAILED", "{response}");

    // Still serving.
    let meta = api.data("{ _meta { chainId } }", Value::Null).await;
    assert_eq!(meta["_meta"], Value::Null);
    db.drop_db().await;
}
