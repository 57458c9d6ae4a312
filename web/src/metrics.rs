//! Prometheus metrics at `/metrics` (OpenMetrics text): request latency by route and by
//! GraphQL operation, refusals by code, and the indexer's progress as the database shows it
//! (the indexer may run in another process): head, cursor, finalized block, lag, reorgs, and
//! the fingerprints and leaf lists waiting to be fetched; and the response cache's hits and
//! misses (a hit is not in the operation latencies: it runs no operation).
//!
//! Labels are bounded whatever clients send: routes are the server's patterns, and an
//! operation is named by its root fields only where they are fields of the schema (at most two,
//! sorted), so a client cannot grow the metrics by inventing names.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use store::entity::{fingerprints, indexer_state, output_batches, reorgs};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    http: Family<RouteLabels, Histogram>,
    graphql: Family<OperationLabels, Histogram>,
    refused: Family<CodeLabels, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
    head: Gauge<i64, AtomicI64>,
    cursor: Gauge<i64, AtomicI64>,
    finalized: Gauge<i64, AtomicI64>,
    lag: Gauge<i64, AtomicI64>,
    reorgs: Gauge<i64, AtomicI64>,
    fingerprints_pending: Gauge<i64, AtomicI64>,
    leaf_lists_pending: Gauge<i64, AtomicI64>,
    /// The schema's root fields (queries and subscriptions): the names an operation label
    /// may hold.
    roots: HashSet<String>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Latency buckets from 0.25 ms to about 8 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub(crate) fn new(sdl: &str) -> Self {
        let mut registry = Registry::with_prefix("registry");
        let http = Family::<RouteLabels, Histogram>::new_with_constructor(latency as fn() -> _);
        let graphql =
            Family::<OperationLabels, Histogram>::new_with_constructor(latency as fn() -> _);
        let refused = Family::<CodeLabels, Counter>::default();
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by route pattern, method and status",
            http.clone(),
        );
        registry.register(
            "graphql_request_duration_seconds",
            "GraphQL requests over HTTP by operation (its root fields)",
            graphql.clone(),
        );
        registry.register(
            "graphql_refused",
            "GraphQL errors by extensions.code (limits, bad input, timeouts)",
            refused.clone(),
        );
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        registry.register(
            "graphql_cache_hits",
            "GraphQL requests over HTTP answered from the response cache",
            cache_hits.clone(),
        );
        registry.register(
            "graphql_cache_misses",
            "GraphQL requests over HTTP the response cache did not hold",
            cache_misses.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::<i64, AtomicI64>::default();
            registry.register(name, help, g.clone());
            g
        };
        let head = gauge(
            &mut registry,
            "indexer_head_block",
            "The chain head the indexer last saw",
        );
        let cursor = gauge(
            &mut registry,
            "indexer_cursor_block",
            "The last block indexed",
        );
        let finalized = gauge(
            &mut registry,
            "indexer_finalized_block",
            "The finalized block",
        );
        let lag = gauge(
            &mut registry,
            "indexer_lag_blocks",
            "Blocks between the head and the last indexed",
        );
        let reorgs = gauge(
            &mut registry,
            "indexer_reorgs",
            "Reorgs the indexer has undone",
        );
        let fingerprints_pending = gauge(
            &mut registry,
            "indexer_fingerprints_pending",
            "Minted models whose fingerprint is not fetched yet",
        );
        let leaf_lists_pending = gauge(
            &mut registry,
            "indexer_leaf_lists_pending",
            "Published output batches whose leaf list is not indexed yet",
        );
        Self {
            registry,
            http,
            graphql,
            refused,
            cache_hits,
            cache_misses,
            head,
            cursor,
            finalized,
            lag,
            reorgs,
            fingerprints_pending,
            leaf_lists_pending,
            roots: root_fields(sdl),
        }
    }

    pub(crate) fn observe_http(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn observe_graphql(&self, operation: String, took: Duration) {
        self.graphql
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// Counts a response cache lookup.
    pub(crate) fn count_cache(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// Counts the codes of a response's errors.
    pub(crate) fn count_refusals(&self, errors: &[async_graphql::ServerError]) {
        for error in errors {
            let code = error
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(|v| match v {
                    async_graphql::Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "NONE".into());
            // Codes are the server's own, a bounded set.
            self.refused.get_or_create(&CodeLabels { code }).inc();
        }
    }

    /// The label of a request: its operation's root fields that the schema has.
    pub(crate) fn operation(&self, request: &async_graphql::Request) -> String {
        match async_graphql::parser::parse_query(&request.query) {
            Ok(document) => {
                operation_label(&document, request.operation_name.as_deref(), &self.roots)
            }
            Err(_) => "unparsable".into(),
        }
    }

    /// The metrics as text, the indexer's read from the database now.
    pub(crate) async fn render(&self, db: &DatabaseConnection) -> String {
        if let Ok(Some(state)) = indexer_state::Entity::find_by_id(1).one(db).await {
            self.head.set(state.head_block);
            self.cursor.set(state.cursor_block);
            self.finalized.set(state.finalized_block);
            self.lag.set((state.head_block - state.cursor_block).max(0));
        }
        if let Ok(n) = reorgs::Entity::find().count(db).await {
            self.reorgs.set(n as i64);
        }
        if let Ok(n) = fingerprints::Entity::find()
            .filter(fingerprints::Column::Status.eq("pending"))
            .filter(fingerprints::Column::ValidTo.is_null())
            .count(db)
            .await
        {
            self.fingerprints_pending.set(n as i64);
        }
        if let Ok(n) = output_batches::Entity::find()
            .filter(output_batches::Column::LeavesStatus.is_in(["pending", "indexing"]))
            .filter(output_batches::Column::ValidTo.is_null())
            .count(db)
            .await
        {
            self.leaf_lists_pending.set(n as i64);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

/// The fields of the schema's query and subscription roots.
fn root_fields(sdl: &str) -> HashSet<String> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
        return HashSet::new();
    };
    let mut names = HashSet::new();
    for definition in document.definitions {
        if let TypeSystemDefinition::Type(t) = definition {
            let name = t.node.name.node.as_str();
            if let (true, TypeKind::Object(object)) = (
                name == "QueryRoot" || name == "SubscriptionRoot",
                &t.node.kind,
            ) {
                names.extend(object.fields.iter().map(|f| f.node.name.node.to_string()));
            }
        }
    }
    names
}

/// At most this many root fields name an operation.
const NAMED: usize = 2;

fn operation_label(
    document: &ExecutableDocument,
    name: Option<&str>,
    roots: &HashSet<String>,
) -> String {
    let operation = match name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.map(|n| n.as_str()) == Some(name))
            .map(|(_, op)| op),
        None => document.operations.iter().next().map(|(_, op)| op),
    };
    let Some(operation) = operation else {
        return "unknown".into();
    };
    if operation.node.ty == OperationType::Mutation {
        return "mutation".into();
    }
    let fields: BTreeSet<&str> = operation
        .node
        .selection_set
        .node
        .items
        .iter()
        .filter_map(|item| match &item.node {
            Selection::Field(field) => Some(field.node.name.node.as_str()),
            _ => None,
        })
        .filter(|name| roots.contains(*name))
        .collect();
    if fields.is_empty() {
        return "other".into();
    }
    let mut label: Vec<&str> = fields.iter().copied().take(NAMED).collect();
    if fields.len() > NAMED {
        label.push("more");
    }
    label.join("+")
}
