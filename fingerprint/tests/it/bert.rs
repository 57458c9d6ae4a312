//! A BERT encoder's forward pass (the architecture of all-MiniLM-L6-v2, Hugging Face tensor
//! names), in f64, and the exact function-preserving re-parameterisations an infringer can
//! apply to it. Each transformation's exactness is checked by running the forward pass on
//! the original and the variant ([`assert_same_function`]).

use crate::synth::{Rng, Synth};

/// Heads of all-MiniLM-L6-v2 (not recorded in the weights).
pub(crate) const HEADS: usize = 12;

fn t<'a>(s: &'a Synth, name: &str) -> &'a (Vec<usize>, Vec<f32>) {
    s.tensors
        .get(name)
        .unwrap_or_else(|| panic!("the model has no tensor {name}"))
}

fn layers(s: &Synth) -> usize {
    (0..)
        .take_while(|l| {
            s.tensors
                .contains_key(&format!("encoder.layer.{l}.attention.self.query.weight"))
        })
        .count()
}

/// `x · Wᵀ + b` for a row-major `out × in` weight.
fn linear(x: &[f64], w: &(Vec<usize>, Vec<f32>), b: &(Vec<usize>, Vec<f32>)) -> Vec<f64> {
    let (out, inp) = (w.0[0], w.0[1]);
    assert_eq!(x.len(), inp);
    (0..out)
        .map(|o| {
            let row = &w.1[o * inp..(o + 1) * inp];
            f64::from(b.1[o])
                + row
                    .iter()
                    .zip(x)
                    .map(|(&w, &x)| f64::from(w) * x)
                    .sum::<f64>()
        })
        .collect()
}

fn layer_norm(x: &[f64], g: &(Vec<usize>, Vec<f32>), b: &(Vec<usize>, Vec<f32>)) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + 1e-12).sqrt();
    x.iter()
        .enumerate()
        .map(|(j, v)| (v - mean) * inv * f64::from(g.1[j]) + f64::from(b.1[j]))
        .collect()
}

/// erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7): the same function for the original and
/// every variant, which is all exactness needs.
fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

pub(crate) fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// The encoder's outputs for token ids `ids`: the pooler's output (tanh of a dense layer on
/// the first token) and every token's last hidden state.
pub(crate) fn forward(s: &Synth, ids: &[usize]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let we = t(s, "embeddings.word_embeddings.weight");
    let pe = t(s, "embeddings.position_embeddings.weight");
    let te = t(s, "embeddings.token_type_embeddings.weight");
    let d = we.0[1];
    let row = |e: &(Vec<usize>, Vec<f32>), i: usize| -> Vec<f64> {
        e.1[i * d..(i + 1) * d]
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    let mut h: Vec<Vec<f64>> = ids
        .iter()
        .enumerate()
        .map(|(pos, &id)| {
            let (w, p, ty) = (row(we, id), row(pe, pos), row(te, 0));
            let x: Vec<f64> = (0..d).map(|j| w[j] + p[j] + ty[j]).collect();
            layer_norm(
                &x,
                t(s, "embeddings.LayerNorm.weight"),
                t(s, "embeddings.LayerNorm.bias"),
            )
        })
        .collect();
    for l in 0..layers(s) {
        let p = |n: &str| format!("encoder.layer.{l}.{n}");
        let proj = |n: &str, x: &Vec<f64>| {
            linear(
                x,
                t(s, &p(&format!("{n}.weight"))),
                t(s, &p(&format!("{n}.bias"))),
            )
        };
        let q: Vec<Vec<f64>> = h.iter().map(|x| proj("attention.self.query", x)).collect();
        let k: Vec<Vec<f64>> = h.iter().map(|x| proj("attention.self.key", x)).collect();
        let v: Vec<Vec<f64>> = h.iter().map(|x| proj("attention.self.value", x)).collect();
        let inner = q[0].len();
        let hd = inner / HEADS;
        let n = ids.len();
        let mut ctx = vec![vec![0f64; inner]; n];
        for head in 0..HEADS {
            let r = head * hd..(head + 1) * hd;
            for i in 0..n {
                let scores: Vec<f64> = (0..n)
                    .map(|j| {
                        q[i][r.clone()]
                            .iter()
                            .zip(&k[j][r.clone()])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for j in 0..n {
                    for c in r.clone() {
                        ctx[i][c] += e[j] / z * v[j][c];
                    }
                }
            }
        }
        for i in 0..n {
            let o = proj("attention.output.dense", &ctx[i]);
            let x: Vec<f64> = h[i].iter().zip(&o).map(|(a, b)| a + b).collect();
            let a = layer_norm(
                &x,
                t(s, &p("attention.output.LayerNorm.weight")),
                t(s, &p("attention.output.LayerNorm.bias")),
            );
            let f: Vec<f64> = proj("intermediate.dense", &a)
                .into_iter()
                .map(gelu)
                .collect();
            let o2 = proj("output.dense", &f);
            let x: Vec<f64> = a.iter().zip(&o2).map(|(a, b)| a + b).collect();
            h[i] = layer_norm(
                &x,
                t(s, &p("output.LayerNorm.weight")),
                t(s, &p("output.LayerNorm.bias")),
            );
        }
    }
    let pooled = linear(
        &h[0],
        t(s, "pooler.dense.weight"),
        t(s, "pooler.dense.bias"),
    )
    .into_iter()
    .map(f64::tanh)
    .collect();
    (pooled, h)
}

/// Asserts that `variant` computes what `original` does on a few token sequences: the
/// pooler's output is the same, and so are the token outputs' pairwise dot products (the last
/// hidden states themselves are in the variant's residual basis).
pub(crate) fn assert_same_function(original: &Synth, variant: &Synth, what: &str) {
    for ids in [
        vec![101usize, 7592, 2088, 2003, 1037, 3231, 102],
        vec![
            101, 2023, 2944, 2001, 2081, 2011, 2019, 4568, 8903, 1012, 102,
        ],
    ] {
        let (p0, h0) = forward(original, &ids);
        let (p1, h1) = forward(variant, &ids);
        let worst = p0
            .iter()
            .zip(&p1)
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        assert!(worst < 1e-6, "{what}: pooler outputs differ by {worst}");
        for i in 0..ids.len() {
            for j in 0..ids.len() {
                let dot = |h: &[Vec<f64>]| h[i].iter().zip(&h[j]).map(|(a, b)| a * b).sum::<f64>();
                let (a, b) = (dot(&h0), dot(&h1));
                assert!(
                    (a - b).abs() < 1e-6 * a.abs().max(1.0),
                    "{what}: token outputs differ ({i},{j}: {a} vs {b})"
                );
            }
        }
    }
}

/// A random permutation of `0..n`.
pub(crate) fn shuffle(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    p
}

fn data<'a>(s: &'a mut Synth, name: &str) -> &'a mut (Vec<usize>, Vec<f32>) {
    s.tensors
        .get_mut(name)
        .unwrap_or_else(|| panic!("the model has no tensor {name}"))
}

/// Rows of a row-major matrix (or entries of a vector) reordered: new row `i` is old row
/// `perm[i]`; `perm` may name fewer or more rows (`usize::MAX`: a zero row).
fn take_rows(t: &mut (Vec<usize>, Vec<f32>), perm: &[usize]) {
    let cols: usize = t.0[1..].iter().product::<usize>().max(1);
    let old = t.1.clone();
    t.1 = perm
        .iter()
        .flat_map(|&p| {
            if p == usize::MAX {
                vec![0f32; cols]
            } else {
                old[p * cols..(p + 1) * cols].to_vec()
            }
        })
        .collect();
    t.0[0] = perm.len();
}

/// Columns of a 2-D matrix reordered the same way.
fn take_cols(t: &mut (Vec<usize>, Vec<f32>), perm: &[usize]) {
    let (rows, cols) = (t.0[0], t.0[1]);
    let old = t.1.clone();
    t.1 = (0..rows)
        .flat_map(|r| {
            let old = &old;
            perm.iter().map(move |&p| {
                if p == usize::MAX {
                    0.0
                } else {
                    old[r * cols + p]
                }
            })
        })
        .collect();
    t.0[1] = perm.len();
}

/// Multiplies row `i` of a matrix (or entry `i` of a vector) by `f[i]`.
fn scale_rows(t: &mut (Vec<usize>, Vec<f32>), f: &[f32]) {
    let cols: usize = t.0[1..].iter().product::<usize>().max(1);
    t.1.chunks_mut(cols)
        .zip(f)
        .for_each(|(row, &f)| row.iter_mut().for_each(|x| *x *= f));
}

fn scale_cols(t: &mut (Vec<usize>, Vec<f32>), f: &[f32]) {
    let cols = t.0[1];
    t.1.chunks_mut(cols)
        .for_each(|row| row.iter_mut().zip(f).for_each(|(x, &f)| *x *= f));
}

/// Permutes the residual stream: every tensor that reads it (its columns) or writes it (its
/// rows), the embeddings' columns and every LayerNorm. Exact for BERT's LayerNorm.
pub(crate) fn permute_residual(s: &Synth, perm: &[usize]) -> Synth {
    let mut out = s.clone();
    for e in ["word", "position", "token_type"] {
        take_cols(
            data(&mut out, &format!("embeddings.{e}_embeddings.weight")),
            perm,
        );
    }
    let mut vectors = vec![
        "embeddings.LayerNorm.weight".to_string(),
        "embeddings.LayerNorm.bias".into(),
    ];
    for l in 0..layers(s) {
        let p = |n: &str| format!("encoder.layer.{l}.{n}");
        for n in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "intermediate.dense",
        ] {
            take_cols(data(&mut out, &p(&format!("{n}.weight"))), perm);
        }
        for n in ["attention.output.dense", "output.dense"] {
            take_rows(data(&mut out, &p(&format!("{n}.weight"))), perm);
            vectors.push(p(&format!("{n}.bias")));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            vectors.push(p(&format!("{n}.weight")));
            vectors.push(p(&format!("{n}.bias")));
        }
    }
    take_cols(data(&mut out, "pooler.dense.weight"), perm);
    for v in vectors {
        take_rows(data(&mut out, &v), perm);
    }
    out
}

/// Permutes the MLP hidden units of layer `l` and appends `zeros` zero units (width padding).
pub(crate) fn permute_hidden(s: &Synth, l: usize, perm: &[usize], zeros: usize) -> Synth {
    let mut out = s.clone();
    let mut order = perm.to_vec();
    order.extend(std::iter::repeat_n(usize::MAX, zeros));
    let p = |n: &str| format!("encoder.layer.{l}.{n}");
    take_rows(data(&mut out, &p("intermediate.dense.weight")), &order);
    take_rows(data(&mut out, &p("intermediate.dense.bias")), &order);
    take_cols(data(&mut out, &p("output.dense.weight")), &order);
    out
}

/// Re-parameterises the attention of layer `l`: heads permuted by `heads`; within each head,
/// query/key dimensions permuted by `qk` and value/output dimensions by `vo`; query/key
/// dimension `i` multiplied by `qk_scale[i]` and its key divided by it (negative: a sign flip);
/// value dimension `i` multiplied by `vo_scale[i]` and the output's column divided by it.
pub(crate) struct Attention<'a> {
    pub(crate) heads: &'a [usize],
    pub(crate) qk: &'a [usize],
    pub(crate) vo: &'a [usize],
    pub(crate) qk_scale: &'a [f32],
    pub(crate) vo_scale: &'a [f32],
}

pub(crate) fn reparameterise_attention(s: &Synth, l: usize, a: &Attention<'_>) -> Synth {
    let mut out = s.clone();
    let p = |n: &str| format!("encoder.layer.{l}.{n}");
    let inner = t(s, &p("attention.self.query.weight")).0[0];
    let hd = inner / HEADS;
    let order = |within: &[usize]| -> Vec<usize> {
        a.heads
            .iter()
            .flat_map(|&h| within.iter().map(move |&i| h * hd + i))
            .collect()
    };
    let (qk, vo) = (order(a.qk), order(a.vo));
    let per = |f: &[f32]| -> Vec<f32> { (0..inner).map(|k| f[k % hd]).collect() };
    let (qs, vs) = (per(a.qk_scale), per(a.vo_scale));
    let inv = |f: &[f32]| -> Vec<f32> { f.iter().map(|x| 1.0 / x).collect() };
    for (name, order, factor) in [
        ("attention.self.query", &qk, qs.clone()),
        ("attention.self.key", &qk, inv(&qs)),
        ("attention.self.value", &vo, vs.clone()),
    ] {
        for part in ["weight", "bias"] {
            let t = data(&mut out, &p(&format!("{name}.{part}")));
            take_rows(t, order);
            scale_rows(t, &factor);
        }
    }
    let o = data(&mut out, &p("attention.output.dense.weight"));
    take_cols(o, &vo);
    scale_cols(o, &inv(&vs));
    out
}

/// Appends a vocabulary row (a new token) to the word embedding.
pub(crate) fn add_token(s: &Synth, rng: &mut Rng) -> Synth {
    let mut out = s.clone();
    let we = data(&mut out, "embeddings.word_embeddings.weight");
    let d = we.0[1];
    we.1.extend((0..d).map(|_| 0.05 * rng.normal()));
    we.0[0] += 1;
    out
}

/// Reorders the vocabulary: new row `i` is old row `perm[i]`.
pub(crate) fn reorder_vocabulary(s: &Synth, perm: &[usize]) -> Synth {
    let mut out = s.clone();
    take_rows(data(&mut out, "embeddings.word_embeddings.weight"), perm);
    out
}

/// Powers of two with both signs, exact in f32: ±2^k for k in `-12..=12`, drawn at random.
pub(crate) fn pow2_signs(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let k = (rng.next() % 25) as i32 - 12;
            let sign = if rng.next().is_multiple_of(2) {
                1.0
            } else {
                -1.0
            };
            sign * 2f32.powi(k)
        })
        .collect()
}
