//! Checking an output against its receipt and the chain: the file's hash is the leaf's, the
//! proof leads from the leaf to the root, the root was committed on this chain's market under
//! the receipt's license, of the receipt's model. The market accepts a batch only from the
//! holder of an output license valid at the block's time, so a committed root is that proof.

use std::path::Path;

use ethers::types::{Address, H256, U256};

use super::batch::sha256_file;
use super::{tree, Receipt};
use crate::market::Market;
use crate::Result;

/// What a valid receipt shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    pub model: U256,
    pub license: U256,
    /// The license's holder that committed the batch (`None`: the node has no log of it).
    pub provider: Option<Address>,
    pub root: H256,
    pub block: u64,
    /// The block's time: the output was committed by then.
    pub committed_at: u64,
    /// What the provider stated.
    pub produced_at: u64,
}

/// The verdict on an output and its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid(Valid),
    /// Why not, in words that name what differs.
    Invalid(String),
}

/// Checks the output at `file` against `receipt` and the chain `market` is on.
pub async fn check(market: &Market, file: &Path, receipt: &Receipt) -> Result<Verdict> {
    let invalid = |reason: String| Ok(Verdict::Invalid(reason));
    let leaf = &receipt.leaf;
    let sha = sha256_file(file, &|_| {})?;
    if sha != leaf.content_sha256 {
        return invalid(format!(
            "the file changed: its SHA-256 is {sha:?}, the receipt's is {:?}",
            leaf.content_sha256
        ));
    }
    let leaf_hash = leaf.hash();
    if tree::fold(&leaf_hash, &receipt.proof) != receipt.root {
        return invalid(format!(
            "the proof does not lead from the leaf to the root {:?}",
            receipt.root
        ));
    }
    let deployment = market.deployment();
    if leaf.chain_id != deployment.chain_id {
        return invalid(format!(
            "the receipt is for chain {}, the node is on chain {} (check it with a node of that chain)",
            leaf.chain_id, deployment.chain_id
        ));
    }
    if leaf.market != deployment.market {
        return invalid(format!(
            "the receipt is for market {:?}, the deployment's is {:?}",
            leaf.market, deployment.market
        ));
    }
    let Some(batch) = market.output_batch(receipt.root).await? else {
        return invalid(format!("root {:?} was never committed", receipt.root));
    };
    if batch.license != leaf.license_id {
        return invalid(format!(
            "root {:?} was committed under license {}, not {}",
            receipt.root, batch.license, leaf.license_id
        ));
    }
    // A license's model never changes: the latest state answers for any block.
    let license = market.license(leaf.license_id).await?;
    if license.license.model_id != leaf.model_id {
        return invalid(format!(
            "license {} is of model {}, not {}",
            leaf.license_id, license.license.model_id, leaf.model_id
        ));
    }
    if leaf.produced_at > batch.committed_at {
        return invalid(format!(
            "the output is dated {}, after its commitment at {}",
            crate::amount::format_instant(leaf.produced_at),
            crate::amount::format_instant(batch.committed_at)
        ));
    }
    // Only the event names the provider; a node that keeps no logs that old still answers
    // the rest.
    let provider = match market
        .committed_batch(leaf.license_id, receipt.root, batch.block)
        .await
    {
        Ok(event) => Some(event.provider),
        Err(e) => {
            tracing::warn!("the provider of batch {:?} is unknown: {e}", receipt.root);
            None
        }
    };
    Ok(Verdict::Valid(Valid {
        model: leaf.model_id,
        license: leaf.license_id,
        provider,
        root: receipt.root,
        block: batch.block,
        committed_at: batch.committed_at,
        produced_at: leaf.produced_at,
    }))
}
