//! `/metrics`: latency by route and by GraphQL operation (root fields the schema has, so a
//! client cannot invent labels), refusals by code, and the indexer's progress from the
//! database.

use serde_json::Value;

use crate::api::{sample, Api};
use crate::dbs::{Kind, TestDb};
use crate::world::{options, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_refusals_and_the_indexer() {
    let world = World::start().await;
    world.workload().await;
    let db = TestDb::new(Kind::Sqlite).await;
    let head = world.indexer(&db, options()).await.sync().await.unwrap();
    let api = Api::start(db.open().await, world.store());

    api.data("{ models { edges { node { id } } } }", Value::Null)
        .await;
    api.data(
        "query Named { invented: models { edges { node { id } } } licenses { edges { node { id } } } }",
        Value::Null,
    )
    .await;
    // Nesting beyond the depth limit: refused with its code.
    let deep = format!(
        "{{ models {{ edges {{ node {{ {} id {} }} }} }} }}",
        "parents { model { ".repeat(8),
        "} } ".repeat(8)
    );
    assert_eq!(api.code(&deep).await, "DEPTH_LIMIT");
    // A made-up root field names no operation of its own.
    api.post("{ madeUp }", Value::Null).await;

    let response = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();

    let count = |operation: &str| {
        sample(
            &text,
            &format!(
                "registry_graphql_request_duration_seconds_count{{operation=\"{operation}\"}}"
            ),
        )
    };
    assert_eq!(count("models"), Some(2.0), "{text}");
    assert_eq!(count("licenses+models"), Some(1.0), "{text}");
    assert_eq!(
        count("other"),
        Some(1.0),
        "the made-up field is no label: {text}"
    );
    assert!(
        !text.contains("madeUp") && !text.contains("invented"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "registry_graphql_refused_total{code=\"DEPTH_LIMIT\"}"
        ),
        Some(1.0),
        "{text}"
    );
    let posts = text
        .lines()
        .filter(|l| {
            l.starts_with("registry_http_request_duration_seconds_count{")
                && l.contains("route=\"/graphql\"")
                && l.contains("method=\"POST\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert_eq!(posts, 4.0, "{text}");
    assert_eq!(
        sample(&text, "registry_indexer_cursor_block "),
        Some(head as f64),
        "{text}"
    );
    assert_eq!(sample(&text, "registry_indexer_lag_blocks "), Some(0.0));
    assert_eq!(
        sample(&text, "registry_indexer_fingerprints_pending "),
        Some(0.0)
    );
    assert!(text.trim_end().ends_with("# EOF"));
}
