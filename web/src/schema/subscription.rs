//! Subscriptions: new models, new licenses and reorg notices, pushed as the indexer writes
//! them (the database is polled, so the API server and the indexer may run in different
//! processes). Each is resumable: pass the last id received as `after`.

use std::time::Duration;

use async_graphql::{Context, Result, Subscription, ID};
use futures::stream::{self, Stream, StreamExt};
use registry::db::entity::{licenses, models, reorgs};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::loaders::current;
use super::types::{License, Model, ReorgNotice};
use crate::error::client;

/// How often subscriptions look for new rows.
pub const POLL: Duration = Duration::from_millis(250);
/// Rows sent per poll at most (a subscriber far behind catches up over several polls).
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

/// Polls `fetch(last)` forever, yielding each new row once, in id order.
fn poll<T, F, Fut>(
    db: DatabaseConnection,
    start: i64,
    fetch: F,
    id: fn(&T) -> i64,
) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: Fn(DatabaseConnection, i64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<T>, sea_orm::DbErr>> + Send,
{
    let fetch = std::sync::Arc::new(fetch);
    stream::unfold((start, true), move |(last, first)| {
        let db = db.clone();
        let fetch = fetch.clone();
        async move {
            if !first {
                tokio::time::sleep(POLL).await;
            }
            let rows = match fetch(db, last).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!("subscription poll failed: {e}");
                    Vec::new()
                }
            };
            let next = rows.last().map(id).unwrap_or(last);
            Some((stream::iter(rows), (next, false)))
        }
    })
    .flatten()
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
        let db = ctx.data_unchecked::<super::loaders::Db>().0.clone();
        let start = after_id(after)?;
        Ok(poll(
            db,
            start,
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
        )
        .map(Model))
    }

    /// Licenses bought after license `after` (default: from the first).
    async fn new_licenses(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = License>> {
        let db = ctx.data_unchecked::<super::loaders::Db>().0.clone();
        let start = after_id(after)?;
        Ok(poll(
            db,
            start,
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
        )
        .map(License))
    }

    /// Reorgs handled after notice `after` (default: from the first): rows above the ancestor
    /// were undone and re-applied, so clients should refetch what they hold from above it.
    async fn reorgs(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = ReorgNotice>> {
        let db = ctx.data_unchecked::<super::loaders::Db>().0.clone();
        let start = after_id(after)?;
        Ok(poll(
            db,
            start,
            |db, last| async move {
                reorgs::Entity::find()
                    .filter(reorgs::Column::Id.gt(last))
                    .order_by_asc(reorgs::Column::Id)
                    .limit(BATCH)
                    .all(&db)
                    .await
            },
            |r: &reorgs::Model| r.id,
        )
        .map(|r| ReorgNotice {
            id: ID(r.id.to_string()),
            detected_at: r.detected_at,
            ancestor: r.ancestor,
            depth: r.depth,
            at: r.at,
        }))
    }
}
