//! Computing a model's fingerprint (format v2).

use std::collections::HashMap;

use crate::anchor::{self, Anchors, Keying};
use crate::backend::Backend;
use crate::content;
use crate::dtype::Dtype;
use crate::layout;
use crate::norms;
use crate::probe::ProbeTable;
use crate::scale::{self, Axis};
use crate::sketch::{self, Probes, SideJob, UnitSide, MAX_LEN, MAX_UNITS, MIN_SIDE};
use crate::source::{Model, TensorRef};
use crate::v1::MatrixSketch;
use crate::Result;

/// The fingerprint of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Format version: 2 for everything computed now, 1 for decoded v1 encodings.
    pub version: u16,
    pub content_root: [u8; 32],
    /// Where the residual probes came from (v2; `None` when the model has no vocabulary
    /// table, and in v1).
    pub anchors: Option<AnchorInfo>,
    /// Sorted by name.
    pub tensors: Vec<TensorFingerprint>,
}

/// What the residual anchors were taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorInfo {
    /// The residual width.
    pub width: u32,
    pub keying: Keying,
    /// Names of the vocabulary tables.
    pub sources: Vec<String>,
}

/// One tensor's part of the fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorFingerprint {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub data_hash: [u8; 32],
    /// v2: the tensor looks like a fixed, analytic table ([`crate::structure`]).
    pub structured: bool,
    pub sketch: TensorSketch,
}

/// The behavioural part of a tensor's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorSketch {
    /// Identified by hash only: 1-D tensors, sides outside the sketched sizes, hash-only
    /// types (F64, wide integers, BOOL).
    None,
    /// v1: a 1-D tensor's 32-bit signature.
    Vector { top: i32, bits: u32, signature: u32 },
    /// v1: a matrix's row and column signatures.
    Matrix(MatrixSketch),
    /// v2: the unit sets of the tensor's canonical matrix ([`crate::layout`]).
    Units(Vec<UnitSide>),
}

impl Fingerprint {
    /// Bytes of tensor data the fingerprinted model holds (saturating).
    pub fn data_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| matrix_len(&t.shape).saturating_mul(t.dtype.size() as u64))
            .fold(0u64, u64::saturating_add)
    }

    /// Number of elements over all tensors.
    pub fn parameters(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| matrix_len(&t.shape))
            .fold(0u64, u64::saturating_add)
    }
}

/// Elements of a tensor of `shape` (saturating).
pub(crate) fn matrix_len(shape: &[u64]) -> u64 {
    shape.iter().fold(1u64, |a, &d| a.saturating_mul(d))
}

/// How a tensor is viewed for the v1 sketch (decoding v1 encodings checks it).
pub(crate) fn matrix_dims(shape: &[u64]) -> Option<(u32, u32)> {
    if shape.len() < 2 {
        return None;
    }
    let rows = shape[0];
    let cols = shape[1..].iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
    (rows >= MIN_SIDE && cols >= MIN_SIDE && rows <= 1 << 24 && cols <= 1 << 24)
        .then_some((rows as u32, cols as u32))
}

/// One side to sketch: its units and the probes it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub axis: Axis,
    pub probes: Probes,
}

/// The sides of a canonical `rows × cols` matrix: a side whose responses run along the
/// residual width gets the anchors; a matrix with no residual axis gets hashed probes on
/// both sides (a convolution kernel only on its output channels: its columns mix input
/// channels and kernel positions); sides outside the sketched sizes are left out.
pub(crate) fn plan(rows: u64, cols: u64, conv: bool, width: Option<u64>) -> Vec<Plan> {
    let ok = |units: u64, len: u64| {
        (MIN_SIDE..=MAX_UNITS).contains(&units) && (MIN_SIDE..=MAX_LEN).contains(&len)
    };
    let mut plans = Vec::new();
    if width == Some(cols) && ok(rows, cols) {
        plans.push(Plan {
            axis: Axis::Rows,
            probes: Probes::Keyed,
        });
    }
    if width == Some(rows) && ok(cols, rows) {
        plans.push(Plan {
            axis: Axis::Cols,
            probes: Probes::Keyed,
        });
    }
    if width != Some(rows) && width != Some(cols) {
        if ok(rows, cols) {
            plans.push(Plan {
                axis: Axis::Rows,
                probes: Probes::Hashed,
            });
        }
        if !conv && ok(cols, rows) {
            plans.push(Plan {
                axis: Axis::Cols,
                probes: Probes::Hashed,
            });
        }
    }
    plans
}

/// Computes the fingerprint of `model` with `backend`; `progress` gets the bytes done so far.
pub fn fingerprint(
    model: &Model,
    backend: &dyn Backend,
    mut progress: impl FnMut(u64),
) -> Result<Fingerprint> {
    let anchors = anchor::compute(model);
    let mut hashed: HashMap<usize, ProbeTable> = HashMap::new();
    let mut done = 0u64;
    let mut tensors = Vec::with_capacity(model.tensors().len());
    // In storage order (each tensor's part depends on it alone), so that the file is read
    // front to back, and a model still arriving is fingerprinted right behind its writer.
    for t in model.storage_order() {
        tensors.push(tensor_fingerprint(
            model,
            t,
            backend,
            anchors.as_ref(),
            &mut hashed,
        )?);
        done += t.byte_len() as u64;
        progress(done);
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let content_root =
        content::content_root(tensors.iter().map(|t| (t.name.as_str(), &t.data_hash)));
    Ok(Fingerprint {
        version: crate::encoding::VERSION,
        content_root,
        anchors: anchors.map(|a| AnchorInfo {
            width: a.width,
            keying: a.keying,
            sources: a.sources,
        }),
        tensors,
    })
}

fn tensor_fingerprint(
    model: &Model,
    t: &TensorRef,
    backend: &dyn Backend,
    anchors: Option<&Anchors>,
    hashed: &mut HashMap<usize, ProbeTable>,
) -> Result<TensorFingerprint> {
    let data = model.data(t);
    let bytes: &[u8] = &data;
    let data_hash = content::data_hash(t.dtype, &t.shape, bytes);
    let width = anchors.map(|a| u64::from(a.width));
    let mut sides: Vec<UnitSide> = Vec::new();
    let mut structured = false;
    if let Some(view) = layout::canonical(&t.shape, width).filter(|_| t.dtype.sketchable()) {
        let mut plans = plan(view.rows, view.cols, view.conv, width);
        // A vocabulary table's rows are also probed with the anchors keyed by row id, which
        // a copy without its tokenizer has too, and with those keyed by content, which a copy
        // whose vocabulary was reordered has too.
        if anchors.is_some_and(|a| a.sources.contains(&t.name)) {
            let twins: Vec<Plan> = plans
                .iter()
                .filter(|p| p.probes == Probes::Keyed)
                .flat_map(|p| {
                    [Probes::Ids, Probes::Content].map(|probes| Plan {
                        axis: p.axis,
                        probes,
                    })
                })
                .collect();
            plans.extend(twins);
        }
        let owned;
        let bytes = match &view.axes {
            Some(axes) if !plans.is_empty() => {
                owned = layout::transpose(bytes, &t.shape, axes, t.dtype.size());
                &owned[..]
            }
            _ => bytes,
        };
        let (rows, cols) = (view.rows as usize, view.cols as usize);
        if !plans.is_empty() {
            structured = crate::structure::is_structured(t.dtype, bytes, rows, cols);
        }
        // A matrix that reads a norm's output (`out × d`, as the conventions that pair gains
        // store them) is read with the norm's gain folded into its rows' responses.
        let gain = anchors.and_then(|a| norms::gain(model, &t.name, a.width as usize));
        // The twin sides of a vocabulary table share the units, so their scales, and a twin
        // whose anchors equal another side's (keyed by id in a model keyed by id) shares
        // its signatures too.
        let mut tops_of: HashMap<Axis, Vec<i32>> = HashMap::new();
        let mut anchored: Vec<(Axis, ProbeTable, usize)> = Vec::new();
        for p in plans {
            let len = if p.axis == Axis::Rows { cols } else { rows };
            let table;
            let probes = match (p.probes, anchors) {
                (Probes::Keyed | Probes::Ids | Probes::Content, Some(a)) => {
                    let g = gain.as_deref().filter(|_| p.axis == Axis::Rows);
                    let Some(t) = a.probes(p.probes, g) else {
                        continue;
                    };
                    table = t;
                    &*table
                }
                _ => hashed.entry(len).or_insert_with(|| ProbeTable::hashed(len)),
            };
            if let Some(&(_, _, k)) = anchored
                .iter()
                .find(|(axis, table, _)| *axis == p.axis && table == probes)
            {
                let same = UnitSide {
                    probes: p.probes,
                    ..sides[k].clone()
                };
                sides.push(same);
                continue;
            }
            let Some(bits) = sketch::bits_for(len as u64, probes.max) else {
                continue;
            };
            let tops = tops_of
                .entry(p.axis)
                .or_insert_with(|| scale::unit_tops(t.dtype, bytes, rows, cols, p.axis));
            let job = SideJob {
                dtype: t.dtype,
                bytes,
                rows: rows as u32,
                cols: cols as u32,
                axis: p.axis,
                tops,
                bits,
                probes,
            };
            let responses = backend.side_responses(&job)?;
            if p.probes.anchored() {
                anchored.push((p.axis, probes.clone(), sides.len()));
            }
            let centred = if p.probes.anchored() {
                responses.iter().map(|&r| i64::from(r)).collect()
            } else {
                sketch::centre_on_unit_means(
                    &responses,
                    &crate::backend::cpu::unit_sums(&job),
                    probes,
                )
            };
            sides.push(UnitSide {
                axis: p.axis,
                probes: p.probes,
                bits,
                signatures: sketch::signatures(&centred),
            });
        }
    }
    Ok(TensorFingerprint {
        name: t.name.clone(),
        dtype: t.dtype,
        shape: t.shape.clone(),
        data_hash,
        structured,
        sketch: if sides.is_empty() {
            TensorSketch::None
        } else {
            TensorSketch::Units(sides)
        },
    })
}
