//! Minted models' fingerprints, fetched off the chain path: the indexer records a mint with
//! its fingerprint `pending` and moves on; this worker fetches the metadata and fingerprint
//! the model commits to from the content store, checks the fingerprint against the on-chain
//! commitment, and records it with the model's similarities to every model whose fingerprint
//! is known, and the flag of each model whose similarity to an earlier model its declared
//! lineage does not explain ([`crate::provenance::explained`]).
//!
//! - **Never holds up the chain.** A missing CID, a slow store or a dead node costs the chain
//!   path nothing (a minter cannot stall the index with unreachable content): fetches run
//!   here, several at a time, each with a timeout.
//! - **Retried.** A fingerprint the store cannot give now stays `pending`, with the attempts,
//!   the last failure (`detail`) and when it is tried next (a backoff that doubles per
//!   attempt). One that is not what the chain committed to, or does not decode, is `invalid`
//!   and not fetched again (it is content-addressed).
//! - **The same in any order of arrival.** A pair's similarity is stored when the second of its
//!   fingerprints arrives, at the block of the later mint; a model's name and flag are written
//!   into every version of its row, and its flag is recomputed from its stored similarities to
//!   earlier models whenever one of them arrives. So an index whose fingerprints came late, out
//!   of order or across restarts equals a replay with all content reachable.
//! - **Reorg-safe.** A fingerprint is recorded in one transaction that first takes the write
//!   turn (the indexer's steps and this worker take turns) and moves the row out of `pending`:
//!   a row a reorg removed meanwhile is not written. What it adds carries the block of a mint
//!   at or above the model's, so the reorg that drops the mint drops it too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fingerprint::{Comparison, Fingerprint, Verdict};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use super::apply::SIMILARITY_FLOOR;
use super::lock::WriterLock;
use super::now_unix as now;
use crate::provenance::{self, explained};
use crate::{Error, Result};
use content::Store;
use store::entity::{fingerprints, lineage, models, similarities};
use store::status::fingerprint as status;
use store::{Db, Versioned};

/// How the worker behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Longest time spent fetching one model's metadata and fingerprint.
    pub timeout: Duration,
    /// Wait before the first retry of a fingerprint that could not be fetched; doubles per
    /// attempt.
    pub retry_base: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
    /// Wait between looks for due fingerprints when none is due.
    pub poll_interval: Duration,
    /// Fetches at once.
    pub parallel: usize,
    /// Bytes of decoded fingerprints kept for later comparisons (counted by the size of their
    /// encodings; least recently used out first). Others are read and decoded again when
    /// needed, so the worker's memory does not grow with the number of models minted.
    pub cache_bytes: usize,
    /// Known fingerprints decoded and compared with a new one at a time (its comparisons are
    /// made in such chunks, so at most this many are held beside the cache).
    pub compare_chunk: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3_600),
            poll_interval: Duration::from_secs(1),
            parallel: 8,
            cache_bytes: 256 << 20,
            compare_chunk: 32,
        }
    }
}

/// What became of one model's fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// Checked and recorded; `flagged`: the earlier model it reads as derived from without
    /// declaring it, if any.
    Recorded { model: i64, flagged: Option<i64> },
    /// Not the committed fingerprint (or not readable as one); not fetched again.
    Invalid { model: i64, reason: String },
    /// Not fetched now; tried again at `retry_at` (unix seconds).
    Failed {
        model: i64,
        reason: String,
        retry_at: i64,
    },
    /// The mint left the index (a reorg) while it was fetched; nothing was written.
    Gone { model: i64 },
}

/// What a fetch gave.
enum Outcome {
    Found {
        name: Option<String>,
        fingerprint: Arc<Fingerprint>,
        encoding: Vec<u8>,
    },
    Invalid {
        name: Option<String>,
        reason: String,
    },
    Failed {
        name: Option<String>,
        reason: String,
    },
}

/// The worker of one database.
#[derive(Debug)]
pub struct Fingerprints {
    db: Db,
    store: Store,
    options: Options,
    /// The indexer's writer lock, checked in each write (a worker writing beside a second
    /// indexer would race it).
    lock: Option<Arc<WriterLock>>,
    /// Decoded fingerprints by row (a row's encoding never changes; a reorg that mints the
    /// same id again writes a new row), bounded by [`Options::cache_bytes`].
    decoded: Mutex<Decoded>,
}

/// The decoded fingerprints kept, with the bytes of their encodings.
#[derive(Debug)]
struct Decoded {
    entries: lru::LruCache<i64, (Arc<Fingerprint>, usize)>,
    bytes: usize,
    capacity: usize,
}

impl Decoded {
    fn new(capacity: usize) -> Self {
        Self {
            entries: lru::LruCache::unbounded(),
            bytes: 0,
            capacity,
        }
    }

    fn get(&mut self, vid: i64) -> Option<Arc<Fingerprint>> {
        self.entries.get(&vid).map(|(fp, _)| fp.clone())
    }

    /// Keeps `fp` (its encoding `size` bytes long), dropping the least recently used beyond
    /// the capacity; one larger than the capacity is not kept.
    fn put(&mut self, vid: i64, fp: Arc<Fingerprint>, size: usize) {
        if size > self.capacity {
            return;
        }
        if let Some((_, old)) = self.entries.put(vid, (fp, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.bytes > self.capacity {
            match self.entries.pop_lru() {
                Some((_, (_, size))) => self.bytes -= size,
                None => break,
            }
        }
    }
}

/// A fetched fingerprint's comparisons with the known ones, made before its transaction.
struct Compared {
    /// (other model, its mint block, the comparison of the later model with the earlier).
    with: Vec<(i64, i64, Comparison)>,
}

impl Fingerprints {
    pub fn new(db: Db, store: Store, options: Options) -> Self {
        Self {
            decoded: Mutex::new(Decoded::new(options.cache_bytes)),
            db,
            store,
            options,
            lock: None,
        }
    }

    /// Checks `lock` in every write.
    pub(crate) fn with_lock(mut self, lock: Arc<WriterLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Pending fingerprints due now, with their model rows, oldest retry first.
    async fn due(
        &self,
        limit: Option<u64>,
        at: i64,
    ) -> Result<Vec<(fingerprints::Model, models::Model)>> {
        let err = |e| self.db.error(e);
        let rows = fingerprints::Entity::find()
            .filter(fingerprints::Column::Status.eq(status::PENDING))
            .filter(fingerprints::Column::RetryAt.lte(at))
            .filter(fingerprints::Column::ValidTo.is_null())
            .order_by_asc(fingerprints::Column::RetryAt)
            .order_by_asc(fingerprints::Column::ModelId)
            .limit(limit)
            .all(self.db.conn())
            .await
            .map_err(err)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.model_id).collect();
        let mut minted: HashMap<i64, models::Model> = models::Entity::find()
            .filter(models::Column::Id.is_in(ids))
            .filter(models::Column::ValidTo.is_null())
            .all(self.db.conn())
            .await
            .map_err(err)?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let model = minted.remove(&row.model_id)?;
                Some((row, model))
            })
            .collect())
    }

    /// Tries every fingerprint due now, once each: a few fetched at once, then recorded one
    /// at a time in model order (each sees the ones before it). A row whose recording fails
    /// (the database refused it) is put back with a backoff and the others go on.
    pub async fn drain(&self) -> Result<Vec<Fetched>> {
        let mut done = Vec::new();
        // Rows put back during this drain are due after its start: each is tried once.
        let started = now();
        loop {
            let due = self
                .due(Some(self.options.parallel.max(1) as u64), started)
                .await?;
            if due.is_empty() {
                return Ok(done);
            }
            let fetched =
                futures::future::join_all(due.into_iter().map(|(row, model)| async move {
                    let outcome = self.fetch(&model).await;
                    (row, model, outcome)
                }))
                .await;
            for (row, model, outcome) in fetched {
                match self.record(&row, &model, outcome).await {
                    Ok(fetched) => done.push(fetched),
                    Err(e @ Error::Store(store::Error::Database { .. })) => {
                        tracing::warn!(
                            model = row.model_id,
                            "recording the fingerprint failed: {e}"
                        );
                        done.push(self.postpone(&row, e.to_string()).await?);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Fetches due fingerprints until `shutdown` completes. A failure (the database busy or
    /// down) is logged and retried after a pause: the worker never stops the indexer beside
    /// it.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut pause = self.options.poll_interval;
        loop {
            let outcome = tokio::select! {
                _ = &mut shutdown => return,
                outcome = self.drain() => outcome,
            };
            let idle = match outcome {
                Ok(done) => {
                    done.iter().for_each(log);
                    pause = self.options.poll_interval;
                    done.is_empty()
                }
                Err(e @ Error::WriterLockLost { .. }) => {
                    tracing::error!("fingerprints: {e}");
                    return;
                }
                Err(e) => {
                    tracing::warn!(retry_in = ?pause, "fingerprints: {e}");
                    pause = (pause * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// The metadata and fingerprint a model commits to, from the content store.
    async fn fetch(&self, model: &models::Model) -> Outcome {
        let commitment = match parse_commitment(&model.fingerprint) {
            Some(c) => c,
            None => {
                return Outcome::Invalid {
                    name: None,
                    reason: format!(
                        "the fingerprint commitment {:?} is not 32 bytes of hex",
                        model.fingerprint
                    ),
                }
            }
        };
        let name = Mutex::new(None);
        let lookup = async {
            let metadata = provenance::metadata_at(&self.store, &model.metadata_uri).await?;
            *name.lock().expect("not poisoned") = Some(metadata.name.clone());
            provenance::fingerprint_bytes(&self.store, &metadata, &commitment).await
        };
        let found = tokio::time::timeout(self.options.timeout, lookup).await;
        let name = name.into_inner().expect("not poisoned");
        match found {
            Err(_) => Outcome::Failed {
                name,
                reason: format!(
                    "the content store did not give the metadata and fingerprint within {} s",
                    self.options.timeout.as_secs()
                ),
            },
            Ok(Ok(encoding)) => {
                let bytes = encoding.clone();
                // Decoding a large fingerprint takes a while: off the async threads.
                match tokio::task::spawn_blocking(move || Fingerprint::decode(&bytes)).await {
                    Ok(Ok(fp)) => Outcome::Found {
                        name,
                        fingerprint: Arc::new(fp),
                        encoding,
                    },
                    Ok(Err(e)) => Outcome::Invalid {
                        name,
                        reason: e.to_string(),
                    },
                    Err(e) => Outcome::Failed {
                        name,
                        reason: format!("decoding stopped: {e}"),
                    },
                }
            }
            // What the CIDs name is not the committed fingerprint, or not a document: so
            // it stays.
            Ok(Err(
                e @ (Error::Metadata { .. }
                | Error::Content(
                    content::Error::InvalidCid { .. }
                    | content::Error::MalformedNode { .. }
                    | content::Error::UnsupportedHash { .. }
                    | content::Error::ContentTooLarge { .. },
                )),
            )) => Outcome::Invalid {
                name,
                reason: e.to_string(),
            },
            Ok(Err(e)) => Outcome::Failed {
                name,
                reason: e.to_string(),
            },
        }
    }

    /// Records what a fetch gave, in one transaction.
    async fn record(
        &self,
        row: &fingerprints::Model,
        model: &models::Model,
        outcome: Outcome,
    ) -> Result<Fetched> {
        let err = |e| self.db.error(e);
        let id = row.model_id;
        // Compared before the transaction, which then only writes.
        let compared = match &outcome {
            Outcome::Found { fingerprint, .. } => {
                Some(self.compare(row, fingerprint.clone()).await?)
            }
            _ => None,
        };
        let tx = self.db.conn().begin().await.map_err(err)?;
        store::claim_writes(&tx).await.map_err(err)?;
        if let Some(lock) = &self.lock {
            lock.check(&tx, self.db.url()).await?;
        }
        let attempts = row.attempts + 1;
        let (name, fetched) = match outcome {
            Outcome::Found {
                name,
                fingerprint,
                encoding,
            } => {
                let encoded = encoding.len();
                let next = fingerprints::Model {
                    status: status::OK.into(),
                    detail: None,
                    tensors: fingerprint.tensors.len() as i64,
                    parameters: fingerprint.parameters() as i64,
                    encoding: Some(encoding),
                    attempts: 0,
                    retry_at: 0,
                    ..row.clone()
                };
                if !transition(&tx, row, next).await.map_err(err)? {
                    return Ok(Fetched::Gone { model: id });
                }
                let compared = compared.expect("compared when found");
                let flagged = record_comparisons(&tx, row, model, compared)
                    .await
                    .map_err(err)?;
                self.decoded
                    .lock()
                    .expect("not poisoned")
                    .put(row.vid, fingerprint, encoded);
                (name, Fetched::Recorded { model: id, flagged })
            }
            Outcome::Invalid { name, reason } => {
                let next = fingerprints::Model {
                    status: status::INVALID.into(),
                    detail: Some(reason.replace('\0', "")),
                    attempts: 0,
                    retry_at: 0,
                    ..row.clone()
                };
                if !transition(&tx, row, next).await.map_err(err)? {
                    return Ok(Fetched::Gone { model: id });
                }
                (name, Fetched::Invalid { model: id, reason })
            }
            Outcome::Failed { name, reason } => {
                let retry_at = self.retry_at(attempts);
                let next = fingerprints::Model {
                    detail: Some(reason.replace('\0', "")),
                    attempts,
                    retry_at,
                    ..row.clone()
                };
                if !transition(&tx, row, next).await.map_err(err)? {
                    return Ok(Fetched::Gone { model: id });
                }
                (
                    name,
                    Fetched::Failed {
                        model: id,
                        reason,
                        retry_at,
                    },
                )
            }
        };
        // PostgreSQL text holds no NUL; a name is a label, not evidence.
        let name = name.map(|n| n.replace('\0', ""));
        if name.is_some() && name != model.name {
            models::Entity::update_many()
                .col_expr(models::Column::Name, Expr::value(name))
                .filter(models::Column::Id.eq(id))
                .exec(&tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(fetched)
    }

    /// Puts a row whose recording failed back in the queue after the first backoff (its
    /// fetch worked: no attempt is counted).
    async fn postpone(&self, row: &fingerprints::Model, reason: String) -> Result<Fetched> {
        let err = |e| self.db.error(e);
        let retry_at = self.retry_at(1);
        let next = fingerprints::Model {
            detail: Some(format!("not recorded: {}", reason.replace('\0', ""))),
            retry_at,
            ..row.clone()
        };
        let tx = self.db.conn().begin().await.map_err(err)?;
        store::claim_writes(&tx).await.map_err(err)?;
        if let Some(lock) = &self.lock {
            lock.check(&tx, self.db.url()).await?;
        }
        let moved = transition(&tx, row, next).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(match moved {
            true => Fetched::Failed {
                model: row.model_id,
                reason,
                retry_at,
            },
            false => Fetched::Gone {
                model: row.model_id,
            },
        })
    }

    /// Compares fingerprint `fp` of `row`'s model with every recorded one, off the async
    /// threads. A pair is always compared later model first (comparisons are not symmetric),
    /// so the result does not depend on which of the two arrived first.
    async fn compare(&self, row: &fingerprints::Model, fp: Arc<Fingerprint>) -> Result<Compared> {
        let err = |e| self.db.error(e);
        let id = row.model_id;
        let known: Vec<(i64, i64, i64)> = fingerprints::Entity::find()
            .select_only()
            .column(fingerprints::Column::Vid)
            .column(fingerprints::Column::ModelId)
            .column(fingerprints::Column::ValidFrom)
            .filter(fingerprints::Column::Status.eq(status::OK))
            .filter(fingerprints::Column::ValidTo.is_null())
            .filter(fingerprints::Column::ModelId.ne(id))
            .order_by_asc(fingerprints::Column::ModelId)
            .into_tuple()
            .all(self.db.conn())
            .await
            .map_err(err)?;
        // In chunks: at most a chunk of decoded fingerprints is held beside the cache.
        let mut with = Vec::with_capacity(known.len());
        for chunk in known.chunks(self.options.compare_chunk.max(1)) {
            let mut others = Vec::with_capacity(chunk.len());
            for &(vid, model, from) in chunk {
                if let Some(theirs) = self.decoded(vid).await? {
                    others.push((model, from, theirs));
                }
            }
            let fp = fp.clone();
            let compared = tokio::task::spawn_blocking(move || {
                others
                    .into_iter()
                    .map(|(other, from, theirs)| {
                        let cmp = if other < id {
                            fingerprint::compare(&fp, &theirs)
                        } else {
                            fingerprint::compare(&theirs, &fp)
                        };
                        (other, from, cmp)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| {
                Error::database(
                    self.db.url(),
                    format!("comparing fingerprints stopped: {e}"),
                )
            })?;
            with.extend(compared);
        }
        Ok(Compared { with })
    }

    fn retry_at(&self, attempts: i64) -> i64 {
        super::retry_at(self.options.retry_base, self.options.retry_max, attempts)
    }

    /// The decoded fingerprint of row `vid`: kept, or read and decoded (and kept); `None`
    /// when the row holds no decodable encoding.
    async fn decoded(&self, vid: i64) -> Result<Option<Arc<Fingerprint>>> {
        if let Some(fp) = self.decoded.lock().expect("not poisoned").get(vid) {
            return Ok(Some(fp));
        }
        let encoding: Option<Option<Vec<u8>>> = fingerprints::Entity::find_by_id(vid)
            .select_only()
            .column(fingerprints::Column::Encoding)
            .into_tuple()
            .one(self.db.conn())
            .await
            .map_err(|e| self.db.error(e))?;
        let Some(encoding) = encoding.flatten() else {
            return Ok(None);
        };
        let size = encoding.len();
        let decoded = tokio::task::spawn_blocking(move || Fingerprint::decode(&encoding))
            .await
            .ok()
            .and_then(|d| d.ok());
        Ok(decoded.map(|theirs| {
            let theirs = Arc::new(theirs);
            self.decoded
                .lock()
                .expect("not poisoned")
                .put(vid, theirs.clone(), size);
            theirs
        }))
    }
}

/// Stores the similarities of `row`'s model to the models it was compared with (those still
/// recorded as compared: a reorg may have replaced one meanwhile), and recomputes the flags
/// this can change: its own, and those of later models related to it. Returns its own flag.
async fn record_comparisons<C: ConnectionTrait>(
    c: &C,
    row: &fingerprints::Model,
    model: &models::Model,
    compared: Compared,
) -> std::result::Result<Option<i64>, sea_orm::DbErr> {
    let id = row.model_id;
    let present: std::collections::HashSet<(i64, i64)> = fingerprints::Entity::find()
        .select_only()
        .column(fingerprints::Column::ModelId)
        .column(fingerprints::Column::ValidFrom)
        .filter(fingerprints::Column::Status.eq(status::OK))
        .filter(fingerprints::Column::ValidTo.is_null())
        .into_tuple()
        .all(c)
        .await?
        .into_iter()
        .collect();
    let mut rows = Vec::new();
    let mut later = Vec::new();
    for (other, from, cmp) in compared.with {
        if !present.contains(&(other, from)) {
            continue;
        }
        let related = cmp.verdict != Verdict::Unrelated;
        if !related && cmp.similarity < SIMILARITY_FLOOR {
            continue;
        }
        // The pair appears with the later of the two mints.
        let block = row.valid_from.max(from);
        for (a, b) in [(id, other), (other, id)] {
            rows.push(similarities::Model {
                vid: 0,
                model_id: a,
                other_id: b,
                similarity: cmp.similarity,
                verdict: cmp.verdict.as_str().into(),
                log10_false_positive: cmp.log10_false_positive_probability,
                valid_from: block,
                valid_to: None,
            });
        }
        if related && other > id {
            later.push(other);
        }
    }
    similarities::Model::insert_all(rows, c).await?;
    let parents = parents(c).await?;
    let own = flag(c, &parents, id).await?;
    write_flag(c, id, own, model).await?;
    for other in later {
        let theirs = flag(c, &parents, other).await?;
        let current = models::Entity::find()
            .filter(models::Column::Id.eq(other))
            .filter(models::Column::ValidTo.is_null())
            .one(c)
            .await?;
        if let Some(current) = current {
            write_flag(c, other, theirs, &current).await?;
        }
    }
    Ok(own.map(|(m, _)| m))
}

/// The 32 bytes of a `0x` hex commitment.
fn parse_commitment(text: &str) -> Option<[u8; 32]> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .ok()?
        .try_into()
        .ok()
}

/// Every indexed model's declared parents.
async fn parents<C: ConnectionTrait>(
    c: &C,
) -> std::result::Result<HashMap<u64, Vec<u64>>, sea_orm::DbErr> {
    let mut parents: HashMap<u64, Vec<u64>> = HashMap::new();
    let edges = lineage::Entity::find()
        .filter(lineage::Column::ValidTo.is_null())
        .order_by_asc(lineage::Column::ChildId)
        .order_by_asc(lineage::Column::Position)
        .all(c)
        .await?;
    for edge in edges {
        parents
            .entry(edge.child_id as u64)
            .or_default()
            .push(edge.parent_id as u64);
    }
    Ok(parents)
}

/// Model `id`'s flag, from its stored similarities: the most similar earlier model (the
/// lowest id among equals) that it reads as derived from and its declared lineage does not
/// explain.
async fn flag<C: ConnectionTrait>(
    c: &C,
    parents: &HashMap<u64, Vec<u64>>,
    id: i64,
) -> std::result::Result<Option<(i64, f64)>, sea_orm::DbErr> {
    let candidates = similarities::Entity::find()
        .filter(similarities::Column::ModelId.eq(id))
        .filter(similarities::Column::OtherId.lt(id))
        .filter(similarities::Column::Verdict.ne(Verdict::Unrelated.as_str()))
        .filter(similarities::Column::ValidTo.is_null())
        .order_by_asc(similarities::Column::OtherId)
        .all(c)
        .await?;
    let declared = parents.get(&(id as u64)).cloned().unwrap_or_default();
    let mut flagged: Option<(i64, f64)> = None;
    for s in candidates {
        if !explained(parents, &declared, s.other_id as u64)
            && flagged.is_none_or(|(_, best)| s.similarity > best)
        {
            flagged = Some((s.other_id, s.similarity));
        }
    }
    Ok(flagged)
}

/// Writes a flag into every version of model `id`'s row (it is a property of the mint, like
/// its name), unless the current one holds it already.
async fn write_flag<C: ConnectionTrait>(
    c: &C,
    id: i64,
    flag: Option<(i64, f64)>,
    current: &models::Model,
) -> std::result::Result<(), sea_orm::DbErr> {
    let (model, similarity) = (flag.map(|(m, _)| m), flag.map(|(_, s)| s));
    if current.flagged_model == model && current.flagged_similarity == similarity {
        return Ok(());
    }
    models::Entity::update_many()
        .col_expr(models::Column::FlaggedModel, Expr::value(model))
        .col_expr(models::Column::FlaggedSimilarity, Expr::value(similarity))
        .filter(models::Column::Id.eq(id))
        .exec(c)
        .await?;
    Ok(())
}

/// Writes `next` over `row` only while it is still there and `pending`; false when a reorg
/// removed it (or another worker recorded it).
async fn transition<C: ConnectionTrait>(
    c: &C,
    row: &fingerprints::Model,
    next: fingerprints::Model,
) -> std::result::Result<bool, sea_orm::DbErr> {
    use sea_orm::ActiveModelTrait as _;
    let moved = fingerprints::Entity::update_many()
        .set(fingerprints::ActiveModel::from(next).reset_all())
        .filter(fingerprints::Column::Vid.eq(row.vid()))
        .filter(fingerprints::Column::Status.eq(status::PENDING))
        .exec(c)
        .await?;
    Ok(moved.rows_affected == 1)
}

pub(crate) fn log(fetched: &Fetched) {
    match fetched {
        Fetched::Recorded { model, flagged } => {
            tracing::info!(model, flagged, "fingerprint recorded")
        }
        Fetched::Invalid { model, reason } => {
            tracing::warn!(model, "fingerprint invalid: {reason}")
        }
        Fetched::Failed {
            model,
            reason,
            retry_at,
        } => tracing::warn!(model, retry_at, "fingerprint not fetched: {reason}"),
        Fetched::Gone { model } => {
            tracing::info!(
                model,
                "the mint left the index (a reorg) while it was fetched"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Arc<Fingerprint> {
        Arc::new(Fingerprint {
            version: 2,
            content_root: [0; 32],
            anchors: None,
            tensors: Vec::new(),
        })
    }

    #[test]
    fn the_decoded_cache_is_bounded_by_the_encodings_bytes() {
        let mut cache = Decoded::new(1_000);
        for vid in 0..5 {
            cache.put(vid, fp(), 300);
        }
        // 5 × 300 bytes over 1,000: the three most recent stay.
        assert_eq!((cache.entries.len(), cache.bytes), (3, 900));
        assert!(cache.get(0).is_none() && cache.get(1).is_none());
        assert!(cache.get(4).is_some());
        // Kept again under the same row: counted once.
        cache.put(4, fp(), 100);
        assert_eq!(cache.bytes, 700);
        // Larger than the whole cache: not kept, nothing dropped for it.
        cache.put(9, fp(), 1_001);
        assert!(cache.get(9).is_none());
        assert_eq!(cache.entries.len(), 3);
        // No room at all: nothing kept.
        let mut none = Decoded::new(0);
        none.put(1, fp(), 1);
        assert!(none.get(1).is_none());
    }
}
