//! GGUF copies of a real model: all-MiniLM-L6-v2 written as GGUF by llama.cpp's own `gguf`
//! package (PyPI; `tests/data/gguf_variants.py`), its tensors renamed as llama.cpp names them,
//! in F16 and in the block quantizations Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and MXFP4. Each reads as the
//! original model (identical or derived), the dequantized values equal the package's own
//! dequantizer's for six tensors (every block of each), and a model of the same shapes with other
//! weights stays unrelated to them.

use std::path::PathBuf;

use fingerprint::backend::CpuBackend;
use fingerprint::{compare, Model, TensorData, Verdict};

use crate::real_model::{minilm, run_test_data_script, test_data_dir};
use crate::synth::Synth;

const QUANTIZED: [&str; 6] = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "mxfp4"];

/// The GGUF files, written once per test process (the tests run on parallel threads, and
/// two writers of one file would race).
fn variants() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(write_variants).clone()
}

fn write_variants() -> PathBuf {
    let dir = test_data_dir("gguf");
    run_test_data_script("gguf_variants.py", [minilm().as_os_str(), dir.as_os_str()]);
    dir
}

/// Checks that `copy`, a copy of MiniLM named `label`, has the parameters of `original`,
/// reads as it (identical or derived; the figures are printed) and stays unrelated to
/// `stranger`, a model of the same shapes with other weights.
pub(crate) fn reads_as_the_model(
    original: &fingerprint::Fingerprint,
    stranger: &fingerprint::Fingerprint,
    copy: &Model,
    label: &str,
) {
    let fp = fingerprint::fingerprint(copy, &CpuBackend, |_| {}).unwrap();
    assert_eq!(fp.parameters(), original.parameters(), "{label}");
    let c = compare(original, &fp);
    eprintln!(
        "MiniLM vs its {label} copy: {} similarity {:.3} coverage {:.3} log10 fpp {:.0}",
        c.verdict.as_str(),
        c.similarity,
        c.coverage,
        c.log10_false_positive_probability
    );
    assert_ne!(c.verdict, Verdict::Unrelated, "{label}");
    let other = compare(stranger, &fp);
    assert_eq!(
        other.verdict,
        Verdict::Unrelated,
        "{label} vs other weights"
    );
}

/// A reference dequantization: (tensor name, f32 bytes), from a `TYPE.reference` file of
/// lines `NAME COUNT` each followed by COUNT little-endian f32s.
pub(crate) fn reference(bytes: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let line_end = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap();
        let line = std::str::from_utf8(&bytes[at..line_end]).unwrap();
        let (name, count) = line.split_once(' ').unwrap();
        let len = count.parse::<usize>().unwrap() * 4;
        out.push((name.to_string(), &bytes[line_end + 1..line_end + 1 + len]));
        at = line_end + 1 + len;
    }
    out
}

/// A quantized tensor read twice in a row (a vocabulary table is, by the anchor stages and
/// its own sketch) is dequantized once; reading another in between makes it again, equal.
#[test]
fn a_dequantized_tensor_read_again_at_once_is_not_made_again() {
    let model = Model::open(&variants().join("model-q8_0.gguf")).unwrap();
    let shared = |t| match model.data(t) {
        TensorData::Shared(values) => values,
        TensorData::Borrowed(_) => panic!("a Q8_0 tensor is dequantized"),
    };
    let token = model
        .tensors()
        .iter()
        .find(|t| t.name == "token_embd.weight");
    let query = model
        .tensors()
        .iter()
        .find(|t| t.name == "blk.0.attn_q.weight");
    let (token, query) = (token.unwrap(), query.unwrap());
    let first = shared(token);
    assert!(std::sync::Arc::ptr_eq(&first, &shared(token)), "made once");
    let other = shared(query);
    assert_eq!(other.len(), query.byte_len());
    let again = shared(token);
    assert!(
        !std::sync::Arc::ptr_eq(&first, &again),
        "one slot: made again"
    );
    assert_eq!(first, again);
}

#[test]
fn gguf_copies_of_a_real_model_read_as_the_model() {
    let dir = variants();
    let original = Model::open(&minilm()).unwrap();
    let original = fingerprint::fingerprint(&original, &CpuBackend, |_| {}).unwrap();
    let stranger = Synth::from_model(&Model::open(&minilm()).unwrap())
        .random_like(7)
        .fingerprint();
    for kind in std::iter::once("f16").chain(QUANTIZED) {
        let path = dir.join(format!("model-{kind}.gguf"));
        let model = Model::open(&path).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(
            model.tensors().len(),
            104,
            "{kind}: every tensor, llama.cpp's names"
        );
        assert!(model
            .tensors()
            .iter()
            .any(|t| t.name == "blk.0.attn_q.weight"));
        reads_as_the_model(&original, &stranger, &model, &format!("GGUF {kind}"));
        if kind == "f16" {
            continue;
        }
        // Dequantized exactly as the package dequantizes, every block of six tensors.
        let bytes = std::fs::read(dir.join(format!("{kind}.reference"))).unwrap();
        let expected = reference(&bytes);
        assert_eq!(expected.len(), 6, "{kind}: six quantized tensors to check");
        for (name, values) in expected {
            let t = model.tensors().iter().find(|t| t.name == name).unwrap();
            assert!(
                *model.data(t) == values[..],
                "{kind}: {name} differs from gguf.quants.dequantize"
            );
        }
    }
}

#[test]
fn k_iq_tq_and_fp4_quants_dequantize_as_the_gguf_package_does_block_for_block() {
    let dir = variants();
    let model = Model::open(&dir.join("blocks.gguf")).unwrap();
    let bytes = std::fs::read(dir.join("blocks.reference")).unwrap();
    let expected = reference(&bytes);
    let names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0", "mxfp4",
            "nvfp4"
        ]
    );
    for (name, values) in expected {
        let t = model.tensors().iter().find(|t| t.name == name).unwrap();
        assert_eq!(t.shape, [8, 1024], "{name}");
        let ours = model.data(t);
        // Block by block, so a mismatch names the super-block.
        for (i, (a, b)) in ours.chunks(1024).zip(values.chunks(1024)).enumerate() {
            assert!(
                a == b,
                "{name}: weights {} to {} differ from gguf.quants.dequantize",
                i * 256,
                i * 256 + 255
            );
        }
        assert_eq!(ours.len(), values.len());
    }
}

#[test]
fn a_gguf_vocabulary_keys_the_anchors_as_the_original_tokenizer_does() {
    use fingerprint::anchor::Keying;
    let dir = variants();
    // The original as its folder holds it (tokenizer.json beside the weights).
    let folder = minilm().parent().unwrap().to_path_buf();
    let original =
        fingerprint::fingerprint(&Model::open(&folder).unwrap(), &CpuBackend, |_| {}).unwrap();
    let keyed = |fp: &fingerprint::Fingerprint| fp.anchors.as_ref().map(|a| a.keying);
    let Some(Keying::Tokens(vocabulary)) = keyed(&original) else {
        panic!(
            "the original's anchors are not keyed by token: {:?}",
            original.anchors
        );
    };
    // The GGUF's own vocabulary (its metadata) keys its anchors by the same tokens.
    let with = Model::open(&dir.join("model-f16-tokens.gguf")).unwrap();
    assert_eq!(with.tokens().map(|t| t.len()), Some(30_522));
    let with = fingerprint::fingerprint(&with, &CpuBackend, |_| {}).unwrap();
    assert_eq!(keyed(&with), Some(Keying::Tokens(vocabulary)));
    assert_ne!(compare(&original, &with).verdict, Verdict::Unrelated);
    // Without one, rows are keyed by id.
    let without = Model::open(&dir.join("model-f16.gguf")).unwrap();
    assert!(without.tokens().is_none());
}
