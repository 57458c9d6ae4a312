//! Checking an output against its receipt and the chain: the file's hash is the leaf's, the
//! proof leads from the leaf to the root, the root was committed on this chain's market under
//! the receipt's license, of the receipt's model. The market accepts a batch only from the
//! holder of an output license valid at the block's time, so a committed root is that proof.

use std::path::Path;

use ethers::types::{Address, H256, U256};

use contracts::license_market::OutputsCommittedFilter;
use ethers::contract::EthEvent;

use super::batch::sha256_file;
use super::inclusion::find_log;
use super::{tree, Receipt};
use crate::deploy::Deployment;
use crate::market::Market;
use crate::{Error, Result};

/// What a valid receipt shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    pub model: U256,
    pub license: U256,
    /// The license's holder that committed the batch (`None`: the node has no log of it).
    pub provider: Option<Address>,
    pub root: H256,
    pub block: u64,
    /// The block's hash (`None`: the node has no log of the commitment). Offline, the trusted
    /// hash: compare it with the hash of block `block` from a source you trust.
    pub block_hash: Option<H256>,
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

/// The checks that need no chain: the file is the leaf's, the proof leads from the leaf to
/// the root, and the leaf names this chain and market. `Some(reason)` when one fails.
fn check_locally(
    file: &Path,
    receipt: &Receipt,
    deployment: &Deployment,
) -> Result<Option<String>> {
    let leaf = &receipt.leaf;
    let sha = sha256_file(file, &|_| {})?;
    if sha != leaf.content_sha256 {
        return Ok(Some(format!(
            "the file changed: its SHA-256 is {sha:?}, the receipt's is {:?}",
            leaf.content_sha256
        )));
    }
    let leaf_hash = leaf.hash();
    if tree::fold(&leaf_hash, &receipt.proof) != receipt.root {
        return Ok(Some(format!(
            "the proof does not lead from the leaf to the root {:?}",
            receipt.root
        )));
    }
    if leaf.chain_id != deployment.chain_id {
        return Ok(Some(format!(
            "the receipt is for chain {}, the deployment is on chain {} (check it with that chain's)",
            leaf.chain_id, deployment.chain_id
        )));
    }
    if leaf.market != deployment.market {
        return Ok(Some(format!(
            "the receipt is for market {:?}, the deployment's is {:?}",
            leaf.market, deployment.market
        )));
    }
    Ok(None)
}

/// An output dated after its commitment is refused.
fn dated_after(produced_at: u64, committed_at: u64) -> Option<String> {
    (produced_at > committed_at).then(|| {
        format!(
            "the output is dated {}, after its commitment at {}",
            crate::amount::format_instant(produced_at),
            crate::amount::format_instant(committed_at)
        )
    })
}

/// Checks the output at `file` against `receipt` and the chain `market` is on.
pub async fn check(market: &Market, file: &Path, receipt: &Receipt) -> Result<Verdict> {
    let invalid = |reason: String| Ok(Verdict::Invalid(reason));
    let leaf = &receipt.leaf;
    if let Some(reason) = check_locally(file, receipt, market.deployment())? {
        return invalid(reason);
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
    if let Some(reason) = dated_after(leaf.produced_at, batch.committed_at) {
        return invalid(reason);
    }
    // Only the event names the provider; a node that keeps no logs that old still answers
    // the rest.
    let event = match market
        .committed_batch(leaf.license_id, receipt.root, batch.block)
        .await
    {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!("the provider of batch {:?} is unknown: {e}", receipt.root);
            None
        }
    };
    Ok(Verdict::Valid(Valid {
        model: leaf.model_id,
        license: leaf.license_id,
        provider: event.as_ref().map(|e| e.provider),
        root: receipt.root,
        block: batch.block,
        block_hash: event.map(|e| e.block_hash),
        committed_at: batch.committed_at,
        produced_at: leaf.produced_at,
    }))
}

/// Checks the output at `file` against `receipt` with no node: the receipt's bundled header
/// must hash to `trusted` (a block hash the verifier trusts), its receipt proof must lead to
/// the header's receipts root, and the transaction must have succeeded and emitted
/// `OutputsCommitted` from `deployment`'s market with the receipt's root, license and model.
/// The market emits it only for the holder of an output license valid at the block's time.
/// The chain id cannot be read from a header: it is the one the trusted hash was taken from.
pub fn check_offline(
    file: &Path,
    receipt: &Receipt,
    deployment: &Deployment,
    trusted: H256,
) -> Result<Verdict> {
    let invalid = |reason: String| Ok(Verdict::Invalid(reason));
    let leaf = &receipt.leaf;
    if let Some(reason) = check_locally(file, receipt, deployment)? {
        return invalid(reason);
    }
    let inclusion = receipt.inclusion.as_ref().ok_or_else(|| Error::Inclusion {
        block: receipt.block_hash,
        reason: "the receipt bundles no block header and receipt proof; check it against a \
                 node (without --trusted-block)"
            .into(),
    })?;
    let included = match inclusion.open(trusted) {
        Ok(included) => included,
        Err(reason) => return invalid(reason),
    };
    let events: Vec<OutputsCommittedFilter> = find_log(
        &included,
        deployment.market,
        OutputsCommittedFilter::signature(),
    )
    .into_iter()
    .filter_map(|log| {
        <OutputsCommittedFilter as EthEvent>::decode_log(&ethers::abi::RawLog {
            topics: log.topics,
            data: log.data.to_vec(),
        })
        .ok()
    })
    .collect();
    let Some(event) = events.iter().find(|e| H256(e.root) == receipt.root) else {
        return invalid(format!(
            "the transaction in block {} committed no root {:?} on market {:?}",
            included.block, receipt.root, deployment.market
        ));
    };
    if event.license_id != leaf.license_id {
        return invalid(format!(
            "root {:?} was committed under license {}, not {}",
            receipt.root, event.license_id, leaf.license_id
        ));
    }
    if event.model_id != leaf.model_id {
        return invalid(format!(
            "license {} is of model {}, not {}",
            leaf.license_id, event.model_id, leaf.model_id
        ));
    }
    if let Some(reason) = dated_after(leaf.produced_at, included.timestamp) {
        return invalid(reason);
    }
    Ok(Verdict::Valid(Valid {
        model: leaf.model_id,
        license: leaf.license_id,
        provider: Some(event.provider),
        root: receipt.root,
        block: included.block,
        block_hash: Some(trusted),
        committed_at: included.timestamp,
        produced_at: leaf.produced_at,
    }))
}
