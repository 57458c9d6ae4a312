//! An infringer's free re-parameterisations of the real all-MiniLM-L6-v2: every exact
//! function-preserving change (each proven exact by a forward pass), alone and combined, reads
//! as derived from the original and from an int8-quantized copy of it, and the combined
//! variant stays unrelated to an independent model of the same shapes.

use fingerprint::{compare, Comparison, Fingerprint, Model, Tokens, Verdict};
use safetensors::Dtype as SDtype;

use crate::bert::{self, Attention};
use crate::real_model::minilm;
use crate::synth::{Rng, Synth};

fn report(name: &str, c: &Comparison) {
    summary(&format!("MiniLM vs {name}"), c);
}

/// One line on a comparison's verdict and figures.
pub(crate) fn summary(label: &str, c: &Comparison) {
    eprintln!(
        "{label}: {} similarity {:.3} coverage {:.3} log10 fpp {:.0} ({} tensors, {} significant)",
        c.verdict.as_str(),
        c.similarity,
        c.coverage,
        c.log10_false_positive_probability,
        c.tensors_matched,
        c.tensors_significant
    );
}

fn assert_derived(name: &str, reference: &Fingerprint, variant: &Fingerprint) -> Comparison {
    let c = compare(reference, variant);
    report(name, &c);
    if c.verdict != Verdict::Derived {
        for line in &c.explanation {
            eprintln!("  {line}");
        }
        for t in &c.tensors {
            eprintln!(
                "  {} ~ {} {}/{} log10 {:.1} {:?}",
                t.a, t.b, t.units_matched, t.units_queried, t.log10_false_positive, t.transforms
            );
        }
    }
    assert_eq!(c.verdict, Verdict::Derived, "{name}");
    assert!(
        c.false_positive_probability < 1e-6,
        "{name}: {}",
        c.false_positive_probability
    );
    c
}

/// The attention re-parameterisations of every layer, drawn from `rng`.
fn attention_variant(base: &Synth, rng: &mut Rng, permute: bool, scale: bool) -> Synth {
    let hd = 384 / bert::HEADS;
    let mut out = base.clone();
    for l in 0..6 {
        let identity = |n: usize| (0..n).collect::<Vec<_>>();
        let (heads, qk, vo) = if permute {
            (
                bert::shuffle(bert::HEADS, rng),
                bert::shuffle(hd, rng),
                bert::shuffle(hd, rng),
            )
        } else {
            (identity(bert::HEADS), identity(hd), identity(hd))
        };
        let (qk_scale, vo_scale) = if scale {
            (bert::pow2_signs(hd, rng), bert::pow2_signs(hd, rng))
        } else {
            (vec![1.0; hd], vec![1.0; hd])
        };
        out = bert::reparameterise_attention(
            &out,
            l,
            &Attention {
                heads: &heads,
                qk: &qk,
                vo: &vo,
                qk_scale: &qk_scale,
                vo_scale: &vo_scale,
            },
        );
    }
    out
}

fn hidden_variant(base: &Synth, rng: &mut Rng, zeros: usize) -> Synth {
    let mut out = base.clone();
    for l in 0..6 {
        out = bert::permute_hidden(&out, l, &bert::shuffle(1536, rng), zeros);
    }
    out
}

#[test]
fn minilm_re_parameterisations_read_as_derived() {
    let path = minilm();
    let dir = path.parent().unwrap();
    let model = Model::open(dir).expect("MiniLM's folder opens");
    let tokens: Tokens = model.tokens().expect("its tokenizer.json is read").clone();
    assert_eq!(tokens.len(), 30_522);
    let base = Synth::from_model(&model);
    let fp_of = |s: &Synth, t: &Tokens| s.fingerprint_with(SDtype::F32, Some(t));
    let original = fp_of(&base, &tokens);
    let anchors = original.anchors.as_ref().expect("anchored");
    assert_eq!(
        anchors.sources,
        vec!["embeddings.word_embeddings.weight".to_string()]
    );
    assert_eq!(anchors.width, 384);
    let quantized = fp_of(&base.int8_round_trip(), &tokens);
    assert_derived("int8 round trip", &original, &quantized);

    let mut rng = Rng::new(2026);
    let residual = bert::shuffle(384, &mut rng);
    let mut cases: Vec<(&str, Synth, Tokens)> = vec![
        (
            "residual stream permuted",
            bert::permute_residual(&base, &residual),
            tokens.clone(),
        ),
        (
            "MLP hidden units permuted",
            hidden_variant(&base, &mut rng, 0),
            tokens.clone(),
        ),
        (
            "heads and head dimensions permuted",
            attention_variant(&base, &mut rng, true, false),
            tokens.clone(),
        ),
        (
            "q/k and v/o sign flips and powers of two up to 2^12",
            attention_variant(&base, &mut rng, false, true),
            tokens.clone(),
        ),
        (
            "8 zero neurons added to every MLP",
            hidden_variant(&base, &mut rng, 8),
            tokens.clone(),
        ),
    ];
    // One added token (a fine-tune that adds a special token).
    let mut added = tokens.strings.clone();
    added.push(Some("<|new-special-token|>".into()));
    cases.push((
        "one token added",
        bert::add_token(&base, &mut rng),
        Tokens::new(added.clone()),
    ));
    // Everything at once.
    let mut all = bert::permute_residual(&base, &residual);
    all = hidden_variant(&all, &mut rng, 8);
    all = attention_variant(&all, &mut rng, true, true);
    all = bert::add_token(&all, &mut rng);
    cases.push(("all of them combined", all, Tokens::new(added)));

    for (name, variant, vocabulary) in &cases {
        bert::assert_same_function(&base, variant, name);
        let fp = fp_of(variant, vocabulary);
        let c = assert_derived(name, &original, &fp);
        assert!(c.similarity > 0.5, "{name}: similarity {}", c.similarity);
        assert_derived(&format!("{name} (against the int8 copy)"), &quantized, &fp);
    }

    // The vocabulary reordered, with its tokenizer: rows keyed by string do not move.
    let order = bert::shuffle(30_522, &mut rng);
    let reordered = bert::reorder_vocabulary(&base, &order);
    let strings = order.iter().map(|&o| tokens.strings[o].clone()).collect();
    let mut inverse = vec![0usize; order.len()];
    for (new, &old) in order.iter().enumerate() {
        inverse[old] = new;
    }
    let ids = [101usize, 7592, 2088, 2003, 102];
    let remapped: Vec<usize> = ids.iter().map(|&i| inverse[i]).collect();
    let (p0, _) = bert::forward(&base, &ids);
    let (p1, _) = bert::forward(&reordered, &remapped);
    assert!(
        p0.iter().zip(&p1).all(|(a, b)| (a - b).abs() < 1e-9),
        "reordering is exact"
    );
    // Only the word embedding changed, and its units are all found: a re-laid-out copy.
    let c = compare(&original, &fp_of(&reordered, &Tokens::new(strings)));
    report("vocabulary reordered", &c);
    assert_eq!(c.verdict, Verdict::Identical);

    // The combined variant against an independent model of the same shapes.
    let combined = fp_of(&cases.last().unwrap().1, &cases.last().unwrap().2);
    let independent = fp_of(&base.random_like(7), &tokens);
    let c = compare(&independent, &combined);
    report("an independent model (vs the combined variant)", &c);
    assert_eq!(c.verdict, Verdict::Unrelated);
    assert!(
        c.false_positive_probability > 1e-3,
        "{}",
        c.false_positive_probability
    );
}

/// Storage and structure changes of the real MiniLM: q, k and v fused into one tensor per
/// layer, every MLP split in two tensor-parallel shards, the last layer dropped and another
/// duplicated, every tensor renamed. Units do not care about tensor boundaries or names.
#[test]
fn minilm_fused_split_dropped_and_duplicated_layers_read_as_derived() {
    let path = minilm();
    let model = Model::open(path.parent().unwrap()).expect("MiniLM's folder opens");
    let tokens = model.tokens().cloned();
    let base = Synth::from_model(&model);
    let original = base.fingerprint_with(SDtype::F32, tokens.as_ref());
    let mut out = Synth {
        tensors: Default::default(),
    };
    let layer = |l: usize, n: &str| format!("encoder.layer.{l}.{n}");
    let copy = |out: &mut Synth, from: &str, to: String| {
        out.tensors.insert(to, base.tensors[from].clone());
    };
    for (name, t) in &base.tensors {
        if !name.starts_with("encoder.layer.") {
            out.tensors.insert(format!("m.{name}"), t.clone());
        }
    }
    // layers 0..5 kept (5 dropped), layer 2 repeated as a seventh block
    for (new, old) in [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 2)] {
        let mut qkv = (vec![3 * 384, 384], Vec::new());
        for p in ["query", "key", "value"] {
            qkv.1.extend_from_slice(
                &base.tensors[&layer(old, &format!("attention.self.{p}.weight"))].1,
            );
        }
        out.tensors.insert(format!("blk{new}.attn.qkv"), qkv);
        copy(
            &mut out,
            &layer(old, "attention.output.dense.weight"),
            format!("blk{new}.attn.out"),
        );
        let (shape, up) = &base.tensors[&layer(old, "intermediate.dense.weight")];
        let half = shape[0] / 2 * shape[1];
        out.tensors.insert(
            format!("blk{new}.mlp.up.shard0"),
            (vec![shape[0] / 2, shape[1]], up[..half].to_vec()),
        );
        out.tensors.insert(
            format!("blk{new}.mlp.up.shard1"),
            (vec![shape[0] / 2, shape[1]], up[half..].to_vec()),
        );
        let (shape, down) = &base.tensors[&layer(old, "output.dense.weight")];
        let (rows, cols) = (shape[0], shape[1]);
        for s in 0..2 {
            let part: Vec<f32> = (0..rows)
                .flat_map(|r| down[r * cols + s * cols / 2..r * cols + (s + 1) * cols / 2].to_vec())
                .collect();
            out.tensors.insert(
                format!("blk{new}.mlp.down.shard{s}"),
                (vec![rows, cols / 2], part),
            );
        }
    }
    let variant = out.fingerprint_with(SDtype::F32, tokens.as_ref());
    let c = assert_derived(
        "fused qkv, MLP shards, a layer dropped and one duplicated",
        &original,
        &variant,
    );
    assert!(c.similarity > 0.8, "{}", c.similarity);
    let spread = c
        .tensors
        .iter()
        .filter(|t| {
            t.transforms
                .iter()
                .any(|x| x.starts_with("spread over") || x.starts_with("resized"))
        })
        .count();
    assert!(spread > 0, "the explanation names fused or split tensors");
}

/// The cheapest escape from token-keyed anchors: permute the residual stream (free, exact)
/// and publish the weights without their tokenizer, so that the copy's anchors are keyed by
/// row id; reorder the vocabulary too, so that ids say nothing either. The vocabulary rows
/// of every model are also probed with anchors keyed by id and with anchors keyed by the
/// rows' content, so the copy's token rows still meet the original's.
#[test]
fn minilm_stripped_of_its_tokenizer_reads_as_derived() {
    let path = minilm();
    let model = Model::open(path.parent().unwrap()).expect("MiniLM's folder opens");
    let tokens = model.tokens().cloned();
    let base = Synth::from_model(&model);
    let original = base.fingerprint_with(SDtype::F32, tokens.as_ref());
    let mut rng = Rng::new(3);
    let permuted = bert::permute_residual(&base, &bert::shuffle(384, &mut rng));
    bert::assert_same_function(&base, &permuted, "residual permuted");
    // Reordered, the rows keep nothing of their ids: only their content can say which is
    // which (the forward pass is checked for reordering in the test above).
    let reordered = bert::reorder_vocabulary(&permuted, &bert::shuffle(30_522, &mut rng));
    for (name, variant) in [
        ("residual permuted, without its tokenizer", &permuted),
        (
            "perturbed by 5%, without its tokenizer",
            &base.perturbed(0.05, 9),
        ),
        (
            "vocabulary reordered, residual permuted, without its tokenizer",
            &reordered,
        ),
        ("the same, int8-quantized", &reordered.int8_round_trip()),
        ("the same, perturbed by 5%", &reordered.perturbed(0.05, 4)),
    ] {
        let fp = variant.fingerprint_with(SDtype::F32, None);
        let c = compare(&original, &fp);
        report(name, &c);
        assert_eq!(c.verdict, Verdict::Derived, "{name}");
        assert!(c.false_positive_probability < 1e-6, "{name}");
        let embedding = c
            .tensors
            .iter()
            .find(|t| t.a == "embeddings.word_embeddings.weight")
            .expect("the embedding matched");
        assert!(embedding.significant, "{name}: through the token rows");
        assert!(
            c.explanation
                .iter()
                .any(|e| e.contains("keyed differently")),
            "{name}: the explanation says why only the vocabulary matched"
        );
    }
    // An independent model of the same shapes, with or without its tokenizer, stays unrelated.
    let independent = base.random_like(7);
    for tokens in [None, tokens.as_ref()] {
        let c = compare(
            &original,
            &independent.fingerprint_with(SDtype::F32, tokens),
        );
        report("an independent model", &c);
        assert_eq!(c.verdict, Verdict::Unrelated);
        assert!(c.false_positive_probability > 1e-3);
    }
}
