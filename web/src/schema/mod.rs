//! The GraphQL schema: [`QueryRoot`], [`SubscriptionRoot`], their types, DataLoaders and
//! pagination.

mod loaders;
pub mod outputs;
pub mod page;
pub mod query;
pub mod subscription;
pub mod types;

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptyMutation, Schema};
use sea_orm::DatabaseConnection;

pub use page::{DEFAULT_PAGE, MAX_PAGE};
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

use crate::limits::{Limits, LimitsExtension};

/// The registry's GraphQL schema.
pub type RegistrySchema = Schema<QueryRoot, EmptyMutation, SubscriptionRoot>;

/// Turns of the scheduler a batch waits before it starts.
const TURNS: usize = 3;

/// A loader that batches a level's loads without the default wait for more (1 ms, on a coarse
/// timer thread, added to every level of a query). Its batch starts a few turns of the
/// scheduler later instead: a level's loads are asked while the request's task runs, and a
/// batch started at once would take only those asked before the task first yields (a list
/// resolving more than 32 items yields midway; 50 licenses' models then cost several
/// queries).
fn loader<T: Send + Sync + 'static>(l: T) -> DataLoader<T> {
    DataLoader::new(l, |batch: futures::future::BoxFuture<'static, ()>| {
        tokio::spawn(async move {
            for _ in 0..TURNS {
                tokio::task::yield_now().await;
            }
            batch.await
        })
    })
    .delay(std::time::Duration::ZERO)
}

/// Builds the schema over `db` with `limits`. Its loaders batch a whole level of a query when
/// requests run on current-thread runtimes, as actix-web's workers are (on a multi-thread
/// runtime a batch may start on another thread before the level has asked for all its keys).
pub fn build_schema(db: DatabaseConnection, limits: Limits) -> RegistrySchema {
    let loaders = loaders::Db(db);

    Schema::build(QueryRoot, EmptyMutation, SubscriptionRoot)
        .data(loader(loaders::Models(loaders.clone())))
        .data(loader(loaders::Offerings(loaders.clone())))
        .data(loader(loaders::Parents(loaders.clone())))
        .data(loader(loaders::Children(loaders.clone())))
        .data(loader(loaders::EdgeOfLicense(loaders.clone())))
        .data(loader(loaders::OfferingsOfModel(loaders.clone())))
        .data(loader(loaders::Fingerprints(loaders.clone())))
        .data(loader(loaders::Similar(loaders.clone())))
        .data(loader(loaders::State(loaders.clone())))
        .data(loader(loaders::Licenses(loaders.clone())))
        .data(loader(loaders::Batches(loaders.clone())))
        .data(loaders)
        .data(std::sync::Arc::new(subscription::Feed::default()))
        .limit_depth(limits.depth)
        .limit_complexity(limits.complexity)
        .extension(LimitsExtension(limits))
        .finish()
}

/// The schema's SDL, as committed in `web/schema.graphql`.
pub fn sdl() -> String {
    let db = DatabaseConnection::default();
    build_schema(db, Limits::default()).sdl()
}
