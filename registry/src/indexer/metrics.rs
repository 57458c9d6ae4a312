//! The indexer's own metrics (Prometheus, OpenMetrics text): what only its process sees. The
//! calls to the node that failed, by method and kind (`failed`: no answer or an error that is
//! retried; `rate_limited`: the node asked to slow down; `refused`: an error answer taken as
//! the node's word, such as a log range too wide), ranges re-read because the node's answers
//! disagreed, and the steps, blocks, events and reorgs applied with the head, cursor and
//! finalized block. `registry index --metrics-listen ADDR` serves them at `/metrics`; the web
//! server's `/metrics` shows the indexer's progress as the database has it. A node without
//! `eth_getBlockReceipts` or without a `finalized` block counts a refusal each time the indexer
//! asks before it falls back: a steady rate of those is the node's kind, not a fault.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How a call to the node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer, or an error answer that is retried.
    Failed,
    /// The node asked to slow down (429, or a rate-limit error).
    RateLimited,
    /// An error answer taken as the node's word (a log range too wide, an unknown tag).
    Refused,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Failed => "failed",
            Failure::RateLimited => "rate_limited",
            Failure::Refused => "refused",
        }
    }

    /// The kind of a failed call's error message.
    pub(crate) fn of(message: &str) -> Failure {
        if super::rate_limited(message) {
            Failure::RateLimited
        } else {
            Failure::Failed
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// The JSON-RPC method: one of the indexer's own, a bounded set.
    method: &'static str,
    kind: &'static str,
}

/// The indexer's metrics (see the module docs).
pub struct Metrics {
    registry: Registry,
    rpc_errors: Family<CallLabels, Counter>,
    disagreements: Counter,
    steps: Histogram,
    blocks: Counter,
    events: Counter,
    reorgs: Counter,
    head: Gauge<i64, AtomicI64>,
    cursor: Gauge<i64, AtomicI64>,
    finalized: Gauge<i64, AtomicI64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("registry_indexer");
        let rpc_errors = Family::<CallLabels, Counter>::default();
        registry.register(
            "rpc_errors",
            "Calls to the node that failed, by method and kind (failed, rate_limited, refused)",
            rpc_errors.clone(),
        );
        let disagreements = Counter::default();
        registry.register(
            "disagreements",
            "Ranges read again because the node's answers disagreed (a fork mid-read, a lagging backend)",
            disagreements.clone(),
        );
        // 1 ms to about 33 s.
        let steps = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "step_duration_seconds",
            "Steps (a range of blocks, a reorg, or a look at the head)",
            steps.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let blocks = counter(&mut registry, "blocks", "Blocks applied");
        let events = counter(&mut registry, "events", "Events applied");
        let reorgs = counter(&mut registry, "reorgs", "Reorgs rolled back");
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::<i64, AtomicI64>::default();
            registry.register(name, help, g.clone());
            g
        };
        let head = gauge(
            &mut registry,
            "head_block",
            "The node's head at the last step",
        );
        let cursor = gauge(&mut registry, "cursor_block", "The last block indexed");
        let finalized = gauge(
            &mut registry,
            "finalized_block",
            "The finalized block recorded",
        );
        Self {
            registry,
            rpc_errors,
            disagreements,
            steps,
            blocks,
            events,
            reorgs,
            head,
            cursor,
            finalized,
        }
    }
}

impl Metrics {
    /// The metrics as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a string does not fail");
        text
    }

    /// Failed calls of `method` of this kind so far.
    pub fn rpc_errors(&self, method: &'static str, kind: Failure) -> u64 {
        self.rpc_errors
            .get_or_create(&CallLabels {
                method,
                kind: kind.label(),
            })
            .get()
    }

    /// Ranges read again because the node's answers disagreed, so far.
    pub fn disagreements(&self) -> u64 {
        self.disagreements.get()
    }

    /// Blocks and events applied so far.
    pub fn applied(&self) -> (u64, u64) {
        (self.blocks.get(), self.events.get())
    }

    pub(crate) fn rpc_error(&self, method: &'static str, kind: Failure) {
        self.rpc_errors
            .get_or_create(&CallLabels {
                method,
                kind: kind.label(),
            })
            .inc();
    }

    pub(crate) fn disagreed(&self) {
        self.disagreements.inc();
    }

    pub(crate) fn step(&self, step: &super::Step, took: std::time::Duration) {
        self.steps.observe(took.as_secs_f64());
        match *step {
            super::Step::Applied { from, to, events } => {
                self.blocks.inc_by(to + 1 - from);
                self.events.inc_by(events as u64);
            }
            super::Step::Reorg { .. } => {
                self.reorgs.inc();
            }
            super::Step::CaughtUp { head } | super::Step::Behind { head } => {
                self.head.set(head as i64);
            }
            super::Step::Retry => {}
        }
    }

    pub(crate) fn progress(&self, head: i64, cursor: i64, finalized: i64) {
        self.head.set(head);
        self.cursor.set(cursor);
        self.finalized.set(finalized);
    }
}
