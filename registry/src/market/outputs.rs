//! Output batches: an output license's holder commits the Merkle root of a batch of outputs,
//! once; anyone reads a batch back by its root.

use contracts::license_market::OutputsCommittedFilter;
use ethers::contract::EthEvent;
use ethers::types::{Address, Filter, H256, U256};

use super::{one_event, Market};
use crate::chain::{self, Target};
use crate::Result;

/// A committed batch, as `OutputsCommitted` recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBatch {
    pub license: U256,
    pub model: U256,
    pub provider: Address,
    pub root: H256,
    pub count: u64,
    pub uri: String,
    pub tx: H256,
    pub block: u64,
    pub block_hash: H256,
}

/// A batch as the market stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBatch {
    pub license: U256,
    /// The block's time.
    pub committed_at: u64,
    pub block: u64,
    pub count: u64,
}

impl CommittedBatch {
    fn from_event(e: OutputsCommittedFilter, tx: H256, block: u64, block_hash: H256) -> Self {
        CommittedBatch {
            license: e.license_id,
            model: e.model_id,
            provider: e.provider,
            root: H256(e.root),
            count: e.count,
            uri: e.uri,
            tx,
            block,
            block_hash,
        }
    }

    fn from_log(log: ethers::types::Log) -> Result<Self> {
        let tx = log.transaction_hash.unwrap_or_default();
        let block = log.block_number.map(|b| b.as_u64()).unwrap_or_default();
        let block_hash = log.block_hash.unwrap_or_default();
        let e: OutputsCommittedFilter = super::decode(log, "OutputsCommitted")?;
        Ok(Self::from_event(e, tx, block, block_hash))
    }
}

impl Market {
    /// Commits the batch `root` of `count` outputs under output license `license` (`uri`:
    /// where its leaf list is published, or empty).
    pub async fn commit_outputs(
        &self,
        license: U256,
        root: H256,
        count: u64,
        uri: &str,
    ) -> Result<CommittedBatch> {
        let receipt = chain::send(
            Target::Market,
            "committing the outputs",
            self.market
                .commit_outputs(license, root.0, count, uri.to_string()),
        )
        .await?;
        let e: OutputsCommittedFilter = one_event(&receipt, "OutputsCommitted")?;
        Ok(CommittedBatch::from_event(
            e,
            receipt.transaction_hash,
            receipt.block_number.map(|b| b.as_u64()).unwrap_or_default(),
            receipt.block_hash.unwrap_or_default(),
        ))
    }

    /// The batch committed with `root`, if one was.
    pub async fn output_batch(&self, root: H256) -> Result<Option<StoredBatch>> {
        let batch = chain::call(
            Target::Market,
            "reading the output batch",
            self.market.output_batch(root.0),
        )
        .await?;
        Ok((batch.committed_at != 0).then(|| StoredBatch {
            license: U256::from(batch.license_id),
            committed_at: batch.committed_at,
            block: batch.block_number,
            count: batch.count,
        }))
    }

    /// Whether the market itself accepts `proof` of `leaf` under the committed root `root`.
    pub async fn verify_output(&self, root: H256, leaf: H256, proof: &[H256]) -> Result<bool> {
        chain::call(
            Target::Market,
            "verifying an output on-chain",
            self.market
                .verify_output(root.0, leaf.0, proof.iter().map(|p| p.0).collect()),
        )
        .await
    }

    /// The `OutputsCommitted` event of batch `root`, committed under `license` in `block` (a
    /// node that has the batch in its state but not its log is an error).
    pub async fn committed_batch(
        &self,
        license: U256,
        root: H256,
        block: u64,
    ) -> Result<CommittedBatch> {
        let filter = Filter::new()
            .address(self.deployment.market)
            .event(&OutputsCommittedFilter::abi_signature())
            .topic1(H256(license.into()))
            .from_block(block)
            .to_block(block);
        for log in self.logs(&filter).await? {
            let batch = CommittedBatch::from_log(log)?;
            if batch.root == root {
                return Ok(batch);
            }
        }
        Err(self.rpc_error(format!(
            "the node stores batch {root:?} but has no OutputsCommitted log of it in block {block}"
        )))
    }
}
