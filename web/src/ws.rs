//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, and the older `graphql-ws`),
//! with limits a client cannot talk its way around:
//!
//! - **Connections.** At most [`Limits::ws_connections`] at once, server-wide; the next upgrade
//!   is answered `503` with code `TOO_MANY_CONNECTIONS`.
//! - **Message size.** A frame, or continuation frames together, larger than
//!   [`Limits::ws_message_bytes`] closes the connection (1009) before it is buffered whole.
//! - **Message rate.** More than [`Limits::ws_messages_per_second`] messages in a second closes
//!   the connection (4429); what a client sends waits in a short queue, so a client faster than
//!   the server is slowed down by TCP rather than buffered.
//! - **Subscriptions.** At most [`Limits::ws_subscriptions`] live on one connection; the next is
//!   refused with code `TOO_MANY_SUBSCRIPTIONS` (see [`crate::schema::subscription`]).
//! - **Idle connections.** The server pings every few seconds; a connection that sends nothing
//!   (pongs included) for [`Limits::ws_idle`] is closed (1001), and one that has not completed
//!   the handshake (`connection_init`) in that time too (4408).
//!
//! Every query sent over the socket goes through the same document limits and time budget as
//! over HTTP (they are schema extensions).

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use async_graphql::http::{WebSocket, WebSocketProtocols, WsMessage};
use futures::StreamExt as _;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::limits::Limits;
use crate::schema::subscription::Slots;
use crate::schema::RegistrySchema;

/// How often the server pings an open connection.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Messages read ahead of the protocol handler.
const QUEUE: usize = 8;

/// The open connections, bounded.
#[derive(Debug, Clone)]
pub(crate) struct Connections(Arc<Semaphore>);

impl Connections {
    pub(crate) fn new(limit: usize) -> Self {
        Self(Arc::new(Semaphore::new(limit)))
    }
}

fn refused(status: StatusCode, code: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

/// Upgrades `/graphql` to a WebSocket and serves subscriptions on it.
pub(crate) async fn upgrade(
    schema: RegistrySchema,
    limits: Limits,
    connections: &Connections,
    req: &HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let protocol = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|value| value.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        });
    let Some(protocol) = protocol else {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "a GraphQL WebSocket needs Sec-WebSocket-Protocol graphql-transport-ws (or graphql-ws)"
                .into(),
        ));
    };
    let Ok(permit) = connections.0.clone().try_acquire_owned() else {
        return Ok(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "TOO_MANY_CONNECTIONS",
            format!(
                "the server holds {} WebSocket connections, its most; try again later",
                limits.ws_connections
            ),
        ));
    };
    let (response, session, messages) =
        actix_ws::handle_with_protocols(req, body, &[protocol.sec_websocket_protocol()])?;
    let messages = messages
        .max_frame_size(limits.ws_message_bytes)
        .aggregate_continuations()
        .max_continuation_size(limits.ws_message_bytes);
    actix_web::rt::spawn(serve(schema, protocol, limits, session, messages, permit));
    Ok(response)
}

/// Serves one connection until either side closes it.
async fn serve(
    schema: RegistrySchema,
    protocol: WebSocketProtocols,
    limits: Limits,
    mut session: actix_ws::Session,
    mut messages: actix_ws::AggregatedMessageStream,
    _permit: OwnedSemaphorePermit,
) {
    let (queue, queued) = mpsc::channel::<Vec<u8>>(QUEUE);
    let mut data = async_graphql::Data::default();
    data.insert(Slots::new(limits.ws_subscriptions));
    let mut protocol_out =
        WebSocket::new(schema, stream_of(queued), protocol).connection_data(data);
    let opened = Instant::now();
    let mut acknowledged = false;
    let last_heard = Arc::new(std::sync::Mutex::new(Instant::now()));

    // What the client sends, read beside the answers: the queue's bound slows a fast client
    // down instead of buffering it.
    let heard = last_heard.clone();
    let mut pongs = session.clone();
    let mut reader = actix_web::rt::spawn(async move {
        let mut window = (Instant::now(), 0u32);
        while let Some(message) = messages.next().await {
            *heard.lock().expect("not poisoned") = Instant::now();
            let bytes = match message {
                Ok(AggregatedMessage::Text(text)) => text.into_bytes().to_vec(),
                Ok(AggregatedMessage::Binary(bytes)) => bytes.to_vec(),
                Ok(AggregatedMessage::Ping(payload)) => {
                    if pongs.pong(&payload).await.is_err() {
                        return None;
                    }
                    continue;
                }
                Ok(AggregatedMessage::Pong(_)) => continue,
                Ok(AggregatedMessage::Close(_)) => return None,
                // Too large, or not WebSocket framing.
                Err(e) => {
                    return Some(CloseReason {
                        code: CloseCode::Size,
                        description: Some(format!(
                            "{e} (at most {} bytes a message)",
                            limits.ws_message_bytes
                        )),
                    })
                }
            };
            if window.0.elapsed() >= Duration::from_secs(1) {
                window = (Instant::now(), 0);
            }
            window.1 += 1;
            if window.1 > limits.ws_messages_per_second {
                return Some(CloseReason {
                    code: 4429.into(),
                    description: Some(format!(
                        "more than {} messages in a second",
                        limits.ws_messages_per_second
                    )),
                });
            }
            if queue.send(bytes).await.is_err() {
                return None;
            }
        }
        None
    });

    let mut ping = tokio::time::interval(PING_EVERY);
    let close = loop {
        tokio::select! {
            ended = &mut reader => break ended.ok().flatten(),
            answer = protocol_out.next() => match answer {
                Some(WsMessage::Text(text)) => {
                    acknowledged |= text.starts_with(r#"{"type":"connection_ack""#);
                    if session.text(text).await.is_err() {
                        break None;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    break Some(CloseReason { code: code.into(), description: Some(reason) })
                }
                None => break None,
            },
            _ = ping.tick() => {
                // A connection must finish the handshake (graphql-transport-ws: 4408).
                if !acknowledged && opened.elapsed() > limits.ws_idle {
                    break Some(CloseReason {
                        code: 4408.into(),
                        description: Some("Connection initialisation timeout".into()),
                    });
                }
                let quiet = last_heard.lock().expect("not poisoned").elapsed();
                if quiet > limits.ws_idle {
                    break Some(CloseReason {
                        code: CloseCode::Away,
                        description: Some(format!("nothing heard for {} s", quiet.as_secs())),
                    });
                }
                if session.ping(b"").await.is_err() {
                    break None;
                }
            }
        }
    };
    reader.abort();
    let _ = session.close(close).await;
}

/// The queued messages as the protocol handler reads them.
fn stream_of(mut queued: mpsc::Receiver<Vec<u8>>) -> impl futures::Stream<Item = Vec<u8>> {
    futures::stream::poll_fn(move |cx| queued.poll_recv(cx))
}
