//! Limits that refuse abusive queries before they run, and the per-query time budget. The
//! refusals carry machine codes in `extensions.code`.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest selection nesting.
    pub depth: usize,
    /// Largest complexity: each field costs 1, list fields multiply their children by their
    /// page size (`first`, or the default).
    pub complexity: usize,
    /// Most aliased fields in one document.
    pub aliases: usize,
    /// Most fields in one document once its fragments are expanded.
    pub fields: usize,
    /// Most operations in one batched request (a JSON array).
    pub batch: usize,
    /// Largest request body, in bytes.
    pub body_bytes: usize,
    /// Longest a query may run.
    pub time_budget: Duration,
    /// Longest time a client may take to send a request body (a slow client holds a
    /// connection open otherwise).
    pub body_timeout: Duration,
    /// Open WebSocket connections at once, server-wide.
    pub ws_connections: usize,
    /// Open WebSocket connections at once from one client address.
    pub ws_connections_per_client: usize,
    /// Live subscriptions on one WebSocket connection.
    pub ws_subscriptions: usize,
    /// Largest WebSocket message (a frame, or continuation frames together), in bytes.
    pub ws_message_bytes: usize,
    /// Most messages a WebSocket client may send in a second.
    pub ws_messages_per_second: u32,
    /// A WebSocket that sends nothing for this long (or has not finished its handshake) is
    /// closed.
    pub ws_idle: Duration,
    /// Gateway downloads at once.
    pub gateway_streams: usize,
    /// A gateway download whose client has read nothing for this long is ended (its place
    /// given back).
    pub gateway_stall: Duration,
    /// Bytes of answers the response cache keeps (see `cache`); 0 turns it off.
    pub response_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            depth: 12,
            complexity: 20_000,
            aliases: 30,
            fields: 2_000,
            batch: 10,
            body_bytes: 64 * 1024,
            time_budget: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            ws_connections: 1_000,
            ws_connections_per_client: 20,
            ws_subscriptions: 20,
            ws_message_bytes: 64 * 1024,
            ws_messages_per_second: 50,
            ws_idle: Duration::from_secs(60),
            gateway_streams: 64,
            gateway_stall: Duration::from_secs(60),
            response_cache_bytes: 64 << 20,
        }
    }
}

fn coded(message: impl Into<String>, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

pub(crate) struct LimitsExtension(pub(crate) Limits);

impl ExtensionFactory for LimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Checker(self.0))
    }
}

struct Checker(Limits);

/// The fields and aliases of a selection set with every fragment spread expanded: counted once
/// per fragment (memoised) and saturating, so a document whose fragments spread each other
/// many times over (a few hundred bytes that expand to billions of fields) is measured in
/// time proportional to its text. A fragment spread inside itself counts as empty here
/// (validation refuses the cycle).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Size {
    fields: usize,
    aliases: usize,
}

impl Size {
    fn add(self, other: Size) -> Size {
        Size {
            fields: self.fields.saturating_add(other.fields),
            aliases: self.aliases.saturating_add(other.aliases),
        }
    }
}

/// Deepest nesting measured, fragments included (the schema refuses beyond 32 anyway).
const MAX_NESTING: usize = 32;

/// `expanded`'s refusals: a fragment that is not defined, nesting beyond [`MAX_NESTING`].
fn malformed(message: String) -> ServerError {
    coded(message, "GRAPHQL_VALIDATION_FAILED")
}

fn expanded<'a>(
    set: &'a SelectionSet,
    doc: &'a ExecutableDocument,
    memo: &mut std::collections::HashMap<&'a str, Option<Size>>,
    depth: usize,
) -> Result<Size, ServerError> {
    if depth > MAX_NESTING {
        return Err(malformed(format!(
            "the query nests deeper than {MAX_NESTING} levels, fragments included"
        )));
    }
    let mut size = Size::default();
    for item in &set.items {
        // Every selection counts, spreads and inline fragments too: a bomb of spreads alone
        // is not free.
        let part = match &item.node {
            Selection::Field(field) => Size {
                fields: 1,
                aliases: usize::from(field.node.alias.is_some()),
            }
            .add(expanded(
                &field.node.selection_set.node,
                doc,
                memo,
                depth + 1,
            )?),
            Selection::InlineFragment(fragment) => Size {
                fields: 1,
                aliases: 0,
            }
            .add(expanded(
                &fragment.node.selection_set.node,
                doc,
                memo,
                depth + 1,
            )?),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                let inner = match memo.get(name) {
                    Some(Some(known)) => *known,
                    // Being measured: a cycle (validation refuses it).
                    Some(None) => Size::default(),
                    None => {
                        let fragment = doc
                            .fragments
                            .get(&spread.node.fragment_name.node)
                            .ok_or_else(|| malformed(format!("unknown fragment \"{name}\"")))?;
                        memo.insert(name, None);
                        let known =
                            expanded(&fragment.node.selection_set.node, doc, memo, depth + 1)?;
                        memo.insert(name, Some(known));
                        known
                    }
                };
                Size {
                    fields: 1,
                    aliases: 0,
                }
                .add(inner)
            }
        };
        size = size.add(part);
    }
    Ok(size)
}

#[async_graphql::async_trait::async_trait]
impl Extension for Checker {
    /// Every operation sent over a WebSocket (subscriptions, and queries too) takes one of its
    /// connection's places while it lives; refused with `TOO_MANY_SUBSCRIPTIONS` when none is
    /// free. Claimed here, as the protocol handler starts each operation, so in the order the
    /// client sent them.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: futures::stream::BoxStream<'s, Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures::stream::BoxStream<'s, Response> {
        use futures::StreamExt as _;
        let Some(slots) = ctx.data_opt::<Arc<crate::schema::subscription::Slots>>() else {
            return next.run(ctx, stream);
        };
        match slots.claim() {
            Ok(place) => next
                .run(ctx, stream)
                .map(move |response| {
                    let _held = &place;
                    response
                })
                .boxed(),
            Err(most) => {
                futures::stream::once(futures::future::ready(Response::from_errors(vec![coded(
                    format!(
                        "this connection holds {most} live operations, its most; complete one first"
                    ),
                    "TOO_MANY_SUBSCRIPTIONS",
                )])))
                .boxed()
            }
        }
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Measured on our own parse first: the schema's parse walks nested fragments
        // expanded (seconds for a document of a few hundred bytes that spread each other).
        let parse_failed = |e: ServerError| {
            // Parser errors (syntax, nesting beyond the limit) get a code.
            if e.extensions.is_none() {
                let mut parsed = coded(e.message.clone(), "GRAPHQL_PARSE_FAILED");
                parsed.locations = e.locations;
                parsed
            } else {
                e
            }
        };
        let own = async_graphql::parser::parse_query(query)
            .map_err(|e| parse_failed(ServerError::from(e)))?;
        let mut memo = std::collections::HashMap::new();
        let mut size = Size::default();
        for (_, op) in own.operations.iter() {
            size = size.add(expanded(&op.node.selection_set.node, &own, &mut memo, 0)?);
        }
        if size.fields > self.0.fields {
            return Err(coded(
                format!(
                    "the query selects {} fields once its fragments are expanded; at most {} are allowed",
                    size.fields, self.0.fields
                ),
                "FIELD_LIMIT",
            ));
        }
        let aliases = size.aliases;
        if aliases > self.0.aliases {
            return Err(coded(
                format!(
                    "the query uses {aliases} aliases; at most {} are allowed",
                    self.0.aliases
                ),
                "ALIAS_LIMIT",
            ));
        }
        next.run(ctx, query, variables).await.map_err(parse_failed)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = if e.message.contains("nested too deep") {
                        Some(("DEPTH_LIMIT", format!("the query nests deeper than {} levels", self.0.depth)))
                    } else if e.message.contains("too complex") {
                        Some((
                            "COMPLEXITY_LIMIT",
                            format!(
                                "the query's complexity exceeds {} (list fields count their page size)",
                                self.0.complexity
                            ),
                        ))
                    } else {
                        None
                    };
                    match code {
                        Some((code, message)) => coded(message, code),
                        None if e.extensions.is_none() => {
                            let message = e.message.clone();
                            let mut coded = coded(message, "GRAPHQL_VALIDATION_FAILED");
                            coded.locations = e.locations;
                            coded
                        }
                        None => e,
                    }
                })
                .collect()
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        match tokio::time::timeout(self.0.time_budget, next.run(ctx, operation_name)).await {
            Ok(response) => response,
            Err(_) => Response::from_errors(vec![coded(
                format!(
                    "the query ran longer than its budget of {} ms",
                    self.0.time_budget.as_millis()
                ),
                "TIMEOUT",
            )]),
        }
    }
}
