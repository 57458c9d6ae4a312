//! The cost of comparing two stored fingerprints of a Llama-7B-shaped model (32 layers of
//! q, k, v, o 4096×4096 and gate, up, down 4096×11008; a 32 000-token embedding and head:
//! 2.17 M units), as the registry does for each new model against every registered one:
//! `cargo run --release -p fingerprint --example compare_bench`. Prints the time of a derived
//! pair (every unit permuted within its tensor, two bits of each signature flipped) and of an
//! unrelated pair. No weights are needed: the signatures are generated.

use std::time::Instant;

use fingerprint::anchor::Keying;
use fingerprint::scale::Axis;
use fingerprint::sketch::UnitSide;
use fingerprint::{compare, AnchorInfo, Dtype, Fingerprint, TensorFingerprint, TensorSketch};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        fingerprint::probe::hash64(self.0)
    }
}

fn model(seed: u64) -> Fingerprint {
    let mut rng = Rng(seed);
    let mut tensors = Vec::new();
    let mut add = |name: String, shape: [u64; 2], axes: &[Axis], rng: &mut Rng| {
        let sides = axes
            .iter()
            .map(|&axis| UnitSide {
                axis,
                probes: fingerprint::sketch::Probes::Keyed,
                bits: 11,
                signatures: (0..if axis == Axis::Rows {
                    shape[0]
                } else {
                    shape[1]
                })
                    .map(|_| rng.next() | 1)
                    .collect(),
            })
            .collect();
        let mut data_hash = [0u8; 32];
        data_hash[..8].copy_from_slice(&rng.next().to_le_bytes());
        tensors.push(TensorFingerprint {
            name,
            dtype: Dtype::BF16,
            shape: shape.to_vec(),
            data_hash,
            structured: false,
            sketch: TensorSketch::Units(sides),
        });
    };
    add(
        "embed.weight".into(),
        [32_000, 4096],
        &[Axis::Rows],
        &mut rng,
    );
    add(
        "lm_head.weight".into(),
        [32_000, 4096],
        &[Axis::Rows],
        &mut rng,
    );
    for l in 0..32 {
        for p in ["q", "k", "v", "o"] {
            add(
                format!("l{l:02}.{p}"),
                [4096, 4096],
                &[Axis::Rows, Axis::Cols],
                &mut rng,
            );
        }
        for p in ["gate", "up"] {
            add(
                format!("l{l:02}.{p}"),
                [11_008, 4096],
                &[Axis::Rows],
                &mut rng,
            );
        }
        add(
            format!("l{l:02}.down"),
            [4096, 11_008],
            &[Axis::Cols],
            &mut rng,
        );
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Fingerprint {
        version: 2,
        content_root: [seed as u8; 32],
        anchors: Some(AnchorInfo {
            width: 4096,
            keying: Keying::Ids,
            sources: vec!["embed.weight".into(), "lm_head.weight".into()],
        }),
        tensors,
    }
}

fn main() {
    let a = model(1);
    let mut derived = a.clone();
    let mut rng = Rng(99);
    derived.content_root = [7; 32];
    for t in &mut derived.tensors {
        t.data_hash[8] = 1;
        if let TensorSketch::Units(sides) = &mut t.sketch {
            for s in sides {
                let n = s.signatures.len();
                for i in (1..n).rev() {
                    s.signatures.swap(i, (rng.next() % (i as u64 + 1)) as usize);
                }
                for sig in &mut s.signatures {
                    *sig ^= (1 << (rng.next() % 64)) | (1 << (rng.next() % 64));
                }
            }
        }
    }
    let units: usize = a
        .tensors
        .iter()
        .filter_map(|t| match &t.sketch {
            TensorSketch::Units(s) => Some(s.iter().map(|s| s.signatures.len()).sum::<usize>()),
            _ => None,
        })
        .sum();
    println!("{units} units per model, {} tensors", a.tensors.len());
    for (name, b) in [
        ("derived (permuted, 2 bits flipped)", &derived),
        ("unrelated", &model(2)),
    ] {
        let started = Instant::now();
        let c = compare(&a, b);
        println!(
            "{name}: {} in {:.3} s (similarity {:.3}, log10 fpp {:.0})",
            c.verdict.as_str(),
            started.elapsed().as_secs_f64(),
            c.similarity,
            c.log10_false_positive_probability
        );
    }
}
