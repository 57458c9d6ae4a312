//! The HTTP server: routes, body-size limit, health, the web app and the IPFS gateway.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use content::Store;
use futures::StreamExt;
use store::Db;

use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::schema::{build_schema, RegistrySchema};

/// What the server serves.
#[derive(Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub limits: Limits,
    /// Served read-only at `/ipfs/<cid>` when given.
    pub content: Option<Store>,
    /// HTTP worker threads.
    pub workers: usize,
    /// Serves `/v1/models/{id}/access` (x402 and signed key requests) when given.
    pub keys: Option<Arc<dyn keeper_api::Keeper>>,
    /// Origins whose browser pages may call the API; empty: any origin (the API is read-only
    /// and needs no cookies, so a dapp on any site may query it).
    pub cors_origins: Vec<String>,
    /// `/ready` answers 200 once the indexer is within this many blocks of the head.
    pub ready_lag: u64,
    /// The market's chain, for the web app's prices and purchases (see [`crate::app`]).
    pub chain: Option<crate::app::Chain>,
}

/// The CORS policy: GET and POST from the given origins (any when none are given), any
/// request header, preflight answers cached for an hour; no credentials.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allow_any_header()
        .max_age(3_600);
    if origins.is_empty() {
        cors.allow_any_origin()
    } else {
        origins
            .iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin))
    }
}

struct State {
    schema: RegistrySchema,
    db: Db,
    limits: Limits,
    /// Open WebSocket connections.
    sockets: crate::ws::Connections,
    metrics: Arc<Metrics>,
    /// Gateway downloads running.
    downloads: crate::gateway::Downloads,
    content: Option<Arc<Store>>,
    ready_lag: u64,
    cache: crate::cache::ResponseCache,
}

fn graphql_error(status: actix_web::http::StatusCode, code: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

/// Reads a request body up to the size limit, within the time limit: an oversized or slow
/// body costs no more than those.
async fn read_body(limits: &Limits, mut body: web::Payload) -> Result<web::BytesMut, HttpResponse> {
    let read = async {
        let mut bytes = web::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                return Err(graphql_error(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "the request body could not be read".into(),
                ));
            };
            if bytes.len() + chunk.len() > limits.body_bytes {
                return Err(graphql_error(
                    actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "BODY_TOO_LARGE",
                    format!("the request body exceeds {} bytes", limits.body_bytes),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(read) => read,
        Err(_) => Err(graphql_error(
            actix_web::http::StatusCode::REQUEST_TIMEOUT,
            "BODY_TIMEOUT",
            format!(
                "the request body did not arrive within {} s",
                limits.body_timeout.as_secs_f64()
            ),
        )),
    }
}

/// An answer as the client gets it.
fn json(bytes: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(bytes)
}

/// The cached answer to `key`, or `None` and the version to store a fresh one under.
async fn cached(
    state: &State,
    key: &crate::cache::Key,
) -> Result<HttpResponse, Option<store::DataVersion>> {
    match state.cache.lookup(state.db.conn(), key).await {
        crate::cache::Lookup::Hit(answer) => {
            state.metrics.count_cache(true);
            Ok(json(answer))
        }
        crate::cache::Lookup::Miss(version) => {
            state.metrics.count_cache(false);
            Err(version)
        }
    }
}

/// Answers with `response`, keeping it in the cache when it holds no errors.
fn answer(
    state: &State,
    version: Option<store::DataVersion>,
    key: crate::cache::Key,
    response: &impl serde::Serialize,
    ok: bool,
) -> HttpResponse {
    let bytes = web::Bytes::from(serde_json::to_vec(response).expect("responses serialize"));
    if let (Some(version), true) = (version, ok) {
        state.cache.store(version, key, bytes.clone());
    }
    json(bytes)
}

async fn graphql_post(state: web::Data<State>, body: web::Payload) -> HttpResponse {
    let bytes = match read_body(&state.limits, body).await {
        Ok(bytes) => bytes.freeze(),
        Err(refused) => return refused,
    };
    let key = crate::cache::Key::Post(bytes.clone());
    let version = match cached(&state, &key).await {
        Ok(hit) => return hit,
        Err(version) => version,
    };
    let request: async_graphql::BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(e) => {
            return graphql_error(
                actix_web::http::StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("the body is not a GraphQL request: {e}"),
            )
        }
    };
    if let async_graphql::BatchRequest::Batch(operations) = &request {
        if operations.len() > state.limits.batch {
            return graphql_error(
                actix_web::http::StatusCode::BAD_REQUEST,
                "BATCH_LIMIT",
                format!(
                    "the request batches {} operations; at most {} are allowed",
                    operations.len(),
                    state.limits.batch
                ),
            );
        }
    }
    let operation = match &request {
        async_graphql::BatchRequest::Single(single) => state.metrics.operation(single),
        async_graphql::BatchRequest::Batch(_) => "batch".into(),
    };
    let started = std::time::Instant::now();
    let response = state.schema.execute_batch(request).await;
    state.metrics.observe_graphql(operation, started.elapsed());
    let ok = match &response {
        async_graphql::BatchResponse::Single(r) => {
            state.metrics.count_refusals(&r.errors);
            r.errors.is_empty()
        }
        async_graphql::BatchResponse::Batch(rs) => {
            rs.iter()
                .for_each(|r| state.metrics.count_refusals(&r.errors));
            rs.iter().all(|r| r.errors.is_empty())
        }
    };
    answer(&state, version, key, &response, ok)
}

async fn graphql_get(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    match async_graphql::http::parse_query_string(req.query_string()) {
        Ok(request) => {
            let key = crate::cache::Key::Get(req.query_string().to_string());
            let version = match cached(&state, &key).await {
                Ok(hit) => return hit,
                Err(version) => version,
            };
            let operation = state.metrics.operation(&request);
            let started = std::time::Instant::now();
            let response = state.schema.execute(request).await;
            state.metrics.observe_graphql(operation, started.elapsed());
            state.metrics.count_refusals(&response.errors);
            let ok = response.errors.is_empty();
            answer(&state, version, key, &response, ok)
        }
        Err(e) => graphql_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("the query string is not a GraphQL request: {e}"),
        ),
    }
}

async fn graphql_ws(
    state: web::Data<State>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    crate::ws::upgrade(
        state.schema.clone(),
        state.limits,
        &state.sockets,
        &req,
        payload,
    )
    .await
}

/// `/metrics`: Prometheus metrics (OpenMetrics text).
async fn metrics(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render(state.db.conn()).await)
}

async fn health(state: web::Data<State>) -> HttpResponse {
    match state.db.state().await {
        Ok(indexer) => HttpResponse::Ok().json(serde_json::json!({
            "status": "ok",
            "database": "ok",
            "cursor": indexer.as_ref().map(|s| s.cursor_block),
            "head": indexer.as_ref().map(|s| s.head_block),
            "finalized": indexer.as_ref().map(|s| s.finalized_block),
            "indexed_at": indexer.as_ref().map(|s| s.updated_at),
        })),
        Err(e) => {
            tracing::error!("health check failed: {e}");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "status": "unavailable", "database": "error" }))
        }
    }
}

/// `/ready`: whether to send traffic here (for load balancers): 200 once the database answers
/// and the indexer is within `ready_lag` blocks of the head it last saw; 503, saying why,
/// before. `/health` says whether the process works at all.
async fn ready(state: web::Data<State>) -> HttpResponse {
    let unready = |reason: String| {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "ready": false, "reason": reason }))
    };
    match state.db.state().await {
        Ok(Some(indexer)) => {
            let lag = (indexer.head_block - indexer.cursor_block).max(0) as u64;
            if lag > state.ready_lag {
                unready(format!(
                    "the indexer is {lag} blocks behind the head (ready within {})",
                    state.ready_lag
                ))
            } else {
                HttpResponse::Ok().json(serde_json::json!({
                    "ready": true,
                    "cursor": indexer.cursor_block,
                    "lag": lag,
                }))
            }
        }
        Ok(None) => unready("the indexer has not run on this database yet".into()),
        Err(e) => {
            tracing::error!("readiness check failed: {e}");
            unready("the database does not answer".into())
        }
    }
}

/// `/ipfs/<cid>`: a file of the content store (see [`crate::gateway`]).
async fn gateway(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    // From the raw path, each segment decoded once (actix leaves `%2F`, `%25` and `%2B`
    // encoded, which would make names holding `/`, `%` or `+` unreachable).
    let raw = req.uri().path().trim_start_matches("/ipfs/").to_string();
    let mut segments = raw.split('/');
    let cid = segments.next().unwrap_or_default();
    let path: Vec<String> = segments
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    crate::gateway::serve(
        state.content.clone(),
        &state.downloads,
        &state.limits,
        &req,
        cid,
        &path,
    )
    .await
}

/// Builds the app's routes over `state` (shared by [`serve`] and the tests).
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/graphql")
            .route(
                web::get()
                    .guard(actix_web::guard::Header("upgrade", "websocket"))
                    .to(graphql_ws),
            )
            .route(web::get().to(graphql_get))
            .route(web::post().to(graphql_post)),
    )
    .route("/graphiql", web::get().to(crate::graphiql::page))
    .route(
        "/graphiql/assets/{name}",
        web::get().to(crate::graphiql::asset),
    )
    // HEAD too where download tools and load balancers ask it (actix's `get()` guard
    // matches GET alone).
    .route("/health", web::get().to(health))
    .route("/health", web::head().to(health))
    .route("/ready", web::get().to(ready))
    .route("/ready", web::head().to(ready))
    .route("/metrics", web::get().to(metrics))
    .route("/ipfs/{cid}", web::get().to(gateway))
    .route("/ipfs/{cid}", web::head().to(gateway))
    .route("/ipfs/{cid}/{path:.*}", web::get().to(gateway))
    .route("/ipfs/{cid}/{path:.*}", web::head().to(gateway))
    .route(
        "/v1/models/{id}/access",
        web::get().to(crate::access::access),
    )
    .configure(crate::app::routes);
}

/// Serves until the process is stopped (Ctrl-C stops it gracefully). Returns the bound
/// address through `bound` before serving, so callers can use port 0.
pub async fn serve(
    db: Db,
    config: ServerConfig,
    bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve_until(db, config, bound, ctrl_c).await
}

/// [`serve`], stopping gracefully when `stop` completes (and not on a signal of its own: a
/// program that runs the server beside other work stops it with that work).
pub async fn serve_until(
    db: Db,
    config: ServerConfig,
    bound: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let schema = build_schema(db.conn().clone(), config.limits);
    let metrics = Arc::new(Metrics::new(&schema.sdl()));
    let state = web::Data::new(State {
        metrics: metrics.clone(),
        schema,
        db,
        limits: config.limits,
        sockets: crate::ws::Connections::new(config.limits.ws_connections),
        downloads: crate::gateway::Downloads::new(config.limits.gateway_streams),
        content: config.content.map(Arc::new),
        ready_lag: config.ready_lag,
        cache: crate::cache::ResponseCache::new(config.limits.response_cache_bytes),
    });
    let keys = config.keys.map(web::Data::new);
    let app = web::Data::new(crate::app::App {
        schema: state.schema.clone(),
        chain: config.chain,
    });
    let origins = config.cors_origins;
    let server = HttpServer::new(move || {
        let timed = metrics.clone();
        let app = App::new()
            .wrap(cors(&origins))
            // Every request timed by its route's pattern (a bounded label).
            .wrap_fn(move |req, srv| {
                let started = std::time::Instant::now();
                let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                // The methods this server answers; any other a client makes up is one label.
                let method: &'static str = match req.method().as_str() {
                    "GET" => "GET",
                    "POST" => "POST",
                    "HEAD" => "HEAD",
                    "OPTIONS" => "OPTIONS",
                    _ => "other",
                };
                let timed = timed.clone();
                let answer = actix_web::dev::Service::call(srv, req);
                async move {
                    let response = answer.await;
                    let status = match &response {
                        Ok(r) => r.status().as_u16(),
                        Err(e) => e.as_response_error().status_code().as_u16(),
                    };
                    timed.observe_http(&route, method, status, started.elapsed());
                    response
                }
            })
            .app_data(state.clone())
            .app_data(app.clone());
        match &keys {
            Some(keys) => app.app_data(keys.clone()),
            None => app,
        }
        .configure(routes)
    })
    .workers(config.workers.max(1))
    // Stopped through `stop` only: two stops racing (the server's own signal handler and
    // the caller's) would leave the second waiting for an answer that never comes.
    .disable_signals()
    // Browsers keep connections open: Ctrl-C waits for answers in flight, not for them.
    .shutdown_timeout(5)
    .bind(config.listen)?;
    if let Some(address) = server.addrs().first() {
        bound(*address);
    }
    let server = server.run();
    let handle = server.handle();
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return served,
        () = stop => {}
    }
    // The server future answers the stop command itself: poll both.
    let ((), served) = tokio::join!(handle.stop(true), server);
    served
}
