//! The canonical binary encoding of a fingerprint and its commitment hash. Version 2 is
//! written; versions 1 and 2 are read.
//!
//! All integers little-endian. Version 2:
//! ```text
//! magic "MRFP" | version u16 = 2 | probes u16 = 64 | probe_seed u32 | content_root [32]
//! anchors u8: 0 none | 1 keyed by row id | 2 keyed by token string, then (1, 2):
//!   width u32 | (2:) vocabulary hash [32] | source_count u16 | (name_len u32 | name) × count
//! tensor_count u32, then per tensor, sorted by name (bytewise):
//!   name_len u32 | name (UTF-8) | dtype u8 | ndim u8 | dims u64 × ndim | data_hash [32]
//!   flags u8 (bit 0: structured, [`crate::structure`]) | side_count u8 (0: hashed only),
//!   then per side:
//!     axis u8 (0 rows, 1 columns of the canonical matrix) | probes u8 (0 hashed, 1 keyed anchors, 2 anchors keyed by id, 3 by content) | bits u8
//!     | units u32 | signatures u64 × units
//! ```
//! The commitment is `BLAKE3-derive("model-registry fingerprint v2")(encoding)`.
//!
//! Version 1 (read only; its commitment context is "model-registry fingerprint v1"):
//! ```text
//! magic "MRFP" | version u16 = 1 | probes u16 = 32 | probe_seed u32 | content_root [32]
//! tensor_count u32, then per tensor, sorted by name (bytewise):
//!   name_len u32 | name (UTF-8) | dtype u8 | ndim u8 | dims u64 × ndim | data_hash [32]
//!   kind u8: 0 none | 1 vector: top i32, bits u8, signature u32
//!                   | 2 matrix: rows u32, cols u32, top i32, bits u8, sketch u32,
//!                               row signatures u32 × rows, column signatures u32 × cols
//! ```
//!
//! Dtype codes: F32 1, F16 2, BF16 3, I8 4, U8 5, F8_E4M3 6, F8_E5M2 7 (sketched); F64 8,
//! I16 9, I32 10, I64 11, U16 12, U32 13, U64 14, BOOL 15 (hashed only). Names are strictly
//! increasing (so unique); at most 255 dimensions; a side's unit count must be that of the
//! tensor's canonical matrix ([`crate::layout`]); nothing may follow the last tensor.

use crate::anchor::Keying;
use crate::dtype::Dtype;
use crate::fingerprint::{AnchorInfo, Fingerprint, TensorFingerprint, TensorSketch};
use crate::probe::{K, PROBES, PROBE_SEED};
use crate::scale::Axis;
use crate::sketch::{Probes, UnitSide};
use crate::v1::MatrixSketch;
use crate::{Error, Result};

pub const MAGIC: &[u8; 4] = b"MRFP";
/// The version written.
pub const VERSION: u16 = 2;
const HASH_CONTEXT_V1: &str = "model-registry fingerprint v1";
const HASH_CONTEXT_V2: &str = "model-registry fingerprint v2";

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Fingerprint {
    /// The canonical encoding (in the fingerprint's own version).
    pub fn encode(&self) -> Vec<u8> {
        let v1 = self.version == 1;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(if v1 { PROBES } else { K } as u16).to_le_bytes());
        out.extend_from_slice(&PROBE_SEED.to_le_bytes());
        out.extend_from_slice(&self.content_root);
        if !v1 {
            match &self.anchors {
                None => out.push(0),
                Some(a) => {
                    match a.keying {
                        Keying::Ids => out.push(1),
                        Keying::Tokens(_) => out.push(2),
                    }
                    out.extend_from_slice(&a.width.to_le_bytes());
                    if let Keying::Tokens(hash) = a.keying {
                        out.extend_from_slice(&hash);
                    }
                    out.extend_from_slice(&(a.sources.len() as u16).to_le_bytes());
                    for s in &a.sources {
                        put_str(&mut out, s);
                    }
                }
            }
        }
        out.extend_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.push(t.dtype.code());
            out.push(t.shape.len() as u8);
            for d in &t.shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.data_hash);
            if v1 {
                encode_v1_sketch(&mut out, &t.sketch);
                continue;
            }
            out.push(u8::from(t.structured));
            match &t.sketch {
                TensorSketch::Units(sides) => {
                    out.push(sides.len() as u8);
                    for side in sides {
                        out.push(u8::from(side.axis == Axis::Cols));
                        out.push(side.probes.code());
                        out.push(side.bits as u8);
                        out.extend_from_slice(&(side.signatures.len() as u32).to_le_bytes());
                        for s in &side.signatures {
                            out.extend_from_slice(&s.to_le_bytes());
                        }
                    }
                }
                _ => out.push(0),
            }
        }
        out
    }

    /// The 32-byte commitment to the encoding (what goes on-chain).
    pub fn hash(&self) -> [u8; 32] {
        hash_encoding(&self.encode())
    }

    /// Decodes a canonical encoding (version 1 or 2). Rejects anything malformed without
    /// panicking or allocating more than the input's size.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(Error::Encoding("not a fingerprint (bad magic)".into()));
        }
        let version = r.u16()?;
        let probes = match version {
            1 => PROBES,
            2 => K,
            _ => {
                return Err(Error::Encoding(format!(
                    "unsupported version {version} (this build reads 1 and 2)"
                )))
            }
        };
        let (count, seed) = (r.u16()?, r.u32()?);
        if usize::from(count) != probes || seed != PROBE_SEED {
            return Err(Error::Encoding(format!(
                "unsupported probe set ({count} probes, seed {seed:#x})"
            )));
        }
        let content_root = r.array()?;
        let anchors = if version == 2 {
            decode_anchors(&mut r)?
        } else {
            None
        };
        let width = anchors.as_ref().map(|a| u64::from(a.width));
        let count = r.u32()? as usize;
        let mut tensors = Vec::with_capacity(count.min(r.remaining() / 40));
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let name = r.string()?;
            if previous
                .as_ref()
                .is_some_and(|p| p.as_bytes() >= name.as_bytes())
            {
                return Err(Error::Encoding(format!(
                    "tensor {name:?} is out of order or repeated"
                )));
            }
            let code = r.u8()?;
            let dtype = Dtype::from_code(code)
                .ok_or_else(|| Error::Encoding(format!("unknown dtype code {code}")))?;
            let ndim = r.u8()? as usize;
            let shape = (0..ndim).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
            let data_hash = r.array()?;
            let (structured, sketch) = if version == 1 {
                (false, decode_v1_sketch(&mut r, &name, &shape)?)
            } else {
                let structured = match r.u8()? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(Error::Encoding(format!(
                            "tensor {name:?}: unknown flags {other:#x}"
                        )))
                    }
                };
                (structured, decode_sides(&mut r, &name, &shape, width)?)
            };
            previous = Some(name.clone());
            tensors.push(TensorFingerprint {
                name,
                dtype,
                shape,
                data_hash,
                structured,
                sketch,
            });
        }
        if r.remaining() != 0 {
            return Err(Error::Encoding(format!("{} trailing bytes", r.remaining())));
        }
        Ok(Fingerprint {
            version,
            content_root,
            anchors,
            tensors,
        })
    }
}

fn decode_anchors(r: &mut Reader<'_>) -> Result<Option<AnchorInfo>> {
    let kind = r.u8()?;
    if kind == 0 {
        return Ok(None);
    }
    let width = r.u32()?;
    let keying = match kind {
        1 => Keying::Ids,
        2 => Keying::Tokens(r.array()?),
        other => return Err(Error::Encoding(format!("unknown anchor kind {other}"))),
    };
    let count = r.u16()?;
    let sources = (0..count).map(|_| r.string()).collect::<Result<Vec<_>>>()?;
    Ok(Some(AnchorInfo {
        width,
        keying,
        sources,
    }))
}

fn decode_sides(
    r: &mut Reader<'_>,
    name: &str,
    shape: &[u64],
    width: Option<u64>,
) -> Result<TensorSketch> {
    let count = r.u8()?;
    if count == 0 {
        return Ok(TensorSketch::None);
    }
    let bad = |what: String| Error::Encoding(format!("tensor {name:?}: {what}"));
    let view = crate::layout::canonical(shape, width)
        .ok_or_else(|| bad("a tensor of fewer than 2 dimensions has sides".into()))?;
    let mut sides = Vec::with_capacity(usize::from(count).min(2));
    for _ in 0..count {
        let axis = match r.u8()? {
            0 => Axis::Rows,
            1 => Axis::Cols,
            other => return Err(bad(format!("unknown axis {other}"))),
        };
        let code = r.u8()?;
        let probes =
            Probes::from_code(code).ok_or_else(|| bad(format!("unknown probe kind {code}")))?;
        let bits = u32::from(r.u8()?);
        let units = u64::from(r.u32()?);
        let expected = if axis == Axis::Rows {
            view.rows
        } else {
            view.cols
        };
        if units != expected {
            return Err(bad(format!(
                "{units} {} where its canonical matrix has {expected}",
                axis.as_str()
            )));
        }
        let signatures = r.u64s(units as usize)?;
        sides.push(UnitSide {
            axis,
            probes,
            bits,
            signatures,
        });
    }
    Ok(TensorSketch::Units(sides))
}

fn encode_v1_sketch(out: &mut Vec<u8>, sketch: &TensorSketch) {
    match sketch {
        TensorSketch::Vector {
            top,
            bits,
            signature,
        } => {
            out.push(1);
            out.extend_from_slice(&top.to_le_bytes());
            out.push(*bits as u8);
            out.extend_from_slice(&signature.to_le_bytes());
        }
        TensorSketch::Matrix(m) => {
            out.push(2);
            out.extend_from_slice(&m.rows.to_le_bytes());
            out.extend_from_slice(&m.cols.to_le_bytes());
            out.extend_from_slice(&m.top.to_le_bytes());
            out.push(m.bits as u8);
            out.extend_from_slice(&m.sketch.to_le_bytes());
            for s in m.row_signatures.iter().chain(&m.col_signatures) {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        _ => out.push(0),
    }
}

fn decode_v1_sketch(r: &mut Reader<'_>, name: &str, shape: &[u64]) -> Result<TensorSketch> {
    Ok(match r.u8()? {
        0 => TensorSketch::None,
        1 => TensorSketch::Vector {
            top: r.i32()?,
            bits: u32::from(r.u8()?),
            signature: r.u32()?,
        },
        2 => {
            let (rows, cols, top, bits, sketch) =
                (r.u32()?, r.u32()?, r.i32()?, u32::from(r.u8()?), r.u32()?);
            if crate::fingerprint::matrix_dims(shape) != Some((rows, cols)) {
                return Err(Error::Encoding(format!(
                    "tensor {name:?}: matrix {rows}x{cols} does not fit its shape"
                )));
            }
            let row_signatures = r.u32s(rows as usize)?;
            let col_signatures = r.u32s(cols as usize)?;
            TensorSketch::Matrix(MatrixSketch {
                rows,
                cols,
                top,
                bits,
                row_signatures,
                col_signatures,
                sketch,
            })
        }
        kind => {
            return Err(Error::Encoding(format!(
                "tensor {name:?}: unknown sketch kind {kind}"
            )))
        }
    })
}

/// The commitment of an encoding (its version picks the hash context).
pub fn hash_encoding(encoding: &[u8]) -> [u8; 32] {
    let context = if encoding.get(4..6) == Some(&1u16.to_le_bytes()[..]) {
        HASH_CONTEXT_V1
    } else {
        HASH_CONTEXT_V2
    };
    *blake3::Hasher::new_derive_key(context)
        .update(encoding)
        .finalize()
        .as_bytes()
}

/// Whether `bytes` start like a fingerprint encoding.
pub fn is_encoding(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Encoding(format!(
                "truncated at byte {} (wanted {n} more)",
                self.at
            )));
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        Ok(std::str::from_utf8(self.take(len)?)
            .map_err(|_| Error::Encoding("a name is not UTF-8".into()))?
            .to_string())
    }

    fn u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        let bytes = self.take(
            n.checked_mul(8)
                .ok_or_else(|| Error::Encoding("length overflow".into()))?,
        )?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| Error::Encoding("length overflow".into()))?,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare, Verdict};

    fn v1_fingerprint(seed: u32) -> Fingerprint {
        let signatures = |n: u32, salt: u32| -> Vec<u32> {
            (0..n).map(|i| crate::probe::probe_word(i ^ salt)).collect()
        };
        let tensor = |name: &str, rows: u32, cols: u32| TensorFingerprint {
            name: name.into(),
            dtype: Dtype::F32,
            shape: vec![u64::from(rows), u64::from(cols)],
            data_hash: [seed as u8; 32],
            structured: false,
            sketch: TensorSketch::Matrix(MatrixSketch {
                rows,
                cols,
                top: -3,
                bits: 11,
                row_signatures: signatures(rows, seed),
                col_signatures: signatures(cols, seed + 1),
                sketch: seed,
            }),
        };
        Fingerprint {
            version: 1,
            content_root: [seed as u8; 32],
            anchors: None,
            tensors: vec![tensor("a.weight", 64, 32), tensor("b.weight", 32, 64)],
        }
    }

    #[test]
    fn version_1_fingerprints_are_still_read_hashed_and_compared() {
        let old = v1_fingerprint(7);
        let bytes = old.encode();
        assert_eq!(&bytes[4..6], &1u16.to_le_bytes());
        let back = Fingerprint::decode(&bytes).unwrap();
        assert_eq!(back, old);
        // The commitment of a v1 encoding keeps its v1 context (what is on-chain already).
        let v1_hash = *blake3::Hasher::new_derive_key(HASH_CONTEXT_V1)
            .update(&bytes)
            .finalize()
            .as_bytes();
        assert_eq!(back.hash(), v1_hash);
        let mut renamed = old.clone();
        renamed.content_root = [1; 32];
        renamed.tensors[0].data_hash = [2; 32];
        let c = compare(&old, &renamed);
        assert_eq!((c.format, c.verdict), (1, Verdict::Identical));
        assert_eq!(
            compare(&old, &v1_fingerprint(9)).verdict,
            Verdict::Unrelated
        );
    }

    #[test]
    fn version_2_side_sizes_must_fit_the_canonical_matrix() {
        let fp = Fingerprint {
            version: 2,
            content_root: [0; 32],
            anchors: None,
            tensors: vec![TensorFingerprint {
                name: "w".into(),
                dtype: Dtype::BF16,
                shape: vec![20, 30],
                data_hash: [3; 32],
                structured: true,
                sketch: TensorSketch::Units(vec![UnitSide {
                    axis: Axis::Cols,
                    probes: Probes::Hashed,
                    bits: 11,
                    signatures: (0..30).map(crate::probe::hash64).collect(),
                }]),
            }],
        };
        let bytes = fp.encode();
        assert_eq!(Fingerprint::decode(&bytes).unwrap(), fp);
        assert_ne!(fp.hash(), [0; 32]);
        // Claim 31 columns: rejected, naming the tensor.
        let mut bad = bytes.clone();
        let at = bytes.len() - 30 * 8 - 4;
        bad[at..at + 4].copy_from_slice(&31u32.to_le_bytes());
        let e = Fingerprint::decode(&bad).unwrap_err().to_string();
        assert!(e.contains("\"w\"") && e.contains("31 columns"), "{e}");
    }
}
