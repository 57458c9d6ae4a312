//! The query root: models, offerings, licenses, lineage, rights, royalties, similar models,
//! output batches and outputs, and the indexer's progress.

use std::collections::HashSet;

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, InputObject, Object, Result, ID};
use ethers::types::U256;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use store::amount_key;
use store::entity::{balances, blocks, indexer_state, licenses, lineage, models, offerings};

use super::loaders::current;
use super::outputs::{Output, OutputBatch, OutputBatchFilter, OutputBatchOrder, OutputFilter};
use super::page::{page, Cursor, Order, Part, DEFAULT_PAGE, MAX_PAGE};
use super::types::{
    BlockRef, License, LicenseKind, LineageEdge, Meta, Model, Offering, Rights, Royalty,
    SimilarModel,
};
use crate::error::{client, OrInternal};

pub(crate) fn id_of(id: &ID) -> Result<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| client("BAD_USER_INPUT", format!("{:?} is not an id", id.as_str())))
}

pub(crate) fn address(text: &str) -> Result<String> {
    let t = text.trim().to_ascii_lowercase();
    if t.len() == 42 && t.starts_with("0x") && t[2..].chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err(client(
            "BAD_USER_INPUT",
            format!("{text:?} is not an address"),
        ))
    }
}

/// A 256-bit amount given as a decimal string, as its sortable key.
fn amount(text: &str) -> Result<String> {
    U256::from_dec_str(text.trim())
        .map(amount_key)
        .map_err(|_| {
            client(
                "BAD_USER_INPUT",
                format!("{text:?} is not an amount in base units"),
            )
        })
}

/// A list field's complexity: its children's, times the rows it may return. A `first` above
/// the page limit counts as the limit, so that it is refused by its own, clearer code.
pub(crate) fn cost(first: Option<i32>, child_complexity: usize) -> usize {
    usize::try_from(first.unwrap_or(DEFAULT_PAGE as i32))
        .unwrap_or(0)
        .min(MAX_PAGE)
        .saturating_mul(child_complexity)
}

fn conn<'a>(ctx: &'a Context<'_>) -> &'a DatabaseConnection {
    &ctx.data_unchecked::<super::loaders::Db>().0
}

/// Filters of `models`. All given conditions must hold.
#[derive(InputObject, Default, Debug)]
pub struct ModelFilter {
    owner: Option<String>,
    creator: Option<String>,
    /// Models that declare this model as a parent.
    parent: Option<ID>,
    /// Models with an open offering of this kind (and within the price range, if given).
    has_offering_kind: Option<LicenseKind>,
    /// Models with an open offering priced at least this (base units).
    price_min: Option<String>,
    /// Models with an open offering priced at most this (base units).
    price_max: Option<String>,
    /// Models with an open offering in this currency (`0x0000…0000` for the native one;
    /// with `priceMin`/`priceMax`, the same offering must be in the range).
    currency: Option<String>,
    /// Only derivatives (declaring at least one parent), or only base models.
    derivative: Option<bool>,
    minted_block_min: Option<i64>,
    minted_block_max: Option<i64>,
    /// Case-insensitive substring of the name.
    name_contains: Option<String>,
    /// Only flagged (or only unflagged) models.
    flagged: Option<bool>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ModelOrder {
    #[default]
    IdAsc,
    IdDesc,
    MintedAsc,
    MintedDesc,
}

/// Filters of `offerings`.
#[derive(InputObject, Default, Debug)]
pub struct OfferingFilter {
    model: Option<ID>,
    kind: Option<LicenseKind>,
    /// Only offerings still open for sale (or only closed ones).
    open: Option<bool>,
    publisher: Option<String>,
    currency: Option<String>,
    price_min: Option<String>,
    price_max: Option<String>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OfferingOrder {
    #[default]
    IdAsc,
    IdDesc,
    PriceAsc,
    PriceDesc,
}

/// Filters of `licenses`.
#[derive(InputObject, Default, Debug)]
pub struct LicenseFilter {
    holder: Option<String>,
    model: Option<ID>,
    offering: Option<ID>,
    kind: Option<LicenseKind>,
    /// Only licenses valid at this unix time (a license waiting for its key is not yet).
    active_at: Option<i64>,
    /// Only escrowed purchases still waiting for their key (true), or only the others (false).
    pending_delivery: Option<bool>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum LicenseOrder {
    #[default]
    IdAsc,
    IdDesc,
    ExpiryAsc,
    ExpiryDesc,
}

/// Filters of `royalties`.
#[derive(InputObject, Default, Debug)]
pub struct RoyaltyFilter {
    account: Option<String>,
    currency: Option<String>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Parents, their parents, …
    Ancestors,
    /// Children, their children, …
    Descendants,
}

/// The ids of models with an open offering matching kind and price range.
/// Whether the model of the outer query has an open offering of `kind` priced within
/// `min..=max`: a correlated `EXISTS`, so a page of models stops at its last row instead of
/// first listing every model with such an offering.
fn has_offering(
    kind: Option<LicenseKind>,
    currency: Option<String>,
    min: Option<String>,
    max: Option<String>,
) -> sea_orm::sea_query::SimpleExpr {
    let o = Alias::new("o");
    let mut q = Query::select();
    q.expr(Expr::val(1))
        .from_as(offerings::Entity, o.clone())
        .and_where(
            Expr::col((o.clone(), offerings::Column::ModelId))
                .equals((models::Entity, models::Column::Id)),
        )
        .and_where(Expr::col((o.clone(), offerings::Column::ValidTo)).is_null())
        .and_where(Expr::col((o.clone(), offerings::Column::Closed)).eq(false));
    if let Some(kind) = kind {
        q.and_where(Expr::col((o.clone(), offerings::Column::Kind)).eq(kind.code()));
    }
    if let Some(currency) = currency {
        q.and_where(Expr::col((o.clone(), offerings::Column::Currency)).eq(currency));
    }
    if let Some(min) = min {
        q.and_where(Expr::col((o.clone(), offerings::Column::PriceKey)).gte(min));
    }
    if let Some(max) = max {
        q.and_where(Expr::col((o, offerings::Column::PriceKey)).lte(max));
    }
    Expr::exists(q.to_owned())
}

#[derive(Debug)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// One model by id.
    async fn model(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Model>> {
        let id = id_of(&id)?;
        Ok(models::Entity::find()
            .filter(models::Column::Id.eq(id))
            .filter(current())
            .one(conn(ctx))
            .await
            .or_internal()?
            .map(Model))
    }

    /// One offering by id.
    async fn offering(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Offering>> {
        let id = id_of(&id)?;
        Ok(offerings::Entity::find()
            .filter(offerings::Column::Id.eq(id))
            .filter(current())
            .one(conn(ctx))
            .await
            .or_internal()?
            .map(Offering))
    }

    /// One license by id.
    async fn license(&self, ctx: &Context<'_>, id: ID) -> Result<Option<License>> {
        let id = id_of(&id)?;
        Ok(licenses::Entity::find()
            .filter(licenses::Column::Id.eq(id))
            .filter(current())
            .one(conn(ctx))
            .await
            .or_internal()?
            .map(License))
    }

    /// Models, filtered and ordered, a page at a time.
    #[graphql(complexity = "cost(first, child_complexity)")]
    async fn models(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<ModelFilter>,
        order_by: Option<ModelOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Model>> {
        let f = filter.unwrap_or_default();
        let mut q = models::Entity::find().filter(current());
        if let Some(owner) = &f.owner {
            q = q.filter(models::Column::Owner.eq(address(owner)?));
        }
        if let Some(creator) = &f.creator {
            q = q.filter(models::Column::Creator.eq(address(creator)?));
        }
        if let Some(parent) = &f.parent {
            let children = Query::select()
                .column(lineage::Column::ChildId)
                .from(lineage::Entity)
                .and_where(current())
                .and_where(Expr::col(lineage::Column::ParentId).eq(id_of(parent)?))
                .to_owned();
            q = q.filter(models::Column::Id.in_subquery(children));
        }
        if f.has_offering_kind.is_some()
            || f.currency.is_some()
            || f.price_min.is_some()
            || f.price_max.is_some()
        {
            let currency = f.currency.as_deref().map(address).transpose()?;
            let min = f.price_min.as_deref().map(amount).transpose()?;
            let max = f.price_max.as_deref().map(amount).transpose()?;
            q = q.filter(has_offering(f.has_offering_kind, currency, min, max));
        }
        if let Some(derivative) = f.derivative {
            q = q.filter(if derivative {
                models::Column::Depth.gt(0)
            } else {
                models::Column::Depth.eq(0)
            });
        }
        if let Some(min) = f.minted_block_min {
            q = q.filter(models::Column::BlockNumber.gte(min));
        }
        if let Some(max) = f.minted_block_max {
            q = q.filter(models::Column::BlockNumber.lte(max));
        }
        if let Some(text) = &f.name_contains {
            let pattern = format!(
                "%{}%",
                text.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            q = q.filter(
                Expr::expr(Func::lower(Expr::col(models::Column::Name)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
            );
        }
        if let Some(flagged) = f.flagged {
            q = q.filter(if flagged {
                models::Column::FlaggedModel.is_not_null()
            } else {
                models::Column::FlaggedModel.is_null()
            });
        }
        let order = order_by.unwrap_or_default();
        let (key, desc) = match order {
            ModelOrder::IdAsc => (None, false),
            ModelOrder::IdDesc => (None, true),
            ModelOrder::MintedAsc => (Some(models::Column::BlockNumber), false),
            ModelOrder::MintedDesc => (Some(models::Column::BlockNumber), true),
        };
        page(
            conn(ctx),
            q,
            Order {
                key,
                tie: models::Column::Id,
                desc,
            },
            first,
            after,
            |m| Cursor {
                key: key.map(|_| Part::Int(m.block_number)),
                tie: Part::Int(m.id),
            },
            |m| Ok(Model(m)),
        )
        .await
    }

    /// Offerings, filtered and ordered, a page at a time.
    #[graphql(complexity = "cost(first, child_complexity)")]
    async fn offerings(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<OfferingFilter>,
        order_by: Option<OfferingOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Offering>> {
        let f = filter.unwrap_or_default();
        let mut q = offerings::Entity::find().filter(current());
        if let Some(model) = &f.model {
            q = q.filter(offerings::Column::ModelId.eq(id_of(model)?));
        }
        if let Some(kind) = f.kind {
            q = q.filter(offerings::Column::Kind.eq(kind.code()));
        }
        if let Some(open) = f.open {
            q = q.filter(offerings::Column::Closed.eq(!open));
        }
        if let Some(publisher) = &f.publisher {
            q = q.filter(offerings::Column::Publisher.eq(address(publisher)?));
        }
        if let Some(currency) = &f.currency {
            q = q.filter(offerings::Column::Currency.eq(address(currency)?));
        }
        if let Some(min) = &f.price_min {
            q = q.filter(offerings::Column::PriceKey.gte(amount(min)?));
        }
        if let Some(max) = &f.price_max {
            q = q.filter(offerings::Column::PriceKey.lte(amount(max)?));
        }
        let order = order_by.unwrap_or_default();
        let (key, desc) = match order {
            OfferingOrder::IdAsc => (None, false),
            OfferingOrder::IdDesc => (None, true),
            OfferingOrder::PriceAsc => (Some(offerings::Column::PriceKey), false),
            OfferingOrder::PriceDesc => (Some(offerings::Column::PriceKey), true),
        };
        page(
            conn(ctx),
            q,
            Order {
                key,
                tie: offerings::Column::Id,
                desc,
            },
            first,
            after,
            |o| Cursor {
                key: key.map(|_| Part::Text(o.price_key.clone())),
                tie: Part::Int(o.id),
            },
            |o| Ok(Offering(o)),
        )
        .await
    }

    /// Licenses, filtered and ordered, a page at a time.
    #[graphql(complexity = "cost(first, child_complexity)")]
    async fn licenses(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<LicenseFilter>,
        order_by: Option<LicenseOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, License>> {
        let f = filter.unwrap_or_default();
        let mut q = licenses::Entity::find().filter(current());
        if let Some(holder) = &f.holder {
            q = q.filter(licenses::Column::Holder.eq(address(holder)?));
        }
        if let Some(model) = &f.model {
            q = q.filter(licenses::Column::ModelId.eq(id_of(model)?));
        }
        if let Some(offering) = &f.offering {
            q = q.filter(licenses::Column::OfferingId.eq(id_of(offering)?));
        }
        if let Some(kind) = f.kind {
            q = q.filter(licenses::Column::Kind.eq(kind.code()));
        }
        if let Some(at) = f.active_at {
            q = q
                .filter(licenses::Column::Start.lte(at))
                .filter(
                    Condition::any()
                        .add(licenses::Column::Expiry.eq(0))
                        .add(licenses::Column::Expiry.gt(at)),
                )
                .filter(licenses::Column::Refunded.eq(false))
                .filter(
                    Condition::any()
                        .add(licenses::Column::KeyDeadline.eq(0))
                        .add(licenses::Column::KeyDeliveredAt.gt(0)),
                );
        }
        if let Some(pending) = f.pending_delivery {
            let waiting = Condition::all()
                .add(licenses::Column::KeyDeadline.gt(0))
                .add(licenses::Column::KeyDeliveredAt.eq(0))
                .add(licenses::Column::Refunded.eq(false));
            q = q.filter(if pending { waiting } else { waiting.not() });
        }
        let order = order_by.unwrap_or_default();
        let (key, desc) = match order {
            LicenseOrder::IdAsc => (None, false),
            LicenseOrder::IdDesc => (None, true),
            LicenseOrder::ExpiryAsc => (Some(licenses::Column::Expiry), false),
            LicenseOrder::ExpiryDesc => (Some(licenses::Column::Expiry), true),
        };
        page(
            conn(ctx),
            q,
            Order {
                key,
                tie: licenses::Column::Id,
                desc,
            },
            first,
            after,
            |l| Cursor {
                key: key.map(|_| Part::Int(l.expiry)),
                tie: Part::Int(l.id),
            },
            |l| Ok(License(l)),
        )
        .await
    }

    /// The lineage of a model: its ancestors or descendants up to `depth` levels, nearest
    /// first (one query per level), at most `first` edges (default and most 100).
    #[graphql(complexity = "cost(Some(first.unwrap_or(MAX_PAGE as i32)), child_complexity)")]
    async fn lineage(
        &self,
        ctx: &Context<'_>,
        model: ID,
        direction: Direction,
        #[graphql(default = 16)] depth: i32,
        first: Option<i32>,
    ) -> Result<Vec<LineageEdge>> {
        let most = super::page::page_size(Some(first.unwrap_or(MAX_PAGE as i32)))?;
        let start = id_of(&model)?;
        let mut frontier = vec![start];
        let mut seen: HashSet<i64> = HashSet::from([start]);
        let mut edges = Vec::new();
        for _ in 0..depth.clamp(0, 16) {
            if frontier.is_empty() {
                break;
            }
            let (by, next): (lineage::Column, fn(&lineage::Model) -> i64) = match direction {
                Direction::Ancestors => (lineage::Column::ChildId, |e| e.parent_id),
                Direction::Descendants => (lineage::Column::ParentId, |e| e.child_id),
            };
            let level = lineage::Entity::find()
                .filter(by.is_in(frontier.clone()))
                .filter(current())
                .order_by_asc(lineage::Column::ChildId)
                .order_by_asc(lineage::Column::Position)
                .limit((most - edges.len()) as u64)
                .all(conn(ctx))
                .await
                .or_internal()?;
            frontier = Vec::new();
            for edge in level {
                if edges.len() == most {
                    return Ok(edges);
                }
                let n = next(&edge);
                if seen.insert(n) {
                    frontier.push(n);
                }
                edges.push(LineageEdge(edge));
            }
        }
        Ok(edges)
    }

    /// May `address` use right `kind` of `model` at unix time `at` (default: the time of the
    /// last indexed block)? The same answer as the market's `rightsOf` view.
    async fn rights(
        &self,
        ctx: &Context<'_>,
        address: String,
        model: ID,
        kind: LicenseKind,
        at: Option<i64>,
    ) -> Result<Rights> {
        let account = self::address(&address)?;
        let model_id = id_of(&model)?;
        let db = conn(ctx);
        let at = match at {
            Some(at) => at,
            None => blocks::Entity::find()
                .filter(blocks::Column::Timestamp.gt(0))
                .order_by_desc(blocks::Column::Number)
                .one(db)
                .await
                .or_internal()?
                .map(|b| b.timestamp)
                .unwrap_or_default(),
        };
        let row = models::Entity::find()
            .filter(models::Column::Id.eq(model_id))
            .filter(current())
            .one(db)
            .await
            .or_internal()?
            .ok_or_else(|| client("NOT_FOUND", format!("model {model_id} is not indexed")))?;
        if row.owner == account {
            return Ok(Rights {
                allowed: true,
                owner: true,
                license: None,
                at,
            });
        }
        let held = licenses::Entity::find()
            .filter(current())
            .filter(licenses::Column::Holder.eq(account))
            .filter(licenses::Column::ModelId.eq(model_id))
            .filter(licenses::Column::Kind.eq(kind.code()))
            .order_by_asc(licenses::Column::Id)
            .all(db)
            .await
            .or_internal()?;
        let valid = held.into_iter().map(License).filter(|l| l.valid_at(at));
        // A perpetual license first, else the one that lasts longest (the earliest id on ties).
        let best = valid.fold(None::<License>, |best, l| match &best {
            Some(b) if b.0.expiry == 0 => best,
            _ if l.0.expiry == 0 => Some(l),
            Some(b) if b.0.expiry >= l.0.expiry => best,
            _ => Some(l),
        });
        Ok(Rights {
            allowed: best.is_some(),
            owner: false,
            license: best,
            at,
        })
    }

    /// Credited and withdrawn amounts per account and currency, a page at a time.
    #[graphql(complexity = "cost(first, child_complexity)")]
    async fn royalties(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<RoyaltyFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Royalty>> {
        let f = filter.unwrap_or_default();
        let mut q = balances::Entity::find().filter(current());
        if let Some(account) = &f.account {
            q = q.filter(balances::Column::Account.eq(address(account)?));
        }
        if let Some(currency) = &f.currency {
            q = q.filter(balances::Column::Currency.eq(address(currency)?));
        }
        page(
            conn(ctx),
            q,
            Order {
                key: Some(balances::Column::Account),
                tie: balances::Column::Currency,
                desc: false,
            },
            first,
            after,
            |b| Cursor {
                key: Some(Part::Text(b.account.clone())),
                tie: Part::Text(b.currency.clone()),
            },
            Royalty::from_row,
        )
        .await
    }

    /// Models whose fingerprints are at least `minSimilarity` similar to `model`'s, most
    /// similar first. Pairs below 0.1 are not stored unless their verdict relates them.
    #[graphql(complexity = "cost(first, child_complexity)")]
    async fn similar_models(
        &self,
        ctx: &Context<'_>,
        model: ID,
        #[graphql(default = 0.5)] min_similarity: f64,
        first: Option<i32>,
    ) -> Result<Vec<SimilarModel>> {
        use store::entity::similarities;
        let size = super::page::page_size(first)?;
        let rows = similarities::Entity::find()
            .filter(current())
            .filter(similarities::Column::ModelId.eq(id_of(&model)?))
            .filter(similarities::Column::Similarity.gte(min_similarity))
            .order_by_desc(similarities::Column::Similarity)
            .order_by_asc(similarities::Column::OtherId)
            .limit(size as u64)
            .all(conn(ctx))
            .await
            .or_internal()?;
        Ok(rows.into_iter().map(SimilarModel).collect())
    }

    /// The batch of outputs committed with Merkle root `root`.
    async fn output_batch(&self, ctx: &Context<'_>, root: String) -> Result<Option<OutputBatch>> {
        super::outputs::batch(ctx, &root).await
    }

    /// Batches of outputs committed under output licenses, filtered, newest first unless
    /// ordered otherwise, a page at a time.
    #[graphql(complexity = "cost(first, child_complexity)")]
    async fn output_batches(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<OutputBatchFilter>,
        order_by: Option<OutputBatchOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, OutputBatch>> {
        super::outputs::batches(ctx, filter, order_by, first, after).await
    }

    /// Who committed the content with SHA-256 `contentHash` (`0x…`): its earliest commitment
    /// in a published batch (which license, model and batch); null when no published batch
    /// holds it. `outputs(where: {contentHash})` lists every commitment.
    async fn output(&self, ctx: &Context<'_>, content_hash: String) -> Result<Option<Output>> {
        super::outputs::first_commitment(ctx, &content_hash).await
    }

    /// Outputs of published batches, filtered, oldest commitment first, a page at a time.
    #[graphql(complexity = "cost(first, child_complexity)")]
    async fn outputs(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<OutputFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Output>> {
        super::outputs::outputs(ctx, filter, first, after).await
    }

    /// The indexer's progress: head, finalized and applied blocks.
    #[graphql(name = "_meta")]
    async fn meta(&self, ctx: &Context<'_>) -> Result<Option<Meta>> {
        let db = conn(ctx);
        let Some(state) = indexer_state::Entity::find_by_id(1)
            .one(db)
            .await
            .or_internal()?
        else {
            return Ok(None);
        };
        let hash_of = |n: i64| async move {
            blocks::Entity::find_by_id(n)
                .one(db)
                .await
                .or_internal()
                .map(|b| b.map(|b| b.hash))
        };
        Ok(Some(Meta {
            head: BlockRef {
                number: state.head_block,
                hash: hash_of(state.head_block).await?,
            },
            finalized: BlockRef {
                number: state.finalized_block,
                hash: hash_of(state.finalized_block).await?,
            },
            cursor: BlockRef {
                number: state.cursor_block,
                hash: Some(state.cursor_hash.clone()),
            },
            indexed_at: state.updated_at,
            chain_id: state.chain_id,
        }))
    }
}
