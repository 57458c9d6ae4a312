//! Browser pages on other sites may call the API: any origin by default (the API is read-only
//! and takes no cookies), only the configured ones when `cors_origins` is given.

use reqwest::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    ORIGIN,
};
use serde_json::json;

use crate::api::Api;
use crate::dbs::{Kind, TestDb};

/// The `Access-Control-Allow-Origin` a page at `origin` gets, for a preflight and for the
/// POST that follows it.
async fn allowed(api: &Api, origin: &str) -> (Option<String>, Option<String>) {
    let preflight = api
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", api.url))
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .send()
        .await
        .unwrap();
    let post = api
        .http
        .post(format!("{}/graphql", api.url))
        .header(ORIGIN, origin)
        .json(&json!({ "query": "{ _meta { chainId } }" }))
        .send()
        .await
        .unwrap();
    let header = |r: &reqwest::Response| {
        r.headers()
            .get(ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.to_str().unwrap().to_string())
    };
    (header(&preflight), header(&post))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_origin_by_default_and_only_the_configured_ones_otherwise() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = tempfile::tempdir().unwrap();
    let content = || content::Store::embedded(store.path()).unwrap();

    let open = Api::start(db.open().await, content());
    let (preflight, post) = allowed(&open, "https://dapp.example").await;
    for answer in [preflight, post] {
        let origin = answer.expect("any origin is allowed");
        assert!(
            origin == "*" || origin == "https://dapp.example",
            "{origin}"
        );
    }

    let closed = Api::start_with(
        db.open().await,
        content(),
        vec!["https://market.example".into()],
    );
    let (preflight, post) = allowed(&closed, "https://market.example").await;
    assert_eq!(preflight.as_deref(), Some("https://market.example"));
    assert_eq!(post.as_deref(), Some("https://market.example"));
    assert_eq!(
        allowed(&closed, "https://elsewhere.example").await,
        (None, None),
        "an origin not configured gets no allowance"
    );
    db.drop_db().await;
}
