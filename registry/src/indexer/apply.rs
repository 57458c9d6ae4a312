//! Applying decoded events to the database, inside the caller's transaction. Every write is a
//! row version at the event's block (see the `migrations` crate), so a reorg can undo it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ethers::types::{Address, U256};
use fingerprint::{Fingerprint, Verdict};
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::events::{address, hash, Event, Position};
use crate::db::entity::{
    balances, credits, fingerprints, licenses, lineage, models, offerings, similarities, transfers,
    withdrawals,
};
use crate::db::{replace, Versioned};

/// Pairs less similar than this are not stored (unless the verdict says they are related).
pub const SIMILARITY_FLOOR: f64 = 0.1;

/// What the indexer learned from the content store about a minted model, before the
/// transaction that records it.
#[derive(Debug, Clone)]
pub enum Provenance {
    /// The metadata's name and the fingerprint, checked against the on-chain commitment.
    Found {
        name: Option<String>,
        fingerprint: Arc<Fingerprint>,
        encoding: Arc<Vec<u8>>,
    },
    /// Not retrievable from the content store (or no store configured).
    Unavailable {
        name: Option<String>,
        reason: String,
    },
    /// Retrieved, but not what the chain committed to, or not decodable.
    Invalid {
        name: Option<String>,
        reason: String,
    },
}

/// The registered fingerprints and the lineage, in memory, for comparing new models. Rebuilt
/// from the database after a reorg or a failed transaction.
#[derive(Debug, Default)]
pub struct Known {
    fingerprints: Vec<(i64, Arc<Fingerprint>)>,
    parents: HashMap<i64, Vec<i64>>,
}

impl Known {
    pub async fn load<C: ConnectionTrait>(c: &C) -> Result<Self, DbErr> {
        let mut known = Known::default();
        let current = || Expr::col(Alias::new("valid_to")).is_null();
        for row in lineage::Entity::find().filter(current()).all(c).await? {
            known
                .parents
                .entry(row.child_id)
                .or_default()
                .push(row.parent_id);
        }
        let rows = fingerprints::Entity::find()
            .filter(current())
            .order_by_asc(fingerprints::Column::ModelId)
            .all(c)
            .await?;
        for row in rows {
            if let Some(encoding) = row.encoding.filter(|_| row.status == "ok") {
                if let Ok(fp) = Fingerprint::decode(&encoding) {
                    known.fingerprints.push((row.model_id, Arc::new(fp)));
                }
            }
        }
        Ok(known)
    }

    /// Whether `other` is explained by `model`'s declared lineage: an ancestor, or a model
    /// sharing an ancestor with it (a sibling fine-tune of the same base reads as derived).
    fn explained(&self, model: i64, other: i64) -> bool {
        let mine = self.ancestors(model);
        mine.contains(&other) || self.ancestors(other).iter().any(|a| mine.contains(a))
    }

    fn ancestors(&self, model: i64) -> HashSet<i64> {
        let mut seen = HashSet::new();
        let mut stack = vec![model];
        while let Some(m) = stack.pop() {
            for &p in self.parents.get(&m).into_iter().flatten() {
                if seen.insert(p) {
                    stack.push(p);
                }
            }
        }
        seen
    }
}

fn id(value: U256) -> i64 {
    i64::try_from(value.as_u64()).unwrap_or(i64::MAX)
}

/// A 256-bit amount as zero-padded decimal, so text order is numeric order.
pub fn amount_key(value: U256) -> String {
    format!("{:0>78}", value.to_string())
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

/// Applies one event.
pub async fn apply<C: ConnectionTrait>(
    c: &C,
    pos: &Position,
    event: &Event,
    provenance: Option<&Provenance>,
    known: &mut Known,
) -> Result<(), DbErr> {
    let block = pos.block as i64;
    match event {
        Event::ModelMinted(e) => {
            let model_id = id(e.model_id);
            let parents: Vec<i64> = e.parents.iter().map(|p| id(p.model_id)).collect();
            known.parents.insert(model_id, parents.clone());
            let (name, flagged) = match provenance {
                Some(Provenance::Found {
                    name,
                    fingerprint,
                    encoding,
                }) => {
                    let flagged =
                        record_fingerprint(c, block, model_id, fingerprint, encoding, known)
                            .await?;
                    known.fingerprints.push((model_id, fingerprint.clone()));
                    (name.clone(), flagged)
                }
                Some(Provenance::Unavailable { name, reason }) => {
                    record_missing(c, block, model_id, "unavailable", reason).await?;
                    (name.clone(), None)
                }
                Some(Provenance::Invalid { name, reason }) => {
                    record_missing(c, block, model_id, "invalid", reason).await?;
                    (name.clone(), None)
                }
                None => {
                    record_missing(c, block, model_id, "unavailable", "no content store").await?;
                    (None, None)
                }
            };
            let m = &e.model;
            models::Model {
                vid: 0,
                id: model_id,
                owner: address(e.owner),
                creator: address(m.creator),
                minter: address(e.minter),
                weights_cid: m.weights_cid.clone(),
                content_root: fingerprint::hex(&m.content_root),
                fingerprint: fingerprint::hex(&m.fingerprint),
                metadata_uri: m.metadata_uri.clone(),
                name,
                minted_at: m.minted_at as i64,
                depth: i32::from(m.depth),
                sale_royalty_bps: e.sale_royalty_bps as i32,
                block_number: block,
                tx_hash: hash(pos.tx),
                flagged_model: flagged.map(|(m, _)| m),
                flagged_similarity: flagged.map(|(_, s)| s),
                valid_from: block,
                valid_to: None,
            }
            .insert_in(c, block)
            .await?;
            for (position, p) in e.parents.iter().enumerate() {
                lineage::Model {
                    vid: 0,
                    child_id: model_id,
                    parent_id: id(p.model_id),
                    license_id: id(p.license_id),
                    royalty_bps: i32::from(p.royalty_bps),
                    position: position as i32,
                    block_number: block,
                    valid_from: block,
                    valid_to: None,
                }
                .insert_in(c, block)
                .await?;
            }
        }
        Event::ModelTransfer {
            from,
            to,
            id: token,
        } => {
            transfer(c, pos, "model", *from, *to, *token).await?;
            // The mint's own Transfer comes before ModelMinted, which sets the owner.
            if !from.is_zero() {
                let row = models::Entity::find()
                    .filter(models::Column::Id.eq(*token as i64))
                    .filter(current())
                    .one(c)
                    .await?
                    .ok_or_else(|| missing("model", token, pos))?;
                let mut next = row.clone();
                next.owner = address(*to);
                replace(c, &row, next, block).await?;
            }
        }
        Event::OfferingPublished(e) => {
            let t = &e.terms;
            offerings::Model {
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
                terms_uri: t.terms_uri.clone(),
                terms_hash: fingerprint::hex(&t.terms_hash),
                block_number: block,
                valid_from: block,
                valid_to: None,
            }
            .insert_in(c, block)
            .await?;
        }
        Event::OfferingClosed(e) => {
            let row = offering(c, id(e.offering_id), pos).await?;
            let mut next = row.clone();
            next.closed = true;
            replace(c, &row, next, block).await?;
        }
        Event::LicensePurchased(e) => {
            let o = offering(c, id(e.offering_id), pos).await?;
            licenses::Model {
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
                block_number: block,
                valid_from: block,
                valid_to: None,
            }
            .insert_in(c, block)
            .await?;
            let mut next = o.clone();
            next.sold += 1;
            replace(c, &o, next, block).await?;
        }
        Event::LicenseRenewed(e) => {
            let row = license(c, id(e.license_id), pos).await?;
            let mut next = row.clone();
            next.start = e.start as i64;
            next.expiry = e.expiry as i64;
            replace(c, &row, next, block).await?;
        }
        Event::LicenseTransfer {
            from,
            to,
            id: token,
        } => {
            transfer(c, pos, "license", *from, *to, *token).await?;
            if !from.is_zero() {
                let row = license(c, *token as i64, pos).await?;
                let mut next = row.clone();
                next.holder = address(*to);
                replace(c, &row, next, block).await?;
            }
        }
        Event::PaymentCredited(e) => {
            credits::Model {
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
            }
            .insert_in(c, block)
            .await?;
            add_to_balance(c, block, e.account, e.currency, e.amount, U256::zero()).await?;
        }
        Event::Withdrawn(e) => {
            withdrawals::Model {
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
            }
            .insert_in(c, block)
            .await?;
            add_to_balance(c, block, e.account, e.currency, U256::zero(), e.amount).await?;
        }
    }
    Ok(())
}

async fn offering<C: ConnectionTrait>(
    c: &C,
    offering: i64,
    pos: &Position,
) -> Result<offerings::Model, DbErr> {
    offerings::Entity::find()
        .filter(offerings::Column::Id.eq(offering))
        .filter(current())
        .one(c)
        .await?
        .ok_or_else(|| missing("offering", offering, pos))
}

async fn license<C: ConnectionTrait>(
    c: &C,
    license: i64,
    pos: &Position,
) -> Result<licenses::Model, DbErr> {
    licenses::Entity::find()
        .filter(licenses::Column::Id.eq(license))
        .filter(current())
        .one(c)
        .await?
        .ok_or_else(|| missing("license", license, pos))
}

async fn transfer<C: ConnectionTrait>(
    c: &C,
    pos: &Position,
    token: &str,
    from: Address,
    to: Address,
    token_id: u64,
) -> Result<(), DbErr> {
    let block = pos.block as i64;
    transfers::Model {
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
    }
    .insert_in(c, block)
    .await
}

async fn add_to_balance<C: ConnectionTrait>(
    c: &C,
    block: i64,
    account: Address,
    currency: Address,
    credited: U256,
    withdrawn: U256,
) -> Result<(), DbErr> {
    let (account, currency) = (address(account), address(currency));
    let row = balances::Entity::find()
        .filter(balances::Column::Account.eq(account.clone()))
        .filter(balances::Column::Currency.eq(currency.clone()))
        .filter(current())
        .one(c)
        .await?;
    let parse = |s: &str| {
        U256::from_dec_str(s).map_err(|_| DbErr::Custom(format!("balance {s:?} is not a number")))
    };
    match row {
        Some(row) => {
            let mut next = row.clone();
            next.credited = (parse(&row.credited)? + credited).to_string();
            next.withdrawn = (parse(&row.withdrawn)? + withdrawn).to_string();
            replace(c, &row, next, block).await
        }
        None => {
            balances::Model {
                vid: 0,
                account,
                currency,
                credited: credited.to_string(),
                withdrawn: withdrawn.to_string(),
                valid_from: block,
                valid_to: None,
            }
            .insert_in(c, block)
            .await
        }
    }
}

async fn record_missing<C: ConnectionTrait>(
    c: &C,
    block: i64,
    model_id: i64,
    status: &str,
    reason: &str,
) -> Result<(), DbErr> {
    fingerprints::Model {
        vid: 0,
        model_id,
        status: status.into(),
        detail: Some(reason.into()),
        tensors: 0,
        parameters: 0,
        encoding: None,
        valid_from: block,
        valid_to: None,
    }
    .insert_in(c, block)
    .await
}

/// Stores the fingerprint and its similarities to every registered model; returns the most
/// similar earlier model it reads as derived from without having it as an ancestor.
async fn record_fingerprint<C: ConnectionTrait>(
    c: &C,
    block: i64,
    model_id: i64,
    fp: &Fingerprint,
    encoding: &[u8],
    known: &Known,
) -> Result<Option<(i64, f64)>, DbErr> {
    fingerprints::Model {
        vid: 0,
        model_id,
        status: "ok".into(),
        detail: None,
        tensors: fp.tensors.len() as i64,
        parameters: fp.parameters() as i64,
        encoding: Some(encoding.to_vec()),
        valid_from: block,
        valid_to: None,
    }
    .insert_in(c, block)
    .await?;
    let mut flagged: Option<(i64, f64)> = None;
    for (other, theirs) in &known.fingerprints {
        if *other == model_id {
            continue;
        }
        let cmp = fingerprint::compare(fp, theirs);
        let related = cmp.verdict != Verdict::Unrelated;
        if !related && cmp.similarity < SIMILARITY_FLOOR {
            continue;
        }
        for (a, b) in [(model_id, *other), (*other, model_id)] {
            similarities::Model {
                vid: 0,
                model_id: a,
                other_id: b,
                similarity: cmp.similarity,
                verdict: cmp.verdict.as_str().into(),
                log10_false_positive: cmp.log10_false_positive_probability,
                valid_from: block,
                valid_to: None,
            }
            .insert_in(c, block)
            .await?;
        }
        if related
            && !known.explained(model_id, *other)
            && flagged.is_none_or(|(_, s)| cmp.similarity > s)
        {
            flagged = Some((*other, cmp.similarity));
        }
    }
    Ok(flagged)
}
