//! Output batches: an output license's holder commits the Merkle root of a batch of outputs,
//! once; anyone reads a batch back by its root.

use contracts::license_market::OutputsCommittedFilter;
use ethers::contract::EthEvent;
use ethers::types::{Address, Filter, H256, U256};

use super::{one_event, Market};
use crate::chain::{self, Target};
use crate::outputs::inclusion::{encode_header, encode_receipt, find_log, Inclusion};
use crate::{Error, Result};

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

    /// The offline proof of transaction `tx` in block `block_hash`: the block's header and the
    /// proof of the transaction's receipt in it, built from the node's answers and checked
    /// against the block's hash and receipts root.
    pub async fn inclusion(&self, tx: H256, block_hash: H256) -> Result<Inclusion> {
        use ethers::providers::Middleware;
        let failed = |reason: String| Error::Inclusion {
            block: block_hash,
            reason,
        };
        let rpc = |e: ethers::providers::ProviderError| failed(format!("the node: {e}"));
        let provider = self.client.provider();
        let block: serde_json::Value = provider
            .request("eth_getBlockByHash", (block_hash, false))
            .await
            .map_err(rpc)?;
        if block.is_null() {
            return Err(failed("the node does not have the block".into()));
        }
        let header = encode_header(&block).map_err(failed)?;
        let hashed = H256(ethers::utils::keccak256(&header));
        if hashed != block_hash {
            return Err(failed(format!(
                "the header encodes to a block hashing to {hashed:?} (a header field this \
                 version does not know?)"
            )));
        }
        let hashes: Vec<H256> = serde_json::from_value(block["transactions"].clone())
            .map_err(|e| failed(format!("the block's transactions: {e}")))?;
        let index = hashes
            .iter()
            .position(|h| *h == tx)
            .ok_or_else(|| failed(format!("transaction {tx:?} is not in it")))?;
        let mut receipts: Vec<ethers::types::TransactionReceipt> = provider
            .request("eth_getBlockReceipts", [block_hash])
            .await
            .map_err(rpc)?;
        receipts.sort_by_key(|r| r.transaction_index);
        if receipts.len() != hashes.len()
            || receipts
                .iter()
                .zip(&hashes)
                .any(|(r, h)| r.transaction_hash != *h)
        {
            return Err(failed(
                "the node's receipts are not those of the block's transactions".into(),
            ));
        }
        let encoded: Vec<Vec<u8>> = receipts.iter().map(encode_receipt).collect();
        let inclusion = Inclusion::build(header, &encoded, index as u64).map_err(failed)?;
        // Checked as a verifier will check it: the node's transaction order is not covered by
        // the receipts root, and a receipt that never verifies offline must not be written.
        let included = inclusion.open(block_hash).map_err(failed)?;
        if find_log(
            &included,
            self.deployment.market,
            OutputsCommittedFilter::signature(),
        )
        .is_empty()
        {
            return Err(failed(format!(
                "the receipt proved (transaction {index}) holds no commitment from the market"
            )));
        }
        Ok(inclusion)
    }
}
