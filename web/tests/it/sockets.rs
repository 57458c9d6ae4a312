//! What a WebSocket client can try against the server: too many subscriptions on one
//! connection, too many connections, a message too large, a flood of messages, a connection
//! that never finishes its handshake; and over HTTP a body sent too slowly. Each is refused
//! or closed with its code, and the server goes on serving.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use web::Limits;

use crate::api::{next_message, Api, Socket};
use crate::dbs::{Kind, TestDb};

/// The API over an empty database and store, with `limits` (the database and the store's
/// folder live as long as the returned handles).
async fn serve(limits: Limits) -> (Api, TestDb, tempfile::TempDir) {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = tempfile::tempdir().unwrap();
    let api = Api::start_limited(
        db.open().await,
        content::Store::embedded(store.path()).unwrap(),
        Vec::new(),
        limits,
    );
    (api, db, store)
}

async fn connect(api: &Api) -> Result<Socket, tungstenite::Error> {
    let url = format!("{}/graphql", api.url.replace("http://", "ws://"));
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// A connection past its handshake.
async fn open(api: &Api) -> Socket {
    let mut ws = connect(api).await.unwrap();
    send(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(next_message(&mut ws).await["type"], "connection_ack");
    ws
}

async fn send(ws: &mut Socket, message: Value) {
    ws.send(Message::Text(message.to_string())).await.unwrap();
}

async fn subscribe(ws: &mut Socket, id: u32) {
    send(
        ws,
        json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": "subscription { reorgs { id } }" } }),
    )
    .await;
}

/// The close code the server ends the connection with (text messages before it skipped);
/// `None` when the connection ended without one.
async fn closed_with(ws: &mut Socket) -> Option<CloseCode> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("closed within 30 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return Some(frame.code),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_are_held_to_the_limits() {
    let (api, _db, _store) = serve(Limits {
        ws_connections: 2,
        ws_subscriptions: 3,
        ws_message_bytes: 4_096,
        ws_messages_per_second: 20,
        ws_idle: Duration::from_secs(2),
        ..Limits::default()
    })
    .await;

    // Three live subscriptions on one connection; of four asked at once, one is refused with
    // a code, and once one completes, its place is free again (the next is taken, the one
    // after refused).
    let mut ws = open(&api).await;
    for id in 1..=4 {
        subscribe(&mut ws, id).await;
    }
    let refused = next_message(&mut ws).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
        "{refused}"
    );
    let out: u32 = refused["id"].as_str().unwrap().parse().unwrap();
    let live = if out == 1 { 2 } else { 1 };
    assert_eq!(next_message(&mut ws).await["type"], "complete");
    send(
        &mut ws,
        json!({ "id": live.to_string(), "type": "complete" }),
    )
    .await;
    let done = next_message(&mut ws).await;
    assert_eq!(
        (done["type"].as_str(), done["id"].as_str()),
        (Some("complete"), Some(live.to_string().as_str())),
        "{done}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    subscribe(&mut ws, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    subscribe(&mut ws, 6).await;
    let refused = next_message(&mut ws).await;
    assert_eq!(refused["id"], "6", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
        "{refused}"
    );
    assert_eq!(next_message(&mut ws).await["type"], "complete");
    // A query sent over the socket takes a place too.
    send(
        &mut ws,
        json!({ "id": "7", "type": "subscribe", "payload": { "query": "{ models(first: 1) { edges { node { id } } } }" } }),
    )
    .await;
    let refused = next_message(&mut ws).await;
    assert_eq!(refused["id"], "7", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
        "{refused}"
    );

    // Two connections at once; a third is refused until one closes.
    let second = open(&api).await;
    match connect(&api).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("TOO_MANY_CONNECTIONS"), "{body}");
        }
        other => panic!(
            "a third connection was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    drop(second);
    drop(ws);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ws) = connect(&api).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ws = again.expect("a place frees once a connection closes");

    // A message over the size limit closes the connection.
    send(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(next_message(&mut ws).await["type"], "connection_ack");
    ws.send(Message::Text("x".repeat(5_000))).await.unwrap();
    // The server stops reading at the frame's header: the rest of it, unread, may reset the
    // connection before the close frame arrives. Closed either way.
    let code = closed_with(&mut ws).await;
    assert!(matches!(code, None | Some(CloseCode::Size)), "{code:?}");

    // So does a flood of messages.
    let mut ws = open(&api).await;
    for _ in 0..40 {
        if ws
            .send(Message::Text(json!({ "type": "ping" }).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Policy));

    // And a connection that never says hello, once the idle time has passed.
    let mut ws = connect(&api).await.unwrap();
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::from(4408)));

    // The server still answers.
    let data = api
        .data(
            "{ models(first: 1) { edges { node { id } } } }",
            Value::Null,
        )
        .await;
    assert!(data["models"]["edges"].is_array(), "{data}");
}

/// A request body sent too slowly is answered `408` with `BODY_TIMEOUT` once the body time
/// is up, instead of holding the connection as long as the client likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_is_refused() {
    let (api, _db, _store) = serve(Limits {
        body_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let host = api.url.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"query\":"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The rest never comes.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4_096];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = socket.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&answer).contains("BODY_TIMEOUT") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 20 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_TIMEOUT"), "{answer}");
}
