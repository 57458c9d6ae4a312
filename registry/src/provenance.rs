//! Provenance against the registry: the fingerprints of registered models, fetched through
//! their metadata and checked against their on-chain commitments, and the scan that tells
//! whether new weights read as derived from any of them.

use std::collections::{HashMap, HashSet};

use fingerprint::{Comparison, Fingerprint, Verdict};

use crate::market::{Market, Model};
use crate::metadata::{self, ModelMetadata};
use crate::{Error, Result};
use content::{cids, Store};

/// Fingerprint encodings are a few bytes per neuron; this bounds what a hostile metadata
/// document can make us load.
pub const MAX_FINGERPRINT_BYTES: u64 = 1 << 30;

/// A registered model that the new weights read as derived from (or identical to).
#[derive(Debug, Clone)]
pub struct Related {
    pub model: u64,
    pub comparison: Comparison,
    /// The declared lineage explains the relation: the model is an ancestor of the new one,
    /// or shares an ancestor with it (a sibling fine-tune of the same base reads as derived).
    pub explained: bool,
}

/// A registered model that could not be compared, and why.
#[derive(Debug)]
pub struct Skipped {
    pub model: u64,
    pub reason: Error,
}

/// The metadata document a model's `metadataUri` points at.
pub async fn metadata_of(store: &Store, model: &Model) -> Result<ModelMetadata> {
    metadata_at(store, &model.metadata_uri).await
}

/// The metadata document at `uri` (a model's `metadataUri`).
pub async fn metadata_at(store: &Store, uri: &str) -> Result<ModelMetadata> {
    let cid = cids::parse(uri)?;
    let bytes = store.read_bytes(&cid, metadata::MAX_BYTES).await?;
    ModelMetadata::from_json(&bytes, uri)
}

/// The fingerprint a model's metadata points at, checked against its on-chain commitment.
pub async fn registered_fingerprint(store: &Store, model: &Model) -> Result<Fingerprint> {
    let metadata = metadata_of(store, model).await?;
    let bytes = fingerprint_bytes(store, &metadata, &model.fingerprint).await?;
    Ok(Fingerprint::decode(&bytes)?)
}

/// The canonical fingerprint encoding `metadata` points at, checked against the model's
/// on-chain `commitment`.
pub async fn fingerprint_bytes(
    store: &Store,
    metadata: &ModelMetadata,
    commitment: &[u8; 32],
) -> Result<Vec<u8>> {
    let cid = cids::parse(&metadata.fingerprint)?;
    let bytes = store.read_bytes(&cid, MAX_FINGERPRINT_BYTES).await?;
    let hash = fingerprint::encoding::hash_encoding(&bytes);
    if &hash != commitment {
        return Err(Error::Metadata {
            source_uri: metadata.fingerprint.clone(),
            reason: format!(
                "the fingerprint stored there hashes to {}, the chain holds {}",
                fingerprint::hex(&hash),
                fingerprint::hex(commitment)
            ),
        });
    }
    Ok(bytes)
}

/// Which similar models a model's declared lineage explains: `other` is an ancestor of the
/// model (whose parents are `declared`), or shares an ancestor with it (a sibling fine-tune of
/// the same base reads as derived). The one rule for `mint`, before a model is minted, and
/// for the indexer, which flags a model whose similarity to an earlier one it does not
/// explain. `parents` holds every registered model's parents.
pub fn explained(parents: &HashMap<u64, Vec<u64>>, declared: &[u64], other: u64) -> bool {
    let mine = lineage_of(parents, declared);
    mine.contains(&other)
        || lineage_of(parents, &[other])
            .iter()
            .any(|a| mine.contains(a))
}

/// Every ancestor of the models in `start` (which are included).
fn lineage_of(parents: &HashMap<u64, Vec<u64>>, start: &[u64]) -> HashSet<u64> {
    let mut seen: HashSet<u64> = start.iter().copied().collect();
    let mut stack = start.to_vec();
    while let Some(m) = stack.pop() {
        for &p in parents.get(&m).into_iter().flatten() {
            if seen.insert(p) {
                stack.push(p);
            }
        }
    }
    seen
}

/// Compares `fp` with every registered model's fingerprint. Returns the models it reads as
/// derived from or identical to (most similar first), each marked as explained or not by the
/// `declared` parents, and the models that could not be compared.
pub async fn scan(
    market: &Market,
    store: &Store,
    fp: &Fingerprint,
    declared: &[u64],
) -> Result<(Vec<Related>, Vec<Skipped>)> {
    let mut related = Vec::new();
    let mut skipped = Vec::new();
    let mut parents: HashMap<u64, Vec<u64>> = HashMap::new();
    for minted in market.minted_models().await? {
        let id = minted.model_id.as_u64();
        parents.insert(
            id,
            minted.parents.iter().map(|p| p.model_id.as_u64()).collect(),
        );
        match registered_fingerprint(store, &minted.model).await {
            Ok(theirs) => {
                let comparison = fingerprint::compare(fp, &theirs);
                if comparison.verdict != Verdict::Unrelated {
                    related.push(Related {
                        model: id,
                        comparison,
                        explained: false,
                    });
                }
            }
            Err(reason) => skipped.push(Skipped { model: id, reason }),
        }
    }
    for r in &mut related {
        r.explained = explained(&parents, declared, r.model);
    }
    related.sort_by(|a, b| b.comparison.similarity.total_cmp(&a.comparison.similarity));
    Ok((related, skipped))
}
