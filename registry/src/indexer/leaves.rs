//! The leaf lists of published output batches, read off the chain path: the indexer records a
//! batch (`output_batches`, leaves `pending`) and moves on; this worker fetches the list its
//! `OutputsCommitted` event names from the content store, checks it against the batch, and
//! indexes its outputs by content hash (`outputs`).
//!
//! - **Checked, not trusted.** The provider wrote the list; it is indexed only when it is the
//!   committed batch: its leaves rebuild the committed root, there are `count` of them, and
//!   each names the batch's chain, market, license and model. Anything else marks the batch
//!   `invalid` with the reason, so a provider cannot attribute content to a batch (or to
//!   another provider's license) by publishing a list it did not commit. The list is
//!   content-addressed, so an invalid list stays invalid and is not fetched again.
//! - **Retried.** A list the store cannot give now (missing, slow, a node down) stays `pending`
//!   and is tried again after a backoff that doubles per attempt up to a limit; the attempts
//!   and the last failure are recorded on the batch.
//! - **Reorg-safe.** The outputs take the block of their batch, so the reorg that drops a batch
//!   drops them. The outputs and the batch's new status are written in one transaction that
//!   starts by moving the batch out of `pending`: if a reorg removed the batch meanwhile,
//!   nothing is written; a reorg that comes after waits for it and then removes both (see
//!   `migrations::VERSIONED_TABLES`).
//! - **Bounded.** A list is read only up to a size its committed `count` allows, and batches
//!   of more than [`MAX_LEAVES`] outputs are not read at all.

use std::time::Duration;

use ethers::types::{Address, H256, U256};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use super::events::{address, hash};
use super::now_unix as now;
use crate::deploy::Deployment;
use crate::outputs::commit::{LeafList, LIST_FORMAT};
use crate::outputs::{OutputLeaf, Tree};
use crate::Result;
use content::{cids, Store};
use store::entity::{output_batches, outputs};
use store::status::leaves as leaves_status;
use store::{Db, Versioned};

/// Batches with more outputs than this are marked invalid instead of read (a list of a
/// million leaves is about 350 MB of JSON).
pub const MAX_LEAVES: i64 = 1_000_000;

/// Outputs written per transaction.
const OUTPUT_CHUNK: usize = 10_000;

/// Bytes a leaf may take in a list (ours take about 350): bounds what a batch's `count` lets
/// the worker read.
const BYTES_PER_LEAF: u64 = 1_024;

/// How the worker behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Longest time spent fetching one list.
    pub timeout: Duration,
    /// Wait before the first retry of a list that could not be fetched; doubles per attempt.
    pub retry_base: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
    /// Wait between looks for due batches when none is due.
    pub poll_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3_600),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// What became of one batch's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Checked and its outputs indexed.
    Indexed { root: String, outputs: usize },
    /// Not the batch's leaves (or not readable as a list); not fetched again.
    Invalid { root: String, reason: String },
    /// Not fetched now; tried again at `retry_at` (unix seconds).
    Failed {
        root: String,
        reason: String,
        retry_at: i64,
    },
    /// The batch left the index (a reorg) while its list was fetched, or another fetch
    /// recorded it; nothing (more) was written.
    Gone { root: String },
}

/// The worker of one deployment's database.
#[derive(Debug)]
pub struct LeafLists {
    db: Db,
    store: Store,
    chain_id: u64,
    market: Address,
    options: Options,
}

/// What a fetch gave.
enum Outcome {
    Leaves(Vec<outputs::Model>),
    Invalid(String),
    Failed(String),
}

impl LeafLists {
    pub fn new(db: Db, store: Store, deployment: &Deployment, options: Options) -> Self {
        Self {
            db,
            store,
            chain_id: deployment.chain_id,
            market: deployment.market,
            options,
        }
    }

    /// Batches whose list is due now, oldest retry first.
    async fn due(&self, limit: Option<u64>) -> Result<Vec<output_batches::Model>> {
        output_batches::Entity::find()
            .filter(output_batches::Column::LeavesStatus.eq(leaves_status::PENDING))
            .filter(output_batches::Column::LeavesRetryAt.lte(now()))
            .filter(output_batches::Column::ValidTo.is_null())
            .order_by_asc(output_batches::Column::LeavesRetryAt)
            .order_by_asc(output_batches::Column::BlockNumber)
            .order_by_asc(output_batches::Column::LogIndex)
            .limit(limit)
            .all(self.db.conn())
            .await
            .map_err(|e| self.db.error(e).into())
    }

    /// Tries every batch due now, once each (after [`LeafLists::recover`]).
    pub async fn drain(&self) -> Result<Vec<Fetched>> {
        self.recover().await?;
        let mut done = Vec::new();
        for batch in self.due(None).await? {
            done.push(self.process(batch).await?);
        }
        Ok(done)
    }

    /// Fetches due lists until `shutdown` completes. A failure (the database busy or down)
    /// is logged and retried after a pause: the worker never stops the indexer beside it.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut pause = self.options.poll_interval;
        let mut recovered = false;
        loop {
            let step = async {
                if !recovered {
                    self.recover().await?;
                }
                match self.due(Some(1)).await?.into_iter().next() {
                    Some(batch) => self.process(batch).await.map(Some),
                    None => Ok(None),
                }
            };
            let outcome = tokio::select! {
                _ = &mut shutdown => return,
                outcome = step => outcome,
            };
            let idle = match outcome {
                Ok(Some(fetched)) => {
                    log(&fetched);
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(retry_in = ?pause, "leaf lists: {e}");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
                    continue;
                }
            };
            recovered = true;
            pause = self.options.poll_interval;
            if idle {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(self.options.poll_interval) => {}
                }
            }
        }
    }

    /// Fetches and checks one batch's list and records what became of it.
    async fn process(&self, batch: output_batches::Model) -> Result<Fetched> {
        let outcome = self.fetch(&batch).await;
        self.record(&batch, outcome).await
    }

    async fn fetch(&self, batch: &output_batches::Model) -> Outcome {
        let Some(uri) = batch.uri.as_deref() else {
            return Outcome::Invalid("the batch names no leaf list".into());
        };
        let cid = match cids::parse(uri) {
            Ok(cid) => cid,
            Err(e) => return Outcome::Invalid(format!("{uri:?} is not an IPFS address: {e}")),
        };
        if batch.count > MAX_LEAVES {
            return Outcome::Invalid(format!(
                "{} outputs: more than the {MAX_LEAVES} a list may hold here",
                batch.count
            ));
        }
        let max = batch.count.max(0) as u64 * BYTES_PER_LEAF + 4_096;
        let read = tokio::time::timeout(self.options.timeout, self.store.read_bytes(&cid, max));
        let bytes = match read.await {
            Ok(Ok(bytes)) => bytes,
            // What the CID names is too large or not a file: so it stays.
            Ok(Err(
                e @ (content::Error::ContentTooLarge { .. }
                | content::Error::MalformedNode { .. }
                | content::Error::InvalidCid { .. }),
            )) => return Outcome::Invalid(e.to_string()),
            Ok(Err(e)) => return Outcome::Failed(e.to_string()),
            Err(_) => {
                return Outcome::Failed(format!(
                    "the content store did not give {uri} within {} s",
                    self.options.timeout.as_secs()
                ))
            }
        };
        let expected = Expected {
            root: batch.root.clone(),
            count: batch.count,
            chain_id: self.chain_id,
            market: self.market,
            license: U256::from(batch.license_id.max(0) as u64),
            model: U256::from(batch.model_id.max(0) as u64),
            block: batch.block_number,
            log_index: batch.log_index,
        };
        // Parsing and hashing a large list takes a while: off the async threads.
        let checked = tokio::task::spawn_blocking(move || expected.check(&bytes)).await;
        match checked {
            Ok(Ok(rows)) => Outcome::Leaves(rows),
            Ok(Err(reason)) => Outcome::Invalid(reason),
            Err(e) => Outcome::Failed(format!("the check of the list stopped: {e}")),
        }
    }

    async fn record(&self, batch: &output_batches::Model, outcome: Outcome) -> Result<Fetched> {
        let root = batch.root.clone();
        let attempts = batch.leaves_attempts + 1;
        let (to, reason, retry_at) = match outcome {
            Outcome::Leaves(rows) => return self.write_outputs(batch, rows).await,
            Outcome::Invalid(reason) => (leaves_status::INVALID, reason, 0),
            Outcome::Failed(reason) => {
                let retry_at = now()
                    + super::backoff(self.options.retry_base, self.options.retry_max, attempts)
                        .as_secs() as i64;
                (leaves_status::PENDING, reason, retry_at)
            }
        };
        let detail = Some(reason.clone());
        let moved = transition_alone(
            self.db.conn(),
            batch.vid,
            leaves_status::PENDING,
            to,
            detail,
            attempts,
            retry_at,
        )
        .await
        .map_err(|e| self.db.error(e))?;
        Ok(match (moved, to) {
            (false, _) => Fetched::Gone { root },
            (true, leaves_status::INVALID) => Fetched::Invalid { root, reason },
            (true, _) => Fetched::Failed {
                root,
                reason,
                retry_at,
            },
        })
    }

    /// Writes a checked list's outputs: the batch is claimed (`indexing`), the rows are
    /// written in transactions of [`OUTPUT_CHUNK`] (a million outputs must not hold the
    /// database's write lock for long: the indexer writes too), each first checking that the
    /// batch is still there, and the batch is then `indexed`. A reorg that removes the batch
    /// meanwhile removes what was written (the rows carry its block) and stops the rest; a
    /// worker stopped midway leaves it `indexing`, which [`LeafLists::recover`] undoes.
    async fn write_outputs(
        &self,
        batch: &output_batches::Model,
        rows: Vec<outputs::Model>,
    ) -> Result<Fetched> {
        let err = |e| self.db.error(e);
        let root = batch.root.clone();
        let attempts = batch.leaves_attempts + 1;
        let (vid, count) = (batch.vid, rows.len());
        let conn = self.db.conn();
        use leaves_status::{INDEXED, INDEXING, PENDING};
        if !transition_alone(conn, vid, PENDING, INDEXING, None, attempts, 0)
            .await
            .map_err(err)?
        {
            return Ok(Fetched::Gone { root });
        }
        for chunk in rows.chunks(OUTPUT_CHUNK) {
            let tx = conn.begin().await.map_err(err)?;
            // First: it takes the write lock, and finds the batch or not.
            if !transition(&tx, vid, INDEXING, INDEXING, None, attempts, 0)
                .await
                .map_err(err)?
            {
                tx.rollback().await.map_err(err)?;
                return Ok(Fetched::Gone { root });
            }
            outputs::Model::insert_all(chunk.to_vec(), &tx)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
        }
        if !transition_alone(conn, vid, INDEXING, INDEXED, None, attempts, 0)
            .await
            .map_err(err)?
        {
            return Ok(Fetched::Gone { root });
        }
        Ok(Fetched::Indexed {
            root,
            outputs: count,
        })
    }

    /// Puts back to `pending` the batches a stopped worker left `indexing`, without the
    /// outputs it wrote; returns how many.
    pub async fn recover(&self) -> Result<usize> {
        let err = |e| self.db.error(e);
        let conn = self.db.conn();
        let stuck = output_batches::Entity::find()
            .filter(output_batches::Column::LeavesStatus.eq(leaves_status::INDEXING))
            .filter(output_batches::Column::ValidTo.is_null())
            .all(conn)
            .await
            .map_err(err)?;
        for batch in &stuck {
            let tx = conn.begin().await.map_err(err)?;
            store::claim_writes(&tx).await.map_err(err)?;
            let reopened = output_batches::Entity::update_many()
                .col_expr(
                    output_batches::Column::LeavesStatus,
                    Expr::value(leaves_status::PENDING),
                )
                .filter(output_batches::Column::Vid.eq(batch.vid))
                .filter(output_batches::Column::LeavesStatus.eq(leaves_status::INDEXING))
                .exec(&tx)
                .await
                .map_err(err)?;
            if reopened.rows_affected == 1 {
                outputs::Entity::delete_many()
                    .filter(outputs::Column::Root.eq(batch.root.clone()))
                    .filter(outputs::Column::ValidFrom.eq(batch.valid_from))
                    .exec(&tx)
                    .await
                    .map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
        }
        Ok(stuck.len())
    }
}

/// Moves batch `vid` from status `from` to `to`, recording the attempt, in `c`'s transaction,
/// which it claims first ([`store::claim_writes`]: the change counter moves with the change,
/// and the lock order is every writer's, `indexer_state` before the rows, so that a reorg
/// deleting the batch and this worker never wait for each other); false when the batch is not
/// there in status `from` (a reorg removed it, or another fetch recorded it).
async fn transition<C: ConnectionTrait>(
    c: &C,
    vid: i64,
    from: &str,
    to: &str,
    detail: Option<String>,
    attempts: i64,
    retry_at: i64,
) -> std::result::Result<bool, sea_orm::DbErr> {
    store::claim_writes(c).await?;
    let moved = output_batches::Entity::update_many()
        .col_expr(output_batches::Column::LeavesStatus, Expr::value(to))
        .col_expr(output_batches::Column::LeavesDetail, Expr::value(detail))
        .col_expr(
            output_batches::Column::LeavesAttempts,
            Expr::value(attempts),
        )
        .col_expr(output_batches::Column::LeavesRetryAt, Expr::value(retry_at))
        .filter(output_batches::Column::Vid.eq(vid))
        .filter(output_batches::Column::LeavesStatus.eq(from))
        .exec(c)
        .await?;
    Ok(moved.rows_affected == 1)
}

/// [`transition`] in a transaction of its own.
async fn transition_alone(
    conn: &sea_orm::DatabaseConnection,
    vid: i64,
    from: &str,
    to: &str,
    detail: Option<String>,
    attempts: i64,
    retry_at: i64,
) -> std::result::Result<bool, sea_orm::DbErr> {
    let tx = conn.begin().await?;
    let moved = transition(&tx, vid, from, to, detail, attempts, retry_at).await?;
    tx.commit().await?;
    Ok(moved)
}

fn log(fetched: &Fetched) {
    match fetched {
        Fetched::Indexed { root, outputs } => tracing::info!(root, outputs, "leaf list indexed"),
        Fetched::Invalid { root, reason } => tracing::warn!(root, "leaf list invalid: {reason}"),
        Fetched::Failed {
            root,
            reason,
            retry_at,
        } => tracing::warn!(root, retry_at, "leaf list not fetched: {reason}"),
        Fetched::Gone { root } => {
            tracing::info!(
                root,
                "batch left the index (a reorg) or was recorded already"
            )
        }
    }
}

/// An output's id: its batch's block and log index and its place in the list, zero-padded, so
/// that ids sort in the order the outputs were committed.
pub fn output_id(block: i64, log_index: i64, position: usize) -> String {
    format!("{block:012}-{log_index:06}-{position:010}")
}

/// What a batch's list must be.
struct Expected {
    root: String,
    count: i64,
    chain_id: u64,
    market: Address,
    license: U256,
    model: U256,
    block: i64,
    log_index: i64,
}

impl Expected {
    /// The list's outputs as rows, or why it is not the batch's list.
    fn check(&self, bytes: &[u8]) -> std::result::Result<Vec<outputs::Model>, String> {
        let list: LeafList =
            serde_json::from_slice(bytes).map_err(|e| format!("not a leaf list: {e}"))?;
        if list.format != LIST_FORMAT {
            return Err(format!(
                "format {:?}, expected {LIST_FORMAT:?}",
                list.format
            ));
        }
        if hash(list.root) != self.root {
            return Err(format!(
                "the list names root {}, the batch committed {}",
                hash(list.root),
                self.root
            ));
        }
        if list.leaves.len() as i64 != self.count {
            return Err(format!(
                "the list holds {} leaves, the batch committed {}",
                list.leaves.len(),
                self.count
            ));
        }
        for (i, leaf) in list.leaves.iter().enumerate() {
            self.check_leaf(leaf)
                .map_err(|reason| format!("leaf {i} {reason}"))?;
        }
        let hashes: Vec<H256> = list.leaves.iter().map(OutputLeaf::hash).collect();
        let built = Tree::build(&hashes).ok_or("the list holds no leaves")?;
        if hash(built.root()) != self.root {
            return Err(format!(
                "its leaves build root {}, not the committed {}",
                hash(built.root()),
                self.root
            ));
        }
        Ok(list
            .leaves
            .iter()
            .zip(hashes)
            .enumerate()
            .map(|(i, (leaf, leaf_hash))| outputs::Model {
                vid: 0,
                id: output_id(self.block, self.log_index, i),
                content_hash: hash(leaf.content_sha256),
                root: self.root.clone(),
                position: i as i64,
                leaf_hash: hash(leaf_hash),
                license_id: leaf.license_id.as_u64() as i64,
                model_id: leaf.model_id.as_u64() as i64,
                produced_at: i64::try_from(leaf.produced_at).unwrap_or(i64::MAX),
                salt: hash(leaf.salt),
                block_number: self.block,
                valid_from: self.block,
                valid_to: None,
            })
            .collect())
    }

    fn check_leaf(&self, leaf: &OutputLeaf) -> std::result::Result<(), String> {
        if leaf.chain_id != self.chain_id {
            return Err(format!(
                "names chain {}, not {}",
                leaf.chain_id, self.chain_id
            ));
        }
        if leaf.market != self.market {
            return Err(format!(
                "names market {}, not {}",
                address(leaf.market),
                address(self.market)
            ));
        }
        if leaf.license_id != self.license {
            return Err(format!(
                "names license {}, the batch's is {}",
                leaf.license_id, self.license
            ));
        }
        if leaf.model_id != self.model {
            return Err(format!(
                "names model {}, the batch's is {}",
                leaf.model_id, self.model
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::{Batch, Scope};

    fn expected(batch: &Batch, scope: Scope) -> Expected {
        Expected {
            root: hash(batch.root()),
            count: batch.leaves.len() as i64,
            chain_id: scope.chain_id,
            market: scope.market,
            license: scope.license,
            model: scope.model,
            block: 9,
            log_index: 2,
        }
    }

    fn list(root: H256, leaves: Vec<OutputLeaf>) -> Vec<u8> {
        serde_json::to_vec(&LeafList {
            format: LIST_FORMAT.into(),
            root,
            leaves,
        })
        .unwrap()
    }

    /// The list of a batch is accepted; every way of publishing another list is refused by
    /// name: another root, a leaf left out or added, a leaf changed (its content hash), a leaf
    /// naming another license, and bytes that are not a list.
    #[test]
    fn only_the_committed_leaves_are_accepted() {
        let scope = Scope {
            chain_id: 31_337,
            market: Address::repeat_byte(7),
            license: 4.into(),
            model: 2.into(),
        };
        let outputs: Vec<(H256, u64)> = (0..5u8).map(|i| (H256::repeat_byte(i), 100)).collect();
        let batch = Batch::new(scope, &outputs).unwrap();
        let want = expected(&batch, scope);
        let rows = want
            .check(&list(batch.root(), batch.leaves.clone()))
            .unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[3].content_hash, hash(H256::repeat_byte(3)));
        assert_eq!(rows[3].position, 3);
        assert_eq!(rows[3].valid_from, 9);
        assert_eq!(rows[3].leaf_hash, hash(batch.leaves[3].hash()));

        let refused = |bytes: Vec<u8>| want.check(&bytes).unwrap_err();
        let other = Batch::new(scope, &outputs).unwrap();
        assert!(refused(list(other.root(), batch.leaves.clone())).contains("names root"));
        assert!(refused(list(batch.root(), batch.leaves[..4].to_vec())).contains("holds 4"));
        let mut changed = batch.leaves.clone();
        changed[1].content_sha256 = H256::repeat_byte(0xee);
        assert!(refused(list(batch.root(), changed)).contains("build root"));
        // A provider's own batch cannot list a leaf attributed to another license.
        let mut foreign = batch.leaves.clone();
        foreign[2].license_id = 5.into();
        let reason = refused(list(batch.root(), foreign));
        assert!(reason.contains("leaf 2 names license 5"), "{reason}");
        assert!(refused(b"{\"format\":1}".to_vec()).contains("not a leaf list"));
    }

    #[test]
    fn retries_back_off_to_a_limit() {
        let options = Options {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(100),
            ..Options::default()
        };
        let backoff = |n| crate::indexer::backoff(options.retry_base, options.retry_max, n);
        let waits: Vec<u64> = (1..=6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(backoff(1_000).as_secs(), 100);
    }

    fn pending_batch(root: &str, block: i64) -> output_batches::Model {
        output_batches::Model {
            vid: 0,
            root: root.into(),
            license_id: 1,
            model_id: 1,
            provider: address(Address::zero()),
            count: 1,
            uri: Some("ipfs://x".into()),
            committed_at: 0,
            block_number: block,
            log_index: 0,
            tx_hash: hash(H256::zero()),
            leaves_status: leaves_status::PENDING.into(),
            leaves_detail: None,
            leaves_attempts: 0,
            leaves_retry_at: 0,
            valid_from: block,
            valid_to: None,
        }
    }

    fn output_row(root: &str, block: i64, log_index: i64) -> outputs::Model {
        outputs::Model {
            vid: 0,
            id: output_id(block, log_index, 0),
            content_hash: hash(H256::repeat_byte(1)),
            root: root.into(),
            position: 0,
            leaf_hash: hash(H256::repeat_byte(2)),
            license_id: 1,
            model_id: 1,
            produced_at: 0,
            salt: hash(H256::zero()),
            block_number: block,
            valid_from: block,
            valid_to: None,
        }
    }

    /// Outputs are written only while their batch is still pending: a batch a reorg removed
    /// while its list was fetched (or one already recorded) gets nothing.
    #[tokio::test]
    async fn a_batch_that_left_the_index_meanwhile_gets_no_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let lists = LeafLists::new(
            db.clone(),
            Store::embedded(&dir.path().join("store")).unwrap(),
            &Deployment {
                chain_id: 1,
                registry: Address::zero(),
                market: Address::zero(),
                block: 0,
                deployer: Address::zero(),
                rpc_url: None,
            },
            Options::default(),
        );
        let stored = |root: &'static str| {
            let db = db.clone();
            async move {
                output_batches::Model::insert_all(vec![pending_batch(root, 5)], db.conn())
                    .await
                    .unwrap();
                output_batches::Entity::find()
                    .filter(output_batches::Column::Root.eq(root))
                    .one(db.conn())
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let count = || async { outputs::Entity::find().all(db.conn()).await.unwrap().len() };

        let kept = stored("0xaa").await;
        let leaves = || Outcome::Leaves(vec![output_row("0xaa", 5, 1)]);
        assert!(matches!(
            lists.record(&kept, leaves()).await.unwrap(),
            Fetched::Indexed { outputs: 1, .. }
        ));
        assert_eq!(count().await, 1);
        // Recorded already: a second fetch's result is not written again.
        assert!(matches!(
            lists.record(&kept, leaves()).await.unwrap(),
            Fetched::Gone { .. }
        ));
        assert_eq!(count().await, 1);

        let dropped = stored("0xbb").await;
        let tx = db.conn().begin().await.unwrap();
        store::rollback(&tx, 4).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count().await, 0, "the reorg took the first batch's outputs");
        let late = Outcome::Leaves(vec![output_row("0xbb", 5, 2)]);
        assert_eq!(
            lists.record(&dropped, late).await.unwrap(),
            Fetched::Gone {
                root: "0xbb".into()
            }
        );
        assert_eq!(count().await, 0);

        // A worker stopped while writing left a batch `indexing` with part of its outputs:
        // recovery removes them and makes it pending again; an indexed batch is kept.
        let kept = stored("0xcc").await;
        lists
            .record(&kept, Outcome::Leaves(vec![output_row("0xcc", 5, 3)]))
            .await
            .unwrap();
        let stuck = stored("0xdd").await;
        output_batches::Entity::update_many()
            .col_expr(
                output_batches::Column::LeavesStatus,
                Expr::value(leaves_status::INDEXING),
            )
            .filter(output_batches::Column::Vid.eq(stuck.vid))
            .exec(db.conn())
            .await
            .unwrap();
        outputs::Model::insert_all(vec![output_row("0xdd", 5, 4)], db.conn())
            .await
            .unwrap();
        assert_eq!(count().await, 2);
        assert_eq!(lists.recover().await.unwrap(), 1);
        assert_eq!(count().await, 1, "only the indexed batch's output is left");
        let status = |root: &'static str| {
            let db = db.clone();
            async move {
                output_batches::Entity::find()
                    .filter(output_batches::Column::Root.eq(root))
                    .one(db.conn())
                    .await
                    .unwrap()
                    .unwrap()
                    .leaves_status
            }
        };
        assert_eq!(status("0xdd").await, leaves_status::PENDING);
        assert_eq!(status("0xcc").await, leaves_status::INDEXED);
    }
}
