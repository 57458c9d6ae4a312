//! Subscriptions: new models, new licenses and reorg notices, pushed as the indexer writes
//! them. The database is polled (the API server and the indexer may run in different
//! processes), but once for all subscribers: one [`Feed`] reads the newest ids every
//! [`POLL`] while anyone listens, and a subscription reads rows only when the feed shows some
//! past its last. Each is resumable: pass the last id received as `after`. Over WebSocket a
//! connection holds at most so many live subscriptions ([`Slots`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::{Context, Result, Subscription, ID};
use futures::stream::{self, Stream, StreamExt};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use store::entity::{licenses, models, reorgs};
use tokio::sync::watch;

use super::loaders::current;
use super::types::{License, Model, ReorgNotice};
use crate::error::client;

/// How often the feed looks for new rows.
pub const POLL: Duration = Duration::from_millis(250);
/// Rows sent per read at most (a subscriber far behind catches up over several reads).
const BATCH: u64 = 200;

fn after_id(after: Option<ID>) -> Result<i64> {
    match after {
        None => Ok(0),
        Some(id) => id
            .parse::<i64>()
            .ok()
            .filter(|i| *i >= 0)
            .ok_or_else(|| client("BAD_USER_INPUT", format!("{:?} is not an id", id.as_str()))),
    }
}

/// The newest ids of what subscriptions follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heads {
    models: i64,
    licenses: i64,
    reorgs: i64,
}

/// The shared change feed: one poller for every subscription of the server, started by the
/// first subscriber (and again should it have stopped), reading only while someone listens.
/// Subscriptions read their new rows a few at a time ([`READERS`]), so a change does not send
/// every subscriber to the database at once.
#[derive(Debug)]
pub struct Feed {
    sender: OnceLock<Arc<watch::Sender<Option<Heads>>>>,
    poller: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    readers: tokio::sync::Semaphore,
}

/// Subscriptions reading rows at once.
const READERS: usize = 4;

impl Default for Feed {
    fn default() -> Self {
        Self {
            sender: OnceLock::new(),
            poller: std::sync::Mutex::new(None),
            readers: tokio::sync::Semaphore::new(READERS),
        }
    }
}

impl Feed {
    fn subscribe(&self, db: &DatabaseConnection) -> watch::Receiver<Option<Heads>> {
        let sender = self
            .sender
            .get_or_init(|| Arc::new(watch::Sender::new(None)));
        let mut poller = self.poller.lock().expect("not poisoned");
        if poller.as_ref().is_none_or(|p| p.is_finished()) {
            *poller = Some(tokio::spawn(poll_heads(db.clone(), Arc::downgrade(sender))));
        }
        sender.subscribe()
    }
}

/// Reads the heads every [`POLL`] while the feed has listeners; ends with the feed.
async fn poll_heads(db: DatabaseConnection, feed: std::sync::Weak<watch::Sender<Option<Heads>>>) {
    loop {
        let Some(sender) = feed.upgrade() else {
            return;
        };
        if sender.receiver_count() > 0 {
            match heads(&db).await {
                Ok(now) => {
                    sender.send_if_modified(|heads| {
                        let changed = *heads != Some(now);
                        *heads = Some(now);
                        changed
                    });
                }
                Err(e) => tracing::warn!("subscription feed: {e}"),
            }
        }
        drop(sender);
        tokio::time::sleep(POLL).await;
    }
}

async fn heads(db: &DatabaseConnection) -> Result<Heads, sea_orm::DbErr> {
    Ok(Heads {
        models: newest::<models::Entity>(db, models::Column::Id, true).await?,
        licenses: newest::<licenses::Entity>(db, licenses::Column::Id, true).await?,
        reorgs: newest::<reorgs::Entity>(db, reorgs::Column::Id, false).await?,
    })
}

/// The largest `id` of a table (of its current rows when `versioned`), 0 when empty.
async fn newest<E: EntityTrait>(
    db: &DatabaseConnection,
    id: E::Column,
    versioned: bool,
) -> Result<i64, sea_orm::DbErr> {
    let mut query = E::find().select_only().column_as(id.max(), "m");
    if versioned {
        query = query.filter(current());
    }
    let newest: Option<Option<i64>> = query.into_tuple().one(db).await?;
    Ok(newest.flatten().unwrap_or(0))
}

/// The live operations (subscriptions, and queries sent over the socket) of one WebSocket
/// connection, bounded: claimed as each starts, in the order the client sent them (see
/// `crate::limits`), given back as it ends.
#[derive(Debug)]
pub struct Slots {
    live: AtomicUsize,
    max: usize,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            live: AtomicUsize::new(0),
            max,
        })
    }
}

/// One live subscription's place; given back when its stream ends.
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Slots {
    /// Operations live now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// A place for one more operation, held until the returned guard drops; `Err` with the
    /// most allowed when none is free.
    pub(crate) fn claim(
        self: &Arc<Self>,
    ) -> std::result::Result<impl Send + Sync + 'static, usize> {
        if self.live.fetch_add(1, Ordering::SeqCst) >= self.max {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return Err(self.max);
        }
        Ok(Slot(self.clone()))
    }
}

/// The largest id of `table` that existed at the oldest ancestor of the reorgs after notice
/// `seen`: rows above it were undone, and the chain's counters give their ids again to the new
/// fork's rows.
async fn rewound(db: &DatabaseConnection, table: &str, seen: i64) -> Result<i64, sea_orm::DbErr> {
    let sql = format!(
        "SELECT MAX(id) FROM {table} WHERE valid_from <= \
         (SELECT MIN(ancestor) FROM reorgs WHERE id > {seen})"
    );
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten())
        .unwrap_or(0))
}

/// Yields each row past `start` once, in id order, reading them when the feed shows some
/// (`head` picks the table's newest id). After a reorg, the rows of the versioned `table`
/// from the reorg's ancestor on are yielded again: the new fork's rows reuse the ids of those
/// undone, so the newest id alone may not move (without `table`, rows are never undone).
fn follow<T, F, Fut>(
    ctx: &Context<'_>,
    start: i64,
    head: fn(&Heads) -> i64,
    table: Option<&'static str>,
    fetch: F,
    id: fn(&T) -> i64,
) -> Result<impl Stream<Item = T>>
where
    T: Send + 'static,
    F: Fn(DatabaseConnection, i64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<T>, sea_orm::DbErr>> + Send,
{
    let db = ctx.data_unchecked::<super::loaders::Db>().0.clone();
    let shared = ctx.data_unchecked::<Arc<Feed>>().clone();
    let feed = shared.subscribe(&db);
    let fetch = Arc::new(fetch);
    let state = (start, None::<i64>, feed);
    Ok(stream::unfold(state, move |(mut last, mut seen, mut feed)| {
        let db = db.clone();
        let fetch = fetch.clone();
        let shared = shared.clone();
        async move {
            let mut pause = POLL;
            loop {
                // Not read yet: wait for the first read.
                let Some(heads) = *feed.borrow_and_update() else {
                    feed.changed().await.ok()?;
                    continue;
                };
                let newest = head(&heads);
                // Ids are the chain's counters: after a reorg the new fork's rows reuse ids
                // this subscription has passed. Go back to what existed at the ancestor,
                // whether or not the newest id moved (a reorg and the new fork's rows can
                // land between two reads of the feed).
                match (seen, table) {
                    (Some(before), Some(table)) if heads.reorgs > before => {
                        match rewound(&db, table, before).await {
                            Ok(boundary) => last = last.min(boundary),
                            Err(e) => {
                                tracing::warn!(retry_in = ?pause, "subscription read failed: {e}");
                                tokio::time::sleep(pause).await;
                                pause = (pause * 2).min(Duration::from_secs(10));
                                continue;
                            }
                        }
                    }
                    _ => {}
                }
                seen = Some(heads.reorgs);
                last = last.min(newest);
                if newest <= last {
                    feed.changed().await.ok()?;
                    continue;
                }
                let read = {
                    let _turn = shared.readers.acquire().await.ok()?;
                    fetch(db.clone(), last).await
                };
                match read {
                    Ok(rows) if !rows.is_empty() => {
                        let next = rows.last().map(id).unwrap_or(last);
                        return Some((stream::iter(rows), (next, seen, feed)));
                    }
                    // The newest rows left (a reorg): wait for the next change.
                    Ok(_) => feed.changed().await.ok()?,
                    Err(e) => {
                        tracing::warn!(retry_in = ?pause, "subscription read failed: {e}");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
    })
    .flatten())
}

#[derive(Debug)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Models minted after model `after` (default: from the first).
    async fn new_models(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = Model>> {
        let start = after_id(after)?;
        Ok(follow(
            ctx,
            start,
            |h| h.models,
            Some("models"),
            |db, last| async move {
                models::Entity::find()
                    .filter(current())
                    .filter(models::Column::Id.gt(last))
                    .order_by_asc(models::Column::Id)
                    .limit(BATCH)
                    .all(&db)
                    .await
            },
            |m: &models::Model| m.id,
        )?
        .map(Model))
    }

    /// Licenses bought after license `after` (default: from the first).
    async fn new_licenses(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = License>> {
        let start = after_id(after)?;
        Ok(follow(
            ctx,
            start,
            |h| h.licenses,
            Some("licenses"),
            |db, last| async move {
                licenses::Entity::find()
                    .filter(current())
                    .filter(licenses::Column::Id.gt(last))
                    .order_by_asc(licenses::Column::Id)
                    .limit(BATCH)
                    .all(&db)
                    .await
            },
            |l: &licenses::Model| l.id,
        )?
        .map(License))
    }

    /// Reorgs handled after notice `after` (default: from the first): rows above the ancestor
    /// were undone and re-applied, so clients should refetch what they hold from above it.
    /// `newModels` and `newLicenses` send the new fork's rows from the ancestor on again
    /// (their ids are the chain's counters, given again on the new fork).
    async fn reorgs(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = ReorgNotice>> {
        let start = after_id(after)?;
        Ok(follow(
            ctx,
            start,
            |h| h.reorgs,
            None,
            |db, last| async move {
                reorgs::Entity::find()
                    .filter(reorgs::Column::Id.gt(last))
                    .order_by_asc(reorgs::Column::Id)
                    .limit(BATCH)
                    .all(&db)
                    .await
            },
            |r: &reorgs::Model| r.id,
        )?
        .map(|r| ReorgNotice {
            id: ID(r.id.to_string()),
            detected_at: r.detected_at,
            ancestor: r.ancestor,
            depth: r.depth,
            at: r.at,
        }))
    }
}
