//! The indexer: follows the chain into the database.
//!
//! - **Backfill and follow.** From the deployment block it reads the contracts' logs in
//!   `eth_getLogs` ranges that halve when the node refuses a range and grow again after
//!   successes, then follows the head. Above the finalized block (and inside the reorg
//!   window) logs are asked block by block by hash instead, where the block's bloom names our
//!   contracts ([`near`]): a range there is answered from whatever fork or backend the node
//!   has at each height.
//! - **Atomic steps.** A range's events, its block hashes and the cursor are written in one
//!   database transaction: killed at any instant, the database holds either all of a range or
//!   none of it, and a restart continues from the cursor, so the end state equals a clean
//!   replay.
//! - **Reorgs.** Before each range the next block's parent hash is checked against the stored
//!   hash of the cursor block (and, when caught up, the head block's own hash). On a mismatch
//!   the stored hashes are compared with the chain's, newest first; the first that still
//!   matches is the common ancestor; every row version above it is undone (see the
//!   `migrations` crate) and indexing resumes from there. A range is only applied if the hash of
//!   its last block did not change while its logs were read, and the logs' block hashes agree.
//! - **Finality.** The finalized block is the node's `finalized` tag (proof-of-stake finality;
//!   `head − confirmations` where the node names none, or with [`Finality::Confirmations`]);
//!   rows know their block, and the GraphQL side tells whether it is final. History (closed row
//!   versions, block hashes) is kept for `reorg_window` blocks below the head, and never pruned
//!   above the finalized block.
//! - **RPC failures** (timeouts, dropped connections, rate limits) are retried with exponential
//!   backoff and logged; a failed step writes nothing, so no block is skipped or applied twice.
//! - **One writer** per database ([`lock::WriterLock`]).
//! - **Provenance.** For each minted model the metadata and fingerprint are fetched from the
//!   content store off the chain path ([`fingerprints`]: a missing CID never holds the chain
//!   up), checked against the on-chain commitment and compared with every indexed
//!   fingerprint: similarities are stored, and a model that reads as derived from a model its
//!   declared lineage does not explain is flagged.
//! - **Output batches.** Each `OutputsCommitted` is recorded with its block's time; the leaf
//!   lists of published batches are fetched and indexed off the chain path ([`leaves`]).

pub mod apply;
pub(crate) mod batch;
pub mod events;
pub mod fingerprints;
pub mod leaves;
pub mod lock;
pub mod metrics;
mod near;

use std::sync::Arc;
use std::time::Duration;

use ethers::providers::{Http, Middleware, Provider};
use ethers::types::{Block, BlockNumber, Filter, Log, H256};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait as _, ActiveValue::Set, EntityTrait, TransactionTrait};

use crate::deploy::Deployment;
use crate::{Error, Result};
use apply::Lookup;
use content::Store;
use events::{decode, Event, Position};
use fingerprints::Fingerprints;
use lock::WriterLock;
use store::entity::{blocks, indexer_state, reorgs};
use store::Db;

/// How the indexer behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the finalized block comes from.
    pub finality: Finality,
    /// Blocks below the head before a block counts as final, where the node names no
    /// finalized block (or with [`Finality::Confirmations`]).
    pub confirmations: u64,
    /// Blocks of history (row versions, block hashes) kept below the head for reorgs.
    pub reorg_window: u64,
    /// Largest `eth_getLogs` range.
    pub max_range: u64,
    /// Wait between polls of the head when caught up.
    pub poll_interval: Duration,
    /// Give up after this many consecutive failed attempts of one RPC call (`None`: never).
    pub max_retries: Option<u32>,
    /// Longest time spent fetching one model's metadata and fingerprint from the content
    /// store (off the chain path; a failed fetch is retried later).
    pub content_timeout: Duration,
    /// Calls to the node at once when a range needs one per block (headers, logs by block
    /// hash): a node across a network answers each tens of milliseconds late.
    pub parallel_calls: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            finality: Finality::Tag,
            confirmations: 12,
            reorg_window: 256,
            max_range: 2_000,
            poll_interval: Duration::from_secs(1),
            max_retries: None,
            // A large fingerprint behind a slow gateway needs time; a failure is retried.
            content_timeout: Duration::from_secs(60),
            parallel_calls: 32,
        }
    }
}

/// Where the finalized block comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Finality {
    /// The node's `finalized` block tag (what its consensus made final), or `confirmations`
    /// below the head while the node names none (a chain without finality, an older node).
    #[default]
    Tag,
    /// `confirmations` below the head, whatever the node says.
    Confirmations,
}

/// Retries of one range in a row, its answers disagreeing, before the indexer stops (about
/// ten minutes with the doubling pauses).
const MAX_DISAGREEMENTS: u32 = 100;

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Blocks `from..=to` applied, with this many events.
    Applied { from: u64, to: u64, events: usize },
    /// Rolled back to `ancestor`, undoing `depth` blocks.
    Reorg { ancestor: u64, depth: u64 },
    /// Nothing new: the cursor is at the head.
    CaughtUp { head: u64 },
    /// The node's head is below the cursor on the same chain (a lagging node): waiting for it.
    Behind { head: u64 },
    /// The node's answer changed while it was read, or refused the range; try again.
    Retry,
}

/// The indexer of one deployment into one database.
#[derive(Debug)]
pub struct Indexer {
    db: Db,
    provider: Provider<Http>,
    url: String,
    deployment: Deployment,
    /// Fetches minted models' fingerprints beside the chain path (none without a store).
    fingerprints: Option<Arc<Fingerprints>>,
    options: Options,
    range: u64,
    /// `eth_getLogs` failures in a row.
    log_failures: u32,
    /// Ranges retried in a row because the node's answers disagreed.
    retries: u32,
    state: indexer_state::Model,
    lock: Arc<WriterLock>,
    /// The node has named a finalized block: from then on, its refusing to is a hiccup, not
    /// a chain without finality.
    named_finalized: std::sync::atomic::AtomicBool,
    metrics: Arc<metrics::Metrics>,
}

pub(crate) fn now_unix() -> i64 {
    crate::amount::unix_now() as i64
}

/// How long a worker waits before trying again what failed `attempts` times: `base` doubled
/// per attempt, at most `max`.
pub(crate) fn backoff(base: Duration, max: Duration, attempts: i64) -> Duration {
    let doublings = attempts.clamp(1, 32) as u32 - 1;
    base.saturating_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
        .min(max)
}

/// When that is (unix seconds), at least a second from now.
pub(crate) fn retry_at(base: Duration, max: Duration, attempts: i64) -> i64 {
    now_unix() + backoff(base, max, attempts).as_secs().max(1) as i64
}

impl Indexer {
    /// Takes the database's writer lock and checks (or records) which deployment it indexes.
    pub async fn open(
        db: Db,
        rpc_url: &str,
        deployment: Deployment,
        content: Option<Store>,
        options: Options,
    ) -> Result<Self> {
        let lock = Arc::new(WriterLock::acquire(db.conn(), db.url()).await?);
        let provider = crate::chain::provider(rpc_url)?;
        let mut indexer = Self {
            db: db.clone(),
            provider,
            url: rpc_url.to_string(),
            range: options.max_range.max(1),
            log_failures: 0,
            retries: 0,
            deployment,
            fingerprints: content.map(|store| {
                Arc::new(
                    Fingerprints::new(
                        db.clone(),
                        store,
                        fingerprints::Options {
                            timeout: options.content_timeout,
                            poll_interval: options.poll_interval,
                            ..fingerprints::Options::default()
                        },
                    )
                    .with_lock(lock.clone()),
                )
            }),
            options,
            state: indexer_state::Model {
                id: 1,
                chain_id: 0,
                registry: String::new(),
                market: String::new(),
                start_block: 0,
                cursor_block: 0,
                cursor_hash: String::new(),
                head_block: 0,
                finalized_block: 0,
                updated_at: 0,
                pruned_to: 0,
            },
            lock,
            named_finalized: std::sync::atomic::AtomicBool::new(false),
            metrics: Arc::default(),
        };
        let chain_id = indexer
            .rpc("eth_chainId", |p| async move { p.get_chainid().await })
            .await?
            .as_u64();
        if chain_id != indexer.deployment.chain_id {
            return Err(Error::ChainIdMismatch {
                url: indexer.url.clone(),
                expected: indexer.deployment.chain_id,
                actual: chain_id,
            });
        }
        let registry = events::address(indexer.deployment.registry);
        let market = events::address(indexer.deployment.market);
        match indexer.db.state().await? {
            Some(state) => {
                if state.chain_id as u64 != chain_id
                    || state.registry != registry
                    || state.market != market
                {
                    return Err(Error::WrongDeployment {
                        url: store::redact(indexer.db.url()),
                        indexed: format!("registry {} on chain {}", state.registry, state.chain_id),
                    });
                }
                indexer.state = state;
            }
            None => indexer.initialize(chain_id, registry, market).await?,
        }
        Ok(indexer)
    }

    /// Records the deployment and a cursor just before its first block.
    async fn initialize(&mut self, chain_id: u64, registry: String, market: String) -> Result<()> {
        let start = self.deployment.block;
        let anchor = start.saturating_sub(1);
        let header = self.header(anchor).await?;
        let hash = events::hash(header.hash.unwrap_or_default());
        let state = indexer_state::Model {
            id: 1,
            chain_id: chain_id as i64,
            registry,
            market,
            start_block: start as i64,
            cursor_block: anchor as i64,
            cursor_hash: hash.clone(),
            head_block: anchor as i64,
            finalized_block: 0,
            updated_at: now_unix(),
            pruned_to: 0,
        };
        let tx = self.db.conn().begin().await.map_err(|e| self.db.error(e))?;
        indexer_state::Entity::insert(indexer_state::ActiveModel::from(state.clone()))
            .exec(&tx)
            .await
            .map_err(|e| self.db.error(e))?;
        upsert_block(&tx, anchor, &hash, &header)
            .await
            .map_err(|e| self.db.error(e))?;
        tx.commit().await.map_err(|e| self.db.error(e))?;
        self.state = state;
        Ok(())
    }

    /// The last block applied.
    pub fn cursor(&self) -> u64 {
        self.state.cursor_block.max(0) as u64
    }

    /// Calls the node, retrying failures with exponential backoff.
    async fn rpc<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T>
    where
        F: Fn(Provider<Http>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ethers::providers::ProviderError>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0u32;
        loop {
            match call(self.provider.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => {
                    self.metrics
                        .rpc_error(what, metrics::Failure::of(&e.to_string()));
                    attempt += 1;
                    if self.options.max_retries.is_some_and(|max| attempt > max) {
                        return Err(Error::Rpc {
                            url: self.url.clone(),
                            message: format!("{what} failed {attempt} times, last: {e}"),
                        });
                    }
                    tracing::warn!(what, attempt, retry_in = ?delay, "rpc call failed: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn header(&self, number: u64) -> Result<Block<H256>> {
        let block = self
            .rpc("eth_getBlockByNumber", |p| async move {
                p.get_block(BlockNumber::Number(number.into())).await
            })
            .await?;
        block.ok_or(Error::BlockMissing { number })
    }

    /// The finalized block as of `head`: the node's `finalized` tag (never above `head`: a
    /// load balancer may ask another backend), or `confirmations` below `head` where the
    /// node names none; never below the finalized block already recorded.
    async fn finalized(&self, head: u64) -> Result<u64> {
        let by_confirmations = head.saturating_sub(self.options.confirmations);
        let tagged = match self.options.finality {
            Finality::Confirmations => None,
            Finality::Tag => {
                // A refusal of the tag itself: no finality, an older node.
                self.ask("eth_getBlockByNumber(finalized)", |p| async move {
                    p.get_block(BlockNumber::Finalized).await
                })
                .await?
                .ok()
                .flatten()
            }
        };
        let named = &self.named_finalized;
        let finalized = match tagged.and_then(|block| block.number) {
            Some(number) => {
                named.store(true, std::sync::atomic::Ordering::Relaxed);
                number.as_u64().min(head)
            }
            // A node that named one before is having a hiccup (another backend, an internal
            // error): the finalized block stays where it was.
            None if named.load(std::sync::atomic::Ordering::Relaxed) => {
                self.state.finalized_block.max(0) as u64
            }
            None => {
                if self.options.finality == Finality::Tag {
                    tracing::debug!(
                        confirmations = self.options.confirmations,
                        "the node names no finalized block; counting confirmations"
                    );
                }
                by_confirmations
            }
        };
        Ok(finalized.max(self.state.finalized_block.max(0) as u64))
    }

    async fn head(&self) -> Result<u64> {
        Ok(self
            .rpc(
                "eth_blockNumber",
                |p| async move { p.get_block_number().await },
            )
            .await?
            .as_u64())
    }

    /// Steps until the cursor reaches the node's head (or the node is behind it), then tries
    /// every fingerprint due once; returns the head.
    pub async fn sync(&mut self) -> Result<u64> {
        loop {
            match self.step().await? {
                Step::CaughtUp { head } | Step::Behind { head } => {
                    if let Some(worker) = &self.fingerprints {
                        for fetched in worker.drain().await? {
                            fingerprints::log(&fetched);
                        }
                    }
                    return Ok(head);
                }
                _ => {}
            }
        }
    }

    /// Whether the node's block at the highest stored height at or below `head` is the one
    /// stored.
    async fn agrees_at_or_below(&self, head: u64) -> Result<bool> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        let stored = blocks::Entity::find()
            .filter(blocks::Column::Number.lte(head as i64))
            .order_by_desc(blocks::Column::Number)
            .one(self.db.conn())
            .await
            .map_err(|e| self.db.error(e))?;
        // No stored block that low (the node is behind all kept history, or resyncing): a
        // reorg cannot be told from here, and waiting is safe.
        let Some(stored) = stored else {
            return Ok(true);
        };
        let on_chain = self.header(stored.number as u64).await?;
        Ok(on_chain.hash.map(events::hash).as_deref() == Some(stored.hash.as_str()))
    }

    /// Follows the chain until `shutdown` completes (or an error stops it), fetching
    /// fingerprints beside it.
    pub async fn run(&mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Beside the chain path in this task (the content store's streams are not `Send`);
        // its decoding and comparing run on blocking threads, so the chain path is not held
        // up by them.
        let worker = self.fingerprints.clone();
        let beside = async move {
            if let Some(worker) = worker {
                let mut stopped = stopped;
                worker
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
            }
        };
        let follow = async {
            let followed = self.follow(shutdown).await;
            let _ = stop.send(true);
            followed
        };
        tokio::join!(follow, beside).0
    }

    async fn follow(&mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut pause = Duration::from_secs(1);
        loop {
            let step = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                step = self.step() => step,
            };
            let step = match step {
                Ok(step) => {
                    pause = Duration::from_secs(1);
                    step
                }
                // A failed step wrote nothing; the database may be busy (the leaf-list worker
                // writes too) or restarting. Other errors stop the indexer.
                Err(e @ Error::Store(store::Error::Database { .. })) => {
                    tracing::warn!(retry_in = ?pause, "{e}");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(60));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match step {
                Step::Applied { from, to, events } => {
                    tracing::info!(from, to, events, "indexed");
                }
                Step::Reorg { ancestor, depth } => {
                    tracing::warn!(ancestor, depth, "reorg: rolled back");
                }
                Step::Retry => {}
                Step::CaughtUp { .. } | Step::Behind { .. } => {
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(self.options.poll_interval) => {}
                    }
                }
            }
        }
    }

    /// One step: a range of blocks, a reorg, or nothing.
    pub async fn step(&mut self) -> Result<Step> {
        let started = std::time::Instant::now();
        let step = self.take_step().await?;
        // The recorded state first, then what the step saw (a node behind the index shows
        // its own head).
        self.metrics.progress(
            self.state.head_block,
            self.state.cursor_block,
            self.state.finalized_block,
        );
        self.metrics.step(&step, started.elapsed());
        Ok(step)
    }

    /// The indexer's metrics (see [`metrics`]).
    pub fn metrics(&self) -> Arc<metrics::Metrics> {
        self.metrics.clone()
    }

    async fn take_step(&mut self) -> Result<Step> {
        self.disagreements()?;
        let step = match self.step_once().await {
            // A load-balanced node may name a head one backend has and another lacks.
            Err(Error::BlockMissing { number }) => {
                tracing::info!(
                    number,
                    "the node lacks a block at or below its head; retrying"
                );
                return Ok(self.retry().await);
            }
            step => step?,
        };
        if step != Step::Retry {
            self.retries = 0;
        }
        Ok(step)
    }

    async fn step_once(&mut self) -> Result<Step> {
        let head = self.head().await?;
        let cursor = self.cursor();
        if cursor > head {
            // The node is behind the indexed blocks (a load balancer's lagging backend, a node
            // still syncing): only a different hash at a stored height is a reorg.
            if self.agrees_at_or_below(head).await? {
                tracing::info!(
                    head,
                    cursor,
                    "the node is behind the indexed blocks; waiting"
                );
                return Ok(Step::Behind { head });
            }
            return self.reorg(cursor).await;
        }
        if cursor == head {
            // The tip may have been replaced at the same height.
            let tip = self.header(head).await?;
            if events::hash(tip.hash.unwrap_or_default()) != self.state.cursor_hash {
                return self.reorg(cursor).await;
            }
            let finalized = self.finalized(head).await?;
            self.record_head(head, finalized).await?;
            // Idle, nothing is written: the lock is checked anyway, so a lost one stops the
            // indexer (and its workers) now rather than at the next block.
            self.lock.check(self.db.conn(), self.db.url()).await?;
            return Ok(Step::CaughtUp { head });
        }
        let a = cursor + 1;
        let b = head.min(a + self.range - 1);
        // Asked together: a node across a network answers each call late.
        let (first, last, finalized) = tokio::try_join!(
            self.header(a),
            async {
                match b == a {
                    true => Ok(None),
                    false => self.header(b).await.map(Some),
                }
            },
            self.finalized(head),
        )?;
        if events::hash(first.parent_hash) != self.state.cursor_hash {
            return self.reorg(cursor).await;
        }
        let last = last.unwrap_or_else(|| first.clone());
        // Above the finalized block, and inside the reorg window, every block's header is read
        // and the range checked link by link (a middle block or its logs from another fork is
        // caught), its logs are asked by block hash ([`near`]), and every block gets a stored
        // hash, so that a later reorg finds its exact common ancestor rather than an older
        // stored block below the pruned history. Below, one range `eth_getLogs` reads them.
        let from = head
            .saturating_sub(self.options.reorg_window)
            .min(finalized)
            .saturating_add(1)
            .max(a);
        let mut logs = Vec::new();
        if a < from {
            let end = b.min(from - 1);
            let Some(answer) = self.logs(a, end).await? else {
                return Ok(Step::Retry);
            };
            logs = match in_range(answer, a, end) {
                Ok(logs) => logs,
                Err(reason) => {
                    tracing::warn!(
                        from = a,
                        to = end,
                        "the node's logs contradict each other: {reason}; retrying"
                    );
                    return Ok(self.retry().await);
                }
            };
        }
        let window = match from <= b {
            true => self.headers(from, b).await?,
            false => Vec::new(),
        };
        // The range is consistent only if its first and last blocks did not change meanwhile
        // (a header answered from another fork, by another backend or just before a reorg,
        // is caught here). The window's headers, read after the range's logs, are those
        // re-reads where they cover the ends.
        let last_again = match window.last() {
            Some(end) => end.clone(),
            None => self.header(b).await?,
        };
        let first_again = match (b == a, window.first()) {
            (true, _) => last_again.clone(),
            (false, Some(start)) if from == a => start.clone(),
            (false, _) => self.header(a).await?,
        };
        if last_again.hash != last.hash || first_again.hash != first.hash {
            tracing::info!(
                from = a,
                to = b,
                "a block changed while its range was read; retrying"
            );
            return Ok(self.retry().await);
        }
        match self.logs_by_hash(&window).await? {
            Ok(near) => logs.extend(near),
            Err(reason) => {
                tracing::warn!(
                    from,
                    to = b,
                    "the node's logs contradict the headers: {reason}; retrying"
                );
                return Ok(self.retry().await);
            }
        }
        let mut decoded: Vec<(Position, Event)> = Vec::new();
        let mut log_blocks: Vec<(u64, H256)> = Vec::new();
        for log in &logs {
            let Some((pos, event)) = decode(log, self.deployment.registry, self.deployment.market)?
            else {
                continue;
            };
            let expected = if pos.block == a {
                first.hash
            } else if pos.block == b {
                last.hash
            } else {
                None
            };
            if expected.is_some_and(|h| h != pos.block_hash)
                || log_blocks
                    .iter()
                    .any(|(n, h)| *n == pos.block && *h != pos.block_hash)
            {
                tracing::info!(block = pos.block, "logs from another fork; retrying");
                return Ok(self.retry().await);
            }
            if !log_blocks.iter().any(|(n, _)| *n == pos.block) {
                log_blocks.push((pos.block, pos.block_hash));
            }
            decoded.push((pos, event));
        }
        decoded.sort_by_key(|(p, _)| (p.block, p.log_index));
        if !links(&window, from, a, &first, &last, &decoded) {
            tracing::info!(from, to = b, "the range's blocks do not link up; retrying");
            return Ok(self.retry().await);
        }

        // Block times are looked up before the transaction, which then only writes.
        let mut lookups = Vec::with_capacity(decoded.len());
        // Block times for output batches: from the headers already read.
        let mut times: Vec<(u64, u64)> = [&first, &last]
            .into_iter()
            .chain(&window)
            .filter_map(|h| Some((h.number?.as_u64(), h.timestamp.as_u64())))
            .collect();
        for (pos, event) in &decoded {
            lookups.push(match event {
                Event::OutputsCommitted(_) => {
                    let time = match times.iter().find(|(n, _)| *n == pos.block) {
                        Some((_, time)) => *time,
                        None => {
                            let header = self.header(pos.block).await?;
                            if header.hash != Some(pos.block_hash) {
                                tracing::info!(block = pos.block, "block changed; retrying");
                                return Ok(self.retry().await);
                            }
                            times.push((pos.block, header.timestamp.as_u64()));
                            header.timestamp.as_u64()
                        }
                    };
                    Lookup::BlockTime(time)
                }
                _ => Lookup::Nothing,
            });
        }
        let written = self
            .write(
                a,
                b,
                head,
                finalized,
                &first,
                &last,
                &log_blocks,
                &window,
                &decoded,
                &lookups,
            )
            .await;
        written?;
        if decoded.len() < 1_000 {
            self.range = (self.range * 2).min(self.options.max_range.max(1));
        }
        Ok(Step::Applied {
            from: a,
            to: b,
            events: decoded.len(),
        })
    }

    /// The headers of blocks `from..=to`, [`Options::parallel_calls`] at a time.
    async fn headers(&self, from: u64, to: u64) -> Result<Vec<Block<H256>>> {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(from..=to)
            .map(|n| self.header(n))
            .buffered(self.options.parallel_calls.max(1))
            .try_collect()
            .await
    }

    /// A range whose answers disagreed is retried after a pause that doubles while they keep
    /// disagreeing (a node that keeps answering from two forks is not hammered).
    async fn retry(&mut self) -> Step {
        self.metrics.disagreed();
        let pause = Duration::from_millis(50 << self.retries.min(7));
        self.retries += 1;
        tokio::time::sleep(pause).await;
        Step::Retry
    }

    /// Stops after [`MAX_DISAGREEMENTS`] retries in a row: a node whose answers never agree
    /// (or a chain whose blocks this indexer cannot check) is an error to see, not a loop.
    fn disagreements(&self) -> Result<()> {
        if self.retries >= MAX_DISAGREEMENTS {
            return Err(Error::Rpc {
                url: self.url.clone(),
                message: format!(
                    "the node's answers for blocks after {} disagreed {} times in a row (see the warnings before); \
                     a node that serves logs by block hash (EIP-234) and consistent headers is needed",
                    self.cursor(),
                    self.retries
                ),
            });
        }
        Ok(())
    }

    /// Logs of the contracts in `a..=b`; `None` when the node refused the range (halved).
    async fn logs(&mut self, a: u64, b: u64) -> Result<Option<Vec<Log>>> {
        let filter = Filter::new()
            .address(vec![self.deployment.registry, self.deployment.market])
            .from_block(a)
            .to_block(b);
        match self.provider.get_logs(&filter).await {
            Ok(logs) => {
                self.log_failures = 0;
                Ok(Some(logs))
            }
            Err(e) if refused_range(&e.to_string()) && self.range > 1 => {
                self.metrics
                    .rpc_error("eth_getLogs", metrics::Failure::Refused);
                self.range = (self.range / 2).max(1);
                tracing::info!(
                    range = self.range,
                    "node refused the log range; halving: {e}"
                );
                Ok(None)
            }
            Err(e) => {
                // Retried by the next step, which re-checks the head and the parent hash (the
                // chain may have moved meanwhile); only the failures in a row are bounded.
                self.metrics
                    .rpc_error("eth_getLogs", metrics::Failure::of(&e.to_string()));
                self.log_failures += 1;
                if self
                    .options
                    .max_retries
                    .is_some_and(|max| self.log_failures > max)
                {
                    return Err(Error::Rpc {
                        url: self.url.clone(),
                        message: format!(
                            "eth_getLogs failed {} times, last: {e}",
                            self.log_failures
                        ),
                    });
                }
                let delay = Duration::from_millis(200 * (1 << self.log_failures.min(6)));
                tracing::warn!(attempt = self.log_failures, retry_in = ?delay, "eth_getLogs failed: {e}");
                tokio::time::sleep(delay).await;
                Ok(None)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &mut self,
        a: u64,
        b: u64,
        head: u64,
        finalized: u64,
        first: &Block<H256>,
        last: &Block<H256>,
        log_blocks: &[(u64, H256)],
        window: &[Block<H256>],
        decoded: &[(Position, Event)],
        lookups: &[Lookup],
    ) -> Result<()> {
        let err = |e: sea_orm::DbErr| self.db.error(e);
        // History above the finalized block may still be reorganised, however old.
        let horizon = head
            .saturating_sub(self.options.reorg_window)
            .min(finalized);
        let prunes = horizon > 0 && horizon < b;
        let tx = self.db.conn().begin().await.map_err(err)?;
        store::claim_writes(&tx).await.map_err(err)?;
        self.lock.check(&tx, self.db.url()).await?;
        let mut batch = batch::Batch::default();
        for ((pos, event), lookup) in decoded.iter().zip(lookups) {
            apply::apply(&tx, &mut batch, pos, event, lookup)
                .await
                .map_err(err)?;
        }
        batch
            .flush(&tx, prunes.then_some(horizon as i64))
            .await
            .map_err(err)?;
        let last_hash = events::hash(last.hash.unwrap_or_default());
        upsert_block(&tx, a, &events::hash(first.hash.unwrap_or_default()), first)
            .await
            .map_err(err)?;
        for header in window {
            let number = header.number.unwrap_or_default().as_u64();
            let hash = events::hash(header.hash.unwrap_or_default());
            upsert_block(&tx, number, &hash, header)
                .await
                .map_err(err)?;
        }
        let between: Vec<(u64, String)> = log_blocks
            .iter()
            .filter(|(number, _)| *number != a && *number != b)
            .map(|(number, hash)| (*number, events::hash(*hash)))
            .collect();
        upsert_hashes(&tx, &between).await.map_err(err)?;
        upsert_block(&tx, b, &last_hash, last).await.map_err(err)?;
        let mut state = self.state.clone();
        state.cursor_block = b as i64;
        state.cursor_hash = last_hash;
        state.head_block = head as i64;
        // Never above what is indexed: one spiked head (a lying or confused backend) would
        // otherwise pin the finalized block above the chain for good (it only grows), and every
        // row read as final.
        state.finalized_block = finalized.min(b) as i64;
        state.updated_at = now_unix();
        if prunes {
            state.pruned_to = state.pruned_to.max(horizon as i64);
        }
        if !move_cursor(&tx, &self.state, &state).await.map_err(err)? {
            return Err(Error::CursorMoved {
                cursor: self.cursor(),
            });
        }
        if prunes {
            store::prune(&tx, horizon as i64).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        self.state = state;
        Ok(())
    }

    /// Records the head and finalized block when caught up.
    async fn record_head(&mut self, head: u64, finalized: u64) -> Result<()> {
        let finalized = finalized.min(self.cursor()) as i64;
        if self.state.head_block == head as i64 && self.state.finalized_block == finalized {
            return Ok(());
        }
        let mut state = self.state.clone();
        state.head_block = head as i64;
        state.finalized_block = finalized;
        state.updated_at = now_unix();
        self.lock.check(self.db.conn(), self.db.url()).await?;
        if !move_cursor(self.db.conn(), &self.state, &state)
            .await
            .map_err(|e| self.db.error(e))?
        {
            return Err(Error::CursorMoved {
                cursor: self.cursor(),
            });
        }
        self.state = state;
        Ok(())
    }

    /// Finds the common ancestor with the chain and undoes everything above it.
    async fn reorg(&mut self, detected_at: u64) -> Result<Step> {
        // Every stored hash above the prune horizon (history is kept above the finalized
        // block, however far that lags).
        let kept = (self.cursor() as i64 - self.state.pruned_to).max(0) as u64 + 1;
        let stored = self
            .db
            .recent_blocks(kept.max(self.options.reorg_window + 1_024))
            .await?;
        let mut ancestor = None;
        let head = self.head().await?;
        for block in &stored {
            let number = block.number as u64;
            let on_chain = match self.header(number).await {
                Ok(header) => header.hash.map(events::hash),
                // A chain shorter than our history: keep looking lower.
                Err(Error::BlockMissing { .. }) if number > head => None,
                // A block at or below the head the node does not give (a lagging backend, a
                // dropped call) is no proof that it is not the ancestor: looking lower would
                // roll back blocks the chain still has (to the prune horizon, and then stop
                // the indexer). The step is tried again.
                Err(e) => return Err(e),
            };
            if on_chain.as_deref() == Some(block.hash.as_str()) {
                ancestor = Some(block.clone());
                break;
            }
        }
        let Some(ancestor) = ancestor else {
            return Err(Error::ReorgTooDeep {
                cursor: detected_at,
                oldest: stored.last().map(|b| b.number as u64).unwrap_or_default(),
            });
        };
        let to = ancestor.number;
        // History at or below the prune horizon is gone: rolling back below it would leave
        // rows that later versions replaced, without those versions.
        if to < self.state.pruned_to {
            return Err(Error::ReorgTooDeep {
                cursor: detected_at,
                oldest: self.state.pruned_to as u64,
            });
        }
        let depth = detected_at.saturating_sub(to as u64);
        let err = |e: sea_orm::DbErr| self.db.error(e);
        let tx = self.db.conn().begin().await.map_err(err)?;
        // The workers beside the indexer write under mints and batches: they finish first.
        store::claim_writes(&tx).await.map_err(err)?;
        self.lock.check(&tx, self.db.url()).await?;
        store::rollback(&tx, to).await.map_err(err)?;
        let mut state = self.state.clone();
        state.cursor_block = to;
        state.cursor_hash = ancestor.hash.clone();
        state.updated_at = now_unix();
        if !move_cursor(&tx, &self.state, &state).await.map_err(err)? {
            return Err(Error::CursorMoved {
                cursor: self.cursor(),
            });
        }
        reorgs::Entity::insert(reorgs::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            detected_at: Set(detected_at as i64),
            ancestor: Set(to),
            depth: Set(depth as i64),
            at: Set(now_unix()),
        })
        .exec(&tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        self.state = state;
        self.range = self.options.max_range.max(1);
        Ok(Step::Reorg {
            ancestor: to as u64,
            depth,
        })
    }
}

/// Whether `window` (consecutive headers ending at the range's last block) is one chain: each
/// header's parent is the one before, its first is the range's first block when it starts
/// there, its last is `last`, and every log in it names its block's hash.
fn links(
    window: &[Block<H256>],
    from: u64,
    a: u64,
    first: &Block<H256>,
    last: &Block<H256>,
    decoded: &[(Position, Event)],
) -> bool {
    let (Some(start), Some(end)) = (window.first(), window.last()) else {
        return true;
    };
    // Each header is the block asked for (a node may answer another).
    let numbered = window
        .iter()
        .enumerate()
        .all(|(i, h)| h.number.map(|n| n.as_u64()) == Some(from + i as u64));
    let chained = window
        .windows(2)
        .all(|w| Some(w[1].parent_hash) == w[0].hash);
    let ends = end.hash == last.hash && (from != a || start.hash == first.hash);
    let logs = decoded.iter().all(|(pos, _)| {
        pos.block < from
            || window
                .get((pos.block - from) as usize)
                .is_some_and(|h| h.hash == Some(pos.block_hash))
    });
    numbered && chained && ends && logs
}

/// The logs a node answered for `a..=b`, as the range holds them. Nodes have answered with
/// each log twice (some Erigon versions), with logs of blocks they had dropped (`removed`), and
/// with logs outside the range asked; applied as given, each would change the index (a credit
/// counted twice) without an error. A repeated log (same block hash and log index, same
/// content) is kept once, removed and out-of-range logs are left out (the range that holds
/// them reads them again), and two different logs at one position are an error.
fn in_range(logs: Vec<Log>, a: u64, b: u64) -> std::result::Result<Vec<Log>, String> {
    let mut seen: std::collections::HashMap<(Option<H256>, Option<ethers::types::U256>), usize> =
        std::collections::HashMap::new();
    let mut kept: Vec<Log> = Vec::with_capacity(logs.len());
    let mut dropped = 0usize;
    for log in logs {
        let outside = log
            .block_number
            .is_some_and(|n| n.as_u64() < a || n.as_u64() > b);
        if log.removed == Some(true) || outside {
            dropped += 1;
            continue;
        }
        match seen.get(&(log.block_hash, log.log_index)) {
            Some(&i) if kept[i] == log => dropped += 1,
            Some(_) => {
                return Err(format!(
                    "two different logs at block {:?} log index {:?}",
                    log.block_number, log.log_index
                ))
            }
            None => {
                seen.insert((log.block_hash, log.log_index), kept.len());
                kept.push(log);
            }
        }
    }
    if dropped > 0 {
        tracing::warn!(
            from = a,
            to = b,
            dropped,
            "the node answered logs repeated, removed or outside the range; left out"
        );
    }
    Ok(kept)
}

/// Whether a node's `eth_getLogs` error says the range (or its result) is too large, as
/// providers word it; rate limits are not (they are retried as they are).
fn refused_range(message: &str) -> bool {
    let lower = message.to_lowercase();
    !rate_limited(message)
        && [
            "range",
            "too many",
            "limit",
            "exceed",
            "more than",
            "too large",
        ]
        .iter()
        .any(|w| lower.contains(w))
}

/// Whether a node's error says it is rate-limiting us, as providers word it.
fn rate_limited(message: &str) -> bool {
    let message = message.to_lowercase();
    [
        "429",
        "rate limit",
        "too many requests",
        "capacity",
        "compute units",
        "quota",
    ]
    .iter()
    .any(|w| message.contains(w))
}

/// Writes `next` over the cursor row only while it still holds `previous`'s cursor: a second
/// writer, or a retry after a commit that failed ambiguously, fails instead of writing over
/// another's progress.
async fn move_cursor<C: sea_orm::ConnectionTrait>(
    c: &C,
    previous: &indexer_state::Model,
    next: &indexer_state::Model,
) -> std::result::Result<bool, sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let moved = indexer_state::Entity::update_many()
        .set(indexer_state::ActiveModel::from(next.clone()).reset_all())
        .filter(indexer_state::Column::Id.eq(previous.id))
        .filter(indexer_state::Column::CursorBlock.eq(previous.cursor_block))
        .filter(indexer_state::Column::CursorHash.eq(previous.cursor_hash.clone()))
        .exec(c)
        .await?;
    Ok(moved.rows_affected == 1)
}

async fn upsert_block<C: sea_orm::ConnectionTrait>(
    c: &C,
    number: u64,
    hash: &str,
    header: &Block<H256>,
) -> std::result::Result<(), sea_orm::DbErr> {
    blocks::Entity::insert(blocks::ActiveModel {
        number: Set(number as i64),
        hash: Set(hash.to_string()),
        parent_hash: Set(events::hash(header.parent_hash)),
        timestamp: Set(header.timestamp.as_u64() as i64),
    })
    .on_conflict(
        OnConflict::column(blocks::Column::Number)
            .update_columns([
                blocks::Column::Hash,
                blocks::Column::ParentHash,
                blocks::Column::Timestamp,
            ])
            .to_owned(),
    )
    .exec(c)
    .await?;
    Ok(())
}

/// Records the hashes of blocks inside a range (whose headers were not read), for reorg
/// checks; `hashes` holds distinct numbers.
async fn upsert_hashes<C: sea_orm::ConnectionTrait>(
    c: &C,
    hashes: &[(u64, String)],
) -> std::result::Result<(), sea_orm::DbErr> {
    // Four columns a row: 1,000 rows stay well under SQLite's and PostgreSQL's parameter limits.
    for chunk in hashes.chunks(1_000) {
        let rows = chunk.iter().map(|(number, hash)| blocks::ActiveModel {
            number: Set(*number as i64),
            hash: Set(hash.clone()),
            parent_hash: Set(String::new()),
            timestamp: Set(0),
        });
        blocks::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(blocks::Column::Number)
                    .update_columns([blocks::Column::Hash])
                    .to_owned(),
            )
            .exec_without_returning(c)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::refused_range;

    /// Repeated, removed and out-of-range logs are left out; a position held by two different
    /// logs is refused.
    #[test]
    fn only_the_range_s_own_logs_are_kept_once() {
        use ethers::types::{Log, H256, U256, U64};
        let log = |block: u64, index: u64, byte: u8| Log {
            block_number: Some(U64::from(block)),
            block_hash: Some(H256::repeat_byte(block as u8)),
            log_index: Some(U256::from(index)),
            data: vec![byte].into(),
            ..Log::default()
        };
        let removed = Log {
            removed: Some(true),
            ..log(5, 9, 1)
        };
        let logs = vec![
            log(5, 0, 1),
            log(5, 0, 1),
            log(6, 1, 2),
            removed,
            log(4, 0, 3),
            log(8, 0, 4),
            log(6, 1, 2),
        ];
        assert_eq!(
            super::in_range(logs, 5, 7).unwrap(),
            vec![log(5, 0, 1), log(6, 1, 2)]
        );
        let err = super::in_range(vec![log(5, 0, 1), log(5, 0, 2)], 5, 7).unwrap_err();
        assert!(err.contains("two different logs"), "{err}");
    }

    #[test]
    fn range_refusals_are_told_from_rate_limits() {
        for refused in [
            "query returned more than 10000 results",
            "block range is too wide",
            "exceed maximum block range: 2000",
            "Log response size exceeded",
        ] {
            assert!(refused_range(refused), "{refused}");
        }
        for other in [
            "HTTP 429 Too Many Requests",
            "rate limit reached",
            "Your app has exceeded its compute units per second capacity",
            "daily request quota exceeded",
            "connection refused",
            "error sending request",
        ] {
            assert!(!refused_range(other), "{other}");
        }
    }
}
