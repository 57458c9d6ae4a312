//! GGUF files (llama.cpp), versions 2 and 3: the metadata, the tensor table, and the tensors
//! dequantized exactly as llama.cpp's reference dequantizers compute them (in `f32`, no fused
//! multiply-add), so the fingerprint's fixed point sees the values the model computes with.
//!
//! Types read: F32, F16, BF16 and the integer and F64 buffers (in place, from the mapped file;
//! the integers and F64 are hashed, not sketched, as in safetensors) and the block quantizations
//! Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS,
//! the ternary TQ1_0 and TQ2_0, MXFP4 and NVFP4 (dequantized into `f32` each time a tensor is
//! read, [`crate::Model::data`]: 3.8 times its quantized bytes for Q8_0 up to 19 times for
//! TQ1_0, one tensor at a time). Other
//! types (Q8_1 and Q8_K, llama.cpp's dot-product intermediates, and the IQ1/IQ2/IQ3 families
//! with their lattice code books) are refused by name. Shapes are given row-major (GGUF lists its
//! dimensions innermost first). The vocabulary is `tokenizer.ggml.tokens` when present.
//!
//! Everything the file declares is checked against the file before it is used: counts and
//! lengths against the bytes left (so a huge declared count is an error, not an allocation),
//! dimensions (at most 4, none zero-length overflow), every tensor's bytes inside the data
//! section, unique names. Nothing here panics on any input.

use std::path::Path;

use crate::dtype::Dtype;
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// llama.cpp's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;

/// A tensor as the table declares it.
#[derive(Debug, Clone)]
pub(crate) struct Tensor {
    pub name: String,
    /// Row-major (outermost first).
    pub shape: Vec<u64>,
    pub kind: Kind,
    /// Absolute offset of its bytes in the file.
    pub start: usize,
    pub len: usize,
}

/// How a tensor's bytes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Elements of a plain type, read in place.
    Plain(Dtype),
    /// Blocks to dequantize into `f32`.
    Quantized(Quant),
}

/// The block quantizations read: 32 weights per block, or 256 per super-block for the
/// K-quants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quant {
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Iq4Nl,
    Iq4Xs,
    Tq1_0,
    Tq2_0,
    Mxfp4,
    Nvfp4,
}

impl Quant {
    /// Weights per block.
    fn block(self) -> u64 {
        match self {
            Quant::Q2K
            | Quant::Q3K
            | Quant::Q4K
            | Quant::Q5K
            | Quant::Q6K
            | Quant::Iq4Xs
            | Quant::Tq1_0
            | Quant::Tq2_0 => 256,
            Quant::Nvfp4 => 64,
            _ => 32,
        }
    }

    /// Bytes per block.
    fn block_bytes(self) -> u64 {
        match self {
            Quant::Q8_0 => 34,
            Quant::Q4_0 => 18,
            Quant::Q4_1 => 20,
            Quant::Q5_0 => 22,
            Quant::Q5_1 => 24,
            Quant::Q2K => 84,
            Quant::Q3K => 110,
            Quant::Q4K => 144,
            Quant::Q5K => 176,
            Quant::Q6K => 210,
            Quant::Iq4Nl => 18,
            Quant::Iq4Xs => 136,
            Quant::Tq1_0 => 54,
            Quant::Tq2_0 => 66,
            Quant::Mxfp4 => 17,
            Quant::Nvfp4 => 36,
        }
    }
}

/// A parsed file: its tensors (in table order) and vocabulary.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub tensors: Vec<Tensor>,
    pub tokens: Option<Vec<String>>,
}

/// ggml's type numbers (`GGMLQuantizationType`) and names, for errors.
fn kind_of(code: u32) -> std::result::Result<Kind, String> {
    Ok(match code {
        0 => Kind::Plain(Dtype::F32),
        1 => Kind::Plain(Dtype::F16),
        30 => Kind::Plain(Dtype::BF16),
        24 => Kind::Plain(Dtype::I8),
        25 => Kind::Plain(Dtype::I16),
        26 => Kind::Plain(Dtype::I32),
        27 => Kind::Plain(Dtype::I64),
        28 => Kind::Plain(Dtype::F64),
        2 => Kind::Quantized(Quant::Q4_0),
        3 => Kind::Quantized(Quant::Q4_1),
        6 => Kind::Quantized(Quant::Q5_0),
        7 => Kind::Quantized(Quant::Q5_1),
        8 => Kind::Quantized(Quant::Q8_0),
        10 => Kind::Quantized(Quant::Q2K),
        11 => Kind::Quantized(Quant::Q3K),
        12 => Kind::Quantized(Quant::Q4K),
        13 => Kind::Quantized(Quant::Q5K),
        14 => Kind::Quantized(Quant::Q6K),
        20 => Kind::Quantized(Quant::Iq4Nl),
        23 => Kind::Quantized(Quant::Iq4Xs),
        34 => Kind::Quantized(Quant::Tq1_0),
        35 => Kind::Quantized(Quant::Tq2_0),
        39 => Kind::Quantized(Quant::Mxfp4),
        40 => Kind::Quantized(Quant::Nvfp4),
        other => {
            let name = match other {
                9 => "Q8_1",
                15 => "Q8_K",
                16..=19 | 21 | 22 | 29 => "an IQ quantization with a lattice codebook",
                _ => return Err(format!("unknown ggml type {other}")),
            };
            return Err(format!("ggml type {other} ({name}) is not read yet"));
        }
    })
}

/// A cursor over the file's bytes that never reads past them.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64, what: &str) -> std::result::Result<&'a [u8], String> {
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(format!(
                "{what} needs {n} bytes at offset {} but the file ends {left} bytes later",
                self.at
            ));
        }
        let out = &self.bytes[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }

    /// Skips (or, for the few keys read, returns) one metadata value of type `kind`.
    fn value(&mut self, kind: u32, what: &str) -> std::result::Result<Value, String> {
        Ok(match kind {
            0 | 1 | 7 => Value::Int(u64::from(self.take(1, what)?[0])),
            2 | 3 => Value::Int(u64::from(u16::from_le_bytes(
                self.take(2, what)?.try_into().expect("2 bytes"),
            ))),
            4 | 5 => Value::Int(u64::from(self.u32(what)?)),
            6 => {
                self.take(4, what)?;
                Value::Other
            }
            10 | 11 => Value::Int(self.u64(what)?),
            12 => {
                self.take(8, what)?;
                Value::Other
            }
            8 => {
                self.string(what)?;
                Value::Other
            }
            9 => {
                let item = self.u32(what)?;
                let count = self.u64(what)?;
                // Every element takes at least its type's size (a string its 8-byte length):
                // a count beyond the bytes left is a lie, refused before anything is
                // allocated for it.
                let least = match item {
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    _ => 1,
                };
                if count > (self.bytes.len() - self.at) as u64 / least {
                    return Err(format!(
                        "{what} declares {count} elements, more than the file holds"
                    ));
                }
                if item == 8 {
                    let mut strings = Vec::with_capacity(count as usize);
                    for _ in 0..count {
                        strings.push(self.string(what)?);
                    }
                    Value::Strings(strings)
                } else {
                    if item == 9 {
                        return Err(format!("{what} is an array of arrays"));
                    }
                    for _ in 0..count {
                        self.value(item, what)?;
                    }
                    Value::Other
                }
            }
            other => return Err(format!("{what} has unknown value type {other}")),
        })
    }
}

enum Value {
    Int(u64),
    Strings(Vec<String>),
    Other,
}

/// Parses the header and tensor table of the GGUF file `bytes` (named `path` in errors).
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    parse_inner(bytes).map_err(|problem| Error::Header {
        file: path.to_path_buf(),
        problem: format!("GGUF: {problem}"),
    })
}

fn parse_inner(bytes: &[u8]) -> std::result::Result<Parsed, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4, "the magic")? != MAGIC {
        return Err("not a GGUF file (no GGUF magic)".into());
    }
    let version = r.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(format!("version {version} is not read (2 and 3 are)"));
    }
    let tensor_count = r.u64("the tensor count")?;
    let kv_count = r.u64("the metadata count")?;
    // A tensor entry takes at least 8 + 4 + 4 + 8 bytes, a metadata entry 8 + 4 + 1.
    let left = (bytes.len() - r.at) as u64;
    if tensor_count > left / 24 || kv_count > left / 13 {
        return Err(format!(
            "declares {tensor_count} tensors and {kv_count} metadata entries, more than {left} bytes can hold"
        ));
    }
    let mut alignment = DEFAULT_ALIGNMENT;
    let mut tokens = None;
    let mut keys = std::collections::HashSet::new();
    for i in 0..kv_count {
        let key = r.string(&format!("metadata key {i}"))?;
        if !keys.insert(key.clone()) {
            return Err(format!("metadata key {key:?} appears twice"));
        }
        let kind = r.u32(&format!("the type of {key:?}"))?;
        if key == "general.alignment" && kind != 4 {
            return Err(format!(
                "general.alignment has value type {kind}; it must be a u32 (4)"
            ));
        }
        match (key.as_str(), r.value(kind, &format!("metadata {key:?}"))?) {
            ("general.alignment", Value::Int(a)) => {
                if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                    return Err(format!(
                        "general.alignment {a} is not a power of two up to 1 MiB"
                    ));
                }
                alignment = a;
            }
            ("tokenizer.ggml.tokens", Value::Strings(strings)) => tokens = Some(strings),
            (_, Value::Int(_) | Value::Strings(_) | Value::Other) => {}
        }
    }
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut names = std::collections::HashSet::new();
    let mut declared = Vec::with_capacity(tensor_count as usize);
    for i in 0..tensor_count {
        let name = r.string(&format!("the name of tensor {i}"))?;
        if !names.insert(name.clone()) {
            return Err(format!("tensor {name:?} appears twice"));
        }
        let dims = r.u32(&format!("the dimensions of {name:?}"))?;
        if dims == 0 || dims > MAX_DIMS {
            return Err(format!(
                "{name:?} has {dims} dimensions (1 to {MAX_DIMS} are allowed)"
            ));
        }
        let mut shape = Vec::with_capacity(dims as usize);
        for _ in 0..dims {
            shape.push(r.u64(&format!("a dimension of {name:?}"))?);
        }
        let code = r.u32(&format!("the type of {name:?}"))?;
        let kind = kind_of(code).map_err(|e| format!("tensor {name:?}: {e}"))?;
        let offset = r.u64(&format!("the offset of {name:?}"))?;
        if offset % alignment != 0 {
            return Err(format!(
                "{name:?} starts at {offset}, not a multiple of the alignment {alignment}"
            ));
        }
        let elements = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= 1 << 40)
            .ok_or_else(|| format!("{name:?} declares more than 2^40 elements"))?;
        let len = match kind {
            Kind::Plain(dtype) => elements * dtype.size() as u64,
            Kind::Quantized(q) => {
                if shape[0] % q.block() != 0 {
                    return Err(format!(
                        "{name:?} rows of {} weights are not whole blocks of {}",
                        shape[0],
                        q.block()
                    ));
                }
                elements / q.block() * q.block_bytes()
            }
        };
        shape.reverse();
        declared.push((name, shape, kind, offset, len));
    }
    let data_start = (r.at as u64).div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    // Tensors may not share bytes (llama.cpp lays them out one after another): otherwise a
    // small file could name one block of data many times and dequantize into terabytes.
    let mut spans: Vec<(u64, u64, &str)> = declared
        .iter()
        .map(|(name, _, _, offset, len)| (*offset, offset.saturating_add(*len), name.as_str()))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(format!(
                "tensors {:?} and {:?} overlap",
                pair[0].2, pair[1].2
            ));
        }
    }
    for (name, shape, kind, offset, len) in declared {
        let start = data_start
            .checked_add(offset)
            .filter(|s| s.checked_add(len).is_some_and(|end| end <= file_len))
            .ok_or_else(|| {
                format!("{name:?} needs bytes {offset}..+{len} of the data section, past the end of the file")
            })?;
        tensors.push(Tensor {
            name,
            shape,
            kind,
            start: start as usize,
            len: len as usize,
        });
    }
    Ok(Parsed { tensors, tokens })
}

fn f16(bytes: &[u8]) -> f32 {
    half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
}

/// Dequantizes `data` (whole blocks of `quant`) into little-endian `f32`s appended to `out`,
/// as llama.cpp's `dequantize_row_*` compute them.
pub(crate) fn dequantize(quant: Quant, data: &[u8], out: &mut Vec<u8>) {
    let mut push = |x: f32| out.extend_from_slice(&x.to_le_bytes());
    for block in data.chunks_exact(quant.block_bytes() as usize) {
        match quant {
            Quant::Q8_0 => {
                let d = f16(block);
                for &q in &block[2..34] {
                    push(f32::from(q as i8) * d);
                }
            }
            Quant::Q4_0 => {
                let (d, qs) = (f16(block), &block[2..18]);
                let mut y = [0f32; 32];
                for (j, &q) in qs.iter().enumerate() {
                    y[j] = f32::from(i16::from(q & 0x0f) as i8 - 8) * d;
                    y[j + 16] = f32::from(i16::from(q >> 4) as i8 - 8) * d;
                }
                y.iter().for_each(|&x| push(x));
            }
            Quant::Q4_1 => {
                let (d, m, qs) = (f16(block), f16(&block[2..]), &block[4..20]);
                let mut y = [0f32; 32];
                for (j, &q) in qs.iter().enumerate() {
                    y[j] = f32::from(q & 0x0f) * d + m;
                    y[j + 16] = f32::from(q >> 4) * d + m;
                }
                y.iter().for_each(|&x| push(x));
            }
            Quant::Q5_0 | Quant::Q5_1 => {
                let (d, m, rest) = match quant {
                    Quant::Q5_0 => (f16(block), 0.0, &block[2..]),
                    _ => (f16(block), f16(&block[2..]), &block[4..]),
                };
                let qh = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
                let qs = &rest[4..20];
                let mut y = [0f32; 32];
                for (j, &q) in qs.iter().enumerate() {
                    let xh0 = ((qh >> j) << 4) & 0x10;
                    let xh1 = (qh >> (j + 12)) & 0x10;
                    let x0 = (u32::from(q & 0x0f) | xh0) as i32;
                    let x1 = (u32::from(q >> 4) | xh1) as i32;
                    match quant {
                        Quant::Q5_0 => {
                            y[j] = (x0 - 16) as f32 * d;
                            y[j + 16] = (x1 - 16) as f32 * d;
                        }
                        _ => {
                            y[j] = x0 as f32 * d + m;
                            y[j + 16] = x1 as f32 * d + m;
                        }
                    }
                }
                y.iter().for_each(|&x| push(x));
            }
            Quant::Q2K | Quant::Q3K | Quant::Q4K | Quant::Q5K | Quant::Q6K => {
                let mut y = [0f32; 256];
                k_quant(quant, block, &mut y);
                y.iter().for_each(|&x| push(x));
            }
            Quant::Iq4Nl => {
                let (d, qs) = (f16(block), &block[2..18]);
                let value = |q: u8| d * f32::from(IQ4_NL[usize::from(q)]);
                qs.iter().for_each(|&q| push(value(q & 0x0f)));
                qs.iter().for_each(|&q| push(value(q >> 4)));
            }
            Quant::Iq4Xs => {
                let d = f16(block);
                let scales_h = u16::from_le_bytes([block[2], block[3]]);
                let (scales_l, qs) = (&block[4..8], &block[8..136]);
                for ib in 0..8 {
                    let low = (scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
                    let high = ((scales_h >> (2 * ib)) & 3) as u8;
                    let dl = d * f32::from(((low | (high << 4)) as i8).wrapping_sub(32));
                    let q = &qs[ib * 16..ib * 16 + 16];
                    let value = |q: u8| dl * f32::from(IQ4_NL[usize::from(q)]);
                    q.iter().for_each(|&q| push(value(q & 0x0f)));
                    q.iter().for_each(|&q| push(value(q >> 4)));
                }
            }
            Quant::Tq1_0 => {
                // Base-3 digits, five (four in `qh`) a byte, read by multiplying the byte up
                // (mod 256) and taking the top of `3 · byte`.
                let (qs, qh, d) = (&block[..48], &block[48..52], f16(&block[52..]));
                let trit = |byte: u8, pow: u8| {
                    f32::from((((u16::from(byte.wrapping_mul(pow)) * 3) >> 8) as i8) - 1)
                };
                for (bytes, digits) in [(&qs[..32], 5), (&qs[32..48], 5), (qh, 4)] {
                    for pow in [1u8, 3, 9, 27, 81].into_iter().take(digits) {
                        bytes.iter().for_each(|&b| push(d * trit(b, pow)));
                    }
                }
            }
            Quant::Tq2_0 => {
                let (qs, d) = (&block[..64], f16(&block[64..]));
                for chunk in qs.chunks_exact(32) {
                    for shift in [0, 2, 4, 6] {
                        chunk
                            .iter()
                            .for_each(|&q| push(d * f32::from(((q >> shift) & 3) as i8 - 1)));
                    }
                }
            }
            Quant::Mxfp4 => {
                let d = e8m0_half(block[0]);
                let qs = &block[1..17];
                qs.iter()
                    .for_each(|&q| push(d * f32::from(E2M1_DOUBLED[usize::from(q & 0x0f)])));
                qs.iter()
                    .for_each(|&q| push(d * f32::from(E2M1_DOUBLED[usize::from(q >> 4)])));
            }
            Quant::Nvfp4 => {
                for (sub, &scale) in block[..4].iter().enumerate() {
                    let d = ue4m3_half(scale);
                    let qs = &block[4 + sub * 8..4 + sub * 8 + 8];
                    let value = |q: u8| d * f32::from(E2M1_DOUBLED[usize::from(q)]);
                    qs.iter().for_each(|&q| push(value(q & 0x0f)));
                    qs.iter().for_each(|&q| push(value(q >> 4)));
                }
            }
        }
    }
}

/// `kvalues_iq4nl`: IQ4's non-linear 4-bit code book.
const IQ4_NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// `kvalues_mxfp4`: E2M1's values doubled (the scales below are halved to match).
const E2M1_DOUBLED: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `ggml_e8m0_to_fp32_half`: `2^(e − 128)`, built from its bits (subnormal below `e = 2`).
fn e8m0_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

/// `ggml_ue4m3_to_fp32` halved: an unsigned E4M3 scale (its top bit ignored, 0x7F read as 0).
fn ue4m3_half(x: u8) -> f32 {
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let (exp, man) = (i32::from((x >> 3) & 0x0f), f32::from(x & 7));
    let raw = if exp == 0 {
        man * 2f32.powi(-9)
    } else {
        (1.0 + man / 8.0) * 2f32.powi(exp - 7)
    };
    raw * 0.5
}

/// The scale and min of sub-block `j` of a Q4_K or Q5_K super-block (`get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// One K-quant super-block of 256 weights, as llama.cpp's `dequantize_row_q*_K`.
fn k_quant(quant: Quant, b: &[u8], y: &mut [f32; 256]) {
    match quant {
        Quant::Q2K => {
            let (scales, qs) = (&b[..16], &b[16..80]);
            let (d, min) = (f16(&b[80..]), f16(&b[82..]));
            let (mut out, mut is) = (0, 0);
            for half in 0..2 {
                let q = &qs[half * 32..half * 32 + 32];
                for shift in [0, 2, 4, 6] {
                    for part in 0..2 {
                        let sc = scales[is];
                        is += 1;
                        let (dl, ml) = (d * f32::from(sc & 0x0f), min * f32::from(sc >> 4));
                        for l in 0..16 {
                            y[out] = dl * f32::from((q[part * 16 + l] >> shift) & 3) - ml;
                            out += 1;
                        }
                    }
                }
            }
        }
        Quant::Q3K => {
            let (hmask, qs, raw, d) = (&b[..32], &b[32..96], &b[96..108], f16(&b[108..]));
            let word =
                |i: usize| u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
            let (kmask1, kmask2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
            let (a0, a1, tmp) = (word(0), word(1), word(2));
            let aux = [
                (a0 & kmask2) | ((tmp & kmask1) << 4),
                (a1 & kmask2) | (((tmp >> 2) & kmask1) << 4),
                ((a0 >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4),
                ((a1 >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4),
            ];
            let scales: Vec<i8> = aux
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .map(|b| b as i8)
                .collect();
            let (mut out, mut is, mut m) = (0, 0, 1u8);
            for half in 0..2 {
                let q = &qs[half * 32..half * 32 + 32];
                for shift in [0, 2, 4, 6] {
                    for part in 0..2 {
                        let dl = d * f32::from(i16::from(scales[is]) - 32);
                        is += 1;
                        for l in 0..16 {
                            let i = part * 16 + l;
                            let low = ((q[i] >> shift) & 3) as i8;
                            let high = if hmask[i] & m != 0 { 0 } else { 4 };
                            y[out] = dl * f32::from(low - high);
                            out += 1;
                        }
                    }
                    m <<= 1;
                }
            }
        }
        Quant::Q4K | Quant::Q5K => {
            let (d, min) = (f16(b), f16(&b[2..]));
            let scales = &b[4..16];
            let (qh, ql) = match quant {
                Quant::Q5K => (Some(&b[16..48]), &b[48..176]),
                _ => (None, &b[16..144]),
            };
            let (mut out, mut is) = (0, 0);
            let (mut u1, mut u2) = (1u8, 2u8);
            for chunk in 0..4 {
                let q = &ql[chunk * 32..chunk * 32 + 32];
                let (sc1, m1) = scale_min_k4(is, scales);
                let (sc2, m2) = scale_min_k4(is + 1, scales);
                let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
                let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
                for (l, &byte) in q.iter().enumerate() {
                    let high = qh.map_or(0, |h| if h[l] & u1 != 0 { 16 } else { 0 });
                    y[out + l] = d1 * f32::from((byte & 0x0f) + high) - m1;
                }
                for (l, &byte) in q.iter().enumerate() {
                    let high = qh.map_or(0, |h| if h[l] & u2 != 0 { 16 } else { 0 });
                    y[out + 32 + l] = d2 * f32::from((byte >> 4) + high) - m2;
                }
                out += 64;
                is += 2;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
        Quant::Q6K => {
            let (ql, qh, sc, d) = (&b[..128], &b[128..192], &b[192..208], f16(&b[208..]));
            for half in 0..2 {
                let (ql, qh, sc) = (&ql[half * 64..], &qh[half * 32..], &sc[half * 8..]);
                let y = &mut y[half * 128..];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
                    let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                    let s = |k: usize| d * f32::from(sc[is + k] as i8);
                    y[l] = s(0) * f32::from(q1);
                    y[l + 32] = s(2) * f32::from(q2);
                    y[l + 64] = s(4) * f32::from(q3);
                    y[l + 96] = s(6) * f32::from(q4);
                }
            }
        }
        _ => unreachable!("k_quant is called with K-quants only"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF v3 file with the given metadata entries and tensors (name, dims innermost
    /// first, type, data).
    pub(crate) fn write(
        kv: &[(&str, u32, Vec<u8>)],
        tensors: &[(&str, Vec<u64>, u32, Vec<u8>)],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        for (key, kind, value) in kv {
            string(&mut out, key);
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(value);
        }
        let mut offset = 0u64;
        let mut data = Vec::new();
        for (name, dims, kind, bytes) in tensors {
            string(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            data.extend_from_slice(bytes);
            while data.len() % 32 != 0 {
                data.push(0);
            }
            offset = data.len() as u64;
        }
        while out.len() % 32 != 0 {
            out.push(0);
        }
        out.extend_from_slice(&data);
        out
    }

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn reads_the_table_row_major_with_its_vocabulary() {
        let mut array = 8u32.to_le_bytes().to_vec();
        array.extend_from_slice(&2u64.to_le_bytes());
        for t in ["<s>", "hello"] {
            array.extend_from_slice(&(t.len() as u64).to_le_bytes());
            array.extend_from_slice(t.as_bytes());
        }
        let file = write(
            &[
                (
                    "general.architecture",
                    8,
                    [5u64.to_le_bytes().to_vec(), b"llama".to_vec()].concat(),
                ),
                ("tokenizer.ggml.tokens", 9, array),
            ],
            &[("token_embd.weight", vec![4, 2], 0, f32s(&[1.0; 8]))],
        );
        let parsed = parse(Path::new("m.gguf"), &file).unwrap();
        assert_eq!(
            parsed.tokens.as_deref(),
            Some(&["<s>".to_string(), "hello".to_string()][..])
        );
        let t = &parsed.tensors[0];
        assert_eq!(
            (t.name.as_str(), t.shape.as_slice(), t.len),
            ("token_embd.weight", &[2u64, 4][..], 32)
        );
        assert_eq!(&file[t.start..t.start + t.len], f32s(&[1.0; 8]).as_slice());
    }

    #[test]
    fn malformed_files_are_named_errors_not_panics_or_allocations() {
        let good = write(&[], &[("w", vec![32, 2], 8, vec![0; 68])]);
        let t = parse(Path::new("ok.gguf"), &good)
            .unwrap()
            .tensors
            .remove(0);
        // The writer pads after the data: the file's meaningful bytes end with the tensor's.
        let end = t.start + t.len;
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (b"GGML".to_vec(), "magic"),
            (good[..end - 1].to_vec(), "past the end"),
            (
                write(&[], &[("w", vec![32, 2], 16, vec![0; 288])]),
                "an IQ quantization",
            ),
            (
                write(&[], &[("w", vec![32, 2], 12, vec![0; 288])]),
                "whole blocks of 256",
            ),
            (
                write(&[], &[("w", vec![32], 99, vec![0; 32])]),
                "unknown ggml type 99",
            ),
            (
                write(&[], &[("w", vec![30], 8, vec![0; 34])]),
                "whole blocks",
            ),
            (
                write(&[], &[("w", vec![1; 5], 0, vec![0; 4])]),
                "5 dimensions",
            ),
            (
                write(&[], &[("w", vec![1 << 30, 1 << 30], 0, vec![])]),
                "2^40",
            ),
            (
                write(
                    &[],
                    &[
                        ("w", vec![4], 0, vec![0; 16]),
                        ("w", vec![4], 0, vec![0; 16]),
                    ],
                ),
                "twice",
            ),
        ];
        cases.push((
            write(
                &[("general.alignment", 10, 32u64.to_le_bytes().to_vec())],
                &[],
            ),
            "must be a u32",
        ));
        cases.push((
            write(
                &[
                    ("a", 4, 1u32.to_le_bytes().to_vec()),
                    ("a", 4, 1u32.to_le_bytes().to_vec()),
                ],
                &[],
            ),
            "appears twice",
        ));
        // Two tensors naming the same bytes.
        let mut shared = write(
            &[],
            &[
                ("a", vec![4], 0, vec![0; 16]),
                ("b", vec![4], 0, vec![0; 16]),
            ],
        );
        let second_offset = 24 + (9 + 4 + 8 + 4 + 8) + (9 + 4 + 8 + 4);
        shared[second_offset..second_offset + 8].copy_from_slice(&0u64.to_le_bytes());
        cases.push((shared, "overlap"));
        // A huge declared count, with nothing behind it.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&3u32.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&0u64.to_le_bytes());
        cases.push((huge, "more than"));
        // A metadata array claiming more strings than the file holds.
        let mut array = 8u32.to_le_bytes().to_vec();
        array.extend_from_slice(&(1u64 << 40).to_le_bytes());
        cases.push((
            write(&[("tokenizer.ggml.tokens", 9, array)], &[]),
            "more than the file holds",
        ));
        // An offset past the end.
        let mut far = write(&[], &[("w", vec![4], 0, vec![0; 16])]);
        // Magic, version and counts (24 bytes), then the name (8 + 1), dimension count (4),
        // one dimension (8) and type (4): the offset field.
        let at = 24 + 9 + 4 + 8 + 4;
        far[at..at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
        cases.push((far, "past the end"));
        for (bytes, why) in cases {
            let err = parse(Path::new("bad.gguf"), &bytes)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("bad.gguf") && err.contains(why),
                "{why}: {err}"
            );
        }
        // Every truncation of a good file: an error, never a panic.
        for n in 0..end {
            assert!(parse(Path::new("cut.gguf"), &good[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn mutated_files_never_panic_nor_overallocate() {
        // A valid file with metadata, a vocabulary and tensors of several types.
        let mut array = 8u32.to_le_bytes().to_vec();
        array.extend_from_slice(&3u64.to_le_bytes());
        for t in ["a", "bb", "ccc"] {
            array.extend_from_slice(&(t.len() as u64).to_le_bytes());
            array.extend_from_slice(t.as_bytes());
        }
        let good = write(
            &[
                ("general.alignment", 4, 32u32.to_le_bytes().to_vec()),
                ("tokenizer.ggml.tokens", 9, array),
            ],
            &[
                ("a", vec![32, 2], 8, vec![7; 68]),
                ("b", vec![256], 12, vec![9; 144]),
                ("c", vec![4], 0, f32s(&[1.0, 2.0, 3.0, 4.0])),
            ],
        );
        assert!(parse(Path::new("ok.gguf"), &good).is_ok());
        // Seeded mutations: flipped bytes, overwritten words, cut tails. Any outcome but a
        // panic is fine; what parses is dequantized too.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + next() % 4 {
                if bytes.is_empty() {
                    break;
                }
                let at = (next() % bytes.len() as u64) as usize;
                match next() % 3 {
                    0 => bytes[at] ^= 1 << (next() % 8),
                    1 => {
                        let end = (at + 8).min(bytes.len());
                        bytes[at..end].copy_from_slice(&next().to_le_bytes()[..end - at]);
                    }
                    _ => bytes.truncate(at),
                }
            }
            if let Ok(parsed) = parse(Path::new("fuzz.gguf"), &bytes) {
                for t in parsed.tensors {
                    if let Kind::Quantized(q) = t.kind {
                        let mut out = Vec::new();
                        dequantize(q, &bytes[t.start..t.start + t.len], &mut out);
                        assert_eq!(
                            out.len() as u64,
                            t.len as u64 / q.block_bytes() * q.block() * 4
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn block_quantizations_dequantize_as_llama_cpp_does() {
        let d = half::f16::from_f32(0.5).to_le_bytes();
        let m = half::f16::from_f32(-1.0).to_le_bytes();
        let nibbles: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let read = |quant, block: Vec<u8>| {
            let mut out = Vec::new();
            dequantize(quant, &block, &mut out);
            out.chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<f32>>()
        };
        // Q8_0: d·q.
        let q8: Vec<u8> = (0..32).map(|i| (i as i8 - 16) as u8).collect();
        let y = read(Quant::Q8_0, [d.to_vec(), q8].concat());
        assert_eq!((y[0], y[16], y[31]), (-8.0, 0.0, 7.5));
        // Q4_0: low nibbles first, then high; d·(q − 8).
        let y = read(Quant::Q4_0, [d.to_vec(), nibbles.clone()].concat());
        assert_eq!((y[0], y[15], y[16], y[31]), (-4.0, 3.5, 3.5, -4.0));
        // Q4_1: d·q + m.
        let y = read(
            Quant::Q4_1,
            [d.to_vec(), m.to_vec(), nibbles.clone()].concat(),
        );
        assert_eq!((y[0], y[15], y[16]), (-1.0, 6.5, 6.5));
        // Q5_0: the fifth bit from qh (bit j for the low half, j + 12 … for the high half).
        let qh = (1u32 << 3) | (1 << 31);
        let y = read(
            Quant::Q5_0,
            [d.to_vec(), qh.to_le_bytes().to_vec(), nibbles.clone()].concat(),
        );
        assert_eq!(y[3], ((3 | 16) - 16) as f32 * 0.5);
        assert_eq!(y[2], (2 - 16) as f32 * 0.5);
        assert_eq!(y[31], 0.0, "bit 31 sets the fifth bit of element 31");
        let y = read(
            Quant::Q5_1,
            [d.to_vec(), m.to_vec(), qh.to_le_bytes().to_vec(), nibbles].concat(),
        );
        assert_eq!((y[3], y[2]), ((3 | 16) as f32 * 0.5 - 1.0, 2.0 * 0.5 - 1.0));
    }

    #[test]
    fn a_gguf_naming_a_packed_group_with_quantized_parts_opens_without_panicking() {
        // I32 `l.qweight`/`l.qzeros` (GPTQ's names) beside a Q8_0 `l.scales`: the unpacker
        // must not read Q8_0 blocks as f32 scales (it indexed past them).
        let q8 = [vec![0u8, 0x3c], vec![1u8; 32]].concat(); // one block: d = 1.0
        let file = write(
            &[],
            &[
                ("l.qweight", vec![32, 4], 26, vec![0; 32 * 4 * 4]),
                ("l.qzeros", vec![4, 1], 26, vec![0; 16]),
                ("l.scales", vec![32, 1], 8, q8),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, file).unwrap();
        match crate::Model::open(&path) {
            Ok(model) => assert_eq!(model.tensors().len(), 3),
            Err(e) => assert!(e.to_string().contains("l.qweight"), "{e}"),
        }
    }
}
