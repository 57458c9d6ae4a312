//! Provenance against the registry: the fingerprints of registered models, fetched through
//! their metadata and checked against their on-chain commitments, and the scan that tells
//! whether new weights read as derived from any of them.

use ethers::types::U256;
use fingerprint::{Comparison, Fingerprint, Verdict};

use crate::content::{cids, Store};
use crate::market::{Market, Model};
use crate::metadata::{self, ModelMetadata};
use crate::{Error, Result};

/// Fingerprint encodings are a few bytes per neuron; this bounds what a hostile metadata
/// document can make us load.
pub const MAX_FINGERPRINT_BYTES: u64 = 1 << 30;

/// A registered model that the new weights read as derived from (or identical to).
#[derive(Debug, Clone)]
pub struct Related {
    pub model: u64,
    pub comparison: Comparison,
}

/// A registered model that could not be compared, and why.
#[derive(Debug)]
pub struct Skipped {
    pub model: u64,
    pub reason: Error,
}

/// The metadata document a model's `metadataUri` points at.
pub async fn metadata_of(store: &Store, model: &Model) -> Result<ModelMetadata> {
    let cid = cids::parse(&model.metadata_uri)?;
    let bytes = store.read_bytes(&cid, metadata::MAX_BYTES).await?;
    ModelMetadata::from_json(&bytes, &model.metadata_uri)
}

/// The fingerprint a model's metadata points at, checked against its on-chain commitment.
pub async fn registered_fingerprint(store: &Store, model: &Model) -> Result<Fingerprint> {
    let metadata = metadata_of(store, model).await?;
    let cid = cids::parse(&metadata.fingerprint)?;
    let bytes = store.read_bytes(&cid, MAX_FINGERPRINT_BYTES).await?;
    let hash = fingerprint::encoding::hash_encoding(&bytes);
    if hash != model.fingerprint {
        return Err(Error::Metadata {
            source_uri: metadata.fingerprint,
            reason: format!(
                "the fingerprint stored there hashes to {}, the chain holds {}",
                fingerprint::hex(&hash),
                fingerprint::hex(&model.fingerprint)
            ),
        });
    }
    Ok(Fingerprint::decode(&bytes)?)
}

/// Compares `fp` with every registered model's fingerprint. Returns the models it reads as
/// derived from or identical to (most similar first), and those that could not be compared.
pub async fn scan(
    market: &Market,
    store: &Store,
    fp: &Fingerprint,
) -> Result<(Vec<Related>, Vec<Skipped>)> {
    let total = market.total_models().await?;
    let mut related = Vec::new();
    let mut skipped = Vec::new();
    for id in 1..=total {
        let model = market.model(U256::from(id)).await?.model;
        match registered_fingerprint(store, &model).await {
            Ok(theirs) => {
                let comparison = fingerprint::compare(fp, &theirs);
                if comparison.verdict != Verdict::Unrelated {
                    related.push(Related {
                        model: id,
                        comparison,
                    });
                }
            }
            Err(reason) => skipped.push(Skipped { model: id, reason }),
        }
    }
    related.sort_by(|a, b| b.comparison.similarity.total_cmp(&a.comparison.similarity));
    Ok((related, skipped))
}
