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
    /// Largest request body, in bytes.
    pub body_bytes: usize,
    /// Longest a query may run.
    pub time_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            depth: 12,
            complexity: 20_000,
            aliases: 30,
            body_bytes: 64 * 1024,
            time_budget: Duration::from_secs(5),
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

fn count_aliases(set: &SelectionSet, doc: &ExecutableDocument, depth: usize) -> usize {
    if depth > 64 {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node, doc, depth + 1)
            }
            Selection::InlineFragment(fragment) => {
                count_aliases(&fragment.node.selection_set.node, doc, depth + 1)
            }
            Selection::FragmentSpread(spread) => doc
                .fragments
                .get(&spread.node.fragment_name.node)
                .map(|f| count_aliases(&f.node.selection_set.node, doc, depth + 1))
                .unwrap_or(0),
        })
        .sum()
}

#[async_graphql::async_trait::async_trait]
impl Extension for Checker {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let aliases: usize = doc
            .operations
            .iter()
            .map(|(_, op)| count_aliases(&op.node.selection_set.node, &doc, 0))
            .sum();
        if aliases > self.0.aliases {
            return Err(coded(
                format!(
                    "the query uses {aliases} aliases; at most {} are allowed",
                    self.0.aliases
                ),
                "ALIAS_LIMIT",
            ));
        }
        Ok(doc)
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
