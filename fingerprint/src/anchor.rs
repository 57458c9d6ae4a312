//! Residual anchors: probes over the residual stream taken from the model's own token
//! embedding, so that they move with any change of basis of the residual stream.
//!
//! A transformer's residual stream has no canonical basis: permuting, negating or (for RMSNorm
//! models with gains folded in) rotating it, consistently in the embedding and every matrix
//! that reads or writes it, changes no output. With `E` the vocabulary-by-width embedding,
//! anchor `p` is the centred mixture of token rows `a_p = Σ_t z_p(t)·(e_t − ē)`, where `z_p(t)`
//! is bit `p` (as ±1) of a hash of token `t`'s string ([`crate::tokens::row_key`]; of its id when
//! no vocabulary is known). A change of basis `E → E·Q` turns `a_p` into `Qᵀ·a_p`, and a matrix
//! reading the stream, `W → W·Q`, responds to it with `W·Q·Qᵀ·a_p = W·a_p`: the same responses,
//! so the same signatures, up to fixed-point rounding (exactly, for signed permutations).
//!
//! Three anchor sets, by how the weights `z_p(t)` key the rows:
//! - **keyed** (every residual side): by token string, or by id without a vocabulary;
//! - **by id** (the vocabulary tables' rows only, [`Probes::Ids`]): what a copy published
//!   without its tokenizer is keyed by;
//! - **by content** (the vocabulary tables' rows only, [`Probes::Content`], residual widths of
//!   64 and more): weights from the rows themselves ([`content`]), for a copy whose vocabulary
//!   was also reordered. Token strings would otherwise be an escape: strip or rewrite them
//!   and every anchored unit moved.
//!
//! Computation (on the CPU for every backend, so anchors are the same everywhere):
//! - The sources are the vocabulary tables: the 2-D tensors whose long side (more than four
//!   times the short one, which is the residual width, and at least 256) is the vocabulary's size (within −1/8 and
//!   +1/8 + 1024 rows, for added or removed tokens) when a vocabulary is known, else the
//!   longest; found by shape, not name, so renaming tensors does not move them. Where there
//!   are several (a separate output head), each gives an anchor set and they are added.
//! - Each source is read at one scale for the whole tensor ([`crate::scale`] over all its
//!   elements; [`bits_for`]`(V, max |z|)` bits, 11 below 2^19 rows for ±1 weights),
//!   `R[j][p] = Σ_t z_p(t)·q[t][j]`, `S[j] = Σ_t q[t][j]`, and centred
//!   exactly, `c[j][p] = V·R[j][p] − (Σ_t z_p(t))·S[j]` (i64). A head read after a norm whose
//!   gain [`crate::norms`] pairs with it is taken folded: `c[j][p]·g[j]` (f64).
//! - Each anchor is divided by its root mean square over `j` (f64, a fixed order), the
//!   sources' anchors are added, and the sum is scaled to a root mean square of 32 and rounded
//!   to integers in `[−127, 127]` (the [`ProbeTable`] every residual side is probed with).
//!   Root mean squares do not change under rotations, so neither does the scale. A matrix
//!   that reads a norm's output is probed with the table of the sum multiplied by the norm's
//!   gain, rounded the same way ([`Anchors::probes`]).

use std::borrow::Cow;

use rayon::prelude::*;

use crate::backend::cpu;
use crate::norms;
use crate::probe::{ProbeTable, K};
use crate::scale::{self, Axis};
use crate::sketch::{bits_for, Probes, SideJob, MAX_LEN, MIN_SIDE};
use crate::source::{Model, TensorRef};
use crate::tokens::{row_key, Tokens};

pub mod content;

/// Smallest vocabulary table recognised (smaller long-and-thin matrices, an LSTM's gates say,
/// are not vocabularies).
const MIN_VOCAB: u64 = 256;

/// How vocabulary rows were keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keying {
    /// By row index (no vocabulary was given).
    Ids,
    /// By token string; the vocabulary's hash ([`Tokens::hash`]).
    Tokens([u8; 32]),
}

/// A model's residual anchors.
#[derive(Debug, Clone)]
pub struct Anchors {
    /// The residual width `d`.
    pub width: u32,
    pub keying: Keying,
    /// The tensors the anchors were taken from.
    pub sources: Vec<String>,
    /// `d × 64` probe values.
    pub table: ProbeTable,
    /// The anchors before rounding (`d × 64`), which tables with a norm's gain folded in
    /// are rounded from.
    exact: Vec<f64>,
    /// The anchors with vocabulary rows keyed by id, whether or not token strings are known.
    pub ids: ProbeTable,
    ids_exact: Vec<f64>,
    /// The anchors with vocabulary rows keyed by their content ([`content`]), and before
    /// rounding; none below [`content::MIN_WIDTH`].
    content: Option<(ProbeTable, Vec<f64>)>,
}

impl Anchors {
    /// The probe table of `kind` (anchors keyed as the model's rows are, by id, or by
    /// content) for a matrix that reads a norm's output with gain `gain` (see
    /// [`crate::norms`]); the plain table without one. `None` for content anchors the
    /// model has none of.
    pub fn probes(&self, kind: Probes, gain: Option<&[f64]>) -> Option<Cow<'_, ProbeTable>> {
        let (table, exact) = match kind {
            Probes::Ids => (&self.ids, &self.ids_exact),
            Probes::Content => {
                let (t, e) = self.content.as_ref()?;
                (t, e)
            }
            _ => (&self.table, &self.exact),
        };
        Some(match gain {
            Some(g) => Cow::Owned(norms::table(exact, Some(g), self.width as usize)),
            None => Cow::Borrowed(table),
        })
    }
}

/// A vocabulary table: the tensor and whether its vocabulary axis is its columns.
struct Source<'a> {
    tensor: &'a TensorRef,
    vocab_on_cols: bool,
    vocab: usize,
    width: usize,
    /// The one scale the whole table is read at ([`crate::scale::tensor_top`]).
    top: i32,
}

fn sources(model: &Model) -> Vec<Source<'_>> {
    let mut candidates: Vec<Source> = model
        .tensors()
        .iter()
        .filter(|t| t.dtype.sketchable() && t.shape.len() == 2)
        .filter_map(|t| {
            let (r, c) = (t.shape[0], t.shape[1]);
            let (long, short) = (r.max(c), r.min(c));
            (short >= MIN_SIDE && long > 4 * short && (MIN_VOCAB..=MAX_LEN).contains(&long))
                .then_some(Source {
                    tensor: t,
                    vocab_on_cols: c > r,
                    vocab: long as usize,
                    width: short as usize,
                    top: 0,
                })
        })
        .collect();
    match model.tokens() {
        Some(tokens) => {
            let v = tokens.len();
            candidates.retain(|s| s.vocab >= v - v / 8 && s.vocab <= v + v / 8 + 1024);
        }
        None => {
            let longest = candidates.iter().map(|s| s.vocab).max().unwrap_or(0);
            candidates.retain(|s| s.vocab == longest);
        }
    }
    // One residual width: the most common among the candidates (the smaller on a tie).
    let mut widths: Vec<usize> = candidates.iter().map(|s| s.width).collect();
    widths.sort_unstable();
    let width = widths
        .chunk_by(|a, b| a == b)
        .max_by(|a, b| a.len().cmp(&b.len()).then(b[0].cmp(&a[0])))
        .map(|w| w[0]);
    candidates.retain(|s| Some(s.width) == width);
    // An order that does not depend on names: by vocabulary size, then content.
    candidates.sort_by_cached_key(|s| {
        (
            s.vocab,
            crate::content::data_hash(s.tensor.dtype, &s.tensor.shape, &model.data(s.tensor)),
        )
    });
    for s in &mut candidates {
        s.top = scale::tensor_top(s.tensor.dtype, &model.data(s.tensor));
    }
    candidates
}

/// The model's residual anchors, or `None` when it has no vocabulary table.
pub fn compute(model: &Model) -> Option<Anchors> {
    let sources = sources(model);
    let first = sources.first()?;
    let width = first.width;
    let tokens = model.tokens();
    let keyed = anchor_sum(model, &sources, width, |s| key_weights(tokens, s.vocab));
    // Keyed by row id as well: a copy stripped of its tokenizer is keyed by id, and its
    // vocabulary rows still meet the original's (see `Probes::Ids`).
    let by_id = match tokens {
        Some(_) => anchor_sum(model, &sources, width, |s| key_weights(None, s.vocab)),
        None => keyed.clone(),
    };
    // And by row content, where the width gives 64 directions (see `content`).
    let by_content = (width >= content::MIN_WIDTH)
        .then(|| anchor_sum(model, &sources, width, |s| content::weights(model, s)));
    Some(Anchors {
        width: width as u32,
        keying: match tokens {
            Some(t) => Keying::Tokens(t.hash),
            None => Keying::Ids,
        },
        sources: sources.iter().map(|s| s.tensor.name.clone()).collect(),
        table: norms::table(&keyed, None, width),
        exact: keyed,
        ids: norms::table(&by_id, None, width),
        ids_exact: by_id,
        content: by_content.map(|c| (norms::table(&c, None, width), c)),
    })
}

/// The sum over `sources` of their anchors with row weights `weights(source)`, each
/// normalised to a root mean square of one (`width × 64`, f64).
fn anchor_sum(
    model: &Model,
    sources: &[Source<'_>],
    width: usize,
    weights: impl Fn(&Source<'_>) -> ProbeTable,
) -> Vec<f64> {
    let mut sum = vec![0f64; width * K];
    for s in sources {
        let centred = centred_responses(model, s, &weights(s));
        // A head read after the final norm is taken with the norm's gain folded in.
        let gain = norms::gain(model, &s.tensor.name, width);
        let at =
            |j: usize, p: usize| centred[j * K + p] as f64 * gain.as_ref().map_or(1.0, |g| g[j]);
        for p in 0..K {
            let ms: f64 = (0..width).map(|j| at(j, p).powi(2)).sum::<f64>() / width as f64;
            if ms > 0.0 {
                let rms = ms.sqrt();
                for j in 0..width {
                    sum[j * K + p] += at(j, p) / rms;
                }
            }
        }
    }
    sum
}

/// The ±1 weights `z_p(t)` of vocabulary rows from their keys ([`row_key`]).
fn key_weights(tokens: Option<&Tokens>, vocab: usize) -> ProbeTable {
    let keys: Vec<u64> = (0..vocab)
        .into_par_iter()
        .map(|id| row_key(tokens, id))
        .collect();
    ProbeTable {
        values: keys
            .iter()
            .flat_map(|key| (0..K).map(move |p| if (key >> p) & 1 == 1 { 1i8 } else { -1 }))
            .collect(),
        max: 1,
    }
}

/// The job reading a vocabulary table at one scale for the whole tensor (`top`,
/// [`crate::scale`] over all its elements) with `bits`: its units are the residual channels
/// (responses over the vocabulary), or with `token_rows` the vocabulary rows.
fn source_job<'a>(
    bytes: &'a [u8],
    s: &Source<'a>,
    tops: &'a [i32],
    bits: u32,
    probes: &'a ProbeTable,
    token_rows: bool,
) -> SideJob<'a> {
    let t = s.tensor;
    SideJob {
        dtype: t.dtype,
        bytes,
        rows: t.shape[0] as u32,
        cols: t.shape[1] as u32,
        axis: if s.vocab_on_cols == token_rows {
            Axis::Cols
        } else {
            Axis::Rows
        },
        tops,
        bits,
        probes,
    }
}

/// `c[j][p] = V·R[j][p] − (Σ_t z_p(t))·S[j]` of one source with row weights `z`
/// (`width × 64`, exact), read at the precision of `z`'s magnitude.
fn centred_responses(model: &Model, s: &Source<'_>, z: &ProbeTable) -> Vec<i64> {
    let bits = bits_for(s.vocab as u64, z.max).expect("vocabularies are at most 2^20 rows");
    let totals: [i64; K] =
        std::array::from_fn(|p| (0..s.vocab).map(|t| i64::from(z.values[t * K + p])).sum());
    let tops = vec![s.top; s.width];
    let data = model.data(s.tensor);
    let job = source_job(&data, s, &tops, bits, z, false);
    let (r, sums) = (cpu::side_responses(&job), cpu::unit_sums(&job));
    let v = s.vocab as i64;
    (0..s.width * K)
        .map(|i| v * i64::from(r[i]) - totals[i % K] * sums[i / K])
        .collect()
}
