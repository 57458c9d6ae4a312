//! The canonical binary encoding of a fingerprint (version 1) and its commitment hash.
//!
//! All integers little-endian:
//! ```text
//! magic "MRFP" | version u16 = 1 | probes u16 = 32 | probe_seed u32 | content_root [32]
//! tensor_count u32, then per tensor, sorted by name (bytewise):
//!   name_len u32 | name (UTF-8) | dtype u8 | ndim u8 | dims u64 × ndim | data_hash [32]
//!   kind u8: 0 none | 1 vector: top i32, bits u8, signature u32
//!                   | 2 matrix: rows u32, cols u32, top i32, bits u8, sketch u32,
//!                               row signatures u32 × rows, column signatures u32 × cols
//! ```
//! The commitment is `BLAKE3-derive("model-registry fingerprint v1")(encoding)`.
//!
//! Dtype codes: F32 1, F16 2, BF16 3, I8 4, U8 5, F8_E4M3 6, F8_E5M2 7 (sketched); F64 8,
//! I16 9, I32 10, I64 11, U16 12, U32 13, U64 14, BOOL 15 (hashed only). Names are strictly
//! increasing (so unique); at most 255 dimensions; the content root must equal the one computed
//! from the tensors ([`crate::content`]); nothing may follow the last tensor.

use crate::dtype::Dtype;
use crate::fingerprint::{Fingerprint, TensorFingerprint, TensorSketch};
use crate::probe::{PROBES, PROBE_SEED};
use crate::sketch::MatrixSketch;
use crate::{Error, Result};

pub const MAGIC: &[u8; 4] = b"MRFP";
pub const VERSION: u16 = 1;
const HASH_CONTEXT: &str = "model-registry fingerprint v1";

impl Fingerprint {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(PROBES as u16).to_le_bytes());
        out.extend_from_slice(&PROBE_SEED.to_le_bytes());
        out.extend_from_slice(&self.content_root);
        out.extend_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        for t in &self.tensors {
            out.extend_from_slice(&(t.name.len() as u32).to_le_bytes());
            out.extend_from_slice(t.name.as_bytes());
            out.push(t.dtype.code());
            out.push(t.shape.len() as u8);
            for d in &t.shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.data_hash);
            match &t.sketch {
                TensorSketch::None => out.push(0),
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
            }
        }
        out
    }

    /// The 32-byte commitment to the encoding (what goes on-chain).
    pub fn hash(&self) -> [u8; 32] {
        hash_encoding(&self.encode())
    }

    /// Decodes a canonical encoding. Rejects anything malformed without panicking or
    /// allocating more than the input's size.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(Error::Encoding("not a fingerprint (bad magic)".into()));
        }
        let version = r.u16()?;
        if version != VERSION {
            return Err(Error::Encoding(format!(
                "unsupported version {version} (this build reads {VERSION})"
            )));
        }
        let (probes, seed) = (r.u16()?, r.u32()?);
        if usize::from(probes) != PROBES || seed != PROBE_SEED {
            return Err(Error::Encoding(format!(
                "unsupported probe set ({probes} probes, seed {seed:#x})"
            )));
        }
        let content_root = r.array()?;
        let count = r.u32()? as usize;
        let mut tensors = Vec::with_capacity(count.min(r.remaining() / 40));
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let name_len = r.u32()? as usize;
            let name = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| Error::Encoding("tensor name is not UTF-8".into()))?
                .to_string();
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
            let sketch = match r.u8()? {
                0 => TensorSketch::None,
                1 => TensorSketch::Vector {
                    top: r.i32()?,
                    bits: u32::from(r.u8()?),
                    signature: r.u32()?,
                },
                2 => {
                    let (rows, cols, top, bits, sketch) =
                        (r.u32()?, r.u32()?, r.i32()?, u32::from(r.u8()?), r.u32()?);
                    if crate::fingerprint::matrix_dims(&shape) != Some((rows, cols)) {
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
            };
            previous = Some(name.clone());
            tensors.push(TensorFingerprint {
                name,
                dtype,
                shape,
                data_hash,
                sketch,
            });
        }
        if r.remaining() != 0 {
            return Err(Error::Encoding(format!("{} trailing bytes", r.remaining())));
        }
        Ok(Fingerprint {
            content_root,
            tensors,
        })
    }
}

/// The commitment of an encoding.
pub fn hash_encoding(encoding: &[u8]) -> [u8; 32] {
    *blake3::Hasher::new_derive_key(HASH_CONTEXT)
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
