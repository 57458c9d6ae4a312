//! A licensee's download: the weights by their CID, decrypted when the model is encrypted
//! (with the model key delivered to the license, or the envelope for the owner), checked
//! against the chain (content root and fingerprint) and only then moved to where they were
//! asked for. Downloading needs a right the chain grants: an access or fine-tune license held
//! now, or owning the model.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use age::x25519::Identity;
use contracts::LicenseKind;
use ethers::types::U256;
use fingerprint::{BackendKind, Fingerprint};

use crate::arriving::{Arrival, ArrivingFile};
use crate::market::{Market, ModelView};
use crate::metadata::{ModelMetadata, AGE_X25519};
use crate::progress::Progress;
use crate::provenance::{metadata_of, registered_fingerprint};
use crate::sealed::{self, ModelKey};
use crate::verify::{
    against_chain, fingerprint_arriving, matching_chain, within_registered, Verification,
};
use crate::{Error, Result};
use content::{cat_with, check_dag, cids, file_size, Cid, Parts, Reading, Store};

const TRUSTING_LOCAL: Reading = Reading::TrustingLocal;

/// A wrapped model key is an age file of a few hundred bytes.
const MAX_WRAPPED_KEY: u64 = 16 << 10;
/// Largest answer read from a key endpoint.
const MAX_ANSWER: usize = 64 << 10;

/// What the downloader asks for.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    pub model: U256,
    pub out: PathBuf,
    /// The license to download under; found among the signer's when `None`.
    pub license: Option<U256>,
    pub backend: BackendKind,
    /// A keeper's HTTP endpoint (`http://HOST:PORT`) to ask for a fresh key when the one
    /// delivered to the license was wrapped to another recipient (a license bought
    /// second-hand).
    pub key_endpoint: Option<String>,
}

/// What was downloaded.
#[derive(Debug)]
pub struct Downloaded {
    pub model: U256,
    /// The license that granted it; 0 for the model's owner.
    pub license: U256,
    pub encrypted: bool,
    pub bytes: u64,
    pub verification: Verification,
}

/// The signer's right to download `model`: the license that grants it (0: owner).
pub async fn download_right(market: &Market, model: U256, license: Option<U256>) -> Result<U256> {
    let account = market.address();
    let now = market.now().await?;
    if let Some(license) = license {
        for kind in [LicenseKind::Access, LicenseKind::FineTune] {
            if market.grants(license, account, model, kind, now).await? {
                return Ok(license);
            }
        }
    } else {
        for kind in [LicenseKind::Access, LicenseKind::FineTune] {
            let rights = market.rights(account, model, kind, now).await?;
            if rights.allowed {
                return Ok(rights.license);
            }
        }
    }
    // A purchase still in escrow is the likeliest reason a buyer has no right yet.
    for request in market
        .key_requests(market.deployment().block, Some(model))
        .await?
    {
        if request.holder == account && license.is_none_or(|l| l == request.license) {
            if let Some(pending) = market.pending_delivery(request.license).await? {
                return Err(Error::KeyPending {
                    model,
                    license: request.license,
                    deadline: crate::amount::format_instant(pending.deadline),
                });
            }
        }
    }
    let mut selling = Vec::new();
    for (id, terms) in market.offerings_of(model).await? {
        let kind = LicenseKind::from_u8(terms.kind);
        if matches!(kind, Some(LicenseKind::Access | LicenseKind::FineTune))
            && market.on_sale(id).await?
        {
            selling.push(id.to_string());
        }
    }
    Err(Error::NoLicense {
        model,
        account,
        license,
        offerings: if selling.is_empty() {
            "none is on sale".into()
        } else {
            format!("offerings on sale: {}", selling.join(", "))
        },
    })
}

/// Downloads model `request.model` as the market's signer, whose age identity is `identity`.
pub async fn download(
    market: &Market,
    store: &Store,
    identity: &Identity,
    request: &DownloadRequest,
    progress: &dyn Progress,
) -> Result<Downloaded> {
    let license = download_right(market, request.model, request.license).await?;
    let view = market.model(request.model).await?;
    let metadata = metadata_of(store, &view.model).await?;
    let weights = cids::parse(&view.model.weights_cid)?;
    if content::is_dir(store, &weights).await? {
        if view.header.encrypted {
            return Err(Error::Metadata {
                source_uri: view.model.metadata_uri.clone(),
                reason: "an encrypted model's weights are a folder; encrypted models are one file"
                    .into(),
            });
        }
        return download_folder(store, &view, request, license, &weights, progress).await;
    }
    if !view.header.encrypted && stored_is_gguf(store, &weights).await? {
        return download_whole(store, &view, request, license, &weights, progress).await;
    }
    // Written next to the destination and renamed into place once verified: a failed or
    // killed download never leaves a wrong file under the asked-for name.
    let tmp = staging_file(&request.out)?;
    let encrypted = view.header.encrypted;
    let key = match encrypted {
        true => Some(
            model_key(
                market,
                store,
                &view,
                &metadata,
                license,
                identity,
                request.key_endpoint.as_deref(),
            )
            .await?,
        ),
        false => None,
    };
    let declared = plaintext_len(store, &view, &metadata, &weights).await?;
    let checked = async {
        let (bytes, fp) = fetch_fingerprinted(
            store,
            &view,
            key.as_ref(),
            tmp.path(),
            declared,
            request.backend,
            progress,
        )
        .await?;
        let source = format!("ipfs://{weights}");
        let verification = against_chain(store, request.model, &view.model, &fp, source).await;
        if !verification.ok() {
            let differ: Vec<&str> = verification.differences().map(|c| c.name).collect();
            return Err(Error::DownloadMismatch {
                model: request.model,
                differ: differ.join(", "),
            });
        }
        Ok((bytes, verification))
    };
    let (bytes, verification) = match checked.await {
        Ok(checked) => checked,
        // The embedded store's blocks were read without hashing them again: when anything
        // failed, a block that is corrupt on disk is named, as the reason.
        Err(e) if store.trusts_local() => {
            return Err(match check_dag(store, &weights).await {
                Err(
                    corrupt @ (content::Error::CorruptStoredBlock { .. }
                    | content::Error::BlockNotFound { .. }),
                ) => corrupt.into(),
                _ => e,
            })
        }
        Err(e) => return Err(e),
    };
    persist(tmp, &request.out)?;
    Ok(Downloaded {
        model: request.model,
        license,
        encrypted,
        bytes,
        verification,
    })
}

/// Downloads a model stored as a folder: bounded by the registered fingerprint before
/// anything is fetched, written beside `out`, fingerprinted, and moved to `out` only when it
/// matches the chain.
async fn download_folder(
    store: &Store,
    view: &ModelView,
    request: &DownloadRequest,
    license: U256,
    weights: &Cid,
    progress: &dyn Progress,
) -> Result<Downloaded> {
    let out = &request.out;
    if tokio::fs::symlink_metadata(out).await.is_ok() {
        return Err(Error::Io {
            path: out.clone(),
            cause: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists: a model folder is written to a new folder",
            ),
        });
    }
    let declared = content::tree_size(store, weights).await?.bytes;
    within_registered(store, view.id, &view.model, declared).await?;
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // A fresh folder beside the target, removed with what it holds on any error.
    let stage = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&parent)
        .map_err(|cause| Error::Io {
            path: parent.clone(),
            cause,
        })?;
    let staging = stage.path().join("model");
    let checked = async {
        progress.stage("fetching the model folder", Some(declared));
        let written =
            content::get_dir(store, weights, &staging, &|done| progress.set(done)).await?;
        progress.done();
        let model = fingerprint::Model::open(&staging)?;
        crate::mint::uncovered_weights(&staging, &model)?;
        let source = format!("ipfs://{weights}");
        let verification = matching_chain(
            store,
            request.model,
            &view.model,
            &model,
            request.backend,
            progress,
            source,
        )
        .await?;
        Ok::<_, Error>((written.bytes, verification))
    };
    let (bytes, verification) = checked.await?;
    tokio::fs::rename(&staging, out)
        .await
        .map_err(|cause| Error::Io {
            path: out.clone(),
            cause,
        })?;
    Ok(Downloaded {
        model: request.model,
        license,
        encrypted: false,
        bytes,
        verification,
    })
}

/// Whether a stored file starts as a GGUF file does (its first block read and checked).
async fn stored_is_gguf(store: &Store, weights: &Cid) -> Result<bool> {
    let mut magic = Vec::with_capacity(4);
    content::cat_range(store, weights, Reading::Checked, 0, 4, &mut magic).await?;
    Ok(magic == b"GGUF")
}

/// Downloads a model stored as one file that is not safetensors (GGUF): bounded by the
/// registered fingerprint, fetched whole beside `out`, fingerprinted, and moved to `out` only
/// when it matches the chain.
async fn download_whole(
    store: &Store,
    view: &ModelView,
    request: &DownloadRequest,
    license: U256,
    weights: &Cid,
    progress: &dyn Progress,
) -> Result<Downloaded> {
    let stored = file_size(store, weights).await?;
    within_registered(store, view.id, &view.model, stored).await?;
    let tmp = staging_file(&request.out)?;
    let file = tokio::fs::File::from_std(tmp.reopen().map_err(|source| Error::Io {
        path: tmp.path().into(),
        cause: source,
    })?);
    progress.stage("fetching weights", Some(stored));
    let bytes = content::cat(store, weights, tokio::io::BufWriter::new(file), &|done| {
        progress.set(done)
    })
    .await?;
    progress.done();
    let model = fingerprint::Model::open(tmp.path())?;
    let source = format!("ipfs://{weights}");
    let verification = matching_chain(
        store,
        request.model,
        &view.model,
        &model,
        request.backend,
        progress,
        source,
    )
    .await?;
    drop(model);
    persist(tmp, &request.out)?;
    Ok(Downloaded {
        model: request.model,
        license,
        encrypted: false,
        bytes,
        verification,
    })
}

/// A fresh file beside `out`, removed unless persisted.
fn staging_file(out: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(&dir)
        .map_err(|source| Error::Io {
            path: dir,
            cause: source,
        })
}

fn persist(tmp: tempfile::NamedTempFile, out: &Path) -> Result<()> {
    tmp.persist(out).map_err(|e| Error::Io {
        path: out.into(),
        cause: e.error,
    })?;
    Ok(())
}

/// Room for a safetensors header besides the tensors' bytes (the format's limit, and its
/// length prefix).
const HEADER_ROOM: u64 = 100_000_000 + 8;

/// The length of the plaintext weights: the stored file's, or for an encrypted model what
/// its metadata declares (checked against what was decrypted). Both are the author's claims,
/// so both are bounded by the registered fingerprint (its tensors' bytes and room for a
/// header) before anything is allocated at that length.
async fn plaintext_len(
    store: &Store,
    view: &ModelView,
    metadata: &ModelMetadata,
    weights: &Cid,
) -> Result<u64> {
    let stored = file_size(store, weights).await?;
    let fp = registered_fingerprint(store, &view.model).await?;
    let tensors = fp.data_bytes();
    let limit = tensors.saturating_add(HEADER_ROOM);
    let declared = if view.header.encrypted {
        metadata
            .encryption
            .as_ref()
            .map(|e| e.plaintext_bytes)
            .ok_or_else(|| Error::Metadata {
                source_uri: view.model.metadata_uri.clone(),
                reason: "an encrypted model's metadata declares no plaintext size".into(),
            })?
    } else {
        stored
    };
    let too_long = |found: String| Error::DownloadSize {
        model: view.id,
        declared,
        found,
    };
    // An age file is longer than what it holds: a larger claim is a lie.
    if declared > stored {
        return Err(too_long(format!(
            "at most {stored} (the ciphertext's length)"
        )));
    }
    if declared > limit {
        return Err(too_long(format!(
            "at most {limit} (the registered tensors' {tensors} bytes and a header)"
        )));
    }
    Ok(declared)
}

/// Where a stored plaintext safetensors file's header ends (its first 8 bytes say), read
/// with every block checked.
async fn header_end(store: &Store, cid: &Cid) -> Result<u64> {
    let mut parts = Parts::new(*cid, Reading::Checked);
    let mut prefix = Vec::with_capacity(8);
    while prefix.len() < 8 {
        let Some(part) = parts.next(store).await? else {
            break;
        };
        prefix.extend_from_slice(&part[..part.len().min(8 - prefix.len())]);
    }
    Ok(match <[u8; 8]>::try_from(prefix.as_slice()) {
        Ok(len) => 8u64.saturating_add(u64::from_le_bytes(len)),
        // Shorter than a header: all of it is checked.
        Err(_) => u64::MAX,
    })
}

/// Writes the weights of `view` (decrypted with `key` when given) to `out`, `declared` bytes
/// exactly, and fingerprints them while they are written: right behind the writer, so the
/// check ends soon after the last byte instead of starting there. The embedded store's blocks
/// are not hashed again: an encrypted file's chunks are authenticated by the cipher, a
/// plaintext file's tensors by the content root (checked next) and its header's blocks are
/// read checked.
async fn fetch_fingerprinted(
    store: &Store,
    view: &ModelView,
    key: Option<&ModelKey>,
    out: &Path,
    declared: u64,
    backend: BackendKind,
    progress: &dyn Progress,
) -> Result<(u64, Fingerprint)> {
    let arrival = Arrival::new();
    let sink = ArrivingFile::create(out, declared, arrival.clone())?;
    let fingerprinted = Arc::new(AtomicU64::new(0));
    let mut checker = {
        let (path, arrival, done) = (out.to_path_buf(), arrival.clone(), fingerprinted.clone());
        // Dropped unjoined when the writer fails: it stops at the next tensor not written.
        tokio::task::spawn_blocking(move || fingerprint_arriving(&path, &arrival, backend, &done))
    };
    let cid = &cids::parse(&view.model.weights_cid)?;
    let size = |found: String| Error::DownloadSize {
        model: view.id,
        declared,
        found,
    };
    progress.stage(
        match key {
            Some(_) => "fetching, decrypting and fingerprinting weights",
            None => "fetching and fingerprinting weights",
        },
        Some(declared),
    );
    let written = match key {
        // Progress counts ciphertext; scaled to the plaintext it is close enough.
        Some(key) => {
            let progress = |done: u64| progress.set(done.min(declared));
            sealed::decrypt_into(store, cid, key, sink, out, &progress, TRUSTING_LOCAL).await
        }
        None => {
            // The content root covers the tensors, not the header's metadata: the blocks
            // that hold the header are checked.
            let reading = Reading::TrustingLocalAfter(header_end(store, cid).await?);
            Ok(cat_with(store, cid, sink, &|done| progress.set(done), reading).await?)
        }
    };
    let written = match written {
        Ok(n) if n == declared && !arrival.overflowed() => n,
        Ok(n) => return Err(size(n.to_string())),
        Err(_) if arrival.overflowed() => return Err(size(format!("more than {declared}"))),
        Err(e) => return Err(e),
    };
    progress.done();
    progress.stage("checking the fingerprint", Some(declared));
    let joined = loop {
        tokio::select! {
            joined = &mut checker => break joined,
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
                progress.set(fingerprinted.load(Ordering::Relaxed));
            }
        }
    };
    progress.done();
    let fp = joined
        .map_err(|e| Error::Write(format!("the fingerprint thread failed: {e}")))??
        .ok_or_else(|| Error::Write("the fingerprint stopped short of the file".into()))?;
    Ok((written, fp))
}

/// The model key for a download under `license` (0: the owner, from the envelope).
async fn model_key(
    market: &Market,
    store: &Store,
    view: &ModelView,
    metadata: &ModelMetadata,
    license: U256,
    identity: &Identity,
    key_endpoint: Option<&str>,
) -> Result<ModelKey> {
    let model = view.id;
    if license.is_zero() {
        return envelope_key(store, model, metadata, identity).await;
    }
    let delivery = market
        .delivery(license)
        .await?
        .ok_or(Error::KeyNotDelivered { model, license })?;
    let what = format!("the key delivered to license {license}");
    let cid = cids::parse(&delivery.wrapped_key_cid)?;
    let delivered = match store.read_bytes(&cid, MAX_WRAPPED_KEY).await {
        Ok(wrapped) => ModelKey::unwrap(&wrapped, identity, &what),
        Err(e) => Err(e.into()),
    };
    match (delivered, key_endpoint) {
        // Wrapped to another recipient: the license changed hands since (or the buyer named
        // another recipient); or the wrapped key is not in this store. A keeper wraps a fresh
        // copy for the current holder.
        (
            Err(Error::NotARecipient { .. } | Error::Content(content::Error::BlockNotFound { .. })),
            Some(endpoint),
        ) => {
            let fresh = request_key(market, endpoint, view.id, license, identity).await?;
            ModelKey::unwrap(
                &fresh,
                identity,
                &format!("the key {endpoint} wrapped for license {license}"),
            )
        }
        (result, _) => result,
    }
}

/// Asks a keeper's endpoint for the model key of `license`, wrapped to `identity`, with a key
/// request signed by the market's signer (the license's holder).
pub async fn request_key(
    market: &Market,
    endpoint: &str,
    model: U256,
    license: U256,
    identity: &Identity,
) -> Result<Vec<u8>> {
    use base64::Engine;
    let deployment = market.deployment();
    let now = crate::amount::unix_now();
    let request = crate::key_request::KeyRequest {
        license,
        recipient: crate::keys::recipient_bytes(&identity.to_public()),
        deadline: now + 120,
    };
    let signed = request.sign(
        market.client().signer(),
        deployment.chain_id,
        deployment.market,
    )?;
    let payment = serde_json::json!({
        "x402Version": 2,
        "scheme": crate::key_service::SCHEME,
        "payload": signed,
    });
    let header = base64::engine::general_purpose::STANDARD.encode(payment.to_string());
    let url = format!(
        "{}/v1/models/{model}/access",
        endpoint.trim_end_matches('/')
    );
    let failed = |message: String| Error::KeyEndpoint {
        url: url.clone(),
        message,
    };
    let response = reqwest::Client::new()
        .get(&url)
        .header("PAYMENT-SIGNATURE", header)
        .timeout(crate::chain::RPC_TIMEOUT)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    // A hostile endpoint could send without end: read a bounded answer.
    let mut response = response;
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_ANSWER {
            return Err(failed(format!("the answer exceeds {MAX_ANSWER} bytes")));
        }
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| failed(format!("{status}: the answer is not JSON ({e})")))?;
    if !status.is_success() {
        return Err(failed(format!(
            "{status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        )));
    }
    let wrapped = body["wrappedKey"]
        .as_str()
        .ok_or_else(|| failed("the answer has no wrappedKey".into()))?;
    base64::engine::general_purpose::STANDARD
        .decode(wrapped)
        .map_err(|e| failed(format!("wrappedKey is not base64: {e}")))
}

/// The model key from the model's envelope (the author and keepers are its recipients).
pub async fn envelope_key(
    store: &Store,
    model: U256,
    metadata: &ModelMetadata,
    identity: &Identity,
) -> Result<ModelKey> {
    let encryption = metadata
        .encryption
        .as_ref()
        .ok_or(Error::NoEnvelope { model })?;
    if encryption.scheme != AGE_X25519 {
        return Err(Error::Metadata {
            source_uri: format!("model {model}"),
            reason: format!("unknown encryption scheme {:?}", encryption.scheme),
        });
    }
    let cid = cids::parse(&encryption.envelope)?;
    let wrapped = store.read_bytes(&cid, MAX_WRAPPED_KEY * 64).await?;
    ModelKey::unwrap(
        &wrapped,
        identity,
        &format!("the envelope of model {model}"),
    )
}
