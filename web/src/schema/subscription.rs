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
use registry::db::entity::{licenses, models, reorgs};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
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
/// first subscriber, reading only while someone listens.
#[derive(Debug, Default)]
pub struct Feed(OnceLock<Arc<watch::Sender<Heads>>>);

impl Feed {
    fn subscribe(&self, db: &DatabaseConnection) -> watch::Receiver<Heads> {
        let sender = self.0.get_or_init(|| {
            let sender = Arc::new(watch::Sender::new(Heads::default()));
            tokio::spawn(poll_heads(db.clone(), Arc::downgrade(&sender)));
            sender
        });
        sender.subscribe()
    }
}

/// Reads the heads every [`POLL`] while the feed has listeners; ends with the feed.
async fn poll_heads(db: DatabaseConnection, feed: std::sync::Weak<watch::Sender<Heads>>) {
    loop {
        let Some(sender) = feed.upgrade() else {
            return;
        };
        if sender.receiver_count() > 0 {
            match heads(&db).await {
                Ok(now) => {
                    sender.send_if_modified(|heads| {
                        let changed = *heads != now;
                        *heads = now;
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
    let models: Option<Option<i64>> = models::Entity::find()
        .select_only()
        .column_as(models::Column::Id.max(), "m")
        .filter(current())
        .into_tuple()
        .one(db)
        .await?;
    let licenses: Option<Option<i64>> = licenses::Entity::find()
        .select_only()
        .column_as(licenses::Column::Id.max(), "m")
        .filter(current())
        .into_tuple()
        .one(db)
        .await?;
    let reorgs: Option<Option<i64>> = reorgs::Entity::find()
        .select_only()
        .column_as(reorgs::Column::Id.max(), "m")
        .into_tuple()
        .one(db)
        .await?;
    Ok(Heads {
        models: models.flatten().unwrap_or(0),
        licenses: licenses.flatten().unwrap_or(0),
        reorgs: reorgs.flatten().unwrap_or(0),
    })
}

/// The live subscriptions of one WebSocket connection, bounded.
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

/// A place for one more subscription on this connection (none is counted outside one).
fn claim(ctx: &Context<'_>) -> Result<Option<Slot>> {
    let Some(slots) = ctx.data_opt::<Arc<Slots>>() else {
        return Ok(None);
    };
    if slots.live.fetch_add(1, Ordering::SeqCst) >= slots.max {
        slots.live.fetch_sub(1, Ordering::SeqCst);
        return Err(client(
            "TOO_MANY_SUBSCRIPTIONS",
            format!(
                "this connection holds {} live subscriptions, its most; complete one first",
                slots.max
            ),
        ));
    }
    Ok(Some(Slot(slots.clone())))
}

/// Yields each row past `start` once, in id order, reading them when the feed shows some
/// (`head` picks the table's newest id); holds `slot` while it lives.
fn follow<T, F, Fut>(
    ctx: &Context<'_>,
    start: i64,
    head: fn(&Heads) -> i64,
    fetch: F,
    id: fn(&T) -> i64,
) -> Result<impl Stream<Item = T>>
where
    T: Send + 'static,
    F: Fn(DatabaseConnection, i64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<T>, sea_orm::DbErr>> + Send,
{
    let slot = claim(ctx)?;
    let db = ctx.data_unchecked::<super::loaders::Db>().0.clone();
    let feed = ctx.data_unchecked::<Arc<Feed>>().subscribe(&db);
    let fetch = Arc::new(fetch);
    Ok(
        stream::unfold((start, feed, slot), move |(last, mut feed, slot)| {
            let db = db.clone();
            let fetch = fetch.clone();
            async move {
                loop {
                    if head(&feed.borrow_and_update()) <= last {
                        feed.changed().await.ok()?;
                        continue;
                    }
                    match fetch(db.clone(), last).await {
                        Ok(rows) if !rows.is_empty() => {
                            let next = rows.last().map(id).unwrap_or(last);
                            return Some((stream::iter(rows), (next, feed, slot)));
                        }
                        // The newest rows left (a reorg): wait for the next change.
                        Ok(_) => feed.changed().await.ok()?,
                        Err(e) => {
                            tracing::warn!("subscription read failed: {e}");
                            tokio::time::sleep(POLL).await;
                        }
                    }
                }
            }
        })
        .flatten(),
    )
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
