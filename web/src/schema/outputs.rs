//! Output receipts in the API: the batches committed under output licenses, and the outputs of
//! published batches by content hash (see `registry::indexer::leaves`).

use async_graphql::connection::Connection;
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use store::entity::{output_batches, outputs};
use store::status::leaves as leaves_status;

use super::loaders::{current, Batches, Licenses};
use super::page::{page, Cursor, Order, Part};
use super::types::{is_final, model_by_id, License, Model};
use crate::error::{client, internal, OrInternal};

/// A 32-byte hash given as `0x` and 64 hex digits, lowercased.
pub(crate) fn hash_arg(what: &str, text: &str) -> Result<String> {
    let t = text.trim().to_ascii_lowercase();
    if t.len() == 66 && t.starts_with("0x") && t[2..].chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err(client(
            "BAD_USER_INPUT",
            format!("{text:?} is not a {what} (0x and 64 hex digits)"),
        ))
    }
}

/// Where fetching a published batch's leaf list stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeafListStatus {
    /// The batch was committed without a published list: its outputs are not indexed (their
    /// receipts still prove them).
    Unpublished,
    /// Not fetched yet, or the content store could not give it; retried.
    Pending,
    /// Fetched and checked; its outputs are being written.
    Indexing,
    /// Fetched, checked against the committed root, and its outputs indexed.
    Indexed,
    /// The published list is not the committed batch (see `detail`); never indexed.
    Invalid,
}

impl LeafListStatus {
    fn from_text(text: &str) -> Self {
        match text {
            leaves_status::PENDING => Self::Pending,
            leaves_status::INDEXING => Self::Indexing,
            leaves_status::INDEXED => Self::Indexed,
            leaves_status::INVALID => Self::Invalid,
            _ => Self::Unpublished,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Unpublished => leaves_status::UNPUBLISHED,
            Self::Pending => leaves_status::PENDING,
            Self::Indexing => leaves_status::INDEXING,
            Self::Indexed => leaves_status::INDEXED,
            Self::Invalid => leaves_status::INVALID,
        }
    }
}

/// A batch's leaf list, as the indexer found it.
#[derive(SimpleObject, Debug, Clone)]
pub struct LeafList {
    pub status: LeafListStatus,
    /// Why it is invalid, or why the last fetch failed.
    pub detail: Option<String>,
    /// Fetches tried.
    pub attempts: i64,
    /// While pending after a failure: unix time of the next try.
    pub retry_at: Option<i64>,
}

/// A batch of outputs committed under an output license: the holder of the license committed
/// the Merkle root of the outputs' leaves at the block's time.
#[derive(Debug, Clone)]
pub struct OutputBatch(pub output_batches::Model);

#[Object]
impl OutputBatch {
    /// The Merkle root committed.
    async fn root(&self) -> &str {
        &self.0.root
    }
    async fn license_id(&self) -> ID {
        ID(self.0.license_id.to_string())
    }
    async fn license(&self, ctx: &Context<'_>) -> Result<Option<License>> {
        license_by_id(ctx, self.0.license_id).await
    }
    async fn model_id(&self) -> ID {
        ID(self.0.model_id.to_string())
    }
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        model_by_id(ctx, self.0.model_id).await
    }
    /// The account that committed the batch: the license's holder then.
    async fn provider(&self) -> &str {
        &self.0.provider
    }
    /// Outputs in the batch.
    async fn count(&self) -> i64 {
        self.0.count
    }
    /// Where the leaf list was published; null when it was not.
    async fn uri(&self) -> Option<&str> {
        self.0.uri.as_deref()
    }
    /// Unix time of the block that committed it.
    async fn committed_at(&self) -> i64 {
        self.0.committed_at
    }
    async fn block(&self) -> i64 {
        self.0.block_number
    }
    async fn tx_hash(&self) -> &str {
        &self.0.tx_hash
    }
    #[graphql(name = "final")]
    async fn is_final(&self, ctx: &Context<'_>) -> Result<bool> {
        is_final(ctx, self.0.block_number).await
    }
    async fn leaf_list(&self) -> LeafList {
        let status = LeafListStatus::from_text(&self.0.leaves_status);
        LeafList {
            status,
            detail: self.0.leaves_detail.clone(),
            attempts: self.0.leaves_attempts,
            retry_at: (status == LeafListStatus::Pending && self.0.leaves_retry_at > 0)
                .then_some(self.0.leaves_retry_at),
        }
    }
    /// The batch's outputs, in the order of its list (empty until the list is indexed).
    #[graphql(complexity = "super::query::cost(first, child_complexity)")]
    async fn outputs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Output>> {
        let q = outputs::Entity::find()
            .filter(current())
            .filter(outputs::Column::Root.eq(self.0.root.clone()));
        output_page(conn(ctx), q, first, after).await
    }
}

/// An output of a published batch: its content hash was committed under the batch's license.
#[derive(Debug, Clone)]
pub struct Output(pub outputs::Model);

#[Object]
impl Output {
    /// The batch's block, its log index and the output's place in the list: ids sort in the
    /// order outputs were committed.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// SHA-256 of the output's bytes.
    async fn content_hash(&self) -> &str {
        &self.0.content_hash
    }
    /// Unix time the provider says the output was produced.
    async fn produced_at(&self) -> i64 {
        self.0.produced_at
    }
    /// The leaf's salt (published with the list).
    async fn salt(&self) -> &str {
        &self.0.salt
    }
    /// The leaf's hash in the batch's tree (see the README for its encoding).
    async fn leaf_hash(&self) -> &str {
        &self.0.leaf_hash
    }
    /// Its place in the published list.
    async fn position(&self) -> i64 {
        self.0.position
    }
    async fn license_id(&self) -> ID {
        ID(self.0.license_id.to_string())
    }
    async fn license(&self, ctx: &Context<'_>) -> Result<Option<License>> {
        license_by_id(ctx, self.0.license_id).await
    }
    async fn model_id(&self) -> ID {
        ID(self.0.model_id.to_string())
    }
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        model_by_id(ctx, self.0.model_id).await
    }
    /// The batch that committed it.
    async fn batch(&self, ctx: &Context<'_>) -> Result<Option<OutputBatch>> {
        Ok(ctx
            .data_unchecked::<DataLoader<Batches>>()
            .load_one(self.0.root.clone())
            .await
            .map_err(|e| internal(e.as_str()))?
            .map(OutputBatch))
    }
    async fn block(&self) -> i64 {
        self.0.block_number
    }
    #[graphql(name = "final")]
    async fn is_final(&self, ctx: &Context<'_>) -> Result<bool> {
        is_final(ctx, self.0.block_number).await
    }
}

async fn license_by_id(ctx: &Context<'_>, id: i64) -> Result<Option<License>> {
    Ok(ctx
        .data_unchecked::<DataLoader<Licenses>>()
        .load_one(id)
        .await
        .map_err(|e| internal(e.as_str()))?
        .map(License))
}

fn conn<'a>(ctx: &'a Context<'_>) -> &'a DatabaseConnection {
    &ctx.data_unchecked::<super::loaders::Db>().0
}

/// Filters of `outputBatches`. All given conditions must hold.
#[derive(InputObject, Default, Debug)]
pub struct OutputBatchFilter {
    license: Option<ID>,
    model: Option<ID>,
    provider: Option<String>,
    leaf_list: Option<LeafListStatus>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OutputBatchOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// Filters of `outputs`.
#[derive(InputObject, Default, Debug)]
pub struct OutputFilter {
    /// SHA-256 of the content, `0x…`.
    content_hash: Option<String>,
    /// The batch's root.
    batch: Option<String>,
    license: Option<ID>,
    model: Option<ID>,
}

/// One page of output batches.
pub(crate) async fn batches(
    ctx: &Context<'_>,
    filter: Option<OutputBatchFilter>,
    order_by: Option<OutputBatchOrder>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Connection<String, OutputBatch>> {
    let f = filter.unwrap_or_default();
    let mut q = output_batches::Entity::find().filter(current());
    if let Some(license) = &f.license {
        q = q.filter(output_batches::Column::LicenseId.eq(super::query::id_of(license)?));
    }
    if let Some(model) = &f.model {
        q = q.filter(output_batches::Column::ModelId.eq(super::query::id_of(model)?));
    }
    if let Some(provider) = &f.provider {
        q = q.filter(output_batches::Column::Provider.eq(super::query::address(provider)?));
    }
    if let Some(status) = f.leaf_list {
        q = q.filter(output_batches::Column::LeavesStatus.eq(status.text()));
    }
    page(
        conn(ctx),
        q,
        Order {
            key: Some(output_batches::Column::BlockNumber),
            tie: output_batches::Column::Root,
            desc: order_by.unwrap_or_default() == OutputBatchOrder::NewestFirst,
        },
        first,
        after,
        |b| Cursor {
            key: Some(Part::Int(b.block_number)),
            tie: Part::Text(b.root.clone()),
        },
        |b| Ok(OutputBatch(b)),
    )
    .await
}

/// One batch by root.
pub(crate) async fn batch(ctx: &Context<'_>, root: &str) -> Result<Option<OutputBatch>> {
    let root = hash_arg("batch root", root)?;
    Ok(output_batches::Entity::find()
        .filter(current())
        .filter(output_batches::Column::Root.eq(root))
        .one(conn(ctx))
        .await
        .or_internal()?
        .map(OutputBatch))
}

/// The earliest indexed commitment of `content_hash`.
pub(crate) async fn first_commitment(
    ctx: &Context<'_>,
    content_hash: &str,
) -> Result<Option<Output>> {
    let content_hash = hash_arg("content hash", content_hash)?;
    Ok(outputs::Entity::find()
        .filter(current())
        .filter(outputs::Column::ContentHash.eq(content_hash))
        .order_by_asc(outputs::Column::Id)
        .one(conn(ctx))
        .await
        .or_internal()?
        .map(Output))
}

/// One page of outputs, oldest commitment first.
pub(crate) async fn outputs(
    ctx: &Context<'_>,
    filter: Option<OutputFilter>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Connection<String, Output>> {
    let f = filter.unwrap_or_default();
    let mut q = outputs::Entity::find().filter(current());
    if let Some(hash) = &f.content_hash {
        q = q.filter(outputs::Column::ContentHash.eq(hash_arg("content hash", hash)?));
    }
    if let Some(root) = &f.batch {
        q = q.filter(outputs::Column::Root.eq(hash_arg("batch root", root)?));
    }
    if let Some(license) = &f.license {
        q = q.filter(outputs::Column::LicenseId.eq(super::query::id_of(license)?));
    }
    if let Some(model) = &f.model {
        q = q.filter(outputs::Column::ModelId.eq(super::query::id_of(model)?));
    }
    output_page(conn(ctx), q, first, after).await
}

async fn output_page(
    conn: &DatabaseConnection,
    q: sea_orm::Select<outputs::Entity>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Connection<String, Output>> {
    page(
        conn,
        q,
        Order {
            key: None,
            tie: outputs::Column::Id,
            desc: false,
        },
        first,
        after,
        |o| Cursor {
            key: None,
            tie: Part::Text(o.id.clone()),
        },
        |o| Ok(Output(o)),
    )
    .await
}
