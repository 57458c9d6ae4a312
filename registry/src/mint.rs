//! The author's mint: fingerprint the weights, refuse undeclared derivatives, store weights,
//! fingerprint and metadata (each read back and checked), then mint with the CID, the content
//! root and the fingerprint commitment. Nothing is minted unless everything it points at is
//! stored and verified.

use std::path::PathBuf;

use contracts::model_registry::MintParams;
use ethers::types::{Address, H256, U256};
use fingerprint::{BackendKind, Model};

use crate::market::Market;
use crate::metadata::{ipfs_uri, Encryption, ModelMetadata, AGE_X25519, SCHEMA};
use crate::progress::Progress;
use crate::provenance::{self, Related, Skipped};
use crate::sealed::{self, ModelKey};
use crate::{Error, Result};
use content::{Cid, Store, Version};

/// What the author asks for.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// One safetensors file, or a model folder (sharded safetensors with their index, config,
    /// tokenizer, card: stored whole as one directory, its weights fingerprinted as one model).
    pub weights: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// Declared parents, each with the fine-tune license presented (0: the minter owns it).
    pub parents: Vec<(U256, U256)>,
    /// Receiver of the model token; the signer when `None`.
    pub to: Option<Address>,
    /// ERC-2981 royalty on sales of the model token.
    pub sale_royalty_bps: u16,
    /// Share of every sale of every derivative owed to this model, at least (immutable).
    pub derivative_royalty_bps: u16,
    /// Mint despite an undeclared related model (the contract still refuses a registered
    /// content root).
    pub force: bool,
    pub backend: BackendKind,
    pub cid_version: Version,
    /// Store the weights only encrypted, with the model key wrapped to these recipients (the
    /// author first, then the keepers).
    pub encrypt_to: Option<Vec<age::x25519::Recipient>>,
}

/// What was minted.
#[derive(Debug)]
pub struct Minted {
    pub model: U256,
    pub tx: H256,
    pub weights: Cid,
    pub fingerprint: Cid,
    pub metadata: Cid,
    pub content_root: [u8; 32],
    pub fingerprint_hash: [u8; 32],
    pub bytes: u64,
    /// Registered models the weights read as related to (all explained by the declared
    /// lineage).
    pub related: Vec<Related>,
    /// Registered models that could not be compared (their data is not in this store).
    pub skipped: Vec<Skipped>,
    /// The envelope of an encrypted model.
    pub envelope: Option<Cid>,
}

/// What storing the weights gave: a file's or a folder's CID, and its bytes.
struct Stored {
    cid: Cid,
    size: u64,
}

impl From<content::Added> for Stored {
    fn from(added: content::Added) -> Self {
        Self {
            cid: added.cid,
            size: added.size,
        }
    }
}

pub async fn mint(
    market: &Market,
    store: &Store,
    request: &MintRequest,
    progress: &dyn Progress,
) -> Result<Minted> {
    let path = &request.weights;
    // A model folder (a Hugging Face release: shards, index, config, tokenizer, card) is
    // fingerprinted as one model and stored whole as one directory.
    let folder = path.is_dir();
    if !folder && !path.is_file() {
        return Err(Error::NotAFile {
            what: "the weights",
            path: path.clone(),
        });
    }
    if request.encrypt_to.is_some() {
        let what = match folder {
            true => Some("a folder"),
            false if fingerprint::source::is_gguf(path)? => Some("a GGUF file"),
            false => None,
        };
        if let Some(what) = what {
            return Err(Error::EncryptedFormat {
                path: path.clone(),
                what,
            });
        }
    }
    let model = Model::open(path)?;
    if folder {
        uncovered_weights(path, &model)?;
    }
    let backend = fingerprint::backend::create(request.backend)?;
    progress.stage("fingerprinting", Some(model.data_bytes()));
    let fp = fingerprint::fingerprint(&model, backend.as_ref(), |done| progress.set(done))?;
    progress.done();

    // Check before uploading anything: a refused mint should cost no upload.
    if let Some(model) = market.model_by_content(fp.content_root).await? {
        return Err(Error::DuplicateContent {
            model: model.as_u64(),
            content_root: fingerprint::hex(&fp.content_root),
        });
    }
    let declared: Vec<u64> = request.parents.iter().map(|(p, _)| p.as_u64()).collect();
    let (related, skipped) = provenance::scan(market, store, &fp, &declared).await?;
    for s in &skipped {
        tracing::warn!(
            model = s.model,
            "could not compare with registered model: {}",
            s.reason
        );
    }
    if let Some(undeclared) = related.iter().find(|r| !r.explained && !request.force) {
        return Err(Error::UndeclaredParent {
            model: undeclared.model,
            verdict: undeclared.comparison.verdict.as_str(),
            similarity: undeclared.comparison.similarity,
            fpp: undeclared.comparison.false_positive_probability,
        });
    }

    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    let (weights, encryption) = match &request.encrypt_to {
        None if folder => {
            progress.stage("storing the model folder", None);
            let added = store
                .store_dir(path, request.cid_version, false, &|done| progress.set(done))
                .await?;
            (
                Stored {
                    cid: added.cid,
                    size: added.size,
                },
                None,
            )
        }
        None => {
            progress.stage("storing weights", size);
            let weights = store
                .store_file(path, request.cid_version, &|done| progress.set(done))
                .await?;
            (Stored::from(weights), None)
        }
        Some(recipients) => {
            // A fresh key per model: a leaked key opens one model only.
            let key = ModelKey::generate();
            progress.stage("encrypting and storing weights", size);
            let weights = sealed::add_encrypted(
                store,
                path,
                &key.recipient(),
                request.cid_version,
                &|done| progress.set(done),
            )
            .await?;
            let weights = Stored::from(weights);
            let envelope = store
                .store_bytes(&key.wrap(recipients)?, request.cid_version)
                .await?;
            let encryption = Encryption {
                scheme: AGE_X25519.into(),
                envelope: ipfs_uri(&envelope),
                plaintext_bytes: size.unwrap_or_default(),
            };
            (weights, Some((envelope, encryption)))
        }
    };
    progress.done();
    let encoding = fp.encode();
    let fingerprint_cid = store.store_bytes(&encoding, request.cid_version).await?;
    let metadata = ModelMetadata {
        schema: SCHEMA.into(),
        name: request.name.clone(),
        description: request.description.clone(),
        weights: ipfs_uri(&weights.cid),
        fingerprint: ipfs_uri(&fingerprint_cid),
        fingerprint_hash: fingerprint::hex(&fp.hash()),
        content_root: fingerprint::hex(&fp.content_root),
        parameters: fp.parameters(),
        tensors: fp.tensors.len() as u64,
        bytes: model.data_bytes(),
        encryption: encryption.as_ref().map(|(_, e)| e.clone()),
    };
    let metadata_cid = store
        .store_bytes(&metadata.to_json(), request.cid_version)
        .await?;

    let (parents, licenses) = request.parents.iter().copied().unzip();
    let params = MintParams {
        to: request.to.unwrap_or_else(|| market.address()),
        weights_cid: weights.cid.to_string(),
        content_root: fp.content_root,
        fingerprint: fp.hash(),
        metadata_uri: ipfs_uri(&metadata_cid),
        sale_royalty_bps: request.sale_royalty_bps.into(),
        derivative_royalty_bps: request.derivative_royalty_bps,
        encrypted: encryption.is_some(),
        parents,
        licenses,
    };
    let (id, tx) = market.mint(params).await?;
    Ok(Minted {
        model: id,
        tx,
        weights: weights.cid,
        fingerprint: fingerprint_cid,
        metadata: metadata_cid,
        content_root: fp.content_root,
        fingerprint_hash: fp.hash(),
        bytes: weights.size,
        related,
        skipped,
        envelope: encryption.map(|(cid, _)| cid),
    })
}

/// Extensions of files that hold weights (a loader could run them instead of the ones
/// fingerprinted).
const WEIGHT_EXTENSIONS: [&str; 10] = [
    "safetensors",
    "bin",
    "pt",
    "pth",
    "ckpt",
    "gguf",
    "h5",
    "onnx",
    "msgpack",
    "pkl",
];

/// Refuses a model folder holding weight files the fingerprint did not read (a stolen
/// `model.safetensors` beside the index's shards, which a loader prefers): what is checked
/// against the chain must be what a user runs. Hidden entries are skipped, as they are not
/// stored.
pub(crate) fn uncovered_weights(dir: &std::path::Path, model: &Model) -> Result<()> {
    let covered: Vec<std::path::PathBuf> = model
        .weight_files()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()))
        .collect();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|cause| Error::Io {
            path: folder.clone(),
            cause,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let weights = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| WEIGHT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            let known = path
                .canonicalize()
                .map(|p| covered.contains(&p))
                .unwrap_or(false);
            if weights && !known {
                return Err(Error::UncoveredWeights {
                    file: path,
                    covered: covered
                        .iter()
                        .filter_map(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Ok(())
}
