//! Verifying a model against the chain: fetch the weights by their CID (or take a local copy),
//! recompute content root and fingerprint, and compare them, and the stored fingerprint, with
//! the on-chain record.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ethers::types::U256;
use fingerprint::{hex, BackendKind, Fingerprint, Model};
use serde::Serialize;

use crate::arriving::Arrival;
use crate::market::{Market, Model as OnChain};
use crate::progress::Progress;
use crate::provenance;
use crate::{Error, Result};
use content::{cat, cids, file_size, Store};

/// One compared value.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub model: u64,
    pub weights_cid: String,
    /// Where the weights came from: the CID, or a local path.
    pub source: String,
    pub checks: Vec<Check>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks that failed.
    pub fn differences(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

/// Verifies model `id`. With `local`, that file is checked instead of the stored weights.
pub async fn verify(
    market: &Market,
    store: &Store,
    id: U256,
    local: Option<&Path>,
    backend: BackendKind,
    progress: &dyn Progress,
) -> Result<Verification> {
    let view = market.model(id).await?;
    // The stored weights of an encrypted model are ciphertext: only a licensee can check them.
    if local.is_none() && view.header.encrypted {
        return Err(Error::VerifyEncrypted { model: id });
    }
    let onchain = &view.model;

    // Keeps a downloaded copy alive until it has been fingerprinted.
    let mut download = None;
    let mut folder = None;
    let (path, source) = match local {
        Some(path) => (path.to_path_buf(), path.display().to_string()),
        None if content::is_dir(store, &cids::parse(&onchain.weights_cid)?).await? => {
            // A model folder: written to a temporary folder, fingerprinted as one model.
            let cid = cids::parse(&onchain.weights_cid)?;
            let tmp = tempfile::tempdir().map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                cause: source,
            })?;
            let path = tmp.path().join("model");
            // Bounded as a download is: the registered tensors and 1 GiB of other files.
            let declared = content::tree_size(store, &cid).await?.bytes;
            within_registered(store, id, onchain, declared).await?;
            progress.stage("fetching the model folder", Some(declared));
            content::get_dir(store, &cid, &path, &|done| progress.set(done)).await?;
            progress.done();
            folder = Some(tmp);
            (path, format!("ipfs://{cid}"))
        }
        None => {
            let cid = cids::parse(&onchain.weights_cid)?;
            let size = file_size(store, &cid).await?;
            // Bounded as a folder is: a small DAG can declare terabytes (one leaf linked again
            // and again), which would be written to the temporary folder.
            within_registered(store, id, onchain, size).await?;
            let tmp = tempfile::NamedTempFile::new().map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                cause: source,
            })?;
            let file = tokio::fs::File::from_std(tmp.reopen().map_err(|source| Error::Io {
                path: tmp.path().into(),
                cause: source,
            })?);
            progress.stage("fetching weights", Some(size));
            cat(store, &cid, tokio::io::BufWriter::new(file), &|done| {
                progress.set(done)
            })
            .await?;
            progress.done();
            let path = tmp.path().to_path_buf();
            download = Some(tmp);
            (path, format!("ipfs://{cid}"))
        }
    };

    let model = Model::open(&path)?;
    // A folder holding weights the fingerprint does not read (a `pytorch_model.bin` a loader
    // would take) is not the model the chain records, as `download` and `mint` refuse it.
    if path.is_dir() {
        crate::mint::uncovered_weights(&path, &model)?;
    }
    let backend = fingerprint::backend::create(backend)?;
    progress.stage("fingerprinting", Some(model.data_bytes()));
    let fp = fingerprint::fingerprint(&model, backend.as_ref(), |done| progress.set(done))?;
    progress.done();
    drop(download);
    drop(folder);
    Ok(against_chain(store, id, onchain, &fp, source).await)
}

/// Room weights stored whole (GGUF) or as a folder may take besides the registered tensors'
/// bytes: headers, metadata, index, config, tokenizer, card.
const OTHER_ROOM: u64 = 1 << 30;

/// Refuses stored weights declaring more than the registered tensors' bytes and
/// [`OTHER_ROOM`], before anything is fetched.
pub(crate) async fn within_registered(
    store: &Store,
    id: U256,
    onchain: &OnChain,
    declared: u64,
) -> Result<()> {
    let tensors = provenance::registered_fingerprint(store, onchain)
        .await?
        .data_bytes();
    let limit = tensors.saturating_add(OTHER_ROOM);
    if declared > limit {
        return Err(Error::DownloadSize {
            model: id,
            declared,
            found: format!(
                "at most {limit} (the registered tensors' {tensors} bytes and 1 GiB of other files)"
            ),
        });
    }
    Ok(())
}

/// Fingerprints `model` (weights found at `source`) and checks it against model `id`'s
/// record: a difference is [`Error::DownloadMismatch`].
pub(crate) async fn matching_chain(
    store: &Store,
    id: U256,
    onchain: &OnChain,
    model: &Model,
    backend: BackendKind,
    progress: &dyn Progress,
    source: String,
) -> Result<Verification> {
    let backend = fingerprint::backend::create(backend)?;
    progress.stage("fingerprinting", Some(model.data_bytes()));
    let fp = fingerprint::fingerprint(model, backend.as_ref(), |done| progress.set(done))?;
    progress.done();
    let verification = against_chain(store, id, onchain, &fp, source).await;
    if !verification.ok() {
        let differ: Vec<&str> = verification.differences().map(|c| c.name).collect();
        return Err(Error::DownloadMismatch {
            model: id,
            differ: differ.join(", "),
        });
    }
    Ok(verification)
}

/// Compares `fp`, computed from weights found at `source`, with model `id`'s on-chain record;
/// and the stored fingerprint with the on-chain commitment.
pub async fn against_chain(
    store: &Store,
    id: U256,
    onchain: &OnChain,
    fp: &Fingerprint,
    source: String,
) -> Verification {
    let mut checks = vec![
        Check {
            name: "content root",
            expected: hex(&onchain.content_root),
            actual: hex(&fp.content_root),
            ok: fp.content_root == onchain.content_root,
        },
        Check {
            name: "fingerprint",
            expected: hex(&onchain.fingerprint),
            actual: hex(&fp.hash()),
            ok: fp.hash() == onchain.fingerprint,
        },
    ];
    // The stored fingerprint is what others compare against; it must be the committed one.
    let stored = match provenance::registered_fingerprint(store, onchain).await {
        Ok(stored) => hex(&stored.hash()),
        Err(e) => format!("unavailable: {e}"),
    };
    checks.push(Check {
        name: "stored fingerprint",
        expected: hex(&onchain.fingerprint),
        ok: stored == hex(&onchain.fingerprint),
        actual: stored,
    });
    Verification {
        model: id.as_u64(),
        weights_cid: onchain.weights_cid.clone(),
        source,
        checks,
    }
}

/// Raised through the fingerprint by the gate of a file whose writer stopped short, to stop
/// fingerprinting bytes that will never come.
struct StoppedShort;

/// Fingerprints the safetensors file at `path` while it is written in order, its full length
/// already allocated: every tensor is read only once `arrival` has passed its end. `done` gets
/// the tensor bytes fingerprinted so far. `None` when the writer stopped short (its own error
/// says why).
pub fn fingerprint_arriving(
    path: &Path,
    arrival: &Arc<Arrival>,
    backend: BackendKind,
    done: &AtomicU64,
) -> Result<Option<Fingerprint>> {
    use std::os::unix::fs::FileExt;
    // The header first: its length, then the header itself, is what opening the model reads.
    if !arrival.wait_for(8) {
        return Ok(None);
    }
    let io = |source| Error::Io {
        path: path.into(),
        cause: source,
    };
    let mut prefix = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut prefix, 0))
        .map_err(io)?;
    let header_end = 8u64.saturating_add(u64::from_le_bytes(prefix));
    let len = std::fs::metadata(path).map_err(io)?.len();
    if !arrival.wait_for(header_end.min(len)) {
        return Ok(None);
    }
    let gate = arrival.clone();
    let gate: fingerprint::source::Gate = Arc::new(move |_, end| {
        if !gate.wait_for(end as u64) {
            std::panic::resume_unwind(Box::new(StoppedShort));
        }
    });
    let backend = fingerprint::backend::create(backend)?;
    // Opening reads packed quantized tensors (to dequantize them) through the gate too.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let model = Model::open_gated(path, Some(gate))?;
        // Reported in the file's bytes (what the download's stage counts to): a quantized
        // model's tensors read as many more bytes of f32.
        let total = model.data_bytes().max(1);
        fingerprint::fingerprint(&model, backend.as_ref(), |n| {
            let scaled = u128::from(n) * u128::from(len) / u128::from(total);
            done.store(scaled.min(u128::from(len)) as u64, Ordering::Relaxed)
        })
        .map_err(Error::from)
    }));
    match run {
        Ok(fp) => Ok(Some(fp?)),
        Err(payload) if payload.is::<StoppedShort>() => Ok(None),
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
