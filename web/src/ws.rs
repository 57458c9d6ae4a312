//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, and the older `graphql-ws`),
//! with limits a client cannot talk its way around:
//!
//! - **Connections.** At most [`Limits::ws_connections`] at once, server-wide, and
//!   [`Limits::ws_connections_per_client`] from one address; the next upgrade is answered `503`
//!   with code `TOO_MANY_CONNECTIONS`.
//! - **Message size.** A frame, or continuation frames together, larger than
//!   [`Limits::ws_message_bytes`] closes the connection (1009) before it is buffered whole.
//! - **Message rate.** More than [`Limits::ws_messages_per_second`] messages (pings included)
//!   in a second closes the connection (1008); what a client sends waits in a short queue, so a
//!   client faster than the server is slowed down by TCP rather than buffered.
//! - **Operations.** At most [`Limits::ws_subscriptions`] live on one connection, queries sent
//!   over it included; the next is refused with code `TOO_MANY_SUBSCRIPTIONS` (see
//!   `crate::limits`).
//! - **Idle and stalled connections.** The server pings every few seconds; a connection that
//!   sends nothing (pongs included) for [`Limits::ws_idle`], or holds no operation and sends no
//!   GraphQL message for that long, is closed (1001); one that has not completed the handshake
//!   (`connection_init`) within 10 s too (4408); and one that stops reading what the server
//!   sends, once a send has waited 10 s.
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

/// How long a closing connection waits for the client's close.
const LINGER: Duration = Duration::from_secs(2);

/// How long a send to the client may wait (on a client that does not read).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a connection may take to finish its handshake.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The open connections, bounded server-wide and per client address.
#[derive(Debug, Clone)]
pub(crate) struct Connections {
    all: Arc<Semaphore>,
    by_peer: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// One open connection's places, given back when it ends.
struct Place {
    _all: OwnedSemaphorePermit,
    peer: Option<(std::net::IpAddr, Connections)>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some((ip, connections)) = &self.peer {
            let mut by_peer = connections.by_peer.lock().expect("not poisoned");
            if let Some(n) = by_peer.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    by_peer.remove(ip);
                }
            }
        }
    }
}

impl Connections {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(limit)),
            by_peer: Arc::default(),
        }
    }

    /// A place for a connection from `peer`; `Err` saying which bound is reached.
    fn claim(&self, peer: Option<std::net::IpAddr>, limits: &Limits) -> Result<Place, String> {
        let Ok(all) = self.all.clone().try_acquire_owned() else {
            return Err(format!(
                "the server holds {} WebSocket connections, its most",
                limits.ws_connections
            ));
        };
        let Some(ip) = peer else {
            return Ok(Place {
                _all: all,
                peer: None,
            });
        };
        let mut by_peer = self.by_peer.lock().expect("not poisoned");
        let n = by_peer.entry(ip).or_default();
        if *n >= limits.ws_connections_per_client {
            return Err(format!(
                "{ip} holds {} WebSocket connections, the most for one address",
                limits.ws_connections_per_client
            ));
        }
        *n += 1;
        Ok(Place {
            _all: all,
            peer: Some((ip, self.clone())),
        })
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
    // Matched exactly, as the handshake answers it (a protocol offered in another case would
    // pass a looser check and fail the handshake).
    let protocol = req
        .headers()
        .get_all("sec-websocket-protocol")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|offered| offered.split(','))
        .map(str::trim)
        .find(|p| matches!(*p, "graphql-transport-ws" | "graphql-ws"))
        .and_then(|p| WebSocketProtocols::from_str(p).ok());
    let Some(protocol) = protocol else {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "a GraphQL WebSocket needs Sec-WebSocket-Protocol graphql-transport-ws (or graphql-ws)"
                .into(),
        ));
    };
    let permit = match connections.claim(req.peer_addr().map(|a| a.ip()), &limits) {
        Ok(place) => place,
        Err(why) => {
            return Ok(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "TOO_MANY_CONNECTIONS",
                format!("{why}; try again later"),
            ))
        }
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
    _place: Place,
) {
    let (queue, queued) = mpsc::channel::<Vec<u8>>(QUEUE);
    let mut data = async_graphql::Data::default();
    let slots = Slots::new(limits.ws_subscriptions);
    data.insert(slots.clone());
    let mut protocol_out =
        WebSocket::new(schema, stream_of(queued), protocol).connection_data(data);
    let opened = Instant::now();
    let mut acknowledged = false;
    let last_heard = Arc::new(std::sync::Mutex::new(Instant::now()));

    // What the client sends, read beside the answers: the queue's bound slows a fast client
    // down instead of buffering it. Once the server decides to close, what the client still
    // sends is read and dropped until it answers the close (or [`LINGER`] passes): a socket
    // closed with unread data is reset, and the reset can overtake the close frame.
    let heard = last_heard.clone();
    // The last GraphQL message (pongs do not count: a client's stack answers pings itself).
    let last_spoke = Arc::new(std::sync::Mutex::new(Instant::now()));
    let spoke = last_spoke.clone();
    let mut pongs = session.clone();
    let (verdict, mut verdicts) = mpsc::channel::<CloseReason>(1);
    let mut reader = actix_web::rt::spawn(async move {
        let mut window = (Instant::now(), 0u32);
        let mut closing = false;
        while let Some(message) = messages.next().await {
            *heard.lock().expect("not poisoned") = Instant::now();
            let bytes = match message {
                Ok(AggregatedMessage::Text(text)) => text.into_bytes().to_vec(),
                Ok(AggregatedMessage::Binary(bytes)) => bytes.to_vec(),
                Ok(AggregatedMessage::Ping(payload)) => {
                    // Counted like any message (each costs a pong); answered unless closing.
                    if !closing && count(&mut window) > limits.ws_messages_per_second {
                        closing = true;
                        let _ = verdict.try_send(flooded(&limits));
                        continue;
                    }
                    if !closing && !sent(pongs.pong(&payload)).await {
                        return;
                    }
                    continue;
                }
                Ok(AggregatedMessage::Pong(_)) => continue,
                Ok(AggregatedMessage::Close(_)) => return,
                // Too large, or not WebSocket framing: nothing more can be read.
                Err(e) => {
                    let _ = verdict.try_send(CloseReason {
                        code: CloseCode::Size,
                        description: Some(format!(
                            "{e} (at most {} bytes a message)",
                            limits.ws_message_bytes
                        )),
                    });
                    return;
                }
            };
            if closing {
                continue;
            }
            *spoke.lock().expect("not poisoned") = Instant::now();
            if count(&mut window) > limits.ws_messages_per_second {
                closing = true;
                let _ = verdict.try_send(flooded(&limits));
                continue;
            }
            // The handler gone: the connection is closing.
            closing = queue.send(bytes).await.is_err();
        }
    });

    let mut ping = tokio::time::interval(PING_EVERY);
    let mut read_all = false;
    let close = loop {
        tokio::select! {
            _ = &mut reader => {
                read_all = true;
                break None;
            }
            Some(reason) = verdicts.recv() => break Some(reason),
            answer = protocol_out.next() => match answer {
                Some(WsMessage::Text(text)) => {
                    acknowledged |= text.starts_with(r#"{"type":"connection_ack""#);
                    // A client that stops reading its socket fills the session's queue: it
                    // is closed rather than waited for.
                    if !sent(session.text(text)).await {
                        break None;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    break Some(CloseReason { code: code.into(), description: Some(reason) })
                }
                None => break None,
            },
            _ = ping.tick() => {
                // A connection must finish the handshake soon (graphql-transport-ws: 4408).
                if !acknowledged && opened.elapsed() > limits.ws_idle.min(INIT_TIMEOUT) {
                    break Some(CloseReason {
                        code: 4408.into(),
                        description: Some("Connection initialisation timeout".into()),
                    });
                }
                // Silent (a dead peer), or holding nothing and saying nothing (a held slot).
                let quiet = last_heard.lock().expect("not poisoned").elapsed();
                let unused = slots.live() == 0
                    && last_spoke.lock().expect("not poisoned").elapsed() > limits.ws_idle;
                if quiet > limits.ws_idle || unused {
                    break Some(CloseReason {
                        code: CloseCode::Away,
                        description: Some(format!(
                            "idle for more than {} s",
                            limits.ws_idle.as_secs()
                        )),
                    });
                }
                if !sent(session.ping(b"")).await {
                    break None;
                }
            }
        }
    };
    // Subscriptions end, and the reader drops what the client still sends.
    drop(protocol_out);
    let _ = tokio::time::timeout(SEND_TIMEOUT, session.close(close)).await;
    if !read_all && tokio::time::timeout(LINGER, &mut reader).await.is_err() {
        reader.abort();
    }
}

/// Whether a send to the client went out within [`SEND_TIMEOUT`].
async fn sent(send: impl std::future::Future<Output = Result<(), actix_ws::Closed>>) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, send).await, Ok(Ok(())))
}

/// Counts a message in the current second's window; returns the count.
fn count(window: &mut (Instant, u32)) -> u32 {
    if window.0.elapsed() >= Duration::from_secs(1) {
        *window = (Instant::now(), 0);
    }
    window.1 += 1;
    window.1
}

fn flooded(limits: &Limits) -> CloseReason {
    CloseReason {
        code: CloseCode::Policy,
        description: Some(format!(
            "more than {} messages in a second",
            limits.ws_messages_per_second
        )),
    }
}

/// The queued messages as the protocol handler reads them.
fn stream_of(mut queued: mpsc::Receiver<Vec<u8>>) -> impl futures::Stream<Item = Vec<u8>> {
    futures::stream::poll_fn(move |cx| queued.poll_recv(cx))
}
