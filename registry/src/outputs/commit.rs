//! Committing a batch of output files under an output license, and writing their receipts.

use std::path::PathBuf;

use contracts::LicenseKind;
use ethers::types::{H256, U256};
use serde::{Deserialize, Serialize};

use super::batch::{receipt_path, sha256_file, Batch, Scope};
use super::receipt::{Contracts, Receipt, Slot, FORMAT};
use super::OutputLeaf;
use crate::market::Market;
use crate::metadata::ipfs_uri;
use crate::progress::Progress;
use crate::{Error, Result};
use content::{Store, Version};

/// The value of `format` in a published leaf list.
pub const LIST_FORMAT: &str = "model-registry/output-batch/v1";

/// What to commit.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub files: Vec<PathBuf>,
    pub license: U256,
    /// Store the leaf list in the content store and name it in the event, so indexers can
    /// answer lookups by content hash.
    pub publish: bool,
    /// The time the outputs were produced (unix seconds); each file's modification time
    /// when `None`.
    pub produced_at: Option<u64>,
    pub cid_version: Version,
}

/// A published batch's leaf list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafList {
    pub format: String,
    pub root: H256,
    pub leaves: Vec<OutputLeaf>,
}

/// What was committed.
#[derive(Debug, Clone)]
pub struct Committed {
    pub model: U256,
    pub license: U256,
    pub root: H256,
    pub count: u64,
    pub uri: Option<String>,
    pub tx: H256,
    pub block: u64,
    pub committed_at: u64,
    /// One per file, in the order given.
    pub receipts: Vec<PathBuf>,
}

/// The model of `license`, when the signer may commit outputs under it now.
pub async fn output_license(market: &Market, license: U256) -> Result<U256> {
    let account = market.address();
    let refused = |reason: String| Error::NoOutputLicense {
        license,
        account,
        reason,
    };
    let view = market.license(license).await?;
    if view.holder.is_zero() {
        return Err(refused("it does not exist".into()));
    }
    let kind = LicenseKind::from_u8(view.license.kind);
    if kind != Some(LicenseKind::Output) {
        return Err(refused(format!(
            "it is {} license, not an output license",
            kind.map_or("an unknown kind of".into(), |k| format!("{k:?}")
                .to_lowercase())
        )));
    }
    if view.holder != account {
        return Err(refused(format!("it is held by {:?}", view.holder)));
    }
    let model = view.license.model_id;
    let now = market.now().await?;
    if !market
        .grants(license, account, model, LicenseKind::Output, now)
        .await?
    {
        return Err(refused(format!(
            "it is not valid now (valid from {} until {})",
            crate::amount::format_instant(view.license.start),
            match view.license.expiry {
                0 => "forever".to_string(),
                e => crate::amount::format_instant(e),
            }
        )));
    }
    Ok(model)
}

/// Hashes `request.files`, commits their batch's root under `request.license` and writes a
/// receipt beside each file. Nothing is sent when a file cannot be read or a receipt is
/// already there (a receipt is never overwritten: it may be the only proof of an earlier
/// commitment).
pub async fn commit(
    market: &Market,
    store: &Store,
    request: &CommitRequest,
    progress: &dyn Progress,
) -> Result<Committed> {
    let model = output_license(market, request.license).await?;
    // Every receipt's place is taken before anything is sent: the salts live only in the
    // receipts, and a receipt that cannot be written after the transaction is a proof lost.
    let mut slots = Vec::with_capacity(request.files.len());
    let mut named = std::collections::HashSet::new();
    for file in &request.files {
        let path = receipt_path(file);
        if !named.insert(path.clone()) {
            return Err(Error::Receipt {
                path,
                reason: format!("{} is named twice in one batch", file.display()),
            });
        }
        slots.push(Slot::open(&path)?);
    }
    let total = request
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or_default())
        .sum();
    progress.stage("hashing outputs", Some(total));
    let mut outputs = Vec::with_capacity(request.files.len());
    let mut done = 0u64;
    for file in &request.files {
        let sha = sha256_file(file, &|n| progress.set(done + n))?;
        done += std::fs::metadata(file).map(|m| m.len()).unwrap_or_default();
        let produced_at = match request.produced_at {
            Some(at) => at,
            None => modified(file)?,
        };
        outputs.push((sha, produced_at));
    }
    progress.done();
    // The commit's block is the node's next (pending) block or a later one, whose time never
    // runs behind it: an output dated after that (a clock ahead, milliseconds for seconds)
    // would make a receipt that never verifies. An output of a moment ago, after the latest
    // block, is fine: the commit's block comes after it.
    let now = market.next_block_time().await?;
    if let Some((file, &(_, at))) = request
        .files
        .iter()
        .zip(&outputs)
        .find(|(_, (_, at))| *at > now)
    {
        return Err(Error::ProducedInFuture {
            path: file.clone(),
            produced_at: at,
            now,
        });
    }
    let deployment = market.deployment();
    let scope = Scope {
        chain_id: deployment.chain_id,
        market: deployment.market,
        license: request.license,
        model,
    };
    let batch = Batch::new(scope, &outputs).ok_or(Error::NoOutputs)?;
    let uri = if request.publish {
        let list = LeafList {
            format: LIST_FORMAT.into(),
            root: batch.root(),
            leaves: batch.leaves.clone(),
        };
        let json = serde_json::to_vec(&list).expect("a leaf list serialises");
        Some(ipfs_uri(
            &store.store_bytes(&json, request.cid_version).await?,
        ))
    } else {
        None
    };
    let count = batch.leaves.len() as u64;
    let committed = market
        .commit_outputs(
            request.license,
            batch.root(),
            count,
            uri.as_deref().unwrap_or_default(),
        )
        .await?;
    // Informational in the receipt (the check reads the time from the chain): a node that
    // fails now must not cost the receipts.
    let committed_at = match market.block_time(committed.block).await {
        Ok(at) => at,
        Err(e) => {
            tracing::warn!(
                block = committed.block,
                "no block time for the receipts: {e}"
            );
            0
        }
    };
    // Also optional: without it a receipt still verifies against a node.
    let inclusion = match market.inclusion(committed.tx, committed.block_hash).await {
        Ok(inclusion) => Some(inclusion),
        Err(e) => {
            tracing::warn!("the receipts will not verify offline: {e}");
            None
        }
    };
    let mut receipts = Vec::with_capacity(request.files.len());
    let mut failed = None;
    for ((file, leaf), slot) in request.files.iter().zip(&batch.leaves).zip(slots) {
        let leaf_hash = leaf.hash();
        let receipt = Receipt {
            format: FORMAT.into(),
            file: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            leaf: leaf.clone(),
            leaf_hash,
            proof: batch
                .tree
                .proof(&leaf_hash)
                .expect("every leaf is in its tree"),
            root: batch.root(),
            count,
            provider: committed.provider,
            uri: uri.clone(),
            tx: committed.tx,
            block: committed.block,
            block_hash: committed.block_hash,
            committed_at,
            contracts: Contracts {
                registry: deployment.registry,
                market: deployment.market,
            },
            inclusion: inclusion.clone(),
        };
        // Written all, as far as possible: one failure does not cost the others.
        match receipt.write_into(slot) {
            Ok(()) => receipts.push(receipt_path(file)),
            Err(e) => {
                tracing::error!(file = %file.display(), "receipt not written: {e}");
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        return Err(Error::ReceiptsLost {
            root: format!("{:?}", batch.root()),
            tx: format!("{:?}", committed.tx),
            written: receipts.len(),
            count: request.files.len(),
            reason: e.to_string(),
        });
    }
    Ok(Committed {
        model,
        license: request.license,
        root: batch.root(),
        count,
        uri,
        tx: committed.tx,
        block: committed.block,
        committed_at,
        receipts,
    })
}

/// A file's modification time in unix seconds.
fn modified(path: &std::path::Path) -> Result<u64> {
    let io = |source| Error::Io {
        path: path.into(),
        cause: source,
    };
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(io)?;
    Ok(modified
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default())
}
