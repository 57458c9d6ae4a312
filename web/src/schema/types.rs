//! The GraphQL object types over the indexed rows.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Enum, Object, Result, SimpleObject, ID};
use store::entity::{indexer_state, licenses, lineage, models, offerings, similarities};

use super::loaders::{
    Children, EdgeOfLicense, FingerprintSummary, Fingerprints, Models, Offerings, OfferingsOfModel,
    Parents, Similar, State,
};
use crate::error::{internal, OrInternal};

/// The rights a license grants.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum LicenseKind {
    /// Use and download the weights.
    Access,
    /// Make derivative models, which owe royalties.
    FineTune,
    /// Commercial use of what the model generates.
    Output,
}

impl LicenseKind {
    pub(crate) fn code(self) -> i32 {
        match self {
            LicenseKind::Access => 0,
            LicenseKind::FineTune => 1,
            LicenseKind::Output => 2,
        }
    }

    pub(crate) fn from_code(code: i32) -> Self {
        match code {
            0 => LicenseKind::Access,
            1 => LicenseKind::FineTune,
            _ => LicenseKind::Output,
        }
    }
}

/// Whether a row's block is at or below the finalized block.
pub(crate) async fn is_final(ctx: &Context<'_>, block: i64) -> Result<bool> {
    let state = ctx
        .data_unchecked::<DataLoader<State>>()
        .load_one(0)
        .await
        .map_err(|e| internal(e.as_str()))?;
    Ok(state.is_some_and(|s: indexer_state::Model| block <= s.finalized_block))
}

pub(crate) async fn model_by_id(ctx: &Context<'_>, id: i64) -> Result<Option<Model>> {
    Ok(ctx
        .data_unchecked::<DataLoader<Models>>()
        .load_one(id)
        .await
        .map_err(|e| internal(e.as_str()))?
        .map(Model))
}

/// A registered model.
#[derive(Debug, Clone)]
pub struct Model(pub models::Model);

#[Object]
impl Model {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The metadata's name (null when the metadata could not be fetched).
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn owner(&self) -> &str {
        &self.0.owner
    }
    async fn creator(&self) -> &str {
        &self.0.creator
    }
    async fn minter(&self) -> &str {
        &self.0.minter
    }
    async fn weights_cid(&self) -> &str {
        &self.0.weights_cid
    }
    async fn content_root(&self) -> &str {
        &self.0.content_root
    }
    /// The fingerprint commitment (hash of its canonical encoding).
    async fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
    async fn metadata_uri(&self) -> &str {
        &self.0.metadata_uri
    }
    /// Unix time of the mint.
    async fn minted_at(&self) -> i64 {
        self.0.minted_at
    }
    /// 0 for a base model, else 1 + the deepest parent's depth.
    async fn depth(&self) -> i32 {
        self.0.depth
    }
    async fn sale_royalty_bps(&self) -> i32 {
        self.0.sale_royalty_bps
    }
    /// Share of every sale of every derivative owed to this model, at least (fixed at mint):
    /// its fine-tune offerings ask at least this, and its owner's own derivatives owe it.
    async fn derivative_royalty_bps(&self) -> i32 {
        self.0.derivative_royalty_bps
    }
    /// Whether the weights are stored only encrypted: access and fine-tune licenses then buy
    /// the model key, delivered wrapped to the buyer (the price waits in escrow until then).
    async fn encrypted(&self) -> bool {
        self.0.encrypted
    }
    /// Block of the mint.
    async fn block(&self) -> i64 {
        self.0.block_number
    }
    async fn tx_hash(&self) -> &str {
        &self.0.tx_hash
    }
    /// Whether the model as shown is final: the block of its last change (the mint, a
    /// transfer) is at or below the finalized block.
    #[graphql(name = "final")]
    async fn is_final(&self, ctx: &Context<'_>) -> Result<bool> {
        is_final(ctx, self.0.valid_from).await
    }
    /// Set when the model reads as derived from a model its declared lineage does not explain.
    async fn flagged(&self) -> Option<Flag> {
        Some(Flag {
            model_id: self.0.flagged_model?,
            similarity: self.0.flagged_similarity.unwrap_or_default(),
        })
    }
    /// The declared parents, with the license used and the royalty share owed (the first
    /// `first`, default 20, at most 100).
    #[graphql(complexity = "super::query::cost(first, child_complexity)")]
    async fn parents(&self, ctx: &Context<'_>, first: Option<i32>) -> Result<Vec<LineageEdge>> {
        let size = super::page::page_size(first)?;
        let edges = ctx
            .data_unchecked::<DataLoader<Parents>>()
            .load_one(self.0.id)
            .await
            .map_err(|e| internal(e.as_str()))?;
        Ok(edges
            .unwrap_or_default()
            .into_iter()
            .take(size)
            .map(LineageEdge)
            .collect())
    }
    /// The models that declare this one as a parent (the first `first`, default 20, at most
    /// 100; `lineage` and `models(where: {parent})` page through more).
    #[graphql(complexity = "super::query::cost(first, child_complexity)")]
    async fn children(&self, ctx: &Context<'_>, first: Option<i32>) -> Result<Vec<LineageEdge>> {
        let size = super::page::page_size(first)?;
        let edges = ctx
            .data_unchecked::<DataLoader<Children>>()
            .load_one(self.0.id)
            .await
            .map_err(|e| internal(e.as_str()))?;
        Ok(edges
            .unwrap_or_default()
            .into_iter()
            .take(size)
            .map(LineageEdge)
            .collect())
    }
    /// The model's offerings, optionally of one kind or only those open for sale: the first
    /// `first` (default 20, at most 100; `offerings(where: {model})` pages through more).
    #[graphql(complexity = "super::query::cost(first, child_complexity)")]
    async fn offerings(
        &self,
        ctx: &Context<'_>,
        kind: Option<LicenseKind>,
        open: Option<bool>,
        first: Option<i32>,
    ) -> Result<Vec<Offering>> {
        let size = super::page::page_size(first)?;
        let rows = ctx
            .data_unchecked::<DataLoader<OfferingsOfModel>>()
            .load_one(self.0.id)
            .await
            .map_err(|e| internal(e.as_str()))?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .filter(|o| kind.is_none_or(|k| k.code() == o.kind))
            .filter(|o| open.is_none_or(|open| open != o.closed))
            .take(size)
            .map(Offering)
            .collect())
    }
    /// The fingerprint as the indexer found it in the content store.
    async fn fingerprint_summary(&self, ctx: &Context<'_>) -> Result<Option<FingerprintInfo>> {
        Ok(ctx
            .data_unchecked::<DataLoader<Fingerprints>>()
            .load_one(self.0.id)
            .await
            .map_err(|e| internal(e.as_str()))?
            .map(FingerprintInfo))
    }
    /// Models whose fingerprints are at least this similar, most similar first (the first
    /// `first`, default 20, at most 100).
    #[graphql(complexity = "super::query::cost(first, child_complexity)")]
    async fn similar(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0.5)] min_similarity: f64,
        first: Option<i32>,
    ) -> Result<Vec<SimilarModel>> {
        let size = super::page::page_size(first)?;
        let rows = ctx
            .data_unchecked::<DataLoader<Similar>>()
            .load_one(self.0.id)
            .await
            .map_err(|e| internal(e.as_str()))?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.similarity >= min_similarity)
            .take(size)
            .map(SimilarModel)
            .collect())
    }
}

/// A model flagged as derived from `model` without declaring it.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct Flag {
    #[graphql(skip)]
    model_id: i64,
    similarity: f64,
}

#[ComplexObject]
impl Flag {
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        model_by_id(ctx, self.model_id).await
    }
}

/// The fingerprint summary of a model.
#[derive(Debug, Clone)]
pub struct FingerprintInfo(pub(crate) FingerprintSummary);

#[Object]
impl FingerprintInfo {
    /// `ok` (fetched, checked, compared), `pending` (not fetched yet, or the content store
    /// could not give it and it is retried; `detail` says why) or `invalid` (not the
    /// committed fingerprint; never retried).
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Why the fingerprint is `invalid`, or why its last fetch failed.
    async fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }
    async fn tensors(&self) -> i64 {
        self.0.tensors
    }
    async fn parameters(&self) -> i64 {
        self.0.parameters
    }
}

/// A pair of similar models.
#[derive(Debug, Clone)]
pub struct SimilarModel(pub(crate) similarities::Model);

#[Object]
impl SimilarModel {
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        model_by_id(ctx, self.0.other_id).await
    }
    /// 0 (unrelated) to 1 (equal signatures).
    async fn similarity(&self) -> f64 {
        self.0.similarity
    }
    /// `identical`, `derived` or `unrelated`.
    async fn verdict(&self) -> &str {
        &self.0.verdict
    }
    /// log10 of the probability that unrelated models would look this related.
    async fn log10_false_positive_probability(&self) -> f64 {
        self.0.log10_false_positive
    }
}

/// One lineage edge: `child` was derived from `parent`.
#[derive(Debug, Clone)]
pub struct LineageEdge(pub lineage::Model);

#[Object]
impl LineageEdge {
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        model_by_id(ctx, self.0.parent_id).await
    }
    async fn child(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        model_by_id(ctx, self.0.child_id).await
    }
    async fn parent_id(&self) -> ID {
        ID(self.0.parent_id.to_string())
    }
    async fn child_id(&self) -> ID {
        ID(self.0.child_id.to_string())
    }
    /// The fine-tune license presented at mint (0: the minter owned the parent).
    async fn license_id(&self) -> ID {
        ID(self.0.license_id.to_string())
    }
    /// Share of every sale of the child owed to the parent.
    async fn royalty_bps(&self) -> i32 {
        self.0.royalty_bps
    }
}

/// A license offering.
#[derive(Debug, Clone)]
pub struct Offering(pub offerings::Model);

#[Object]
impl Offering {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        model_by_id(ctx, self.0.model_id).await
    }
    async fn model_id(&self) -> ID {
        ID(self.0.model_id.to_string())
    }
    async fn publisher(&self) -> &str {
        &self.0.publisher
    }
    async fn kind(&self) -> LicenseKind {
        LicenseKind::from_code(self.0.kind)
    }
    /// `0x0000…0000` for the native currency, else an ERC-20 address.
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// In the currency's base units (wei), as a decimal string.
    async fn price(&self) -> &str {
        &self.0.price
    }
    /// Seconds per purchase or renewal; 0 = perpetual.
    async fn duration(&self) -> i64 {
        self.0.duration
    }
    /// 0 = unlimited.
    async fn supply_cap(&self) -> i64 {
        self.0.supply_cap
    }
    async fn sold(&self) -> i64 {
        self.0.sold
    }
    async fn closed(&self) -> bool {
        self.0.closed
    }
    /// Whether it sells now: open, and its publisher still owns the model (an offering of a
    /// former owner sells nothing, unless the model comes back).
    async fn on_sale(&self, ctx: &Context<'_>) -> Result<bool> {
        if self.0.closed {
            return Ok(false);
        }
        Ok(model_by_id(ctx, self.0.model_id)
            .await?
            .is_some_and(|m| m.0.owner == self.0.publisher))
    }
    /// Seconds after closing during which its licenses can still be renewed.
    async fn renewal_period(&self) -> i64 {
        self.0.renewal_period
    }
    /// Seconds the owner or a keeper has to deliver the model key after a purchase (escrowed
    /// offerings of encrypted models); 0 when not escrowed.
    async fn delivery_period(&self) -> i64 {
        self.0.delivery_period
    }
    async fn transferable(&self) -> bool {
        self.0.transferable
    }
    async fn commercial_use(&self) -> bool {
        self.0.commercial_use
    }
    async fn royalty_bps(&self) -> i32 {
        self.0.royalty_bps
    }
    async fn terms_uri(&self) -> &str {
        &self.0.terms_uri
    }
    async fn terms_hash(&self) -> &str {
        &self.0.terms_hash
    }
    async fn block(&self) -> i64 {
        self.0.block_number
    }
    /// Whether the row as shown is final: the block of its last change is at or below the
    /// finalized block (an older creation does not make a recent change final).
    #[graphql(name = "final")]
    async fn is_final(&self, ctx: &Context<'_>) -> Result<bool> {
        is_final(ctx, self.0.valid_from).await
    }
}

/// A sold license, with the terms it paid for.
#[derive(Debug, Clone)]
pub struct License(pub licenses::Model);

impl License {
    pub(crate) fn valid_at(&self, at: i64) -> bool {
        !self.0.refunded
            && !self.awaits_key()
            && self.0.start <= at
            && (self.0.expiry == 0 || at < self.0.expiry)
    }

    /// An escrowed purchase whose key has not been delivered (nor refunded).
    fn awaits_key(&self) -> bool {
        self.0.key_deadline > 0 && self.0.key_delivered_at == 0 && !self.0.refunded
    }
}

#[Object]
impl License {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn offering(&self, ctx: &Context<'_>) -> Result<Option<Offering>> {
        Ok(ctx
            .data_unchecked::<DataLoader<Offerings>>()
            .load_one(self.0.offering_id)
            .await
            .map_err(|e| internal(e.as_str()))?
            .map(Offering))
    }
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        model_by_id(ctx, self.0.model_id).await
    }
    async fn model_id(&self) -> ID {
        ID(self.0.model_id.to_string())
    }
    async fn kind(&self) -> LicenseKind {
        LicenseKind::from_code(self.0.kind)
    }
    /// `0x0000…0000` once a derivative's mint consumed the license (see `consumedBy`).
    async fn holder(&self) -> &str {
        &self.0.holder
    }
    /// The derivative whose mint consumed this fine-tune license (one license, one
    /// derivative); null while unused.
    async fn consumed_by(&self, ctx: &Context<'_>) -> Result<Option<Model>> {
        let edge = ctx
            .data_unchecked::<DataLoader<EdgeOfLicense>>()
            .load_one(self.0.id)
            .await
            .map_err(|e| internal(e.as_str()))?;
        match edge {
            Some(edge) => model_by_id(ctx, edge.child_id).await,
            None => Ok(None),
        }
    }
    async fn payer(&self) -> &str {
        &self.0.payer
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// What the purchase paid, in base units.
    async fn price(&self) -> &str {
        &self.0.price
    }
    async fn duration(&self) -> i64 {
        self.0.duration
    }
    async fn transferable(&self) -> bool {
        self.0.transferable
    }
    async fn commercial_use(&self) -> bool {
        self.0.commercial_use
    }
    async fn royalty_bps(&self) -> i32 {
        self.0.royalty_bps
    }
    async fn terms_hash(&self) -> &str {
        &self.0.terms_hash
    }
    /// Valid from (unix time) …
    async fn start(&self) -> i64 {
        self.0.start
    }
    /// … until (exclusive); 0 = perpetual.
    async fn expiry(&self) -> i64 {
        self.0.expiry
    }
    /// Whether the license is valid at unix time `at`.
    async fn active_at(&self, at: i64) -> bool {
        self.valid_at(at)
    }
    /// Whether the purchase was escrowed (an access or fine-tune license of an encrypted
    /// model): its price waited for the model key.
    async fn escrowed(&self) -> bool {
        self.0.key_deadline > 0
    }
    /// Escrowed purchases: the key must be delivered before this unix time, else the price is
    /// refundable. 0 when not escrowed.
    async fn key_deadline(&self) -> i64 {
        self.0.key_deadline
    }
    /// The buyer's age recipient (`age1…`) the key is wrapped to; null when not escrowed.
    async fn recipient(&self) -> Option<&str> {
        self.0.recipient.as_deref()
    }
    /// Whether the model key was delivered (the escrow released).
    async fn key_delivered(&self) -> bool {
        self.0.key_delivered_at > 0
    }
    /// Unix time of the key's delivery, which starts the license's window; null until then.
    async fn delivered_at(&self) -> Option<i64> {
        (self.0.key_delivered_at > 0).then_some(self.0.key_delivered_at)
    }
    /// CID of the model key wrapped to the buyer's recipient.
    async fn key_cid(&self) -> Option<&str> {
        self.0.key_cid.as_deref()
    }
    /// The account that delivered the key (the owner or an approved keeper).
    async fn keeper(&self) -> Option<&str> {
        self.0.keeper.as_deref()
    }
    /// Escrowed and still waiting for its key.
    async fn pending_delivery(&self) -> bool {
        self.awaits_key()
    }
    /// Whether the price was refunded because the key was not delivered in time (the license
    /// was burnt).
    async fn refunded(&self) -> bool {
        self.0.refunded
    }
    /// Block of the purchase.
    async fn block(&self) -> i64 {
        self.0.block_number
    }
    /// Whether the row as shown is final: the block of its last change is at or below the
    /// finalized block (an older creation does not make a recent change final).
    #[graphql(name = "final")]
    async fn is_final(&self, ctx: &Context<'_>) -> Result<bool> {
        is_final(ctx, self.0.valid_from).await
    }
}

/// Credited and withdrawn amounts of one account in one currency (base units).
#[derive(SimpleObject, Debug, Clone)]
pub struct Royalty {
    pub account: String,
    pub currency: String,
    /// Everything ever credited: sales and royalties.
    pub credited: String,
    pub withdrawn: String,
    /// What the account may withdraw now: credited − withdrawn.
    pub balance: String,
}

impl Royalty {
    pub(crate) fn from_row(row: store::entity::balances::Model) -> Result<Self> {
        let parse = |s: &str| ethers::types::U256::from_dec_str(s).or_internal();
        let balance = parse(&row.credited)?.saturating_sub(parse(&row.withdrawn)?);
        Ok(Royalty {
            account: row.account,
            currency: row.currency,
            credited: row.credited,
            withdrawn: row.withdrawn,
            balance: balance.to_string(),
        })
    }
}

/// The answer of the rights check.
#[derive(SimpleObject, Debug, Clone)]
pub struct Rights {
    pub allowed: bool,
    /// The account owns the model (which grants every right).
    pub owner: bool,
    /// The license that grants the right: the perpetual one, else the one lasting longest.
    pub license: Option<License>,
    /// The time the answer is for.
    pub at: i64,
}

/// A block: number and hash.
#[derive(SimpleObject, Debug, Clone)]
pub struct BlockRef {
    pub number: i64,
    pub hash: Option<String>,
}

/// The indexer's progress.
#[derive(SimpleObject, Debug, Clone)]
pub struct Meta {
    /// The chain head the indexer last saw.
    pub head: BlockRef,
    /// Rows at or below this block are final.
    pub finalized: BlockRef,
    /// The last block applied.
    pub cursor: BlockRef,
    /// Unix time of the indexer's last write.
    pub indexed_at: i64,
    pub chain_id: i64,
}

/// A reorg the indexer went through.
#[derive(SimpleObject, Debug, Clone)]
pub struct ReorgNotice {
    pub id: ID,
    /// The block the indexer was at when it noticed.
    pub detected_at: i64,
    /// Everything above this block was undone and re-applied from the new chain.
    pub ancestor: i64,
    pub depth: i64,
    /// Unix time.
    pub at: i64,
}
