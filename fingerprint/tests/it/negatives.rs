//! The real negative set: independently trained models of identical architecture and shapes
//! from PyPI packages (Silero VAD v5 and v6 at 16 and 8 kHz; akiki, trained from random
//! weights on Silero's outputs, with the same STFT front-end and convolution shapes), fetched
//! and laid out by `tests/data/negatives.py` under `target/test-data/negatives/` (or
//! `$NEGATIVES_DIR`). Every unrelated pair must read unrelated with a false-positive
//! probability that is not small (the probability is calibrated: it must not claim 10⁻⁹ for a
//! pair that is in fact unrelated), and the one derived pair (Silero's own safetensors copy of
//! its v6 16 kHz release, re-exported with every weight changed) must read derived.

use std::path::PathBuf;

use fingerprint::backend::CpuBackend;
use fingerprint::{compare, Fingerprint, Model, Verdict};

use crate::real_model::{run_test_data_script, test_data_dir};

fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEGATIVES_DIR") {
        return PathBuf::from(dir);
    }
    let dir = test_data_dir("negatives");
    run_test_data_script("negatives.py", [&dir]);
    dir
}

fn fingerprint_of(path: PathBuf) -> Fingerprint {
    let model = Model::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    fingerprint::fingerprint(&model, &CpuBackend, |_| {}).unwrap()
}

#[test]
fn real_independent_models_read_unrelated_and_calibrated() {
    let root = dir();
    let converted = |name: &str| fingerprint_of(root.join("converted").join(name));
    let v5_16 = converted("silero_vad_v5_16k.safetensors");
    let v5_8 = converted("silero_vad_v5_8k.safetensors");
    let v6_16 = converted("silero_vad_v6_16k.safetensors");
    let v6_8 = converted("silero_vad_v6_8k.safetensors");
    let v6_own =
        fingerprint_of(root.join("silero-vad-6.2.3/silero_vad/data/silero_vad_16k.safetensors"));
    let akiki =
        fingerprint_of(root.join("akiki-0.0.6/akiki/models/akiki-vad-native/model.safetensors"));
    let negatives = [
        ("Silero v5 16k", &v5_16, "Silero v6 16k", &v6_16),
        ("Silero v5 8k", &v5_8, "Silero v6 8k", &v6_8),
        (
            "Silero v5 16k",
            &v5_16,
            "Silero v6 16k (its safetensors)",
            &v6_own,
        ),
        ("Silero v5 16k", &v5_16, "Silero v5 8k", &v5_8),
        ("Silero v6 16k", &v6_16, "Silero v6 8k", &v6_8),
        ("akiki", &akiki, "Silero v5 16k", &v5_16),
        ("akiki", &akiki, "Silero v6 16k", &v6_16),
        ("akiki", &akiki, "Silero v6 16k (its safetensors)", &v6_own),
    ];
    let mut lowest = 0f64;
    for (x, a, y, b) in negatives {
        let c = compare(a, b);
        eprintln!(
            "{x} vs {y}: {} similarity {:.3} coverage {:.3} log10 fpp {:.1} shared {}",
            c.verdict.as_str(),
            c.similarity,
            c.coverage,
            c.log10_false_positive_probability,
            c.tensors_shared
        );
        for t in c
            .tensors
            .iter()
            .filter(|t| t.units_matched > 0 || t.significant)
        {
            eprintln!(
                "  {} ~ {}: {}/{} log10 {:.1} {:?}",
                t.a, t.b, t.units_matched, t.units_queried, t.log10_false_positive, t.transforms
            );
        }
        assert_eq!(c.verdict, Verdict::Unrelated, "{x} vs {y}");
        lowest = lowest.min(c.log10_false_positive_probability);
    }
    eprintln!(
        "{} real negative pairs: lowest log10 false-positive probability {lowest:.2}",
        negatives.len()
    );
    assert!(lowest > -3.0, "an unrelated pair claimed 10^{lowest:.1}");

    let c = compare(&v6_16, &v6_own);
    eprintln!(
        "Silero v6 16k vs its own safetensors re-export: {} similarity {:.3} log10 fpp {:.1}",
        c.verdict.as_str(),
        c.similarity,
        c.log10_false_positive_probability
    );
    assert_eq!(c.verdict, Verdict::Derived);
}
