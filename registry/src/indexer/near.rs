//! Logs above the finalized block, read block by block (EIP-234: `eth_getLogs` by `blockHash`).
//!
//! A range `eth_getLogs` is answered from whatever the node, or the backend a load balancer
//! picked, holds at each height, and an empty answer cannot be told from a block that backend
//! does not have yet. Below the finalized block neither matters; above it, each block's logs
//! are asked by the hash of the header whose links were checked, so the answer is about that
//! block or an error. The header's `logsBloom` says whether the block can hold our logs at all:
//! a block whose bloom names neither contract is skipped without a call (a bloom has no false
//! negatives), and an empty answer for one whose bloom names one is checked against the
//! block's receipts, which must rebuild the header's `receiptsRoot` (a bloom also matches by
//! chance; the receipts settle which it is).

use ethers::abi::ethereum_types::BloomInput;
use ethers::providers::{Http, Middleware, Provider, ProviderError, RpcError as _};
use ethers::types::{Address, Block, Filter, Log, TransactionReceipt, H256};
use futures::{StreamExt as _, TryStreamExt as _};

use super::metrics::Failure;
use super::Indexer;
use crate::outputs::inclusion::{encode_receipt, receipts_root};
use crate::Result;

/// An answer that contradicts the checked headers: the range is read again.
pub(super) type Answer<T> = std::result::Result<T, String>;

/// Whether a block with this header may hold logs of one of `addresses`: its bloom names one.
/// A header without a bloom, or an empty bloom on a block with transactions (chains that do
/// not fill it in), proves nothing.
pub(super) fn may_hold(header: &Block<H256>, addresses: &[Address]) -> bool {
    match &header.logs_bloom {
        None => true,
        Some(bloom) if bloom.is_empty() => !header.transactions.is_empty(),
        Some(bloom) => addresses
            .iter()
            .any(|a| bloom.contains_input(BloomInput::Raw(a.as_bytes()))),
    }
}

/// Whether the header's bloom admits `log` (its address and every topic); an empty or missing
/// bloom admits anything.
fn admits(header: &Block<H256>, log: &Log) -> bool {
    match &header.logs_bloom {
        Some(bloom) if !bloom.is_empty() => {
            bloom.contains_input(BloomInput::Raw(log.address.as_bytes()))
                && log
                    .topics
                    .iter()
                    .all(|t| bloom.contains_input(BloomInput::Raw(t.as_bytes())))
        }
        _ => true,
    }
}

/// A node's refusal to answer about a block (an unknown hash: the block left the chain or
/// the backend lacks it) is an answer to read the range again; a rate limit or a transport
/// failure is retried where it happened.
pub(super) fn refusal<T>(
    answer: std::result::Result<T, ProviderError>,
) -> std::result::Result<Answer<T>, ProviderError> {
    match answer {
        Ok(value) => Ok(Ok(value)),
        Err(e) if e.as_error_response().is_some() && !super::rate_limited(&e.to_string()) => {
            Ok(Err(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

impl Indexer {
    /// [`Indexer::rpc`] for a call whose error answer is the node's word ([`refusal`]),
    /// counted as refused in the metrics.
    pub(super) async fn ask<T, F, Fut>(&self, what: &'static str, call: F) -> Result<Answer<T>>
    where
        F: Fn(Provider<Http>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ProviderError>>,
    {
        let answer = self
            .rpc(what, |p| {
                let asked = call(p);
                async move { refusal(asked.await) }
            })
            .await?;
        if answer.is_err() {
            self.metrics.rpc_error(what, Failure::Refused);
        }
        Ok(answer)
    }

    /// Our logs of the blocks of `window` (checked, linked headers), each block's asked by its
    /// hash where its bloom may hold them.
    pub(super) async fn logs_by_hash(&self, window: &[Block<H256>]) -> Result<Answer<Vec<Log>>> {
        let addresses = [self.deployment.registry, self.deployment.market];
        let answers: Vec<Answer<Vec<Log>>> = futures::stream::iter(window)
            .filter(|header| std::future::ready(may_hold(header, &addresses)))
            .map(|header| self.block_logs(header, &addresses))
            .buffered(self.options.parallel_calls.max(1))
            .try_collect()
            .await?;
        let mut logs = Vec::new();
        for answer in answers {
            match answer {
                Ok(some) => logs.extend(some),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        Ok(Ok(logs))
    }

    /// The logs of `addresses` in `header`'s block, asked by its hash.
    async fn block_logs(
        &self,
        header: &Block<H256>,
        addresses: &[Address],
    ) -> Result<Answer<Vec<Log>>> {
        let (Some(hash), Some(number)) = (header.hash, header.number) else {
            return Ok(Err("a header without a hash or number".into()));
        };
        let number = number.as_u64();
        let filter = Filter::new()
            .address(addresses.to_vec())
            .at_block_hash(hash);
        let answer = self
            .ask("eth_getLogs(blockHash)", |p| {
                let filter = filter.clone();
                async move { p.get_logs(&filter).await }
            })
            .await?;
        let logs = match answer.and_then(|logs| super::in_range(logs, number, number)) {
            Ok(logs) => logs,
            Err(reason) => return Ok(Err(format!("block {number}: {reason}"))),
        };
        if let Some(other) = logs.iter().find(|log| log.block_hash != Some(hash)) {
            return Ok(Err(format!(
                "block {number}'s logs name block {:?}, not {hash:?}",
                other.block_hash
            )));
        }
        // A log the block's bloom does not admit is not the block's.
        if let Some(foreign) = logs.iter().find(|log| !admits(header, log)) {
            return Ok(Err(format!(
                "block {number}'s bloom does not admit log {:?} the node gave for it",
                foreign.log_index
            )));
        }
        if logs.is_empty() {
            // Only blocks whose bloom names a contract were asked.
            return self
                .logs_from_receipts(header, hash, number, addresses)
                .await;
        }
        Ok(Ok(logs))
    }

    /// The logs of `addresses` in a block whose bloom names one but whose logs came back
    /// empty, read from its transactions' receipts, which must rebuild its receipts root.
    async fn logs_from_receipts(
        &self,
        header: &Block<H256>,
        hash: H256,
        number: u64,
        addresses: &[Address],
    ) -> Result<Answer<Vec<Log>>> {
        // All of them in one call where the node has it; one call per transaction where not.
        let whole = self
            .ask("eth_getBlockReceipts", |p| async move {
                p.request::<_, Option<Vec<TransactionReceipt>>>("eth_getBlockReceipts", [hash])
                    .await
            })
            .await?;
        if let Ok(Some(receipts)) = whole {
            return Ok(self.receipts_logs(header, hash, number, addresses, receipts));
        }
        let answers: Vec<Answer<Option<TransactionReceipt>>> =
            futures::stream::iter(&header.transactions)
                .map(|tx| {
                    self.ask("eth_getTransactionReceipt", move |p| async move {
                        p.get_transaction_receipt(*tx).await
                    })
                })
                .buffered(self.options.parallel_calls.max(1))
                .try_collect()
                .await?;
        let mut receipts = Vec::with_capacity(answers.len());
        for answer in answers {
            match answer {
                Ok(Some(receipt)) => receipts.push(receipt),
                Ok(None) => return Ok(Err(format!("a receipt of block {number} is missing"))),
                Err(reason) => return Ok(Err(format!("block {number}'s receipts: {reason}"))),
            }
        }
        Ok(self.receipts_logs(header, hash, number, addresses, receipts))
    }

    /// The logs of `addresses` among a block's receipts, if they are the block's: each names
    /// the block, and together they rebuild its receipts root.
    fn receipts_logs(
        &self,
        header: &Block<H256>,
        hash: H256,
        number: u64,
        addresses: &[Address],
        receipts: Vec<TransactionReceipt>,
    ) -> Answer<Vec<Log>> {
        if receipts.iter().any(|r| r.block_hash != Some(hash)) {
            return Err(format!(
                "a receipt the node gave for block {number} names another block"
            ));
        }
        let encoded: Vec<Vec<u8>> = receipts.iter().map(encode_receipt).collect();
        if receipts_root(&encoded) != header.receipts_root {
            return Err(format!(
                "block {number}'s logs came back empty though its bloom names our contracts, \
                 and its receipts do not rebuild its receipts root"
            ));
        }
        // The receipts are the block's: its logs in order, indexed across the block.
        let mut logs = Vec::new();
        let all = receipts
            .iter()
            .flat_map(|r| r.logs.iter().map(move |log| (r, log)));
        for (index, (receipt, log)) in all.enumerate() {
            if addresses.contains(&log.address) {
                logs.push(Log {
                    address: log.address,
                    topics: log.topics.clone(),
                    data: log.data.clone(),
                    block_hash: Some(hash),
                    block_number: Some(number.into()),
                    transaction_hash: Some(receipt.transaction_hash),
                    transaction_index: Some(receipt.transaction_index),
                    log_index: Some(index.into()),
                    removed: Some(false),
                    ..Log::default()
                });
            }
        }
        if !logs.is_empty() {
            tracing::warn!(
                block = number,
                logs = logs.len(),
                "the node's logs for the block left out logs its receipts hold; taken from the receipts"
            );
        }
        Ok(logs)
    }
}
