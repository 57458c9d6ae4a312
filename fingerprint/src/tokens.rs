//! A model's vocabulary: the token string of each embedding row, read from the tokenizer
//! beside the weights (Hugging Face `tokenizer.json`, or a WordPiece `vocab.txt`).
//!
//! The residual anchors ([`crate::anchor`]) are keyed by token string when the vocabulary is
//! known, so that reordering, adding or removing vocabulary rows leaves every other token's
//! key, and so the anchors, unchanged.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Token strings by id (`None` for ids the tokenizer leaves unassigned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub strings: Vec<Option<String>>,
    /// BLAKE3 over the `(id, string)` list: recorded in the fingerprint, so a verifier knows
    /// which vocabulary keyed the anchors.
    pub hash: [u8; 32],
}

/// Ids above this are refused (a malformed file must not make us allocate without bound).
const MAX_ID: u64 = 1 << 24;
/// Larger vocabulary files are refused before they are read: the largest real tokenizers
/// (Gemma's `tokenizer.json`, 33 MB) are far below, and a folder's files may take up to 1 GiB,
/// which parsed as a JSON tree would take tens of GB.
const MAX_FILE: u64 = 128 << 20;

/// The parts of a `tokenizer.json` read; the rest (merges, normalizer, …) is skipped
/// unparsed.
#[derive(serde::Deserialize)]
struct TokenizerFile {
    model: Option<TokenizerModel>,
    added_tokens: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct TokenizerModel {
    vocab: Option<serde_json::Value>,
}

impl Tokens {
    /// The vocabulary in `dir`: `tokenizer.json` if present, else `vocab.txt`; `None` when
    /// neither exists.
    pub fn find(dir: &Path) -> Result<Option<Self>> {
        for name in ["tokenizer.json", "vocab.txt"] {
            let path = dir.join(name);
            if path.is_file() {
                return Self::open(&path).map(Some);
            }
        }
        Ok(None)
    }

    /// Reads a `tokenizer.json` or a `vocab.txt` (one token per line, the line number its id).
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            cause: source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE {
            return Err(Error::Tokenizer {
                path: path.to_path_buf(),
                problem: format!(
                    "{size} bytes, larger than a vocabulary file may be ({MAX_FILE} bytes)"
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_tokenizer_json(path, &text)
        } else {
            Ok(Self::from_pairs(
                text.lines()
                    .enumerate()
                    .map(|(i, s)| (i as u64, s.to_string())),
            ))
        }
    }

    fn from_tokenizer_json(path: &Path, text: &str) -> Result<Self> {
        let bad = |problem: String| Error::Tokenizer {
            path: PathBuf::from(path),
            problem,
        };
        let json: TokenizerFile =
            serde_json::from_str(text).map_err(|e| bad(format!("malformed JSON: {e}")))?;
        let vocab = json
            .model
            .and_then(|m| m.vocab)
            .ok_or_else(|| bad("no model.vocab".into()))?;
        let mut pairs: Vec<(u64, String)> = Vec::new();
        match vocab {
            // BPE, WordPiece, WordLevel: {"token": id}
            serde_json::Value::Object(map) => {
                for (token, id) in map {
                    let id = id
                        .as_u64()
                        .ok_or_else(|| bad(format!("token {token:?} has a non-integer id")))?;
                    pairs.push((id, token));
                }
            }
            // Unigram: [["piece", score], …], the index is the id
            serde_json::Value::Array(list) => {
                for (id, entry) in list.iter().enumerate() {
                    let piece = entry
                        .get(0)
                        .and_then(|p| p.as_str())
                        .ok_or_else(|| bad(format!("vocab entry {id} has no piece string")))?;
                    pairs.push((id as u64, piece.to_string()));
                }
            }
            _ => return Err(bad("model.vocab is neither an object nor a list".into())),
        }
        if let Some(added) = json.added_tokens.as_ref().and_then(|a| a.as_array()) {
            for t in added {
                if let (Some(id), Some(content)) = (
                    t.get("id").and_then(|i| i.as_u64()),
                    t.get("content").and_then(|c| c.as_str()),
                ) {
                    pairs.push((id, content.to_string()));
                }
            }
        }
        if let Some((id, _)) = pairs.iter().find(|(id, _)| *id >= MAX_ID) {
            return Err(bad(format!("token id {id} is too large")));
        }
        Ok(Self::from_pairs(pairs))
    }

    /// A vocabulary from token strings by id.
    pub fn new(strings: Vec<Option<String>>) -> Self {
        Self::from_pairs(
            strings
                .into_iter()
                .enumerate()
                .filter_map(|(id, s)| s.map(|s| (id as u64, s))),
        )
    }

    fn from_pairs(pairs: impl IntoIterator<Item = (u64, String)>) -> Self {
        let mut strings: Vec<Option<String>> = Vec::new();
        for (id, s) in pairs {
            let id = id as usize;
            if strings.len() <= id {
                strings.resize(id + 1, None);
            }
            // An added token repeats its vocab entry; the first string for an id stays.
            strings[id].get_or_insert(s);
        }
        let mut h = blake3::Hasher::new_derive_key("model-registry vocabulary v2");
        for (id, s) in strings.iter().enumerate() {
            if let Some(s) = s {
                h.update(&(id as u64).to_le_bytes());
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
        Tokens {
            strings,
            hash: *h.finalize().as_bytes(),
        }
    }

    /// Number of ids (one more than the largest).
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// The 64 probe signs of vocabulary row `id`: from its token string when known, else from the
/// id (in another domain, so a string can never collide with an id).
pub fn row_key(tokens: Option<&Tokens>, id: usize) -> u64 {
    let mut h = blake3::Hasher::new_derive_key("model-registry token key v2");
    match tokens
        .and_then(|t| t.strings.get(id))
        .and_then(|s| s.as_ref())
    {
        Some(s) => {
            h.update(b"s");
            h.update(s.as_bytes());
        }
        None => {
            h.update(b"#");
            h.update(&(id as u64).to_le_bytes());
        }
    }
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder's files may take 1 GiB: a vocabulary file that large is refused by its size,
    /// not read and parsed (tens of GB as a JSON tree).
    #[test]
    fn a_vocabulary_file_past_its_bound_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["tokenizer.json", "vocab.txt"] {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            file.set_len(MAX_FILE + 1).unwrap(); // sparse: nothing written
            let err = Tokens::open(&path).unwrap_err();
            assert!(
                err.to_string().contains("larger than a vocabulary file"),
                "{err}"
            );
        }
    }

    /// Only the vocabulary and added tokens are read; whatever else the file holds (merges,
    /// a normalizer) is skipped, however it is shaped.
    #[test]
    fn the_rest_of_a_tokenizer_file_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(
            &path,
            r#"{"version":"1.0","normalizer":null,"model":{"type":"BPE","merges":[["a","b"]],
               "vocab":{"a":0,"b":1,"ab":2}},"post_processor":{"x":[1,2,{"y":null}]}}"#,
        )
        .unwrap();
        let t = Tokens::open(&path).unwrap();
        assert_eq!(t.strings[2].as_deref(), Some("ab"));
        std::fs::write(&path, r#"{"model":{"type":"BPE"}}"#).unwrap();
        let err = Tokens::open(&path).unwrap_err();
        assert!(err.to_string().contains("no model.vocab"), "{err}");
    }

    #[test]
    fn reads_wordpiece_unigram_and_vocab_txt() {
        let dir = tempfile::tempdir().unwrap();
        let wp = dir.path().join("tokenizer.json");
        std::fs::write(
            &wp,
            r###"{"model":{"type":"WordPiece","vocab":{"[PAD]":0,"the":2,"##s":1}},
               "added_tokens":[{"id":3,"content":"<new>"}]}"###,
        )
        .unwrap();
        let t = Tokens::open(&wp).unwrap();
        assert_eq!(t.strings[1].as_deref(), Some("##s"));
        assert_eq!(t.strings[3].as_deref(), Some("<new>"));
        let uni = dir.path().join("u.json");
        std::fs::write(
            &uni,
            r#"{"model":{"type":"Unigram","vocab":[["<s>",0.0],["▁a",-1.5]]}}"#,
        )
        .unwrap();
        assert_eq!(
            Tokens::open(&uni).unwrap().strings[1].as_deref(),
            Some("▁a")
        );
        let txt = dir.path().join("vocab.txt");
        std::fs::write(&txt, "[PAD]\nthe\n##s\n").unwrap();
        let v = Tokens::open(&txt).unwrap();
        assert_eq!(v.len(), 3);
        // Same strings under other ids: different vocabulary hash, same per-string keys.
        assert_ne!(v.hash, t.hash);
        assert_eq!(row_key(Some(&v), 2), row_key(Some(&t), 1));
        assert_ne!(row_key(None, 1), row_key(Some(&t), 1));
        let broken = dir.path().join("b.json");
        std::fs::write(&broken, r#"{"model":{"vocab":{"a":"x"}}}"#).unwrap();
        let e = Tokens::open(&broken).unwrap_err().to_string();
        assert!(e.contains("b.json") && e.contains("non-integer id"), "{e}");
    }
}
