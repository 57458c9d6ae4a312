//! DataLoaders: nested fields of every row of a list are fetched in one query per level.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};
use store::entity::{
    fingerprints, indexer_state, licenses, lineage, models, offerings, output_batches, similarities,
};

/// Loader errors are shared between the fields that waited on one batch.
pub(crate) type LoadError = Arc<String>;

fn load_error(e: sea_orm::DbErr) -> LoadError {
    tracing::error!("dataloader query failed: {e}");
    Arc::new("internal error".into())
}

pub(crate) fn current() -> sea_orm::sea_query::Expr {
    Expr::col(Alias::new("valid_to")).is_null()
}

/// Loads through the database.
#[derive(Debug, Clone)]
pub(crate) struct Db(pub(crate) DatabaseConnection);

/// Current models by id.
pub(crate) struct Models(pub(crate) Db);
/// Current offerings by id.
pub(crate) struct Offerings(pub(crate) Db);
/// Lineage edges by child.
pub(crate) struct Parents(pub(crate) Db);
/// Lineage edges by parent.
pub(crate) struct Children(pub(crate) Db);
/// Offerings by model.
pub(crate) struct OfferingsOfModel(pub(crate) Db);
/// The lineage edge a fine-tune license admitted, by license id (the mint consumed it).
pub(crate) struct EdgeOfLicense(pub(crate) Db);
/// Fingerprint summaries by model.
pub(crate) struct Fingerprints(pub(crate) Db);
/// Similar models by model, most similar first.
pub(crate) struct Similar(pub(crate) Db);
/// Current licenses by id.
pub(crate) struct Licenses(pub(crate) Db);
/// Current output batches by root.
pub(crate) struct Batches(pub(crate) Db);
/// The indexer's state (key: always 0).
pub(crate) struct State(pub(crate) Db);

/// A fingerprint row without its (large) encoding.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct FingerprintSummary {
    pub model_id: i64,
    pub status: String,
    pub detail: Option<String>,
    pub tensors: i64,
    pub parameters: i64,
}

impl Loader<i64> for Models {
    type Value = models::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = models::Entity::find()
            .filter(models::Column::Id.is_in(keys.iter().copied()))
            .filter(current())
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

impl Loader<i64> for Licenses {
    type Value = licenses::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = licenses::Entity::find()
            .filter(licenses::Column::Id.is_in(keys.iter().copied()))
            .filter(current())
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

impl Loader<String> for Batches {
    type Value = output_batches::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let rows = output_batches::Entity::find()
            .filter(output_batches::Column::Root.is_in(keys.iter().cloned()))
            .filter(current())
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(rows.into_iter().map(|r| (r.root.clone(), r)).collect())
    }
}

impl Loader<i64> for Offerings {
    type Value = offerings::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = offerings::Entity::find()
            .filter(offerings::Column::Id.is_in(keys.iter().copied()))
            .filter(current())
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

fn group<K: std::hash::Hash + Eq, V>(rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = HashMap::new();
    for row in rows {
        map.entry(key(&row)).or_default().push(row);
    }
    map
}

impl Loader<i64> for Parents {
    type Value = Vec<lineage::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = lineage::Entity::find()
            .filter(lineage::Column::ChildId.is_in(keys.iter().copied()))
            .filter(current())
            .order_by_asc(lineage::Column::Position)
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(group(rows, |r| r.child_id))
    }
}

impl Loader<i64> for Children {
    type Value = Vec<lineage::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = lineage::Entity::find()
            .filter(lineage::Column::ParentId.is_in(keys.iter().copied()))
            .filter(current())
            .order_by_asc(lineage::Column::ChildId)
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(group(rows, |r| r.parent_id))
    }
}

impl Loader<i64> for EdgeOfLicense {
    type Value = lineage::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = lineage::Entity::find()
            .filter(lineage::Column::LicenseId.is_in(keys.iter().copied().filter(|&k| k != 0)))
            .filter(current())
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(rows.into_iter().map(|r| (r.license_id, r)).collect())
    }
}

impl Loader<i64> for OfferingsOfModel {
    type Value = Vec<offerings::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = offerings::Entity::find()
            .filter(offerings::Column::ModelId.is_in(keys.iter().copied()))
            .filter(current())
            .order_by_asc(offerings::Column::Id)
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(group(rows, |r| r.model_id))
    }
}

impl Loader<i64> for Fingerprints {
    type Value = FingerprintSummary;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = fingerprints::Entity::find()
            .select_only()
            .columns([
                fingerprints::Column::ModelId,
                fingerprints::Column::Status,
                fingerprints::Column::Detail,
                fingerprints::Column::Tensors,
                fingerprints::Column::Parameters,
            ])
            .filter(fingerprints::Column::ModelId.is_in(keys.iter().copied()))
            .filter(current())
            .into_model::<FingerprintSummary>()
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(rows.into_iter().map(|r| (r.model_id, r)).collect())
    }
}

impl Loader<i64> for Similar {
    type Value = Vec<similarities::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = similarities::Entity::find()
            .filter(similarities::Column::ModelId.is_in(keys.iter().copied()))
            .filter(current())
            .order_by_desc(similarities::Column::Similarity)
            .order_by_asc(similarities::Column::OtherId)
            .all(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(group(rows, |r| r.model_id))
    }
}

impl Loader<u8> for State {
    type Value = indexer_state::Model;
    type Error = LoadError;
    async fn load(&self, _: &[u8]) -> Result<HashMap<u8, Self::Value>, Self::Error> {
        let state = indexer_state::Entity::find_by_id(1)
            .one(&self.0 .0)
            .await
            .map_err(load_error)?;
        Ok(state.into_iter().map(|s| (0, s)).collect())
    }
}
