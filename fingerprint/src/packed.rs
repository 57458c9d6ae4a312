//! Packed quantizations stored in safetensors checkpoints, dequantized so that a quantized copy
//! of a model is fingerprinted by the values it computes with, not hashed as opaque integers.
//!
//! Each format is recognised by its tensors' names, types and shapes (and, where the tensors
//! cannot tell, the `quantization_config` of the `config.json` beside them); its tensors are
//! replaced by one `f32` tensor named and shaped as the unquantized checkpoint names it (a
//! `Linear` weight is `out × in`). Every value is computed in `f32` in one fixed order, so the
//! result is the same bits on every machine:
//!
//! | format | tensors of `P` | value |
//! |---|---|---|
//! | GPTQ (AutoGPTQ, GPTQModel, optimum) | `P.qweight` I32 `[in·b/32, out]`, `P.qzeros` I32, `P.scales`, `P.g_idx` | `(q − z) · s`, `z` stored minus one unless `checkpoint_format` is `gptq_v2`; b ∈ {2, 4, 8} |
//! | AWQ GEMM (AutoAWQ) | `P.qweight` I32 `[in, out/8]` (nibbles in AWQ's order), `P.qzeros`, `P.scales` | `(q − z) · s` |
//! | bitsandbytes int8 | `P.weight` I8, `P.SCB` F32 | `(q · SCB) · (1/127)` |
//! | bitsandbytes nf4/fp4 | `P.weight` U8, `P.weight.absmax`, `P.weight.quant_map`, `P.weight.quant_state.bitsandbytes__*` (JSON), nested absmax | `map[q] · absmax` |
//! | FP8 with scales (DeepSeek-V3, compressed-tensors, ModelOpt) | `P.weight` F8, `P.weight_scale_inv` or `P.weight_scale` (tensor, row or block) | `w · s` |
//! | MXFP4 (OCP MX, gpt-oss) | `X_blocks` U8 `[…, G, 16]`, `X_scales` U8/F8_E8M0 `[…, G]` | `e2m1 · 2^(e−127)` |
//! | NVFP4 (ModelOpt) | `P.weight` U8 `[out, in/2]`, `P.weight_scale` F8_E4M3 `[out, in/16]`, `P.weight_scale_2` F32 | `e2m1 · (s · s2)` |
//!
//! Stacked MXFP4 experts (`[experts, out, G, 16]`) come out `[experts, in, out]`, as
//! transformers dequantizes gpt-oss. Refused by name: 3-bit GPTQ and AWQ's GEMV layout (their
//! `qweight` fits neither layout above), and safetensors' `F4`/`F6` element types. Not
//! recognised (hashed as stored): EXL2, HQQ, compressed-tensors' `weight_packed`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::dtype::Dtype;
use crate::{Error, Result};

/// Largest `config.json` read.
const MAX_CONFIG: u64 = 16 << 20;

/// What `config.json`'s `quantization_config` says that the tensors cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// GPTQ bits per weight.
    pub bits: Option<u32>,
    /// GPTQ zero points stored as they are (GPTQModel's `gptq_v2`), not minus one.
    pub gptq_v2: bool,
    /// FP8 block scales' block `[rows, cols]`.
    pub block: Option<[u64; 2]>,
}

impl Config {
    /// Reads the `quantization_config` of `config.json` in the model folder `dir`. Only what
    /// a packed group cannot tell from its tensors is taken; a missing or unreadable file, or
    /// a value of another kind (EXL2's fractional `bits`, say), is the same as none: it
    /// cannot make a model that packs nothing unreadable.
    pub fn find(dir: &Path) -> Self {
        let path = dir.join("config.json");
        // A config is a few KiB; a folder's other files may take 1 GiB, which parsed as a
        // JSON tree would take tens of GB. One past this bound counts as none.
        let small = std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_CONFIG);
        let json: Option<serde_json::Value> = small
            .then(|| std::fs::read_to_string(&path).ok())
            .flatten()
            .and_then(|text| serde_json::from_str(&text).ok());
        let Some(q) = json.as_ref().and_then(|j| j.get("quantization_config")) else {
            return Self::default();
        };
        let block = q
            .get("weight_block_size")
            .and_then(|b| b.as_array())
            .and_then(
                |a| match a.iter().map(|d| d.as_u64()).collect::<Option<Vec<u64>>>() {
                    Some(pair) if pair.len() == 2 && pair[0] > 0 && pair[1] > 0 => {
                        Some([pair[0], pair[1]])
                    }
                    _ => None,
                },
            );
        Self {
            bits: q
                .get("bits")
                .and_then(|b| b.as_u64())
                .and_then(|b| u32::try_from(b).ok()),
            gptq_v2: q.get("checkpoint_format").and_then(|f| f.as_str()) == Some("gptq_v2"),
            block,
        }
    }
}

/// A stored tensor as the unpacker sees it: its bytes are read only for the tensors of a
/// packed group (a model read while it arrives waits for those bytes, and only those).
pub struct Stored<'a> {
    pub dtype: Dtype,
    pub shape: &'a [u64],
    read: Box<dyn Fn() -> &'a [u8] + 'a>,
}

impl std::fmt::Debug for Stored<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl<'a> Stored<'a> {
    pub fn new(dtype: Dtype, shape: &'a [u64], read: impl Fn() -> &'a [u8] + 'a) -> Self {
        Self {
            dtype,
            shape,
            read: Box::new(read),
        }
    }

    fn bytes(&self) -> &'a [u8] {
        (self.read)()
    }
}

/// One tensor that replaces a packed group.
#[derive(Debug, Clone, PartialEq)]
pub struct Unpacked {
    pub name: String,
    pub shape: Vec<u64>,
    /// The stored tensor the group was found by (its `qweight`, `_blocks` or `weight`):
    /// [`values_of`] dequantizes the group again from it.
    pub anchor: String,
    /// The names of the stored tensors it replaces.
    pub replaces: Vec<String>,
    /// Little-endian `f32`s (empty from [`plan`]).
    pub values: Vec<u8>,
}

/// Finds every packed group among `tensors` (name → stored tensor) and dequantizes it. `file`
/// names the checkpoint in errors. A model with no packed tensors gives nothing.
pub fn unpack(
    file: &Path,
    tensors: &BTreeMap<&str, Stored<'_>>,
    config: &Config,
) -> Result<Vec<Unpacked>> {
    find(file, tensors, config, true)
}

/// [`unpack`], each group's values checked and let go (the model holds one group's values
/// at a time; [`values_of`] gives them again when they are read).
pub fn plan(
    file: &Path,
    tensors: &BTreeMap<&str, Stored<'_>>,
    config: &Config,
) -> Result<Vec<Unpacked>> {
    find(file, tensors, config, false)
}

/// The values of the group found by the stored tensor `anchor`, as [`unpack`] gives them.
pub fn values_of(
    file: &Path,
    tensors: &BTreeMap<&str, Stored<'_>>,
    config: &Config,
    anchor: &str,
) -> Result<Vec<u8>> {
    let packed = |problem: String| Error::Packed {
        file: file.to_path_buf(),
        tensor: anchor.to_string(),
        problem,
    };
    let t = tensors
        .get(anchor)
        .ok_or_else(|| packed("is not stored".into()))?;
    let group =
        group_at(anchor, t, tensors, config).ok_or_else(|| packed("is not packed".into()))?;
    Ok(group.map_err(packed)?.values)
}

/// The packed group the stored tensor `name` is found by, if it is one's anchor.
fn group_at(
    name: &str,
    t: &Stored<'_>,
    tensors: &BTreeMap<&str, Stored<'_>>,
    config: &Config,
) -> Option<Group> {
    let group = if let Some(p) = name.strip_suffix(".qweight") {
        Some(int_packed(p, t, tensors, config))
    } else if let Some(x) = name.strip_suffix("_blocks") {
        tensors
            .get(format!("{x}_scales").as_str())
            .map(|s| mxfp4(x, t, s))
    } else if let Some(p) = name.strip_suffix(".weight") {
        weight_with_scales(p, t, tensors, config)
    } else {
        None
    };
    group.map(|g| {
        g.map(|u| Unpacked {
            anchor: name.to_string(),
            ..u
        })
    })
}

fn find(
    file: &Path,
    tensors: &BTreeMap<&str, Stored<'_>>,
    config: &Config,
    keep: bool,
) -> Result<Vec<Unpacked>> {
    let mut out: Vec<Unpacked> = Vec::new();
    let mut names: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut consumed: BTreeMap<String, String> = BTreeMap::new();
    for (&name, t) in tensors {
        if let Some(group) = group_at(name, t, tensors, config) {
            let mut group = group.map_err(|problem| Error::Packed {
                file: file.to_path_buf(),
                tensor: name.to_string(),
                problem,
            })?;
            if !keep {
                group.values = Vec::new();
            }
            if tensors.contains_key(group.name.as_str()) && !group.replaces.contains(&group.name) {
                return Err(Error::Packed {
                    file: file.to_path_buf(),
                    tensor: name.to_string(),
                    problem: format!(
                        "dequantizes to {:?}, which the checkpoint also stores",
                        group.name
                    ),
                });
            }
            if !names.insert(group.name.clone()) {
                return Err(Error::Packed {
                    file: file.to_path_buf(),
                    tensor: name.to_string(),
                    problem: format!(
                        "dequantizes to {:?}, which another packed group gives too",
                        group.name
                    ),
                });
            }
            for r in &group.replaces {
                if let Some(first) = consumed.insert(r.clone(), group.name.clone()) {
                    return Err(Error::Packed {
                        file: file.to_path_buf(),
                        tensor: r.clone(),
                        problem: format!(
                            "belongs to both {first:?} and {:?}: an ambiguous packing",
                            group.name
                        ),
                    });
                }
            }
            out.push(group);
        }
    }
    Ok(out)
}

type Group = std::result::Result<Unpacked, String>;

fn get<'m, 'a>(
    tensors: &'m BTreeMap<&str, Stored<'a>>,
    name: &str,
) -> std::result::Result<&'m Stored<'a>, String> {
    tensors
        .get(name)
        .ok_or_else(|| format!("its companion {name:?} is missing"))
}

fn expect_shape(name: &str, t: &Stored<'_>, want: &[u64]) -> std::result::Result<(), String> {
    if t.shape == want {
        Ok(())
    } else {
        Err(format!(
            "{name:?} has shape {:?}, expected {want:?}",
            t.shape
        ))
    }
}

fn expect_dtype(name: &str, t: &Stored<'_>, want: &[Dtype]) -> std::result::Result<(), String> {
    if want.contains(&t.dtype) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is {}, expected {}",
            t.dtype.name(),
            want[0].name()
        ))
    }
}

/// The two sides of a 2-D tensor of a packed group, neither empty (a `[2^40, 0]` tensor holds
/// no bytes, and would otherwise declare a huge dequantized side).
fn matrix(name: &str, t: &Stored<'_>) -> std::result::Result<(u64, u64), String> {
    match *t.shape {
        [r, c] if r == 0 || c == 0 => Err(format!("{name:?} has shape {:?}: no weights", t.shape)),
        [r, c] => Ok((r, c)),
        _ => Err(format!(
            "{name:?} has shape {:?}, expected 2 dimensions",
            t.shape
        )),
    }
}

fn u32_at(bytes: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}

/// The values of a float tensor (F32, F16, BF16 or F8) as `f32`s, exactly.
fn floats(name: &str, t: &Stored<'_>) -> std::result::Result<Vec<f32>, String> {
    let bytes = t.bytes();
    // Safetensors checks this; a caller giving other bytes must not make indexing fail.
    let elements: u64 = t.shape.iter().product();
    if elements.checked_mul(t.dtype.size() as u64) != Some(bytes.len() as u64) {
        return Err(format!(
            "{name:?} holds {} bytes for shape {:?}",
            bytes.len(),
            t.shape
        ));
    }
    let n = bytes.len() / t.dtype.size();
    Ok(match t.dtype {
        Dtype::F32 => (0..n).map(|i| f32::from_bits(u32_at(bytes, i))).collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F8E4M3 => bytes.iter().map(|&b| e4m3(b)).collect(),
        Dtype::F8E5M2 => bytes
            .iter()
            .map(|&b| half::f16::from_bits(u16::from(b) << 8).to_f32())
            .collect(),
        other => {
            return Err(format!(
                "{name:?} is {}, expected a float type",
                other.name()
            ))
        }
    })
}

/// OCP FP8 E4M3 ("fn": no infinities, S.1111.111 is NaN), exactly.
fn e4m3(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let (e, m) = (i32::from((b >> 3) & 0x0f), f32::from(b & 0x07));
    if e == 15 && m == 7.0 {
        return f32::NAN;
    }
    let v = if e == 0 {
        m / 8.0 * 2f32.powi(-6)
    } else {
        (1.0 + m / 8.0) * 2f32.powi(e - 7)
    };
    sign * v
}

/// OCP FP4 E2M1 by its four bits.
const E2M1: [f32; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

fn to_bytes(values: impl IntoIterator<Item = f32>, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// GPTQ or AWQ: `P.qweight` with `P.qzeros` and `P.scales`, told apart by the scales' width.
fn int_packed(
    p: &str,
    qweight: &Stored<'_>,
    tensors: &BTreeMap<&str, Stored<'_>>,
    config: &Config,
) -> Group {
    let (qw, qz, sc) = (
        format!("{p}.qweight"),
        format!("{p}.qzeros"),
        format!("{p}.scales"),
    );
    expect_dtype(&qw, qweight, &[Dtype::I32, Dtype::U32])?;
    let (qzeros, scales) = (get(tensors, &qz)?, get(tensors, &sc)?);
    expect_dtype(&qz, qzeros, &[Dtype::I32, Dtype::U32])?;
    let (rows, cols) = matrix(&qw, qweight)?;
    let (groups, out) = matrix(&sc, scales)?;
    let scale = floats(&sc, scales)?;
    if groups == 0 {
        return Err(format!("{sc:?} has no groups"));
    }
    let mut replaces = vec![qw.clone(), qz.clone(), sc.clone()];
    let (values, inputs) = if out == cols {
        // GPTQ: input rows packed along the first axis.
        let g_name = format!("{p}.g_idx");
        let g_idx = tensors.get(g_name.as_str());
        let bits = match (config.bits, g_idx) {
            (Some(b), _) => b,
            (None, Some(g)) if g.shape.len() == 1 && g.shape[0] > 0 => {
                let packed_bits = rows.saturating_mul(32);
                if packed_bits % g.shape[0] != 0 {
                    return Err(format!(
                        "{qw:?} has {rows} rows, not a whole number of bits for the {} inputs of {g_name:?}",
                        g.shape[0]
                    ));
                }
                u32::try_from(packed_bits / g.shape[0]).unwrap_or(u32::MAX)
            }
            // The zero points' width tells: `out` of them packed 32/bits to a word (4 first,
            // AutoGPTQ's default, where a narrow layer leaves a doubt).
            (None, _) => [4, 8, 2]
                .into_iter()
                .find(|&b| qzeros.shape.get(1) == Some(&out.div_ceil(u64::from(32 / b))))
                .unwrap_or(4),
        };
        if ![2, 4, 8].contains(&bits) {
            return Err(format!("{bits}-bit GPTQ is not read (2, 4 and 8 bits are)"));
        }
        let pack = u64::from(32 / bits);
        let inputs = rows
            .checked_mul(pack)
            .ok_or_else(|| format!("{qw:?} has {rows} rows: too many inputs"))?;
        expect_shape(&qz, qzeros, &[groups, out.div_ceil(pack)])?;
        let groups_of: Vec<u64> = match g_idx {
            Some(g) => {
                expect_dtype(&g_name, g, &[Dtype::I32, Dtype::U32])?;
                expect_shape(&g_name, g, &[inputs])?;
                replaces.push(g_name.clone());
                let idx: Vec<u64> = (0..inputs as usize)
                    .map(|i| u64::from(u32_at(g.bytes(), i)))
                    .collect();
                if let Some(bad) = idx.iter().find(|&&g| g >= groups) {
                    return Err(format!(
                        "{g_name:?} names group {} of {groups}",
                        *bad as u32 as i32
                    ));
                }
                idx
            }
            None => {
                if inputs % groups != 0 {
                    return Err(format!(
                        "{inputs} inputs do not split into the {groups} groups of {sc:?}"
                    ));
                }
                (0..inputs).map(|i| i / (inputs / groups)).collect()
            }
        };
        let (mask, offset) = ((1u32 << bits) - 1, u32::from(!config.gptq_v2));
        let zcols = out.div_ceil(pack) as usize;
        let (qweight, qzeros) = (qweight.bytes(), qzeros.bytes());
        let mut w = vec![0f32; (out * inputs) as usize];
        for i in 0..inputs as usize {
            let (row, shift) = (i / pack as usize, bits * (i as u32 % (32 / bits)));
            let g = groups_of[i] as usize;
            for j in 0..out as usize {
                let q = (u32_at(qweight, row * out as usize + j) >> shift) & mask;
                let zshift = bits * (j as u32 % (32 / bits));
                let z = (u32_at(qzeros, g * zcols + j / pack as usize) >> zshift) & mask;
                // AutoGPTQ adds the one back and masks again (its "zeros + 1" then
                // "bitwise_and"): a stored 2^b − 1 is a zero point of 0.
                let z = (z + offset) & mask;
                let d = q as i32 - z as i32;
                w[j * inputs as usize + i] = d as f32 * scale[g * out as usize + j];
            }
        }
        (w, inputs)
    } else if cols.checked_mul(8) == Some(out) {
        // AWQ GEMM: output columns packed eight to a word, in AWQ's interleaved order.
        const REVERSE: [u32; 8] = [0, 4, 1, 5, 2, 6, 3, 7];
        let inputs = rows;
        expect_shape(&qz, qzeros, &[groups, cols])?;
        if inputs % groups != 0 {
            return Err(format!(
                "{inputs} inputs do not split into the {groups} groups of {sc:?}"
            ));
        }
        let size = (inputs / groups) as usize;
        let nibble = |bytes: &[u8], row: usize, j: usize| {
            (u32_at(bytes, row * cols as usize + j / 8) >> (4 * REVERSE[j % 8])) & 0x0f
        };
        let (qweight, qzeros) = (qweight.bytes(), qzeros.bytes());
        let mut w = vec![0f32; (out * inputs) as usize];
        for i in 0..inputs as usize {
            let g = i / size;
            for j in 0..out as usize {
                let d = nibble(qweight, i, j) as i32 - nibble(qzeros, g, j) as i32;
                w[j * inputs as usize + i] = d as f32 * scale[g * out as usize + j];
            }
        }
        (w, inputs)
    } else {
        return Err(format!(
            "{sc:?} is {out} wide: neither GPTQ's {cols} nor AWQ's {} outputs",
            cols.saturating_mul(8)
        ));
    };
    let len = values.len();
    Ok(Unpacked {
        anchor: String::new(),
        name: format!("{p}.weight"),
        shape: vec![out, inputs],
        replaces,
        values: to_bytes(values, len),
    })
}

/// MXFP4: `X_blocks` of 16 bytes (32 E2M1 values, low nibble first) per `X_scales` exponent.
fn mxfp4(x: &str, blocks: &Stored<'_>, scales: &Stored<'_>) -> Group {
    let (bn, sn) = (format!("{x}_blocks"), format!("{x}_scales"));
    expect_dtype(&bn, blocks, &[Dtype::U8])?;
    expect_dtype(&sn, scales, &[Dtype::U8, Dtype::F8E8M0])?;
    let Some((&16, lead)) = blocks.shape.split_last() else {
        return Err(format!(
            "{bn:?} has shape {:?}, expected blocks of 16 bytes last",
            blocks.shape
        ));
    };
    expect_shape(&sn, scales, lead)?;
    if lead.contains(&0) {
        return Err(format!("{bn:?} has shape {:?}: no weights", blocks.shape));
    }
    let mut shape = lead.to_vec();
    let Some(last) = shape.last_mut() else {
        return Err(format!("{sn:?} is a scalar"));
    };
    *last = last
        .checked_mul(32)
        .ok_or_else(|| format!("{bn:?} is too wide"))?;
    let mut values: Vec<f32> = Vec::with_capacity(blocks.bytes().len() * 2);
    for (block, &e) in blocks.bytes().chunks_exact(16).zip(scales.bytes()) {
        for &b in block {
            for nibble in [b & 0x0f, b >> 4] {
                values.push(e8m0_scaled(E2M1[nibble as usize], e));
            }
        }
    }
    // Stacked experts (gpt-oss's `[experts, out, blocks, 16]`) are stored `out × in` per
    // expert; transformers dequantizes them to its BF16 layout, `in × out` per expert.
    if let [.., rows, cols] = shape[..] {
        if shape.len() >= 3 {
            let (r, c) = (rows as usize, cols as usize);
            for matrix in values.chunks_exact_mut(r * c) {
                let copy = matrix.to_vec();
                for i in 0..r {
                    for j in 0..c {
                        matrix[j * r + i] = copy[i * c + j];
                    }
                }
            }
            let n = shape.len();
            shape.swap(n - 2, n - 1);
        }
    }
    let values = to_bytes(values.iter().copied(), values.len());
    Ok(Unpacked {
        anchor: String::new(),
        name: x.to_string(),
        shape,
        replaces: vec![bn, sn],
        values,
    })
}

/// `v · 2^(e − 127)` rounded once to `f32` (E8M0's 255 is NaN).
fn e8m0_scaled(v: f32, e: u8) -> f32 {
    if e == 255 {
        return f32::NAN;
    }
    (f64::from(v) * 2f64.powi(i32::from(e) - 127)) as f32
}

/// A `P.weight` that some companion says is quantized: bitsandbytes, FP8 with scales, NVFP4.
fn weight_with_scales(
    p: &str,
    weight: &Stored<'_>,
    tensors: &BTreeMap<&str, Stored<'_>>,
    config: &Config,
) -> Option<Group> {
    let name = format!("{p}.weight");
    let has = |suffix: &str| tensors.contains_key(format!("{p}.{suffix}").as_str());
    for kind in ["nf4", "fp4"] {
        let state = format!("{name}.quant_state.bitsandbytes__{kind}");
        if tensors.contains_key(state.as_str()) {
            return Some(bnb_4bit(&name, weight, &state, tensors));
        }
    }
    if has("SCB") {
        return Some(bnb_int8(p, weight, tensors));
    }
    if has("weight_scale_2") {
        return Some(nvfp4(p, weight, tensors));
    }
    if matches!(weight.dtype, Dtype::F8E4M3 | Dtype::F8E5M2) {
        for suffix in ["weight_scale_inv", "weight_scale"] {
            if has(suffix) {
                return Some(fp8(p, weight, suffix, tensors, config.block));
            }
        }
    }
    None
}

fn bnb_int8(p: &str, weight: &Stored<'_>, tensors: &BTreeMap<&str, Stored<'_>>) -> Group {
    let (name, scb_name) = (format!("{p}.weight"), format!("{p}.SCB"));
    expect_dtype(&name, weight, &[Dtype::I8])?;
    let (out, inputs) = matrix(&name, weight)?;
    let scb_t = get(tensors, &scb_name)?;
    expect_shape(&scb_name, scb_t, &[out])?;
    let scb = floats(&scb_name, scb_t)?;
    let mut replaces = vec![name.clone(), scb_name];
    let format_name = format!("{p}.weight_format");
    if tensors.contains_key(format_name.as_str()) {
        replaces.push(format_name);
    }
    // bitsandbytes' own order: (CB · SCB) · (1/127).
    let inv = 1.0f32 / 127.0;
    let values = weight
        .bytes()
        .iter()
        .enumerate()
        .map(|(k, &q)| f32::from(q as i8) * scb[k / inputs as usize] * inv);
    Ok(Unpacked {
        anchor: String::new(),
        name,
        shape: vec![out, inputs],
        replaces,
        values: to_bytes(values, (out * inputs) as usize),
    })
}

/// bitsandbytes 4-bit (nf4 or fp4): two codes a byte, the first in the high nibble, each
/// `quant_map[code] · absmax[block]`; a nested (double-quantized) absmax is itself
/// `nested_quant_map[code] · nested_absmax[block] + nested_offset`.
fn bnb_4bit(
    name: &str,
    weight: &Stored<'_>,
    state_name: &str,
    tensors: &BTreeMap<&str, Stored<'_>>,
) -> Group {
    expect_dtype(name, weight, &[Dtype::U8])?;
    let state_t = get(tensors, state_name)?;
    let state: serde_json::Value = serde_json::from_slice(state_t.bytes())
        .map_err(|e| format!("{state_name:?} is not the JSON quant state: {e}"))?;
    let field = |key: &str| {
        state
            .get(key)
            .ok_or_else(|| format!("{state_name:?} has no {key:?}"))
    };
    let shape: Vec<u64> = field("shape")?
        .as_array()
        .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
        .ok_or_else(|| format!("{state_name:?}'s shape is not a list of sizes"))?;
    let n = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n.div_ceil(2) == weight.bytes().len() as u64)
        .ok_or_else(|| {
            format!(
                "{state_name:?}'s shape {shape:?} does not fit the {} bytes of {name:?}",
                weight.bytes().len()
            )
        })?;
    let block = field("blocksize")?
        .as_u64()
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{state_name:?}'s blocksize is not a positive integer"))?;
    let (absmax_name, map_name) = (format!("{name}.absmax"), format!("{name}.quant_map"));
    let map_t = get(tensors, &map_name)?;
    expect_shape(&map_name, map_t, &[16])?;
    let map = floats(&map_name, map_t)?;
    let absmax_t = get(tensors, &absmax_name)?;
    let blocks = n.div_ceil(block);
    expect_shape(&absmax_name, absmax_t, &[blocks])?;
    let mut replaces = vec![
        name.to_string(),
        state_name.to_string(),
        absmax_name.clone(),
        map_name,
    ];
    let absmax: Vec<f32> = if absmax_t.dtype == Dtype::U8 {
        let (nested_name, nested_map_name) = (
            format!("{name}.nested_absmax"),
            format!("{name}.nested_quant_map"),
        );
        let nested_block = field("nested_blocksize")?
            .as_u64()
            .filter(|&b| b > 0)
            .ok_or_else(|| format!("{state_name:?}'s nested_blocksize is not positive"))?;
        let offset = field("nested_offset")?
            .as_f64()
            .ok_or_else(|| format!("{state_name:?}'s nested_offset is not a number"))?
            as f32;
        let nested_t = get(tensors, &nested_name)?;
        expect_shape(&nested_name, nested_t, &[blocks.div_ceil(nested_block)])?;
        let nested = floats(&nested_name, nested_t)?;
        let nested_map_t = get(tensors, &nested_map_name)?;
        expect_shape(&nested_map_name, nested_map_t, &[256])?;
        let nested_map = floats(&nested_map_name, nested_map_t)?;
        replaces.extend([nested_name, nested_map_name]);
        absmax_t
            .bytes()
            .iter()
            .enumerate()
            .map(|(k, &c)| nested_map[usize::from(c)] * nested[k / nested_block as usize] + offset)
            .collect()
    } else {
        floats(&absmax_name, absmax_t)?
    };
    let packed = weight.bytes();
    let values = (0..n as usize).map(|k| {
        let b = packed[k / 2];
        let code = if k % 2 == 0 { b >> 4 } else { b & 0x0f };
        map[usize::from(code)] * absmax[k / block as usize]
    });
    Ok(Unpacked {
        anchor: String::new(),
        name: name.to_string(),
        shape,
        replaces,
        values: to_bytes(values, n as usize),
    })
}

/// `replaces` and, when stored, `P.input_scale`: the activations' calibrated scale that FP8
/// and FP4 exporters write beside the weight, not a weight of the model.
fn with_input_scale(
    p: &str,
    tensors: &BTreeMap<&str, Stored<'_>>,
    mut replaces: Vec<String>,
) -> Vec<String> {
    let input = format!("{p}.input_scale");
    if tensors.contains_key(input.as_str()) {
        replaces.push(input);
    }
    replaces
}

/// NVFP4 (ModelOpt): E2M1 pairs (low nibble first), an E4M3 scale per 16 inputs, and a
/// global `f32` scale.
fn nvfp4(p: &str, weight: &Stored<'_>, tensors: &BTreeMap<&str, Stored<'_>>) -> Group {
    let (name, s_name, s2_name) = (
        format!("{p}.weight"),
        format!("{p}.weight_scale"),
        format!("{p}.weight_scale_2"),
    );
    expect_dtype(&name, weight, &[Dtype::U8])?;
    let (out, half) = matrix(&name, weight)?;
    let inputs = half
        .checked_mul(2)
        .ok_or_else(|| format!("{name:?} is too wide"))?;
    let s_t = get(tensors, &s_name)?;
    expect_dtype(&s_name, s_t, &[Dtype::F8E4M3])?;
    if inputs % 16 != 0 {
        return Err(format!("{inputs} inputs are not whole blocks of 16"));
    }
    expect_shape(&s_name, s_t, &[out, inputs / 16])?;
    let s2_t = get(tensors, &s2_name)?;
    let s2 = floats(&s2_name, s2_t)?;
    let [global] = s2[..] else {
        return Err(format!(
            "{s2_name:?} holds {} values, expected one",
            s2.len()
        ));
    };
    let scales: Vec<f32> = floats(&s_name, s_t)?
        .into_iter()
        .map(|s| s * global)
        .collect();
    let values = weight.bytes().iter().enumerate().flat_map(|(k, &b)| {
        let s = scales[k / 8];
        [b & 0x0f, b >> 4].map(|q| E2M1[usize::from(q)] * s)
    });
    Ok(Unpacked {
        anchor: String::new(),
        name,
        shape: vec![out, inputs],
        replaces: with_input_scale(p, tensors, vec![format!("{p}.weight"), s_name, s2_name]),
        values: to_bytes(values, (out * inputs) as usize),
    })
}

/// FP8 weights times their scales: one for the tensor, one per row, or one per block (the
/// block from `config.json`'s `weight_block_size`, else 128 × 128 as DeepSeek-V3 and
/// compressed-tensors write them).
fn fp8(
    p: &str,
    weight: &Stored<'_>,
    suffix: &str,
    tensors: &BTreeMap<&str, Stored<'_>>,
    block: Option<[u64; 2]>,
) -> Group {
    let (name, s_name) = (format!("{p}.weight"), format!("{p}.{suffix}"));
    let (out, inputs) = matrix(&name, weight)?;
    let s_t = get(tensors, &s_name)?;
    let s = floats(&s_name, s_t)?;
    let w = floats(&name, weight)?;
    let (br, bc) = match *s_t.shape {
        [] | [1] => (out, inputs),
        [r] | [r, 1] if r == out => (1, inputs),
        [r, c] => {
            let [br, bc] = block.unwrap_or([128, 128]);
            if out.div_ceil(br) != r || inputs.div_ceil(bc) != c {
                return Err(format!(
                    "{s_name:?} has shape {:?}, which is not {out} × {inputs} in blocks of {br} × {bc}",
                    s_t.shape
                ));
            }
            (br, bc)
        }
        _ => {
            return Err(format!(
                "{s_name:?} has shape {:?}: not a tensor, row or block scale",
                s_t.shape
            ))
        }
    };
    // (An empty weight has no blocks: nothing is read.)
    let scols = inputs.div_ceil(bc.max(1)) as usize;
    let values = w.iter().enumerate().map(|(k, &v)| {
        let (i, j) = (k / inputs as usize, k % inputs as usize);
        v * s[(i / br as usize) * scols + j / bc as usize]
    });
    Ok(Unpacked {
        anchor: String::new(),
        name,
        shape: vec![out, inputs],
        replaces: with_input_scale(p, tensors, vec![format!("{p}.weight"), s_name]),
        values: to_bytes(values, (out * inputs) as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config.json past its bound counts as none (it is not read into a JSON tree), one
    /// within it is read.
    #[test]
    fn a_config_past_its_bound_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let config = |padding: usize| {
            let text = format!(
                "{{\"quantization_config\": {{\"bits\": 8}}{}}}",
                " ".repeat(padding)
            );
            std::fs::write(dir.path().join("config.json"), text).unwrap();
            Config::find(dir.path())
        };
        assert_eq!(config(10).bits, Some(8));
        assert_eq!(config(MAX_CONFIG as usize), Config::default());
    }

    /// Owned tensors, viewed as the unpacker sees them.
    #[derive(Default)]
    struct Tensors(Vec<(String, Dtype, Vec<u64>, Vec<u8>)>);

    impl Tensors {
        fn with(mut self, name: &str, dtype: Dtype, shape: &[u64], bytes: Vec<u8>) -> Self {
            self.0.push((name.into(), dtype, shape.to_vec(), bytes));
            self
        }

        fn unpack(&self, config: &Config) -> Result<Vec<Unpacked>> {
            let map = self
                .0
                .iter()
                .map(|(n, d, s, b)| (n.as_str(), Stored::new(*d, s, move || &b[..])))
                .collect();
            unpack(Path::new("m.safetensors"), &map, config)
        }

        fn error(&self, config: &Config) -> String {
            self.unpack(config).unwrap_err().to_string()
        }
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn f16s(v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect()
    }

    fn values(u: &Unpacked) -> Vec<f32> {
        u.values
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// 4-bit GPTQ, 8 inputs × 8 outputs in one group: input i of output j is `i + j mod 16`,
    /// zero points stored as `z − 1`.
    fn gptq(zero_stored: u32, g_idx: Option<Vec<u32>>) -> Tensors {
        // One word per output (a row of `in · 4 / 32 = 1`), input i in nibble i.
        let qweight: Vec<u32> = (0..8u32)
            .map(|j| (0..8u32).fold(0, |w, i| w | (((i + j) % 16) << (4 * i))))
            .collect();
        let zeros: u32 = (0..8).fold(0, |w, j| w | (zero_stored << (4 * j)));
        let t = Tensors::default()
            .with("l.qweight", Dtype::I32, &[1, 8], words(&qweight))
            .with("l.qzeros", Dtype::I32, &[1, 1], words(&[zeros]))
            .with("l.scales", Dtype::F16, &[1, 8], f16s(&[0.5; 8]));
        match g_idx {
            Some(g) => t.with("l.g_idx", Dtype::I32, &[8], words(&g)),
            None => t,
        }
    }

    #[test]
    fn gptq_unpacks_inputs_along_words_and_adds_the_stored_zero_back() {
        let out = gptq(7, Some(vec![0; 8]))
            .unpack(&Config::default())
            .unwrap();
        let [w] = &out[..] else { panic!("{out:?}") };
        assert_eq!(w.name, "l.weight");
        assert_eq!(w.shape, [8, 8], "out × in");
        assert_eq!(w.replaces.len(), 4, "qweight, qzeros, scales, g_idx");
        let v = values(w);
        // Output j, input i: ((i + j) mod 16 − 8) · 0.5.
        for j in 0..8 {
            for i in 0..8 {
                assert_eq!(v[j * 8 + i], (((i + j) % 16) as f32 - 8.0) * 0.5, "{j},{i}");
            }
        }
        // GPTQModel's v2 stores the zero itself.
        let v2 = Config {
            gptq_v2: true,
            ..Config::default()
        };
        assert_eq!(values(&gptq(8, None).unpack(&v2).unwrap()[0]), v);
        // A stored 15 is a zero point of 0 (AutoGPTQ masks after adding the one back).
        let zero = values(&gptq(15, None).unpack(&Config::default()).unwrap()[0]);
        assert_eq!(zero[1], 0.5, "output 0, input 1: (1 − 0) · 0.5");
    }

    #[test]
    fn gptq_names_what_is_wrong() {
        let base = Config::default();
        let bad = gptq(7, Some(vec![0, 0, 0, 0, 0, 0, 0, u32::MAX])).error(&base);
        assert!(
            bad.contains("l.g_idx") && bad.contains("group -1 of 1"),
            "{bad}"
        );
        let three = Config {
            bits: Some(3),
            ..base.clone()
        };
        assert!(gptq(7, None)
            .error(&three)
            .contains("3-bit GPTQ is not read"));
        let mut missing = gptq(7, None);
        missing.0.retain(|t| t.0 != "l.qzeros");
        let e = missing.error(&base);
        assert!(
            e.contains("\"l.qzeros\" is missing") && e.contains("m.safetensors"),
            "{e}"
        );
        let both = gptq(7, None).with("l.weight", Dtype::F32, &[8, 8], vec![0; 256]);
        assert!(both
            .error(&base)
            .contains("which the checkpoint also stores"));
    }

    #[test]
    fn a_crafted_group_cannot_declare_what_it_does_not_hold() {
        // An empty qweight of 2^36 rows: no bytes, yet 2^39 inputs if it were believed.
        let empty = Tensors::default()
            .with("l.qweight", Dtype::I32, &[1 << 36, 0], vec![])
            .with("l.qzeros", Dtype::I32, &[1, 0], vec![])
            .with("l.scales", Dtype::F16, &[1, 0], vec![]);
        assert!(empty.error(&Config::default()).contains("no weights"));
        let blocks = Tensors::default()
            .with("x_blocks", Dtype::U8, &[1 << 40, 0, 16], vec![])
            .with("x_scales", Dtype::U8, &[1 << 40, 0], vec![]);
        assert!(blocks.error(&Config::default()).contains("no weights"));
        // Two groups that would both become `l.weight`.
        let mut twice = gptq(7, None);
        twice.0.extend(
            Tensors::default()
                .with("l.weight_blocks", Dtype::U8, &[1, 1, 16], vec![0; 16])
                .with("l.weight_scales", Dtype::U8, &[1, 1], vec![127])
                .0,
        );
        let e = twice.error(&Config::default());
        assert!(e.contains("another packed group gives too"), "{e}");
    }

    #[test]
    fn gptq_bits_are_told_by_the_zero_points_without_a_config() {
        // 8-bit: 4 inputs a word; 8 outputs' zero points in 2 words.
        let t = Tensors::default()
            .with("l.qweight", Dtype::I32, &[1, 8], words(&[0x0302_0100; 8]))
            .with("l.qzeros", Dtype::I32, &[1, 2], words(&[0x7f7f_7f7f; 2]))
            .with("l.scales", Dtype::F16, &[1, 8], f16s(&[1.0; 8]));
        let w = &t.unpack(&Config::default()).unwrap()[0];
        assert_eq!(w.shape, [8, 4], "8 outputs of 4 inputs");
        assert_eq!(
            &values(w)[..4],
            [-128.0, -127.0, -126.0, -125.0],
            "q − (127 + 1)"
        );
    }

    #[test]
    fn stacked_mxfp4_experts_come_out_as_transformers_lays_them_out() {
        // Two experts of 2 outputs × 32 inputs; output o of expert e all (e·2 + o + 1)/2.
        let codes = [1u8, 2, 3, 4]; // E2M1 0.5, 1.0, 1.5, 2.0
        let blocks: Vec<u8> = codes.iter().flat_map(|&c| [c | (c << 4); 16]).collect();
        let t = Tensors::default()
            .with("x_blocks", Dtype::U8, &[2, 2, 1, 16], blocks)
            .with("x_scales", Dtype::U8, &[2, 2, 1], vec![127; 4]);
        let w = &t.unpack(&Config::default()).unwrap()[0];
        assert_eq!(w.shape, [2, 32, 2], "experts × in × out");
        let v = values(w);
        assert_eq!(&v[..4], [0.5, 1.0, 0.5, 1.0], "expert 0, inputs 0 and 1");
        assert_eq!(&v[64..66], [1.5, 2.0], "expert 1, input 0");
    }

    #[test]
    fn awq_reads_output_columns_in_awq_order() {
        // Nibble k of the word holds column AWQ_ORDER[k] = [0, 2, 4, 6, 1, 3, 5, 7][k].
        let order = [0u32, 2, 4, 6, 1, 3, 5, 7];
        let word = (0..8).fold(0u32, |w, k| w | (order[k] << (4 * k)));
        let t = Tensors::default()
            .with("l.qweight", Dtype::I32, &[1, 1], words(&[word]))
            .with("l.qzeros", Dtype::I32, &[1, 1], words(&[0]))
            .with("l.scales", Dtype::F16, &[1, 8], f16s(&[1.0; 8]));
        let w = &t.unpack(&Config::default()).unwrap()[0];
        assert_eq!(w.shape, [8, 1]);
        assert_eq!(values(w), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    }

    #[test]
    fn bitsandbytes_4bit_state_is_checked_before_anything_is_allocated() {
        let with_state = |state: &str| {
            Tensors::default()
                .with("l.weight", Dtype::U8, &[2, 1], vec![0x0f, 0xf0])
                .with(
                    "l.weight.absmax",
                    Dtype::F32,
                    &[1],
                    2f32.to_le_bytes().to_vec(),
                )
                .with(
                    "l.weight.quant_map",
                    Dtype::F32,
                    &[16],
                    (0..16).flat_map(|i| (i as f32).to_le_bytes()).collect(),
                )
                .with(
                    "l.weight.quant_state.bitsandbytes__nf4",
                    Dtype::U8,
                    &[state.len() as u64],
                    state.as_bytes().to_vec(),
                )
        };
        let good = with_state(r#"{"quant_type":"nf4","blocksize":64,"shape":[2,2]}"#);
        let w = &good.unpack(&Config::default()).unwrap()[0];
        assert_eq!(
            values(w),
            [0.0, 30.0, 30.0, 0.0],
            "high nibble first, × absmax 2"
        );
        for (state, problem) in [
            ("not json", "is not the JSON quant state"),
            (
                r#"{"blocksize":64,"shape":[4294967296,4294967296]}"#,
                "does not fit the 2 bytes",
            ),
            (
                r#"{"blocksize":64,"shape":[18446744073709551615,2]}"#,
                "does not fit",
            ),
            (
                r#"{"blocksize":0,"shape":[2,2]}"#,
                "blocksize is not a positive integer",
            ),
            (r#"{"shape":[2,2]}"#, "has no \"blocksize\""),
        ] {
            let e = with_state(state).error(&Config::default());
            assert!(e.contains(problem), "{state}: {e}");
        }
    }

    #[test]
    fn fp4_formats_read_low_nibble_first_with_their_scales() {
        // MXFP4: 0x71 is E2M1 codes 1 (0.5) then 7 (6.0); exponent 128 doubles them.
        let mx = Tensors::default()
            .with(
                "x_blocks",
                Dtype::U8,
                &[1, 1, 16],
                [vec![0x71], vec![0; 15]].concat(),
            )
            .with("x_scales", Dtype::F8E8M0, &[1, 1], vec![128]);
        let w = &mx.unpack(&Config::default()).unwrap()[0];
        assert_eq!(
            (w.name.as_str(), w.shape.as_slice()),
            ("x", &[1u64, 32][..])
        );
        assert_eq!(&values(w)[..3], [1.0, 12.0, 0.0]);
        let nan = Tensors::default()
            .with("x_blocks", Dtype::U8, &[1, 16], vec![0x22; 16])
            .with("x_scales", Dtype::U8, &[1], vec![255]);
        assert!(values(&nan.unpack(&Config::default()).unwrap()[0])[0].is_nan());
        // NVFP4: E4M3 0x38 is 1.0, times the global 0.25; 0xA9 is codes 9 (−0.5), 10 (−1.0).
        let nv = Tensors::default()
            .with(
                "l.weight",
                Dtype::U8,
                &[1, 8],
                [vec![0xa9], vec![0; 7]].concat(),
            )
            .with("l.weight_scale", Dtype::F8E4M3, &[1, 1], vec![0x38])
            .with(
                "l.weight_scale_2",
                Dtype::F32,
                &[],
                0.25f32.to_le_bytes().to_vec(),
            )
            .with(
                "l.input_scale",
                Dtype::F32,
                &[],
                1f32.to_le_bytes().to_vec(),
            );
        let w = &nv.unpack(&Config::default()).unwrap()[0];
        assert_eq!(w.replaces.len(), 4, "the activations' input_scale goes too");
        assert_eq!(&values(w)[..2], [-0.125, -0.25]);
    }

    #[test]
    fn e4m3_is_read_exactly() {
        assert_eq!(e4m3(0x38), 1.0);
        assert_eq!(e4m3(0x7e), 448.0, "the largest");
        assert_eq!(e4m3(0x08), 2f32.powi(-6), "the smallest normal");
        assert_eq!(e4m3(0x01), 2f32.powi(-9), "the smallest subnormal");
        assert_eq!(e4m3(0xb8), -1.0);
        assert!(e4m3(0x7f).is_nan() && e4m3(0xff).is_nan());
    }

    #[test]
    fn fp8_block_scales_follow_the_configured_block() {
        // 4 × 4 weights of 1.0 with 2 × 4 blocks: rows 0–1 scaled by 2, rows 2–3 by 3.
        let t = Tensors::default()
            .with("l.weight", Dtype::F8E4M3, &[4, 4], vec![0x38; 16])
            .with(
                "l.weight_scale_inv",
                Dtype::F32,
                &[2, 1],
                [2f32, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect(),
            );
        let config = Config {
            block: Some([2, 4]),
            ..Config::default()
        };
        let v = values(&t.unpack(&config).unwrap()[0]);
        assert_eq!(v, [[2.0; 8], [3.0; 8]].concat());
        // Without the config, DeepSeek's 128 × 128 does not fit a [2, 1] grid over 4 × 4.
        let e = t.error(&Config::default());
        assert!(e.contains("not 4 × 4 in blocks of 128 × 128"), "{e}");
    }

    #[test]
    fn config_json_is_read_beside_the_weights_and_never_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::find(dir.path()), Config::default());
        let write = |text: &str| std::fs::write(dir.path().join("config.json"), text).unwrap();
        write(
            r#"{"quantization_config": {"bits": 8, "checkpoint_format": "gptq_v2",
                "weight_block_size": [64, 128]}}"#,
        );
        let expected = Config {
            bits: Some(8),
            gptq_v2: true,
            block: Some([64, 128]),
        };
        assert_eq!(Config::find(dir.path()), expected);
        // What it cannot use is ignored: EXL2's fractional bits, a bad block, broken JSON.
        write(r#"{"quantization_config": {"bits": 4.65, "weight_block_size": [0, 128]}}"#);
        assert_eq!(Config::find(dir.path()), Config::default());
        write("{not json");
        assert_eq!(Config::find(dir.path()), Config::default());
    }
}
