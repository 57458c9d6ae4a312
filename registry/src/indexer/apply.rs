//! Applying decoded events to the step's [`Batch`], which writes them in the step's
//! transaction. Every write is a row version at the event's block (see the `migrations`
//! crate), so a reorg can undo it.

use ethers::types::{Address, U256};
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::batch::{Batch, Keyed};
use super::events::{address, hash, Event, Position};
use store::entity::{
    balances, credits, fingerprints, licenses, lineage, models, offerings, output_batches,
    transfers, withdrawals,
};
use store::status::{fingerprint as fingerprint_status, leaves as leaves_status};
use store::{amount_key, Versioned};

/// Pairs less similar than this are not stored (unless the verdict says they are related).
pub const SIMILARITY_FLOOR: f64 = 0.1;

/// What a step looked up for one event before its transaction.
#[derive(Debug, Clone)]
pub enum Lookup {
    Nothing,
    /// The timestamp of the event's block (a batch of outputs records when it was committed).
    BlockTime(u64),
}

fn id(value: U256) -> i64 {
    i64::try_from(value.as_u64()).unwrap_or(i64::MAX)
}

fn current() -> sea_orm::sea_query::SimpleExpr {
    Expr::col(Alias::new("valid_to")).is_null()
}

fn missing(what: &str, id: impl std::fmt::Display, pos: &Position) -> DbErr {
    DbErr::Custom(format!(
        "{what} {id} is not indexed but block {} log {} refers to it",
        pos.block, pos.log_index
    ))
}

/// Applies one event; rows it changes are read from `batch`, else from `c`.
pub(crate) async fn apply<C: ConnectionTrait>(
    c: &C,
    batch: &mut Batch,
    pos: &Position,
    event: &Event,
    lookup: &Lookup,
) -> Result<(), DbErr> {
    let block = pos.block as i64;
    match event {
        Event::ModelMinted(e) => {
            let model_id = id(e.model_id);
            // Fetched off the chain path, which fills the name and the flag in.
            record_pending(batch, block, model_id);
            let m = &e.model;
            let row = models::Model {
                vid: 0,
                id: model_id,
                owner: address(e.owner),
                creator: address(m.creator),
                minter: address(e.minter),
                weights_cid: text(&m.weights_cid),
                content_root: fingerprint::hex(&m.content_root),
                fingerprint: fingerprint::hex(&m.fingerprint),
                metadata_uri: text(&m.metadata_uri),
                name: None,
                minted_at: m.minted_at as i64,
                depth: i32::from(m.depth),
                sale_royalty_bps: e.sale_royalty_bps as i32,
                derivative_royalty_bps: i32::from(m.derivative_royalty_bps),
                encrypted: m.encrypted,
                block_number: block,
                tx_hash: hash(pos.tx),
                flagged_model: None,
                flagged_similarity: None,
                valid_from: block,
                valid_to: None,
            };
            batch.models.insert(model_id, row, block);
            for (position, p) in e.parents.iter().enumerate() {
                let edge = lineage::Model {
                    vid: 0,
                    child_id: model_id,
                    parent_id: id(p.model_id),
                    license_id: id(p.license_id),
                    royalty_bps: i32::from(p.royalty_bps),
                    position: position as i32,
                    block_number: block,
                    valid_from: block,
                    valid_to: None,
                };
                batch.lineage.insert(edge, block);
            }
        }
        Event::ModelTransfer {
            from,
            to,
            id: token,
        } => {
            transfer(batch, pos, "model", *from, *to, *token);
            // The mint's own Transfer comes before ModelMinted, which sets the owner.
            if !from.is_zero() {
                let token = *token as i64;
                let mut next = current_row::<models::Entity, _>(
                    c,
                    &mut batch.models,
                    models::Column::Id,
                    token,
                    "model",
                    pos,
                )
                .await?;
                next.owner = address(*to);
                batch.models.replace(token, next, block)?;
            }
        }
        Event::OfferingPublished(e) => {
            let t = &e.terms;
            let row = offerings::Model {
                vid: 0,
                id: id(e.offering_id),
                model_id: id(e.model_id),
                publisher: address(e.publisher),
                kind: i32::from(t.kind),
                currency: address(t.currency),
                price: t.price.to_string(),
                price_key: amount_key(t.price),
                duration: t.duration as i64,
                supply_cap: t.supply_cap as i64,
                sold: 0,
                closed: false,
                transferable: t.transferable,
                commercial_use: t.commercial_use,
                royalty_bps: i32::from(t.royalty_bps),
                renewal_period: t.renewal_period as i64,
                delivery_period: t.delivery_period as i64,
                terms_uri: text(&t.terms_uri),
                terms_hash: fingerprint::hex(&t.terms_hash),
                block_number: block,
                valid_from: block,
                valid_to: None,
            };
            batch.offerings.insert(row.id, row, block);
        }
        Event::OfferingClosed(e) => {
            let mut next = offering(c, batch, id(e.offering_id), pos).await?;
            next.closed = true;
            batch.offerings.replace(next.id, next, block)?;
        }
        Event::LicensePurchased(e) => {
            let o = offering(c, batch, id(e.offering_id), pos).await?;
            let row = licenses::Model {
                vid: 0,
                id: id(e.license_id),
                offering_id: o.id,
                model_id: o.model_id,
                kind: o.kind,
                holder: address(e.holder),
                payer: address(e.payer),
                currency: o.currency.clone(),
                price: e.price.to_string(),
                price_key: amount_key(e.price),
                duration: o.duration,
                transferable: o.transferable,
                commercial_use: o.commercial_use,
                royalty_bps: o.royalty_bps,
                terms_hash: o.terms_hash.clone(),
                start: e.start as i64,
                expiry: e.expiry as i64,
                key_deadline: 0,
                recipient: None,
                key_delivered_at: 0,
                key_cid: None,
                keeper: None,
                refunded: false,
                block_number: block,
                valid_from: block,
                valid_to: None,
            };
            batch.licenses.insert(row.id, row, block);
            let mut next = o;
            next.sold += 1;
            batch.offerings.replace(next.id, next, block)?;
        }
        Event::LicenseRenewed(e) => {
            let mut next = license(c, batch, id(e.license_id), pos).await?;
            next.start = e.start as i64;
            next.expiry = e.expiry as i64;
            batch.licenses.replace(next.id, next, block)?;
        }
        Event::LicenseTransfer {
            from,
            to,
            id: token,
        } => {
            transfer(batch, pos, "license", *from, *to, *token);
            if !from.is_zero() {
                let mut next = license(c, batch, *token as i64, pos).await?;
                next.holder = address(*to);
                batch.licenses.replace(next.id, next, block)?;
            }
        }
        Event::KeyRequested(e) => {
            let mut next = license(c, batch, id(e.license_id), pos).await?;
            next.key_deadline = e.deadline as i64;
            next.recipient = Some(crate::keys::recipient_text(&e.recipient));
            batch.licenses.replace(next.id, next, block)?;
        }
        Event::KeyDelivered(e) => {
            let mut next = license(c, batch, id(e.license_id), pos).await?;
            // The window starts at the delivery.
            next.key_delivered_at = e.start as i64;
            next.start = e.start as i64;
            next.expiry = e.expiry as i64;
            next.key_cid = Some(text(&e.wrapped_key_cid));
            next.keeper = Some(address(e.keeper));
            batch.licenses.replace(next.id, next, block)?;
        }
        Event::LicenseRefunded(e) => {
            let mut next = license(c, batch, id(e.license_id), pos).await?;
            next.refunded = true;
            let offering_id = next.offering_id;
            batch.licenses.replace(next.id, next, block)?;
            // The refund frees the sale's supply.
            let mut o = offering(c, batch, offering_id, pos).await?;
            o.sold -= 1;
            batch.offerings.replace(o.id, o, block)?;
            // Refunds credit the payer without a PaymentCredited.
            add_to_balance(c, batch, block, e.payer, e.currency, e.amount, U256::zero()).await?;
        }
        Event::PaymentCredited(e) => {
            let row = credits::Model {
                vid: 0,
                account: address(e.account),
                currency: address(e.currency),
                license_id: id(e.license_id),
                model_id: id(e.model_id),
                amount: e.amount.to_string(),
                block_number: block,
                log_index: pos.log_index as i64,
                tx_hash: hash(pos.tx),
                valid_from: block,
                valid_to: None,
            };
            batch.credits.insert(row, block);
            add_to_balance(
                c,
                batch,
                block,
                e.account,
                e.currency,
                e.amount,
                U256::zero(),
            )
            .await?;
        }
        Event::Withdrawn(e) => {
            let row = withdrawals::Model {
                vid: 0,
                account: address(e.account),
                currency: address(e.currency),
                recipient: address(e.to),
                amount: e.amount.to_string(),
                block_number: block,
                log_index: pos.log_index as i64,
                tx_hash: hash(pos.tx),
                valid_from: block,
                valid_to: None,
            };
            batch.withdrawals.insert(row, block);
            add_to_balance(
                c,
                batch,
                block,
                e.account,
                e.currency,
                U256::zero(),
                e.amount,
            )
            .await?;
        }
        Event::OutputsCommitted(e) => {
            let Lookup::BlockTime(committed_at) = lookup else {
                return Err(DbErr::Custom(format!(
                    "no block time for the batch of block {} log {}",
                    pos.block, pos.log_index
                )));
            };
            let published = !e.uri.is_empty();
            let row = output_batches::Model {
                vid: 0,
                root: fingerprint::hex(&e.root),
                license_id: id(e.license_id),
                model_id: id(e.model_id),
                provider: address(e.provider),
                count: i64::try_from(e.count).unwrap_or(i64::MAX),
                uri: published.then(|| text(&e.uri)),
                committed_at: i64::try_from(*committed_at).unwrap_or(i64::MAX),
                block_number: block,
                log_index: pos.log_index as i64,
                tx_hash: hash(pos.tx),
                leaves_status: if published {
                    leaves_status::PENDING
                } else {
                    leaves_status::UNPUBLISHED
                }
                .into(),
                leaves_detail: None,
                leaves_attempts: 0,
                leaves_retry_at: 0,
                valid_from: block,
                valid_to: None,
            };
            batch.output_batches.insert(row, block);
        }
    }
    Ok(())
}

/// The current version of the row whose `column` is `id`: the step's own latest, else the
/// database's.
async fn current_row<E, C>(
    c: &C,
    rows: &mut Keyed<i64, E::Model>,
    column: E::Column,
    id: i64,
    what: &str,
    pos: &Position,
) -> Result<E::Model, DbErr>
where
    E: EntityTrait,
    E::Model: Versioned,
    C: ConnectionTrait,
{
    rows.get(id, || {
        E::find().filter(column.eq(id)).filter(current()).one(c)
    })
    .await?
    .ok_or_else(|| missing(what, id, pos))
}

async fn offering<C: ConnectionTrait>(
    c: &C,
    batch: &mut Batch,
    id: i64,
    pos: &Position,
) -> Result<offerings::Model, DbErr> {
    current_row::<offerings::Entity, _>(
        c,
        &mut batch.offerings,
        offerings::Column::Id,
        id,
        "offering",
        pos,
    )
    .await
}

async fn license<C: ConnectionTrait>(
    c: &C,
    batch: &mut Batch,
    id: i64,
    pos: &Position,
) -> Result<licenses::Model, DbErr> {
    current_row::<licenses::Entity, _>(
        c,
        &mut batch.licenses,
        licenses::Column::Id,
        id,
        "license",
        pos,
    )
    .await
}

fn transfer(
    batch: &mut Batch,
    pos: &Position,
    token: &str,
    from: Address,
    to: Address,
    token_id: u64,
) {
    let block = pos.block as i64;
    let row = transfers::Model {
        vid: 0,
        token: token.into(),
        token_id: token_id as i64,
        from_address: address(from),
        to_address: address(to),
        block_number: block,
        log_index: pos.log_index as i64,
        tx_hash: hash(pos.tx),
        valid_from: block,
        valid_to: None,
    };
    batch.transfers.insert(row, block);
}

async fn add_to_balance<C: ConnectionTrait>(
    c: &C,
    batch: &mut Batch,
    block: i64,
    account: Address,
    currency: Address,
    credited: U256,
    withdrawn: U256,
) -> Result<(), DbErr> {
    let key = (address(account), address(currency));
    let (account, currency) = key.clone();
    let row = batch
        .balances
        .get(key.clone(), || {
            balances::Entity::find()
                .filter(balances::Column::Account.eq(account.clone()))
                .filter(balances::Column::Currency.eq(currency.clone()))
                .filter(current())
                .one(c)
        })
        .await?;
    let parse = |s: &str| {
        U256::from_dec_str(s).map_err(|_| DbErr::Custom(format!("balance {s:?} is not a number")))
    };
    match row {
        Some(row) => {
            let mut next = row.clone();
            next.credited = (parse(&row.credited)? + credited).to_string();
            next.withdrawn = (parse(&row.withdrawn)? + withdrawn).to_string();
            batch.balances.replace(key, next, block)
        }
        None => {
            let row = balances::Model {
                vid: 0,
                account,
                currency,
                credited: credited.to_string(),
                withdrawn: withdrawn.to_string(),
                valid_from: block,
                valid_to: None,
            };
            batch.balances.insert(key, row, block);
            Ok(())
        }
    }
}

fn record_pending(batch: &mut Batch, block: i64, model_id: i64) {
    let row = fingerprints::Model {
        vid: 0,
        model_id,
        status: fingerprint_status::PENDING.into(),
        detail: None,
        tensors: 0,
        parameters: 0,
        encoding: None,
        attempts: 0,
        retry_at: 0,
        valid_from: block,
        valid_to: None,
    };
    batch.fingerprints.insert(row, block);
}

/// A string of an event as stored: NUL bytes (which anyone may put in a URI or CID they
/// send, and which PostgreSQL refuses in text, failing every retry of the step for good)
/// become U+FFFD.
fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}
