//! A pre-RMSNorm decoder (Llama's norm placement and tensor names, a GELU MLP without gate,
//! no biases, untied head) whose weight values are the real all-MiniLM-L6-v2's, its
//! LayerNorm gains serving as RMSNorm gains; and the rotation an infringer applies to such a
//! model (SliceGPT, QuaRot): every norm gain folded into the matrices that read the norm's
//! output, then the residual stream rotated by a dense random orthogonal matrix. RMSNorm only
//! divides by the root mean square, which a rotation keeps, so the variant computes the same
//! logits ([`assert_same_logits`]) while no weight of the original survives in it.

use fingerprint::{compare, Comparison, Model, Verdict};
use rayon::prelude::*;
use safetensors::Dtype as SDtype;

use crate::bert::gelu;
use crate::real_model::{minilm, run_test_data_script, test_data_dir};
use crate::synth::{Rng, Synth};

const HEADS: usize = 12;
const LAYERS: usize = 6;

type Tensor = (Vec<usize>, Vec<f32>);

fn t<'a>(s: &'a Synth, name: &str) -> &'a Tensor {
    s.tensors
        .get(name)
        .unwrap_or_else(|| panic!("the model has no tensor {name}"))
}

fn layer(l: usize, n: &str) -> String {
    format!("model.layers.{l}.{n}.weight")
}

/// The decoder built from MiniLM's tensors (see the module's comment).
fn from_minilm(m: &Synth) -> Synth {
    let mut out = Synth {
        tensors: Default::default(),
    };
    let mut put = |name: String, from: &str| {
        out.tensors.insert(name, t(m, from).clone());
    };
    let bert = |l: usize, n: &str| format!("encoder.layer.{l}.{n}.weight");
    put(
        "model.embed_tokens.weight".into(),
        "embeddings.word_embeddings.weight",
    );
    // A separate head, stored as most checkpoints store it (tied at initialisation).
    put("lm_head.weight".into(), "embeddings.word_embeddings.weight");
    put(
        "model.norm.weight".into(),
        &bert(LAYERS - 1, "output.LayerNorm"),
    );
    for l in 0..LAYERS {
        let input_norm = if l == 0 {
            "embeddings.LayerNorm.weight".to_string()
        } else {
            bert(l - 1, "output.LayerNorm")
        };
        put(layer(l, "input_layernorm"), &input_norm);
        put(
            layer(l, "post_attention_layernorm"),
            &bert(l, "attention.output.LayerNorm"),
        );
        for (p, b) in [
            ("q_proj", "attention.self.query"),
            ("k_proj", "attention.self.key"),
            ("v_proj", "attention.self.value"),
            ("o_proj", "attention.output.dense"),
        ] {
            put(layer(l, &format!("self_attn.{p}")), &bert(l, b));
        }
        put(layer(l, "mlp.up_proj"), &bert(l, "intermediate.dense"));
        put(layer(l, "mlp.down_proj"), &bert(l, "output.dense"));
    }
    out
}

/// `W·x` for a row-major `out × in` weight.
fn matvec(w: &Tensor, x: &[f64]) -> Vec<f64> {
    let inp = w.0[1];
    assert_eq!(x.len(), inp);
    w.1.par_chunks(inp)
        .map(|row| row.iter().zip(x).map(|(&w, &x)| f64::from(w) * x).sum())
        .collect()
}

fn rms_norm(x: &[f64], g: &Tensor) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + 1e-6).sqrt();
    x.iter()
        .zip(&g.1)
        .map(|(v, &g)| v * inv * f64::from(g))
        .collect()
}

/// Every position's logits for token ids `ids` (causal attention, no position encoding).
fn forward(s: &Synth, ids: &[usize]) -> Vec<Vec<f64>> {
    let embed = t(s, "model.embed_tokens.weight");
    let d = embed.0[1];
    let mut h: Vec<Vec<f64>> = ids
        .iter()
        .map(|&id| {
            embed.1[id * d..(id + 1) * d]
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    let n = ids.len();
    for l in 0..LAYERS {
        let w = |p: &str| t(s, &layer(l, p));
        let a: Vec<Vec<f64>> = h
            .iter()
            .map(|x| rms_norm(x, w("input_layernorm")))
            .collect();
        let q: Vec<Vec<f64>> = a.iter().map(|x| matvec(w("self_attn.q_proj"), x)).collect();
        let k: Vec<Vec<f64>> = a.iter().map(|x| matvec(w("self_attn.k_proj"), x)).collect();
        let v: Vec<Vec<f64>> = a.iter().map(|x| matvec(w("self_attn.v_proj"), x)).collect();
        let hd = q[0].len() / HEADS;
        let mut ctx = vec![vec![0f64; q[0].len()]; n];
        for head in 0..HEADS {
            let r = head * hd..(head + 1) * hd;
            for i in 0..n {
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        let dot: f64 = q[i][r.clone()]
                            .iter()
                            .zip(&k[j][r.clone()])
                            .map(|(a, b)| a * b)
                            .sum();
                        dot / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, e) in e.iter().enumerate() {
                    for c in r.clone() {
                        ctx[i][c] += e / z * v[j][c];
                    }
                }
            }
        }
        for i in 0..n {
            let o = matvec(w("self_attn.o_proj"), &ctx[i]);
            h[i].iter_mut().zip(&o).for_each(|(h, o)| *h += o);
            let m = rms_norm(&h[i], w("post_attention_layernorm"));
            let u: Vec<f64> = matvec(w("mlp.up_proj"), &m).into_iter().map(gelu).collect();
            let down = matvec(w("mlp.down_proj"), &u);
            h[i].iter_mut().zip(&down).for_each(|(h, o)| *h += o);
        }
    }
    h.iter()
        .map(|x| {
            matvec(
                t(s, "lm_head.weight"),
                &rms_norm(x, t(s, "model.norm.weight")),
            )
        })
        .collect()
}

/// Asserts that `variant` computes the logits `original` does, to f32 storage precision.
fn assert_same_logits(original: &Synth, variant: &Synth, what: &str) {
    let ids = [101usize, 2023, 2944, 2001, 2081, 2011, 2019, 4568, 102];
    let (a, b) = (forward(original, &ids), forward(variant, &ids));
    let scale = a.iter().flatten().fold(0f64, |m, x| m.max(x.abs()));
    let worst = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    eprintln!("{what}: logits up to {scale:.2}, differ by at most {worst:.2e}");
    assert!(
        worst < 1e-4 * scale,
        "{what}: logits differ by {worst} (largest {scale})"
    );
}

/// A dense random orthogonal `d × d` matrix (row-major, f64): modified Gram–Schmidt on
/// Gaussian rows.
fn random_rotation(d: usize, rng: &mut Rng) -> Vec<f64> {
    let mut q: Vec<f64> = (0..d * d).map(|_| f64::from(rng.normal())).collect();
    for i in 0..d {
        for j in 0..i {
            let dot: f64 = (0..d).map(|c| q[i * d + c] * q[j * d + c]).sum();
            for c in 0..d {
                q[i * d + c] -= dot * q[j * d + c];
            }
        }
        let norm = (0..d).map(|c| q[i * d + c].powi(2)).sum::<f64>().sqrt();
        (0..d).for_each(|c| q[i * d + c] /= norm);
    }
    q
}

/// `W·diag(g)·Q` for a matrix reading the residual stream (`g`: its norm's gain, folded).
fn read_side(w: &Tensor, g: Option<&Tensor>, q: &[f64]) -> Tensor {
    let d = w.0[1];
    let data =
        w.1.par_chunks(d)
            .flat_map_iter(|row| {
                let scaled: Vec<f64> = row
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| f64::from(x) * g.map_or(1.0, |g| f64::from(g.1[i])))
                    .collect();
                (0..d).map(move |j| (0..d).map(|i| scaled[i] * q[i * d + j]).sum::<f64>() as f32)
            })
            .collect();
    (w.0.clone(), data)
}

/// `Qᵀ·W` for a matrix writing the residual stream (`d × in`).
fn write_side(w: &Tensor, q: &[f64]) -> Tensor {
    let (d, cols) = (w.0[0], w.0[1]);
    let data = (0..d)
        .into_par_iter()
        .flat_map_iter(|j| {
            (0..cols).map(move |c| {
                (0..d)
                    .map(|i| q[i * d + j] * f64::from(w.1[i * cols + c]))
                    .sum::<f64>() as f32
            })
        })
        .collect();
    (w.0.clone(), data)
}

/// Every norm gain folded into the matrices after it (and set to one), then the residual
/// stream rotated by `q`.
fn fold_and_rotate(s: &Synth, q: &[f64]) -> Synth {
    let mut out = s.clone();
    let ones = |g: &Tensor| (g.0.clone(), vec![1f32; g.1.len()]);
    let mut set = |name: String, v: Tensor| {
        out.tensors.insert(name, v);
    };
    let embed = t(s, "model.embed_tokens.weight");
    set(
        "model.embed_tokens.weight".into(),
        read_side(embed, None, q),
    );
    let norm = t(s, "model.norm.weight");
    let head = read_side(t(s, "lm_head.weight"), Some(norm), q);
    set("lm_head.weight".into(), head);
    set("model.norm.weight".into(), ones(norm));
    for l in 0..LAYERS {
        let w = |p: &str| t(s, &layer(l, p));
        let (input, post) = (w("input_layernorm"), w("post_attention_layernorm"));
        for p in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"] {
            set(layer(l, p), read_side(w(p), Some(input), q));
        }
        set(
            layer(l, "mlp.up_proj"),
            read_side(w("mlp.up_proj"), Some(post), q),
        );
        for p in ["self_attn.o_proj", "mlp.down_proj"] {
            set(layer(l, p), write_side(w(p), q));
        }
        set(layer(l, "input_layernorm"), ones(input));
        set(layer(l, "post_attention_layernorm"), ones(post));
    }
    out
}

fn report(name: &str, c: &Comparison) {
    crate::adversarial::summary(name, c);
    for m in &c.tensors {
        eprintln!(
            "  {} ~ {} {}/{} log10 {:.1} {:?}",
            m.a, m.b, m.units_matched, m.units_queried, m.log10_false_positive, m.transforms
        );
    }
}

/// Whether the tensor named `a` in the first model matched significantly.
fn significant(c: &Comparison, a: &str) -> bool {
    c.tensors.iter().any(|m| m.a == a && m.significant)
}

#[test]
fn rmsnorm_model_folded_and_rotated_reads_as_derived() {
    let path = minilm();
    let model = Model::open(path.parent().unwrap()).expect("MiniLM's folder opens");
    let tokens = model.tokens().cloned();
    let base = from_minilm(&Synth::from_model(&model));
    let rotation = random_rotation(384, &mut Rng::new(31));
    let variant = fold_and_rotate(&base, &rotation);
    assert_same_logits(&base, &variant, "folded and rotated");
    let changed = base.tensors["model.layers.0.self_attn.q_proj.weight"]
        .1
        .iter()
        .zip(&variant.tensors["model.layers.0.self_attn.q_proj.weight"].1)
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > 384 * 380,
        "the rotation is dense ({changed} changed)"
    );

    let fp = |s: &Synth| s.fingerprint_with(SDtype::F32, tokens.as_ref());
    let (original, rotated) = (fp(&base), fp(&variant));
    for (name, reference) in [
        ("original", &original),
        ("its int8 copy", &fp(&base.int8_round_trip())),
    ] {
        let c = compare(reference, &rotated);
        report(&format!("{name} vs folded and rotated"), &c);
        assert_eq!(c.verdict, Verdict::Derived, "{name}");
        assert!(c.false_positive_probability < 1e-6, "{name}");
        for l in [0, 3, 5] {
            for p in ["self_attn.q_proj", "mlp.up_proj", "self_attn.o_proj"] {
                let name = layer(l, p);
                assert!(significant(&c, &name), "{name} matched significantly");
            }
        }
        // The matrices that read a norm's output carry its gain once folded: nearly all their
        // units are found only if the fingerprint folds the original's gains the same way
        // (without, 82-94% of a q_proj's rows were, with MiniLM's gains).
        for m in &c.tensors {
            let reads_norm = ["q_proj", "k_proj", "v_proj", "up_proj"]
                .iter()
                .any(|p| m.a.ends_with(&format!("{p}.weight")));
            if reads_norm || m.a == "lm_head.weight" {
                assert!(
                    m.units_matched * 100 >= 97 * m.units_queried,
                    "{name}: {} matched {} of {} units",
                    m.a,
                    m.units_matched,
                    m.units_queried
                );
            }
        }
    }

    // The folded and rotated variant needs no names: renamed, it still reads as derived.
    let c = compare(&original, &fp(&variant.renamed()));
    report("original vs folded, rotated and renamed", &c);
    assert_eq!(c.verdict, Verdict::Derived);
    assert!(c.false_positive_probability < 1e-6);

    let independent = fp(&base.random_like(5));
    let c = compare(&independent, &rotated);
    report("an independent model vs folded and rotated", &c);
    assert_eq!(c.verdict, Verdict::Unrelated);
    assert!(c.false_positive_probability > 1e-3);
}

#[test]
fn a_llama_gguf_with_llama_cpps_rotary_row_order_reads_as_the_model() {
    // The decoder as a safetensors file, then as llama.cpp's converter writes it: renamed,
    // its query and key rows permuted per head (the rotary layout), in F16 and Q8_0.
    let dir = test_data_dir("llama-gguf");
    let decoder = from_minilm(&Synth::from_model(&Model::open(&minilm()).unwrap()));
    let source = dir.join(format!("llama-{}.safetensors", std::process::id()));
    std::fs::write(&source, decoder.to_safetensors(SDtype::F32)).unwrap();
    run_test_data_script(
        "llama_gguf.py",
        [
            source.as_os_str(),
            HEADS.to_string().as_ref(),
            dir.as_os_str(),
        ],
    );
    let original = fingerprint::fingerprint(
        &Model::open(&source).unwrap(),
        &fingerprint::backend::CpuBackend,
        |_| {},
    )
    .unwrap();
    std::fs::remove_file(&source).unwrap();
    let stranger = decoder.random_like(5).fingerprint();
    for kind in ["f16", "q8_0"] {
        let model = Model::open(&dir.join(format!("llama-{kind}.gguf"))).unwrap();
        // The permutation is there: the query's rows are the original's, in another order.
        let q = model
            .tensors()
            .iter()
            .find(|t| t.name == "blk.0.attn_q.weight")
            .unwrap();
        if kind == "f16" {
            let rows: Vec<Vec<u16>> = model
                .data(q)
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect::<Vec<_>>()
                .chunks(q.shape[1] as usize)
                .map(<[u16]>::to_vec)
                .collect();
            let theirs: Vec<Vec<u16>> = t(&decoder, &layer(0, "self_attn.q_proj"))
                .1
                .iter()
                .map(|&x| half::f16::from_f32(x).to_bits())
                .collect::<Vec<_>>()
                .chunks(q.shape[1] as usize)
                .map(<[u16]>::to_vec)
                .collect();
            assert_ne!(rows, theirs, "rows permuted");
            let (mut a, mut b) = (rows, theirs);
            a.sort();
            b.sort();
            assert_eq!(a, b, "the same rows");
        }
        let fp =
            fingerprint::fingerprint(&model, &fingerprint::backend::CpuBackend, |_| {}).unwrap();
        assert_eq!(fp.parameters(), original.parameters(), "{kind}");
        let c = compare(&original, &fp);
        eprintln!(
            "Llama decoder vs its GGUF {kind}: {} similarity {:.3} log10 fpp {:.0}",
            c.verdict.as_str(),
            c.similarity,
            c.log10_false_positive_probability
        );
        assert_ne!(c.verdict, Verdict::Unrelated, "{kind}");
        assert_eq!(
            compare(&stranger, &fp).verdict,
            Verdict::Unrelated,
            "{kind} vs other weights"
        );
    }
}
