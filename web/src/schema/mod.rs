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

/// Builds the schema over `db` with `limits`.
pub fn build_schema(db: DatabaseConnection, limits: Limits) -> RegistrySchema {
    let loaders = loaders::Db(db);
    let spawn = tokio::spawn;
    Schema::build(QueryRoot, EmptyMutation, SubscriptionRoot)
        .data(DataLoader::new(loaders::Models(loaders.clone()), spawn))
        .data(DataLoader::new(loaders::Offerings(loaders.clone()), spawn))
        .data(DataLoader::new(loaders::Parents(loaders.clone()), spawn))
        .data(DataLoader::new(loaders::Children(loaders.clone()), spawn))
        .data(DataLoader::new(
            loaders::EdgeOfLicense(loaders.clone()),
            spawn,
        ))
        .data(DataLoader::new(
            loaders::OfferingsOfModel(loaders.clone()),
            spawn,
        ))
        .data(DataLoader::new(
            loaders::Fingerprints(loaders.clone()),
            spawn,
        ))
        .data(DataLoader::new(loaders::Similar(loaders.clone()), spawn))
        .data(DataLoader::new(loaders::State(loaders.clone()), spawn))
        .data(DataLoader::new(loaders::Licenses(loaders.clone()), spawn))
        .data(DataLoader::new(loaders::Batches(loaders.clone()), spawn))
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
