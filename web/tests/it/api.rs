//! The GraphQL API over HTTP, against a database the indexer filled from a real anvil running
//! the shared workload: every query and filter, pagination that returns every row exactly
//! once (also while rows are inserted), `rights` agreeing with the chain, subscriptions over
//! WebSocket, abusive queries refused with codes, internal errors hidden, one database query
//! per level of nesting, and the other routes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use contracts::LicenseKind;
use ethers::types::{Address, U256};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use store::Db;
use tokio_tungstenite::tungstenite::Message;
use web::{Limits, ServerConfig};

use crate::dbs::{Kind, TestDb};
use crate::world::{milli, options, terms, World, DAY};

pub(crate) struct Api {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    /// Serves `db` on a free port from a thread of its own.
    pub(crate) fn start(db: Db, content: content::Store) -> Api {
        Self::start_with(db, content, Vec::new())
    }

    /// Serves `db` letting browser pages of `cors_origins` call it (any when empty).
    pub(crate) fn start_with(db: Db, content: content::Store, cors_origins: Vec<String>) -> Api {
        Self::start_limited(db, content, cors_origins, Limits::default())
    }

    /// Serves `db` with `limits`.
    pub(crate) fn start_limited(
        db: Db,
        content: content::Store,
        cors_origins: Vec<String>,
        limits: Limits,
    ) -> Api {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime
                .block_on(web::serve(
                    db,
                    ServerConfig {
                        listen: "127.0.0.1:0".parse().unwrap(),
                        limits,
                        content: Some(content),
                        workers: 2,
                        keys: None,
                        cors_origins,
                        ready_lag: 64,
                        chain: None,
                    },
                    move |address| tx.send(address).unwrap(),
                ))
                .unwrap();
        });
        let address = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
        Api {
            url: format!("http://{address}"),
            http: reqwest::Client::new(),
        }
    }

    pub(crate) async fn post(&self, query: &str, variables: Value) -> Value {
        self.http
            .post(format!("{}/graphql", self.url))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The data of a query that must succeed.
    pub(crate) async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.post(query, variables).await;
        assert!(response.get("errors").is_none(), "{query}: {response}");
        response["data"].clone()
    }

    /// The body of `GET path` as text.
    pub(crate) async fn text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A WebSocket (graphql-transport-ws) with one subscription, `query`, started (id "1").
    pub(crate) async fn subscribe(&self, query: &str) -> Socket {
        let ws_url = format!("{}/graphql", self.url.replace("http://", "ws://"));
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url)
                .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        ws.send(Message::Text(
            json!({ "type": "connection_init" }).to_string(),
        ))
        .await
        .unwrap();
        assert_eq!(next_message(&mut ws).await["type"], "connection_ack");
        ws.send(Message::Text(
            json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }).to_string(),
        ))
        .await
        .unwrap();
        ws
    }

    /// The code of the first error of a query that must fail.
    pub(crate) async fn code(&self, query: &str) -> String {
        let response = self.post(query, Value::Null).await;
        response["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {response}"))
            .to_string()
    }
}

fn ids(nodes: &Value) -> Vec<u64> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Every page of `field` (a connection) with `first` rows per page; checks that cursors move
/// forward and returns the ids in order.
async fn all_pages(api: &Api, field: &str, args: &str, first: usize) -> Vec<u64> {
    let query = format!(
        "query($after: String) {{ {field}({args} first: {first}, after: $after) {{ pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ id }} }} }} }}"
    );
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = api.data(&query, json!({ "after": after })).await;
        let connection = &data[field];
        let edges = connection["edges"].as_array().unwrap();
        assert!(edges.len() <= first);
        for edge in edges {
            out.push(edge["node"]["id"].as_str().unwrap().parse().unwrap());
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return out;
        }
        after = connection["pageInfo"]["endCursor"].clone();
        assert_eq!(after, edges.last().unwrap()["cursor"]);
    }
}

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next protocol message other than a keep-alive, within 30 s (keep-alives do not
/// extend the wait).
pub(crate) async fn next_message(ws: &mut Socket) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a message within 30 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] != "ping" && value["type"] != "pong" {
                return value;
            }
        }
    }
}

/// The value of the first sample line of a metrics text that starts with `prefix`.
pub(crate) fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn addr(a: Address) -> String {
    format!("{a:?}")
}

async fn api_over_a_real_chain(kind: Kind) {
    let world = World::start().await;
    world.workload().await;
    let db = TestDb::new(kind).await;
    let mut indexer = world.indexer(&db, options()).await;
    let head = indexer.sync().await.unwrap();
    let api = Api::start(db.open().await, world.store());
    let a = |i: usize| addr(world.address(i));

    // _meta
    let meta = api
        .data(
            "{ _meta { head { number } cursor { number hash } finalized { number } chainId } }",
            Value::Null,
        )
        .await;
    assert_eq!(meta["_meta"]["cursor"]["number"], head);
    assert_eq!(meta["_meta"]["finalized"]["number"], head - 2);
    assert_eq!(meta["_meta"]["chainId"], 31337);

    // model(id) with its lineage, offerings, fingerprint and similar models.
    let model = api
        .data(
            r#"{ model(id: "1") { id name owner creator depth final
                 children { childId royaltyBps licenseId }
                 offerings { id kind closed onSale renewalPeriod } fingerprintSummary { status tensors }
                 similar(minSimilarity: 0.5) { similarity verdict model { id } } } }"#,
            Value::Null,
        )
        .await;
    let m = &model["model"];
    assert_eq!(m["name"], "base");
    assert_eq!(m["owner"], a(3), "transferred to account 3");
    assert_eq!(m["creator"], a(0));
    assert_eq!(
        m["children"],
        json!([{ "childId": "2", "royaltyBps": 2000, "licenseId": "2" }])
    );
    // The former owner's three and the new owner's one; only the new owner's sells.
    assert_eq!(ids(&m["offerings"]), vec![1, 2, 3, 5]);
    assert_eq!(m["offerings"][1]["closed"], true);
    let on_sale: Vec<bool> = m["offerings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["onSale"].as_bool().unwrap())
        .collect();
    assert_eq!(on_sale, vec![false, false, false, true]);
    assert_eq!(m["offerings"][0]["renewalPeriod"], 0);
    assert_eq!(m["fingerprintSummary"]["status"], "ok");
    let similar: Vec<&str> = m["similar"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["model"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        similar,
        vec!["4", "2"],
        "the near copy first, then the fine-tune"
    );
    // An exact copy cannot be registered; the re-mint changed by a hair reads as derived.
    assert_eq!(m["similar"][0]["verdict"], "derived");
    assert!(
        m["similar"][0]["similarity"].as_f64().unwrap()
            > m["similar"][1]["similarity"].as_f64().unwrap()
    );
    assert_eq!(
        api.data(r#"{ model(id: "99") { id } }"#, Value::Null).await["model"],
        Value::Null
    );

    // models: every filter.
    let models = |filter: &str| {
        let q = format!("{{ models(where: {{ {filter} }}) {{ nodes {{ id }} }} }}");
        let api = &api;
        async move { ids(&api.data(&q, Value::Null).await["models"]["nodes"]) }
    };
    assert_eq!(models(&format!("owner: \"{}\"", a(1))).await, vec![2]);
    assert_eq!(
        models(&format!(
            "owner: \"{}\"",
            a(3).to_uppercase().replace("0X", "0x")
        ))
        .await,
        vec![1, 3]
    );
    assert_eq!(models(&format!("creator: \"{}\"", a(0))).await, vec![1]);
    assert_eq!(models("parent: \"1\"").await, vec![2]);
    assert_eq!(models("hasOfferingKind: ACCESS").await, vec![1, 2]);
    assert_eq!(
        models("hasOfferingKind: FINE_TUNE").await,
        Vec::<u64>::new(),
        "closed"
    );
    let (lo, hi) = (milli(150).to_string(), milli(250).to_string());
    assert_eq!(
        models(&format!("priceMin: \"{lo}\", priceMax: \"{hi}\"")).await,
        vec![1]
    );
    assert_eq!(models(&format!("priceMin: \"{hi}\"")).await, vec![1, 2]);
    assert_eq!(models("nameContains: \"TUN\"").await, vec![2]);
    assert_eq!(
        models("nameContains: \"%\"").await,
        Vec::<u64>::new(),
        "wildcards are literal"
    );
    assert_eq!(models("flagged: true").await, vec![4]);
    assert_eq!(models("flagged: false").await, vec![1, 2, 3]);
    assert_eq!(models("derivative: true").await, vec![2]);
    assert_eq!(models("derivative: false").await, vec![1, 3, 4]);
    let native = format!("0x{}", "0".repeat(40));
    assert_eq!(models(&format!("currency: \"{native}\"")).await, vec![1, 2]);
    assert_eq!(
        models(&format!("currency: \"{native}\", priceMin: \"{hi}\"")).await,
        vec![1, 2]
    );
    assert_eq!(
        models(&format!("currency: \"0x{}\"", "1".repeat(40))).await,
        Vec::<u64>::new(),
        "no offering in that token"
    );
    let one = api
        .data(
            r#"{ offering(id: "1") { id modelId } license(id: "1") { id modelId } none: license(id: "999") { id } }"#,
            Value::Null,
        )
        .await;
    assert_eq!(one["offering"]["id"], "1");
    assert_eq!(one["license"]["id"], "1");
    assert_eq!(one["none"], Value::Null);
    let minted = api
        .data(
            r#"{ models(orderBy: MINTED_DESC) { nodes { id block } } }"#,
            Value::Null,
        )
        .await;
    let blocks: Vec<i64> = minted["models"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["block"].as_i64().unwrap())
        .collect();
    assert!(blocks.windows(2).all(|w| w[0] >= w[1]), "{blocks:?}");
    assert_eq!(
        models(&format!(
            "mintedBlockMin: {}, mintedBlockMax: {}",
            blocks[1], blocks[0]
        ))
        .await,
        vec![3, 4]
    );
    let flagged = api
        .data(
            r#"{ model(id: "4") { flagged { similarity model { id } } } }"#,
            Value::Null,
        )
        .await;
    assert_eq!(flagged["model"]["flagged"]["model"]["id"], "1");

    // offerings and licenses: filters.
    let offering_ids = |filter: String| {
        let q = format!("{{ offerings(where: {{ {filter} }}) {{ nodes {{ id }} }} }}");
        let api = &api;
        async move { ids(&api.data(&q, Value::Null).await["offerings"]["nodes"]) }
    };
    assert_eq!(offering_ids("model: \"1\"".into()).await, vec![1, 2, 3, 5]);
    assert_eq!(offering_ids("open: false".into()).await, vec![2]);
    assert_eq!(offering_ids("kind: ACCESS".into()).await, vec![1, 4]);
    assert_eq!(
        offering_ids(format!("publisher: \"{}\"", a(1))).await,
        vec![4]
    );
    assert_eq!(
        offering_ids(format!("currency: \"{}\"", addr(Address::zero()))).await,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        offering_ids(format!("priceMax: \"{}\"", milli(200))).await,
        vec![1, 3]
    );
    let license_ids = |filter: String| {
        let q = format!("{{ licenses(where: {{ {filter} }}) {{ nodes {{ id }} }} }}");
        let api = &api;
        async move { ids(&api.data(&q, Value::Null).await["licenses"]["nodes"]) }
    };
    assert_eq!(
        license_ids(format!("holder: \"{}\"", a(1))).await,
        vec![1],
        "the fine-tune license was consumed by the derivative"
    );
    assert_eq!(
        license_ids(format!("holder: \"{}\"", addr(Address::zero()))).await,
        vec![2]
    );
    let consumed = api
        .data(
            r#"{ used: licenses(where: { kind: FINE_TUNE }) { nodes { id consumedBy { id name } } }
                 unused: licenses(where: { offering: "3" }) { nodes { consumedBy { id } } } }"#,
            Value::Null,
        )
        .await;
    assert_eq!(
        consumed["used"]["nodes"],
        json!([{ "id": "2", "consumedBy": { "id": "2", "name": "tuned" } }])
    );
    assert_eq!(consumed["unused"]["nodes"][0]["consumedBy"], Value::Null);
    assert_eq!(
        license_ids(format!("holder: \"{}\"", a(3))).await,
        vec![3],
        "transferred"
    );
    assert_eq!(license_ids("model: \"2\"".into()).await, vec![4]);
    assert_eq!(license_ids("offering: \"3\"".into()).await, vec![3]);
    assert_eq!(license_ids("offering: \"5\"".into()).await, vec![5]);
    assert_eq!(license_ids("kind: FINE_TUNE".into()).await, vec![2]);
    let now = world.markets[0].now().await.unwrap() as i64;
    // At the end of the workload (half a day in): every license's window covers now; two
    // days on, the access license renewed twice and the perpetual ones still do, the one-day
    // access license of model 2 does not.
    assert_eq!(
        license_ids(format!("activeAt: {now}")).await,
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        license_ids(format!("activeAt: {}", now + 2 * DAY as i64)).await,
        vec![1, 2, 3, 5]
    );

    // lineage in both directions.
    let lineage = api
        .data(
            r#"{ up: lineage(model: "2", direction: ANCESTORS) { parentId childId }
                 down: lineage(model: "1", direction: DESCENDANTS, depth: 1) { parentId childId } }"#,
            Value::Null,
        )
        .await;
    assert_eq!(lineage["up"], json!([{ "parentId": "1", "childId": "2" }]));
    assert_eq!(
        lineage["down"],
        json!([{ "parentId": "1", "childId": "2" }])
    );

    // rights: the same answers as the chain's view.
    for account in 0..5 {
        for model in 1..=4u64 {
            for kind in LicenseKind::ALL {
                for at in [now - 3 * DAY as i64, now, now + 2 * DAY as i64] {
                    let chain = world.markets[0]
                        .rights(world.address(account), U256::from(model), kind, at as u64)
                        .await
                        .unwrap();
                    let gql_kind = match kind {
                        LicenseKind::Access => "ACCESS",
                        LicenseKind::FineTune => "FINE_TUNE",
                        LicenseKind::Output => "OUTPUT",
                    };
                    let q = format!(
                        r#"{{ rights(address: "{}", model: "{model}", kind: {gql_kind}, at: {at}) {{ allowed owner license {{ id }} }} }}"#,
                        a(account)
                    );
                    let r = &api.data(&q, Value::Null).await["rights"];
                    let case = format!("account {account}, model {model}, {kind:?}, at {at}");
                    assert_eq!(r["allowed"], chain.allowed, "{case}");
                    let license = r["license"]["id"]
                        .as_str()
                        .map(|s| s.parse::<u64>().unwrap());
                    assert_eq!(license.unwrap_or(0), chain.license.as_u64(), "{case}");
                }
            }
        }
    }

    // royalties: each account's balance equals the market's credits.
    let royalties = api
        .data(
            "{ royalties(first: 100) { nodes { account currency credited withdrawn balance } } }",
            Value::Null,
        )
        .await;
    for i in 0..5 {
        let on_chain = world.markets[0]
            .credits(world.address(i), Address::zero())
            .await
            .unwrap();
        let row = royalties["royalties"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["account"] == a(i));
        let balance = row.map_or("0".to_string(), |r| {
            r["balance"].as_str().unwrap().to_string()
        });
        assert_eq!(balance, on_chain.to_string(), "account {i}");
    }
    let similar = api
        .data(
            r#"{ similarModels(model: "2", minSimilarity: 0.5) { model { id } verdict } }"#,
            Value::Null,
        )
        .await;
    assert_eq!(similar["similarModels"][0]["verdict"], "derived");

    // Pagination: every row exactly once, in order, for every order.
    for (order, expect) in [
        ("ID_ASC", vec![1, 2, 3, 4, 5]),
        ("ID_DESC", vec![5, 4, 3, 2, 1]),
    ] {
        assert_eq!(
            all_pages(&api, "offerings", &format!("orderBy: {order},"), 1).await,
            expect
        );
    }
    let by_price = all_pages(&api, "offerings", "orderBy: PRICE_ASC,", 3).await;
    assert_eq!(by_price, vec![1, 3, 5, 4, 2]);
    assert_eq!(
        all_pages(&api, "offerings", "orderBy: PRICE_DESC,", 2).await,
        vec![2, 4, 5, 3, 1]
    );
    assert_eq!(
        all_pages(&api, "models", "orderBy: MINTED_ASC,", 3).await,
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        all_pages(&api, "licenses", "", 2).await,
        vec![1, 2, 3, 4, 5]
    );
    let by_expiry = all_pages(&api, "licenses", "orderBy: EXPIRY_DESC,", 2).await;
    assert_eq!(by_expiry.iter().copied().collect::<BTreeSet<_>>().len(), 5);

    // Stable under inserts: rows added between pages neither repeat nor shift what follows.
    let q = r#"query($after: String) { offerings(first: 2, after: $after) { pageInfo { endCursor } nodes { id } } }"#;
    let first_page = api.data(q, json!({ "after": null })).await;
    let cursor = first_page["offerings"]["pageInfo"]["endCursor"].clone();
    for i in 0..3 {
        world
            .offer(
                3,
                terms(
                    U256::one(),
                    LicenseKind::Output,
                    milli(7 + i),
                    DAY,
                    0,
                    false,
                ),
            )
            .await;
    }
    indexer.sync().await.unwrap();
    let mut rest = ids(&first_page["offerings"]["nodes"]);
    let mut after = cursor;
    loop {
        let data = api.data(q, json!({ "after": after })).await;
        let page = ids(&data["offerings"]["nodes"]);
        if page.is_empty() {
            break;
        }
        rest.extend(page);
        after = data["offerings"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(rest, vec![1, 2, 3, 4, 5, 6, 7, 8]);

    // Abusive queries are refused with codes.
    let deep = format!(
        "{{ model(id: \"4\") {} }}",
        "{ flagged { model ".repeat(8) + "{ id }" + &" } }".repeat(8)
    );
    assert_eq!(api.code(&deep).await, "DEPTH_LIMIT");
    assert_eq!(
        api.code("{ models(first: 100000) { nodes { id } } }").await,
        "PAGE_SIZE_LIMIT"
    );
    let aliases: String = (0..50)
        .map(|i| format!("a{i}: _meta {{ chainId }} "))
        .collect();
    assert_eq!(api.code(&format!("{{ {aliases} }}")).await, "ALIAS_LIMIT");
    assert_eq!(
        api.code("{ models(first: 100) { nodes { offerings { model { offerings { model { similar { model { id } } } } } } } } }").await,
        "COMPLEXITY_LIMIT"
    );
    assert_eq!(
        api.code(r#"{ models(after: "not-a-cursor") { nodes { id } } }"#)
            .await,
        "BAD_CURSOR"
    );
    // Well-formed cursors forged for another order: an integer where the price key is text
    // (a database error on PostgreSQL, a wrong page on SQLite), text with a NUL byte.
    for forged in [
        "v1.i5.i1".to_string(),
        format!("v1.s{}.i1", hex::encode("00\u{0}1")),
        format!("v1.s{}.s{}", hex::encode("001"), hex::encode("1")),
    ] {
        let q = format!(
            r#"{{ offerings(orderBy: PRICE_ASC, after: "{}") {{ nodes {{ id }} }} }}"#,
            hex::encode(&forged)
        );
        assert_eq!(api.code(&q).await, "BAD_CURSOR", "{forged}");
    }
    assert_eq!(
        api.code(r#"{ model(id: "x") { id } }"#).await,
        "BAD_USER_INPUT"
    );
    let big = format!("{{ _meta {{ chainId }} }} # {}", "x".repeat(70_000));
    let response = api
        .http
        .post(format!("{}/graphql", api.url))
        .json(&json!({ "query": big }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BODY_TOO_LARGE");

    // GET, health, GraphiQL, the catalogue page and the gateway.
    let get: Value = api
        .http
        .get(format!(
            "{}/graphql?query=%7B_meta%7BchainId%7D%7D",
            api.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(get["data"]["_meta"]["chainId"], 31337);
    let health: Value = api
        .http
        .get(format!("{}/health", api.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let graphiql = api.text("/graphiql").await;
    assert!(graphiql.contains("graphiql"));
    let explorer = api
        .http
        .get(&api.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(explorer.contains("Model registry"));
    let weights = api
        .data(r#"{ model(id: "1") { weightsCid } }"#, Value::Null)
        .await;
    let cid = weights["model"]["weightsCid"].as_str().unwrap();
    let fetched = api
        .http
        .get(format!("{}/ipfs/{cid}", api.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let original = std::fs::read(world.store_dir.path().join("base.safetensors")).unwrap();
    assert_eq!(fetched.as_ref(), original.as_slice());

    // Subscriptions over WebSocket (graphql-transport-ws), resumed after model 3.
    let mut ws = api
        .subscribe(r#"subscription { newModels(after: "3") { id name } }"#)
        .await;
    let first = next_message(&mut ws).await;
    assert_eq!(first["payload"]["data"]["newModels"]["id"], "4", "{first}");
    // A model minted now arrives once the indexer has seen it.
    let dir = world.store_dir.path();
    crate::models::write_model(&dir.join("new.safetensors"), 77, 0.0);
    world
        .mint_file(2, &dir.join("new.safetensors"), "new", vec![])
        .await;
    indexer.sync().await.unwrap();
    let second = next_message(&mut ws).await;
    assert_eq!(
        second["payload"]["data"]["newModels"]["name"], "new",
        "{second}"
    );

    // Internal errors are answered generically and carry no details.
    let conn = db.open().await;
    sea_orm::ConnectionTrait::execute_unprepared(conn.conn(), "DROP TABLE similarities")
        .await
        .unwrap();
    let response = api
        .post(
            r#"{ similarModels(model: "1") { similarity } }"#,
            Value::Null,
        )
        .await;
    assert_eq!(
        response["errors"][0]["message"], "internal error",
        "{response}"
    );
    assert_eq!(response["errors"][0]["extensions"]["code"], "INTERNAL");
    assert!(
        !response.to_string().to_lowercase().contains("similarities"),
        "{response}"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_over_a_real_chain_on_sqlite() {
    api_over_a_real_chain(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_over_a_real_chain_on_postgres() {
    api_over_a_real_chain(Kind::Postgres).await;
}

/// A model's owner publishes as many offerings as they like: nested lists return at most
/// their `first` and are costed by it, so a query nesting them cannot expand to the
/// product of every list (30^4 rows for four levels here, unbounded in general).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_lists_return_and_cost_at_most_their_page() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("m.safetensors");
    crate::models::write_model(&weights, 61, 0.0);
    let model = world.mint_unchecked(0, &weights, "many offerings").await;
    for i in 0..30u64 {
        let access = terms(model, LicenseKind::Access, milli(1 + i), DAY, 0, false);
        world.offer(0, access).await;
    }
    let db = TestDb::new(Kind::Sqlite).await;
    world.indexer(&db, options()).await.sync().await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let api = Api::start(
        db.open().await,
        content::Store::embedded(store_dir.path()).unwrap(),
    );
    let q = |inner: &str| format!("{{ model(id: \"{model}\") {{ {inner} }} }}");
    let all = api
        .data(&q("offerings(first: 100) { id }"), Value::Null)
        .await;
    assert_eq!(all["model"]["offerings"].as_array().unwrap().len(), 30);
    let nested = api
        .data(&q("offerings { model { offerings { id } } }"), Value::Null)
        .await;
    let outer = nested["model"]["offerings"].as_array().unwrap();
    assert_eq!(outer.len(), 20, "the default page");
    assert!(outer
        .iter()
        .all(|o| o["model"]["offerings"].as_array().unwrap().len() == 20));
    assert_eq!(
        api.code(&q("offerings(first: 100) { model { offerings(first: 100) { model { offerings(first: 100) { id } } } } }"))
            .await,
        "COMPLEXITY_LIMIT"
    );
    assert_eq!(
        api.code(&q("offerings(first: 101) { id }")).await,
        "PAGE_SIZE_LIMIT"
    );
}

/// Run as the server runs a request: on one thread (each actix worker is a current-thread
/// runtime, which the loaders' batching counts on).
#[tokio::test(flavor = "current_thread")]
async fn nested_lists_cost_one_query_per_level() {
    let world = World::start().await;
    world.workload().await;
    let db = TestDb::new(Kind::Sqlite).await;
    world.indexer(&db, options()).await.sync().await.unwrap();
    let mut conn = db.open().await.conn().clone();
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = queries.clone();
    conn.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let schema = web::build_schema(conn, Limits::default());
    let count = |query: &'static str| {
        let schema = schema.clone();
        let queries = queries.clone();
        async move {
            queries.store(0, Ordering::SeqCst);
            let response = schema.execute(query).await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            queries.load(Ordering::SeqCst)
        }
    };
    // Four models, each with parents, children and offerings, each offering with its model.
    let nested = count(
        "{ models(first: 10) { nodes { id parents { parent { name } } children { child { name } } offerings { id model { name } } } } }",
    )
    .await;
    // One query per loader and level, however many models: the page, then parents, children
    // and offerings (asked together: one batch each), then the models those three lists name.
    // The three lists answer at their own times, so their models come in one to three
    // batches (how many is the database's timing, not ours): at most 1 + 3 + 3. Unbatched,
    // four models cost 1 + 3 × 4 = 13 before their edges' and offerings' models.
    assert!(nested <= 7, "{nested} queries");
    let flat = count("{ models(first: 10) { nodes { id } } }").await;
    assert_eq!(flat, 1);
}
