//! Packed-quantized copies of a real model: all-MiniLM-L6-v2's Linear layers quantized into
//! GPTQ (4-bit with act-order, 8-bit), AWQ, bitsandbytes int8 and nf4 (double-quantized),
//! FP8 with block and row scales, MXFP4 and NVFP4, each written as its exporter lays it out
//! (`tests/data/packed_variants.py`, with safetensors' own serializer and ml_dtypes' number
//! formats). Each reads as the original model (same parameters, identical or derived), every
//! dequantized tensor equals the format's own dequantizer's (ported to numpy) bit for bit, and
//! a model of the same shapes with other weights stays unrelated.

use std::path::PathBuf;

use fingerprint::backend::CpuBackend;
use fingerprint::{Dtype, Model};

use crate::gguf::{reads_as_the_model, reference};
use crate::real_model::{minilm, run_test_data_script, test_data_dir};
use crate::synth::Synth;

const FORMATS: [&str; 9] = [
    "gptq4",
    "gptq8",
    "awq",
    "bnb-int8",
    "bnb-nf4",
    "fp8-block",
    "fp8-channel",
    "mxfp4",
    "nvfp4",
];

/// The packed folders, written once per test process.
fn variants() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = test_data_dir("packed");
        run_test_data_script(
            "packed_variants.py",
            [minilm().as_os_str(), dir.as_os_str()],
        );
        dir
    })
    .clone()
}

#[test]
fn packed_copies_of_a_real_model_dequantize_exactly_and_read_as_the_model() {
    let dir = variants();
    let original = Model::open(&minilm()).unwrap();
    let original = fingerprint::fingerprint(&original, &CpuBackend, |_| {}).unwrap();
    let stranger = Synth::from_model(&Model::open(&minilm()).unwrap())
        .random_like(7)
        .fingerprint();
    for kind in FORMATS {
        let model = Model::open(&dir.join(kind)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        // The packed tensors (qweight, scales, absmax, blocks, …) are gone: one f32 weight
        // each, under the unquantized name and shape.
        assert_eq!(model.tensors().len(), 104, "{kind}: the original's tensors");
        let bytes = std::fs::read(dir.join(format!("{kind}.reference"))).unwrap();
        let expected = reference(&bytes);
        assert_eq!(
            expected.len(),
            37,
            "{kind}: every Linear layer was quantized"
        );
        for (name, values) in expected {
            let t = model
                .tensors()
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("{kind}: no {name}"));
            assert_eq!(t.dtype, Dtype::F32, "{kind}: {name}");
            let ours = model.data(t);
            assert_eq!(ours.len(), values.len(), "{kind}: {name}");
            if let Some(at) =
                (0..ours.len() / 4).find(|&i| ours[4 * i..4 * i + 4] != values[4 * i..4 * i + 4])
            {
                let f = |b: &[u8]| f32::from_le_bytes(b[4 * at..4 * at + 4].try_into().unwrap());
                panic!(
                    "{kind}: {name}[{at}] is {} but the format's dequantizer gives {}",
                    f(&ours),
                    f(values)
                );
            }
        }
        reads_as_the_model(&original, &stranger, &model, kind);
    }
}

#[test]
fn a_packed_copy_sent_as_bytes_reads_as_the_same_file() {
    // A model received over the network (`Model::from_bytes`) is unpacked too (its format
    // told by its tensors alone: AWQ needs no config).
    let dir = variants();
    let path = dir.join("awq/model.safetensors");
    let from_file = Model::open(&path).unwrap();
    let from_bytes = Model::from_bytes("awq", std::fs::read(&path).unwrap()).unwrap();
    let root = |m: &Model| {
        fingerprint::fingerprint(m, &CpuBackend, |_| {})
            .unwrap()
            .content_root
    };
    assert_eq!(from_bytes.tensors().len(), 104);
    assert_eq!(root(&from_file), root(&from_bytes));
}

#[test]
fn opening_a_model_that_is_still_arriving_waits_only_for_packed_tensors() {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, tensors: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)>| {
        let path = dir.path().join(name);
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                let view = safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap();
                (n.to_string(), view)
            })
            .collect();
        std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
        path
    };
    let open = |path: &std::path::Path| {
        let asked = Arc::new(Mutex::new(BTreeSet::new()));
        let gate: fingerprint::source::Gate = {
            let asked = asked.clone();
            Arc::new(move |_, end| {
                asked.lock().unwrap().insert(end);
            })
        };
        let model = Model::open_gated(path, Some(gate)).unwrap();
        let asked = asked.lock().unwrap().clone();
        (model, asked)
    };
    use safetensors::Dtype as S;
    let bias = ("z.bias", S::F32, vec![64], vec![0u8; 256]);
    // A plain model: opening reads no tensor, so fingerprinting starts behind the writer.
    let plain = write(
        "plain.safetensors",
        vec![
            ("w.weight", S::F32, vec![64, 64], vec![1; 64 * 64 * 4]),
            bias.clone(),
        ],
    );
    let (_, asked) = open(&plain);
    assert!(asked.is_empty(), "opening waited for {asked:?}");
    // A packed one: opening dequantizes, reading its two packed tensors and nothing else.
    let packed = write(
        "packed.safetensors",
        vec![
            ("w.weight", S::I8, vec![64, 64], vec![1; 64 * 64]),
            ("w.SCB", S::F32, vec![64], 1f32.to_le_bytes().repeat(64)),
            bias,
        ],
    );
    let (_, asked) = open(&packed);
    assert_eq!(asked.len(), 2, "the weight and its SCB: {asked:?}");
}

/// The tensors of each packed format, for the fuzzer to give arbitrary types and shapes.
const GROUPS: [&[&str]; 6] = [
    &["l.qweight", "l.qzeros", "l.scales", "l.g_idx"],
    &["l.weight", "l.SCB", "l.weight_format"],
    &[
        "l.weight",
        "l.weight.absmax",
        "l.weight.quant_map",
        "l.weight.nested_absmax",
        "l.weight.nested_quant_map",
        "l.weight.quant_state.bitsandbytes__nf4",
    ],
    &[
        "l.weight",
        "l.weight_scale",
        "l.weight_scale_2",
        "l.input_scale",
    ],
    &["l.weight", "l.weight_scale_inv"],
    &["x_blocks", "x_scales"],
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    /// Packed groups whose companions have any type and shape, and quant states with any
    /// sizes, get an error or a model, never a panic or an allocation beyond the file's.
    #[test]
    fn packed_groups_of_any_shape_never_panic(
        group in 0usize..GROUPS.len(),
        tensors in proptest::collection::vec(
            (0usize..8, proptest::collection::vec(0usize..40, 0..4), proptest::prelude::any::<u8>()),
            6,
        ),
        state in (0u64..5000, 0u64..5000, 0u64..300, 0u64..300),
    ) {
        use safetensors::Dtype as S;
        const TYPES: [S; 8] = [S::F32, S::F16, S::BF16, S::I32, S::U8, S::I8, S::F8_E4M3, S::F8_E8M0];
        let json = format!(
            r#"{{"quant_type":"nf4","blocksize":{},"shape":[{},{}],"nested_blocksize":{},"nested_offset":0.5}}"#,
            state.2, state.0, state.1, state.3
        );
        let owned: Vec<(String, S, Vec<usize>, Vec<u8>)> = GROUPS[group]
            .iter()
            .zip(&tensors)
            .map(|(name, (dtype, shape, fill))| {
                if name.contains("quant_state") {
                    return (name.to_string(), S::U8, vec![json.len()], json.as_bytes().to_vec());
                }
                let dtype = TYPES[*dtype];
                let n: usize = shape.iter().product();
                (name.to_string(), dtype, shape.clone(), vec![*fill; n * dtype.bitsize() / 8])
            })
            .collect();
        let views: Vec<_> = owned
            .iter()
            .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        if let Ok(model) = Model::from_bytes("fuzz", bytes) {
            let _ = fingerprint::fingerprint(&model, &CpuBackend, |_| {});
        }
    }
}

#[test]
fn a_single_packed_file_reads_the_same_whatever_config_lies_beside_it() {
    // A download's target folder may hold any config.json: a single file is read from its
    // tensors alone (GPTQ's bits from its g_idx), so its fingerprint is the one it was
    // minted with.
    let dir = variants();
    let root = |path: &std::path::Path| {
        let model = Model::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fingerprint::fingerprint(&model, &CpuBackend, |_| {})
            .unwrap()
            .content_root
    };
    let original = root(&dir.join("gptq8/model.safetensors"));
    assert_eq!(
        original,
        root(&dir.join("gptq8")),
        "the folder's config agrees"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("model.safetensors");
    std::fs::copy(dir.join("gptq8/model.safetensors"), &copy).unwrap();
    std::fs::write(
        elsewhere.path().join("config.json"),
        r#"{"quantization_config": {"bits": 4, "checkpoint_format": "gptq_v2"}}"#,
    )
    .unwrap();
    assert_eq!(root(&copy), original);
}
