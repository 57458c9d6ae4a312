//! Verdicts: every derivation reads as derived (identical where the weights are unchanged);
//! independently seeded models of the same shapes read as unrelated, also when they share a
//! fixed, untrained tensor.

use fingerprint::sketch::Probes;
use fingerprint::{compare, Comparison, Fingerprint, TensorSketch, Verdict};
use safetensors::Dtype as SDtype;

use crate::synth::{Rng, Synth};

const ARCHITECTURES: [(&str, usize); 4] = [("mlp", 64), ("attn", 96), ("conv", 16), ("mlp", 32)];

fn check(name: &str, c: &Comparison, verdict: Verdict) {
    if c.verdict != verdict {
        for t in &c.tensors {
            eprintln!(
                "  {} ~ {} transposed {} agreement {}",
                t.a, t.b, t.transposed, t.agreement
            );
        }
    }
    assert_eq!(
        c.verdict, verdict,
        "{name}: similarity {:.3}, coverage {:.3}, log10 fpp {:.1}, matched {}",
        c.similarity, c.coverage, c.log10_false_positive_probability, c.tensors_matched
    );
}

#[test]
fn derivations_read_as_derived() {
    for (k, (arch, width)) in ARCHITECTURES.into_iter().enumerate() {
        let seed = 1000 + k as u64;
        let base = Synth::random(arch, width, seed);
        let fp = base.fingerprint();
        let other = Synth::random(arch, width, seed + 500);
        let cases: Vec<(&str, fingerprint::Fingerprint, Verdict)> = vec![
            ("same weights", base.fingerprint(), Verdict::Identical),
            ("renamed", base.renamed().fingerprint(), Verdict::Identical),
            (
                "transposed",
                base.transposed().fingerprint(),
                Verdict::Identical,
            ),
            (
                "renamed and transposed",
                base.transposed().renamed().fingerprint(),
                Verdict::Identical,
            ),
            (
                "small fine-tune",
                base.perturbed(0.02, seed + 1).fingerprint(),
                Verdict::Derived,
            ),
            (
                "large fine-tune",
                base.perturbed(0.3, seed + 2).fingerprint(),
                Verdict::Derived,
            ),
            (
                "bf16 round trip",
                base.bf16_round_trip().fingerprint(),
                Verdict::Derived,
            ),
            (
                "stored as bf16",
                base.fingerprint_as(SDtype::BF16),
                Verdict::Derived,
            ),
            (
                "stored as f16",
                base.fingerprint_as(SDtype::F16),
                Verdict::Derived,
            ),
            (
                "int8 round trip",
                base.int8_round_trip().fingerprint(),
                Verdict::Derived,
            ),
            (
                "stored as int8",
                base.fingerprint_as(SDtype::I8),
                Verdict::Derived,
            ),
            (
                "50% magnitude pruning",
                base.pruned().fingerprint(),
                Verdict::Derived,
            ),
            (
                "0.5/0.5 merge of two fine-tunes of it",
                base.perturbed(0.2, seed + 4)
                    .merged(&base.perturbed(0.2, seed + 5))
                    .fingerprint(),
                Verdict::Derived,
            ),
            (
                "fine-tuned, pruned, renamed",
                base.perturbed(0.1, seed + 3)
                    .pruned()
                    .renamed()
                    .fingerprint(),
                Verdict::Derived,
            ),
        ];
        for (name, derived, verdict) in &cases {
            let c = compare(&fp, derived);
            check(&format!("{arch}/{width} {name}"), &c, *verdict);
            if *verdict == Verdict::Derived {
                assert!(
                    c.false_positive_probability < 1e-6,
                    "{name}: fpp {}",
                    c.false_positive_probability
                );
            }
            // Symmetric.
            check(
                &format!("{arch}/{width} {name} (reversed)"),
                &compare(derived, &fp),
                *verdict,
            );
        }
        // A merge is derived from both of its parents (fine-tunes of one base).
        let (left, right) = (base.perturbed(0.2, seed + 6), base.perturbed(0.2, seed + 7));
        let merged = left.merged(&right).fingerprint();
        check(
            "merge vs one parent",
            &compare(&left.fingerprint(), &merged),
            Verdict::Derived,
        );
        check(
            "merge vs the other parent",
            &compare(&right.fingerprint(), &merged),
            Verdict::Derived,
        );
        // An independently trained model stays unrelated to it.
        check(
            "independent model",
            &compare(&fp, &other.fingerprint()),
            Verdict::Unrelated,
        );
        // Larger perturbations reduce similarity (the share of units found saturates at 1).
        let s = |r: f32| compare(&fp, &base.perturbed(r, seed + 9).fingerprint()).similarity;
        let (s1, s2, s3) = (s(0.02), s(0.1), s(0.3));
        eprintln!("{arch}/{width}: similarity at noise 0.02, 0.1, 0.3: {s1:.3} {s2:.3} {s3:.3}");
        assert!(s1 >= s2 && s2 > s3, "{arch}: {s1} {s2} {s3}");
    }
}

/// Models wide enough for content-keyed anchors on their vocabulary rows (64 and more), with
/// and without a common mean: the rows of unrelated vocabularies never meet.
#[test]
fn unrelated_vocabularies_keyed_by_content_have_no_false_positive() {
    for k in 0..200u64 {
        let width = [64, 96][(k % 2) as usize];
        let mut a = Synth::random("mlp", width, 20_000 + 2 * k);
        let mut b = Synth::random("mlp", width, 20_001 + 2 * k);
        if k % 3 == 0 {
            a = a.map(|_, _, d| d.iter_mut().for_each(|x| *x += 0.05));
            b = b.map(|_, _, d| d.iter_mut().for_each(|x| *x += 0.05));
        }
        let (fa, fb) = (a.fingerprint(), b.fingerprint());
        let content = |f: &Fingerprint| {
            f.tensors.iter().any(|t| match &t.sketch {
                TensorSketch::Units(sides) => sides.iter().any(|s| s.probes == Probes::Content),
                _ => false,
            })
        };
        assert!(
            content(&fa) && content(&fb),
            "pair {k}: content sides present"
        );
        let c = compare(&fa, &fb);
        check("unrelated vocabularies", &c, Verdict::Unrelated);
        assert_eq!(c.tensors_significant, 0, "pair {k}");
    }
}

#[test]
fn a_thousand_unrelated_pairs_have_no_false_positive() {
    let mut worst = (0.0f64, 0.0f64);
    let mut pairs = 0;
    for k in 0..1000u64 {
        let (arch, width) = ARCHITECTURES[(k % 4) as usize];
        let width = if arch == "attn" { 48 } else { width / 2 };
        let mut a = Synth::random(arch, width, 10_000 + 2 * k);
        let mut b = Synth::random(arch, width, 10_001 + 2 * k);
        if k % 3 == 0 {
            // Weights with a common non-zero mean must not look related.
            a = a.map(|_, _, d| d.iter_mut().for_each(|x| *x += 0.05));
            b = b.map(|_, _, d| d.iter_mut().for_each(|x| *x += 0.05));
        }
        let c = compare(&a.fingerprint(), &b.fingerprint());
        assert_eq!(
            c.verdict,
            Verdict::Unrelated,
            "pair {k} ({arch}): similarity {:.3} coverage {:.3}",
            c.similarity,
            c.coverage
        );
        worst = (worst.0.max(c.similarity), worst.1.max(c.coverage));
        pairs += 1;
    }
    assert_eq!(pairs, 1000);
    eprintln!(
        "1000 unrelated pairs: highest similarity {:.4}, highest coverage {:.4}",
        worst.0, worst.1
    );
    assert!(worst.0 < 0.2, "unrelated similarity stays low: {}", worst.0);
}

/// A fixed, untrained matrix (a DCT-II basis) shared by two unrelated models.
fn with_dct(mut model: Synth, size: usize) -> Synth {
    let dct: Vec<f32> = (0..size * size)
        .map(|k| {
            let (i, j) = ((k / size) as f32, (k % size) as f32);
            (std::f32::consts::PI / size as f32 * (j + 0.5) * i).cos()
        })
        .collect();
    model
        .tensors
        .insert("frontend.dct.weight".into(), (vec![size, size], dct));
    model
}

#[test]
fn a_shared_fixed_tensor_does_not_make_unrelated_models_related() {
    for k in 0..20u64 {
        let a = with_dct(Synth::random("mlp", 64, 50_000 + k), 64);
        let b = with_dct(Synth::random("mlp", 64, 60_000 + k), 64);
        let c = compare(&a.fingerprint(), &b.fingerprint());
        check("shared DCT", &c, Verdict::Unrelated);
        let dct = c
            .tensors
            .iter()
            .find(|t| t.a == "frontend.dct.weight")
            .expect("the DCT is reported");
        assert!(
            dct.transforms.iter().any(|t| t == "identical bytes"),
            "the shared tensor itself is recognised as equal: {dct:?}"
        );
        assert_eq!(c.tensors_shared, 1);
        assert!(
            c.false_positive_probability > 1e-3,
            "{}",
            c.false_positive_probability
        );
        // ... while a fine-tune of a model with the same fixed tensor is still derived.
        check(
            "fine-tune with DCT",
            &compare(&a.fingerprint(), &a.perturbed(0.1, k).fingerprint()),
            Verdict::Derived,
        );
    }
}

/// Permutes the hidden units of layer `l` of an mlp: rows of fc1 (and its bias), columns of
/// fc2. The network computes the same function.
fn permute_hidden(model: &Synth, l: usize, seed: u64) -> Synth {
    let fc1 = format!("layers.{l}.fc1.weight");
    let (shape, _) = &model.tensors[&fc1];
    let (hidden, width) = (shape[0], shape[1]);
    let mut perm: Vec<usize> = (0..hidden).collect();
    let mut rng = Rng::new(seed);
    for i in (1..hidden).rev() {
        perm.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let mut out = model.clone();
    let w1 = &model.tensors[&fc1].1;
    out.tensors.get_mut(&fc1).unwrap().1 = perm
        .iter()
        .flat_map(|&p| w1[p * width..(p + 1) * width].to_vec())
        .collect();
    let bias = format!("layers.{l}.fc1.bias");
    let b = &model.tensors[&bias].1;
    out.tensors.get_mut(&bias).unwrap().1 = perm.iter().map(|&p| b[p]).collect();
    let fc2 = format!("layers.{l}.fc2.weight");
    let w2 = &model.tensors[&fc2].1;
    out.tensors.get_mut(&fc2).unwrap().1 = (0..width)
        .flat_map(|r| perm.iter().map(move |&p| (r, p)))
        .map(|(r, p)| w2[r * hidden + p])
        .collect();
    out
}

/// A hidden-unit permutation moves units, not their signatures: with units looked up as
/// multisets, one permuted layer or all of them read as derived, and the explanation says
/// "permuted" for the permuted layers only.
#[test]
fn hidden_unit_permutation() {
    let base = Synth::random("mlp", 64, 77);
    let fp = base.fingerprint();
    let one = compare(&fp, &permute_hidden(&base, 1, 5).fingerprint());
    check("one layer permuted", &one, Verdict::Derived);
    for t in &one.tensors {
        let permuted = t.a.starts_with("layers.1.fc");
        assert!(
            t.significant,
            "{}: {}/{}",
            t.a, t.units_matched, t.units_queried
        );
        assert_eq!(
            t.transforms.iter().any(|x| x == "permuted"),
            permuted,
            "{}: {:?}",
            t.a,
            t.transforms
        );
    }
    let mut all = base.clone();
    for l in 0..3 {
        all = permute_hidden(&all, l, 6 + l as u64);
    }
    let all = compare(&fp, &all.fingerprint());
    check("every hidden layer permuted", &all, Verdict::Derived);
    assert!(all.similarity > 0.95, "{}", all.similarity);
    assert!(all.false_positive_probability < 1e-100);
}

/// Rows that share a direction (like the mean vector of an embedding matrix) make every
/// neuron's signature follow it; the signatures are centred across neurons too, so unrelated
/// models with such structure still read as unrelated.
#[test]
fn a_direction_shared_by_all_neurons_does_not_make_unrelated_models_related() {
    for k in 0..50u64 {
        let with_mean_row = |seed: u64| {
            let model = Synth::random("mlp", 64, seed);
            let mut rng = Rng::new(seed ^ 0xabcd);
            model.map(|_, shape, data| {
                if shape.len() == 2 {
                    let cols = shape[1];
                    let mean: Vec<f32> = (0..cols)
                        .map(|_| rng.normal() / (cols as f32).sqrt())
                        .collect();
                    data.chunks_mut(cols)
                        .for_each(|row| row.iter_mut().zip(&mean).for_each(|(x, m)| *x += 2.0 * m));
                }
            })
        };
        let c = compare(
            &with_mean_row(70_000 + 2 * k).fingerprint(),
            &with_mean_row(70_001 + 2 * k).fingerprint(),
        );
        check("shared row direction", &c, Verdict::Unrelated);
        assert_eq!(c.tensors_significant, 0, "pair {k}");
    }
}
