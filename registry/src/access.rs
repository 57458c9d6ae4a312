//! A licensee's download: the weights by their CID, decrypted when the model is encrypted
//! (with the model key delivered to the license, or the envelope for the owner), checked
//! against the chain (content root and fingerprint) and only then moved to where they were
//! asked for. Downloading needs a right the chain grants: an access or fine-tune license held
//! now, or owning the model.

use std::path::{Path, PathBuf};

use age::x25519::Identity;
use contracts::LicenseKind;
use ethers::types::U256;
use fingerprint::BackendKind;

use crate::content::{cat, cids, file_size, Store};
use crate::market::{Market, ModelView};
use crate::metadata::{ModelMetadata, AGE_X25519};
use crate::progress::Progress;
use crate::provenance::metadata_of;
use crate::sealed::{self, ModelKey};
use crate::verify::{verify, Verification};
use crate::{Error, Result};

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
    let dir = match request.out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Written next to the destination and renamed into place once verified: a failed or
    // killed download never leaves a wrong file under the asked-for name.
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(&dir)
        .map_err(|source| Error::ContentIo {
            path: dir.clone(),
            source,
        })?;
    let encrypted = view.header.encrypted;
    let bytes = if encrypted {
        let key = model_key(
            market,
            store,
            &view,
            &metadata,
            license,
            identity,
            request.key_endpoint.as_deref(),
        )
        .await?;
        progress.stage(
            "fetching and decrypting weights",
            metadata.encryption.as_ref().map(|e| e.plaintext_bytes),
        );
        let size = file_size(store, &weights).await?;
        let plaintext = metadata
            .encryption
            .as_ref()
            .map(|e| e.plaintext_bytes)
            .unwrap_or(size)
            .max(1);
        // Progress counts ciphertext; scaled to the plaintext it is close enough.
        let n = sealed::fetch_decrypted(store, &weights, &key, tmp.path(), &|done| {
            progress.set(done.min(plaintext))
        })
        .await?;
        progress.done();
        n
    } else {
        let size = file_size(store, &weights).await?;
        progress.stage("fetching weights", Some(size));
        let file = tokio::fs::File::create(tmp.path())
            .await
            .map_err(|source| Error::ContentIo {
                path: tmp.path().into(),
                source,
            })?;
        let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let n = cat(store, &weights, &mut writer, &|done| progress.set(done)).await?;
        tokio::io::AsyncWriteExt::flush(&mut writer)
            .await
            .map_err(|e| Error::ContentWrite(e.to_string()))?;
        progress.done();
        n
    };
    let verification = verify(
        market,
        store,
        request.model,
        Some(tmp.path()),
        request.backend,
        progress,
    )
    .await?;
    if !verification.ok() {
        let differ: Vec<&str> = verification.differences().map(|c| c.name).collect();
        return Err(Error::DownloadMismatch {
            model: request.model,
            differ: differ.join(", "),
        });
    }
    persist(tmp, &request.out)?;
    Ok(Downloaded {
        model: request.model,
        license,
        encrypted,
        bytes,
        verification,
    })
}

fn persist(tmp: tempfile::NamedTempFile, out: &Path) -> Result<()> {
    tmp.persist(out).map_err(|e| Error::ContentIo {
        path: out.into(),
        source: e.error,
    })?;
    Ok(())
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
        Err(e) => Err(e),
    };
    match (delivered, key_endpoint) {
        // Wrapped to another recipient: the license changed hands since (or the buyer named
        // another recipient); or the wrapped key is not in this store. A keeper wraps a fresh
        // copy for the current holder.
        (Err(Error::NotARecipient { .. } | Error::BlockNotFound { .. }), Some(endpoint)) => {
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
