//! Opening models: one safetensors file, a directory of shards, or a
//! `*.safetensors.index.json`. Files are memory-mapped; headers are validated (by the
//! `safetensors` crate) before any tensor is touched, and every problem names its file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;

use crate::dtype::Dtype;
use crate::tokens::Tokens;
use crate::{Error, Result};

/// A tensor of a model: where its bytes are.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// Where its bytes are stored (for a dequantized tensor, the quantized bytes it is
    /// read from, or its packed group's anchor).
    file: usize,
    start: usize,
    end: usize,
    /// For a tensor dequantized when read: its entry in the model's derivations.
    derived: Option<usize>,
}

impl TensorRef {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Bytes of its data as read ([`Model::data`]): `f32`s for a dequantized tensor.
    pub fn byte_len(&self) -> usize {
        match self.derived {
            Some(_) => self.elements() as usize * 4,
            None => self.end - self.start,
        }
    }
}

/// A tensor's bytes as [`Model::data`] gives them: borrowed from the file, or a dequantized
/// tensor's `f32` values, shared with the model's one-slot cache.
#[derive(Debug, Clone)]
pub enum TensorData<'a> {
    Borrowed(&'a [u8]),
    Shared(Arc<Vec<u8>>),
}

impl std::ops::Deref for TensorData<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            TensorData::Borrowed(b) => b,
            TensorData::Shared(v) => v,
        }
    }
}

/// How a dequantized tensor is made when it is read, so that only the tensor being read is
/// held as `f32` (a 4-bit model would take eight times its file in memory otherwise).
#[derive(Debug)]
enum Derivation {
    /// A GGUF block-quantized tensor.
    Gguf(crate::gguf::Quant),
    /// A packed group of a safetensors checkpoint, found by its anchor tensor.
    Packed {
        anchor: String,
        config: crate::packed::Config,
        /// The group's stored tensors (indices into `Model::parts`): only these are mapped by
        /// name when it is read again, not every part of the model.
        parts: Vec<usize>,
    },
}

/// The bytes of one file: mapped from disk, or owned (a model received over the network).
#[derive(Debug)]
enum Backing {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Backing {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// Waits until the bytes `..end` of file `file` of a model are in place: a model read while it
/// is still being written (a download checked as it arrives) is only read behind its writer.
pub type Gate = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// An opened model: its files mapped, its tensors sorted by name.
pub struct Model {
    files: Vec<(PathBuf, Backing)>,
    tensors: Vec<TensorRef>,
    /// The stored tensors of packed groups, read again to dequantize them.
    parts: Vec<TensorRef>,
    derivations: Vec<Derivation>,
    /// The vocabulary, when one was found beside the weights or given.
    tokens: Option<Tokens>,
    gate: Option<Gate>,
    /// The last dequantized tensor read (its derivation and values): a vocabulary table is
    /// read by several anchor stages and its own sketch in a row, and is dequantized once.
    /// One slot, so at most one extra tensor is held.
    last: Mutex<Option<(usize, Arc<Vec<u8>>)>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("files", &self.files)
            .field("tensors", &self.tensors)
            .field("tokens", &self.tokens)
            .field("gated", &self.gate.is_some())
            .finish()
    }
}

impl Model {
    /// Opens a safetensors file, a directory of `*.safetensors` shards (through its
    /// `*.safetensors.index.json` when it has one), or an index. A directory's (or an index's
    /// directory's) `tokenizer.json` or `vocab.txt` is read as the vocabulary; a single file
    /// gets none unless [`Model::with_tokens`] gives one.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_gated(path, None)
    }

    /// [`Model::open`] for a file that is still being written in order (its full length
    /// already allocated, so the map covers it): every tensor is read only once `gate` has
    /// returned for its end, the packed ones (see [`crate::packed`]) too, while opening.
    pub fn open_gated(path: &Path, gate: Option<Gate>) -> Result<Self> {
        let mut model = Self::open_weights(path)?;
        model.gate = gate;
        let dir = if path.is_dir() {
            Some(path)
        } else if path.to_string_lossy().ends_with(".index.json") {
            path.parent()
        } else {
            None
        };
        if let Some(dir) = dir {
            model.tokens = Tokens::find(dir)?;
        }
        // A folder's config.json is part of the model (stored, downloaded and verified with
        // it); a single file's neighbours are not, so its packed groups are read from their
        // tensors alone, the same wherever the file lies.
        let config = dir.map(crate::packed::Config::find).unwrap_or_default();
        model.unpack(&config)
    }

    /// Replaces every packed quantization's tensors by their dequantized `f32` tensor (each
    /// group checked now, its values made again whenever it is read).
    fn unpack(mut self, config: &crate::packed::Config) -> Result<Self> {
        let Some((label, _)) = self.files.first() else {
            return Ok(self);
        };
        let label = label.clone();
        let plans = crate::packed::plan(&label, &self.stored_map(&self.tensors), config)?;
        if plans.is_empty() {
            return Ok(self);
        }
        let replaced: BTreeSet<&str> = plans
            .iter()
            .flat_map(|g| g.replaces.iter().map(String::as_str))
            .collect();
        let (parts, kept) = std::mem::take(&mut self.tensors)
            .into_iter()
            .partition(|t| replaced.contains(t.name.as_str()));
        self.tensors = kept;
        self.parts = parts;
        self.parts.sort_by(|a, b| a.name.cmp(&b.name));
        for g in plans {
            let index = |name: &str| {
                self.parts
                    .binary_search_by(|t| t.name.as_str().cmp(name))
                    .expect("a group's tensors are parts")
            };
            let anchor = &self.parts[index(&g.anchor)];
            let parts = g.replaces.iter().map(|r| index(r)).collect();
            let derived = TensorRef {
                name: g.name,
                dtype: Dtype::F32,
                shape: g.shape,
                file: anchor.file,
                start: anchor.start,
                end: anchor.end,
                derived: Some(self.derivations.len()),
            };
            self.derivations.push(Derivation::Packed {
                anchor: g.anchor,
                config: config.clone(),
                parts,
            });
            self.tensors.push(derived);
        }
        self.tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(self)
    }

    /// `tensors` by name, as the unpacker reads them (their bytes through the gate). A GGUF's
    /// block-quantized tensors are no parts of a packed group: their stored bytes are not
    /// of their type.
    fn stored_map<'a>(
        &'a self,
        tensors: impl IntoIterator<Item = &'a TensorRef>,
    ) -> BTreeMap<&'a str, crate::packed::Stored<'a>> {
        tensors
            .into_iter()
            .filter(|t| t.derived.is_none())
            .map(|t| {
                let stored = crate::packed::Stored::new(t.dtype, &t.shape, move || self.stored(t));
                (t.name.as_str(), stored)
            })
            .collect()
    }

    /// Sets the vocabulary (token strings by embedding row).
    pub fn with_tokens(mut self, tokens: Option<Tokens>) -> Self {
        self.tokens = tokens;
        self
    }

    /// The vocabulary, if known.
    pub fn tokens(&self) -> Option<&Tokens> {
        self.tokens.as_ref()
    }

    fn open_weights(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            cause: source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let files = if meta.is_dir() {
            let entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            // A folder with an index (a sharded checkpoint) is read through it: other
            // safetensors beside the shards (a consolidated copy, say) are not part of it.
            let mut indexes: Vec<&PathBuf> = entries
                .iter()
                .filter(|p| p.to_string_lossy().ends_with(".safetensors.index.json"))
                .collect();
            indexes.sort();
            match indexes.as_slice() {
                [index] => return Self::open_index(index),
                [] => {}
                [first, ..] => {
                    return Err(Error::Index {
                        index: (*first).clone(),
                        problem: format!(
                            "{} has several indexes: name one of them",
                            path.display()
                        ),
                    })
                }
            }
            let mut files: Vec<PathBuf> = entries
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::EmptyDirectory {
                    path: path.to_path_buf(),
                });
            }
            files
        } else if path.to_string_lossy().ends_with(".index.json") {
            return Self::open_index(path);
        } else if is_gguf(path)? {
            return Self::open_gguf(path);
        } else {
            vec![path.to_path_buf()]
        };
        Self::open_files(&files)
    }

    /// A model from the bytes of one safetensors file; `label` names it in errors.
    pub fn from_bytes(label: &str, bytes: Vec<u8>) -> Result<Self> {
        let path = PathBuf::from(label);
        let mut tensors = parse_header(&path, &bytes, 0)?;
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            files: vec![(path, Backing::Owned(bytes))],
            tensors,
            tokens: None,
            gate: None,
            parts: Vec::new(),
            derivations: Vec::new(),
            last: Mutex::new(None),
        }
        .unpack(&crate::packed::Config::default())
    }

    /// A GGUF file (see [`crate::gguf`]): plain tensors read in place, block-quantized ones
    /// dequantized into `f32` whenever they are read; its vocabulary from its metadata.
    fn open_gguf(path: &Path) -> Result<Self> {
        let mmap = map(path)?;
        let parsed = crate::gguf::parse(path, &mmap)?;
        let mut derivations = Vec::new();
        let mut tensors = Vec::with_capacity(parsed.tensors.len());
        for t in parsed.tensors {
            let (dtype, derived) = match t.kind {
                crate::gguf::Kind::Plain(dtype) => (dtype, None),
                crate::gguf::Kind::Quantized(quant) => {
                    derivations.push(Derivation::Gguf(quant));
                    (Dtype::F32, Some(derivations.len() - 1))
                }
            };
            tensors.push(TensorRef {
                name: t.name,
                dtype,
                shape: t.shape,
                file: 0,
                start: t.start,
                end: t.start + t.len,
                derived,
            });
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let tokens = parsed
            .tokens
            .map(|strings| Tokens::new(strings.into_iter().map(Some).collect()));
        Ok(Self {
            files: vec![(path.to_path_buf(), Backing::Mapped(mmap))],
            tensors,
            parts: Vec::new(),
            derivations,
            tokens,
            gate: None,
            last: Mutex::new(None),
        })
    }

    fn open_index(index: &Path) -> Result<Self> {
        let problem = |problem: String| Error::Index {
            index: index.to_path_buf(),
            problem,
        };
        let text = std::fs::read_to_string(index).map_err(|source| Error::Io {
            path: index.to_path_buf(),
            cause: source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| problem(format!("malformed JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| problem("no \"weight_map\" object".into()))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut expected: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (tensor, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| problem(format!("tensor {tensor:?} maps to a non-string")))?;
            if Path::new(file).components().count() != 1 {
                return Err(problem(format!(
                    "shard name {file:?} must be a plain file name"
                )));
            }
            expected.insert(tensor.clone(), dir.join(file));
        }
        let files: Vec<PathBuf> = expected
            .values()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let model = Self::open_files(&files)?;
        for t in &model.tensors {
            match expected.get(&t.name) {
                Some(file) if *file == model.files[t.file].0 => {}
                Some(file) => {
                    return Err(problem(format!(
                        "tensor {:?} is in {} but the index says {}",
                        t.name,
                        model.files[t.file].0.display(),
                        file.display()
                    )))
                }
                None => {
                    return Err(problem(format!(
                        "tensor {:?} is not in the weight map",
                        t.name
                    )))
                }
            }
        }
        if expected.len() != model.tensors.len() {
            let present: BTreeSet<&str> = model.tensors.iter().map(|t| t.name.as_str()).collect();
            let missing = expected
                .keys()
                .find(|k| !present.contains(k.as_str()))
                .expect("a key is missing");
            return Err(problem(format!(
                "tensor {missing:?} is in the weight map but in no shard"
            )));
        }
        Ok(model)
    }

    fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut tensors: Vec<TensorRef> = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (index, path) in paths.iter().enumerate() {
            let mmap = Backing::Mapped(map(path)?);
            for t in parse_header(path, &mmap, index)? {
                if let Some(&first) = seen.get(&t.name) {
                    return Err(Error::DuplicateTensor {
                        tensor: t.name,
                        first: paths[first].clone(),
                        second: path.clone(),
                    });
                }
                seen.insert(t.name.clone(), index);
                tensors.push(t);
            }
            files.push((path.clone(), mmap));
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            files,
            tensors,
            tokens: None,
            gate: None,
            parts: Vec::new(),
            derivations: Vec::new(),
            last: Mutex::new(None),
        })
    }

    /// Tensors sorted by name (bytewise).
    pub fn tensors(&self) -> &[TensorRef] {
        &self.tensors
    }

    /// The tensor's bytes (once they are in place, for a gated model): borrowed from the
    /// file, or for a quantized tensor its `f32` values, made now (or by the read just
    /// before, of the same tensor).
    pub fn data(&self, t: &TensorRef) -> TensorData<'_> {
        let Some(i) = t.derived else {
            return TensorData::Borrowed(self.stored(t));
        };
        let cached = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((j, values)) = cached.filter(|(j, _)| *j == i) {
            debug_assert_eq!(j, i);
            return TensorData::Shared(values);
        }
        let values = match &self.derivations[i] {
            Derivation::Gguf(quant) => {
                let mut out = Vec::with_capacity(t.byte_len());
                crate::gguf::dequantize(*quant, self.stored(t), &mut out);
                out
            }
            Derivation::Packed {
                anchor,
                config,
                parts,
            } => {
                let (label, _) = &self.files[0];
                let group = self.stored_map(parts.iter().map(|&i| &self.parts[i]));
                crate::packed::values_of(label, &group, config, anchor)
                    .expect("a packed group is checked when the model is opened")
            }
        };
        let values = Arc::new(values);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((i, values.clone()));
        TensorData::Shared(values)
    }

    /// The stored bytes of `t` (of its quantized form, for a dequantized tensor).
    fn stored(&self, t: &TensorRef) -> &[u8] {
        // Only mapped files arrive: a model sent as bytes is whole.
        if let (Some(gate), Backing::Mapped(_)) = (&self.gate, &self.files[t.file].1) {
            gate(t.file, t.end);
        }
        &self.files[t.file].1[t.start..t.end]
    }

    /// Tensors in the order they are stored (file, then offset): the order a model read while
    /// it arrives should be read in.
    pub fn storage_order(&self) -> Vec<&TensorRef> {
        let mut order: Vec<&TensorRef> = self.tensors.iter().collect();
        order.sort_by_key(|t| (t.file, t.start));
        order
    }

    /// The file the tensor is stored in.
    pub fn file_of(&self, t: &TensorRef) -> &Path {
        &self.files[t.file].0
    }

    /// Total bytes of tensor data.
    pub fn data_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.byte_len() as u64).sum()
    }
}

/// Whether the file at `path` is GGUF, by its magic (a download's temporary file has no
/// `.gguf` name).
pub fn is_gguf(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    Ok(file.read_exact(&mut magic).is_ok() && &magic == b"GGUF")
}

impl Model {
    /// The files holding the weights (a folder's shards, or the one file): a caller checks a
    /// folder holds no other weights besides them.
    pub fn weight_files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(path, _)| path.as_path())
    }
}

fn map(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    // SAFETY: the map is read-only. Another process truncating the file while it is mapped
    // would fault (SIGBUS); safetensors files are written once and not modified in place.
    #[allow(unsafe_code)]
    let mmap = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    Ok(mmap)
}

/// Validates a safetensors header against the buffer and lists its tensors. Never panics;
/// memory is bounded by a small multiple of the header's size (at most 100 MB).
pub fn parse_header(path: &Path, buffer: &[u8], file: usize) -> Result<Vec<TensorRef>> {
    use safetensors::SafeTensorError as E;
    let header = |problem: String| Error::Header {
        file: path.to_path_buf(),
        problem,
    };
    let (n, metadata) = safetensors::SafeTensors::read_metadata(buffer).map_err(|e| {
        header(match e {
            E::HeaderTooSmall => format!(
                "truncated: {} bytes, shorter than the 8-byte header length",
                buffer.len()
            ),
            E::InvalidHeaderLength => {
                let n = u64::from_le_bytes(buffer[..8].try_into().expect("8 bytes"));
                format!(
                    "header length {n} runs beyond the end of the file ({} bytes)",
                    buffer.len()
                )
            }
            E::HeaderTooLarge => "header length above the 100 MB limit".into(),
            E::InvalidHeader(e) => format!("header is not UTF-8: {e}"),
            E::InvalidHeaderDeserialization(e) => format!("malformed header JSON: {e}"),
            E::InvalidOffset(name) => {
                format!("tensor {name:?} has overlapping or out-of-range data offsets")
            }
            E::TensorInvalidInfo => {
                "a tensor's dtype and shape do not match its byte length".into()
            }
            E::MetadataIncompleteBuffer => {
                "tensor data does not end where the file ends (truncated file or trailing bytes)"
                    .into()
            }
            E::ValidationOverflow => "a tensor's shape overflows when multiplied out".into(),
            other => format!("invalid safetensors file: {other}"),
        })
    })?;
    let base = n + 8;
    let mut out = Vec::new();
    for (name, info) in metadata.tensors() {
        if info.shape.len() > 255 {
            return Err(header(format!(
                "tensor {name:?} has {} dimensions (at most 255)",
                info.shape.len()
            )));
        }
        let dtype = Dtype::from_safetensors(info.dtype, &name, path)?;
        let (start, end) = info.data_offsets;
        out.push(TensorRef {
            name,
            dtype,
            shape: info.shape.iter().map(|&d| d as u64).collect(),
            file,
            start: base + start,
            end: base + end,
            derived: None,
        });
    }
    Ok(out)
}
