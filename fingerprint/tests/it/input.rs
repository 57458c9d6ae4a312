//! Opening models: sharded layouts give the same fingerprint; bad input gets a clear error
//! naming the file; the header parser never panics.

use std::path::Path;

use fingerprint::backend::CpuBackend;
use fingerprint::{Error, Fingerprint, Model};
use proptest::prelude::*;
use safetensors::Dtype as SDtype;

use crate::synth::Synth;

fn fp_of(path: &Path) -> Fingerprint {
    fingerprint::fingerprint(&Model::open(path).expect("opens"), &CpuBackend, |_| {})
        .expect("fingerprints")
}

#[test]
fn sharding_layout_and_order_do_not_change_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let model = Synth::random("mlp", 32, 3);
    let single = dir.path().join("model.safetensors");
    std::fs::write(&single, model.to_safetensors(SDtype::F32)).unwrap();
    let whole = fp_of(&single);

    // Two shards with an index, in another folder.
    let sharded = dir.path().join("sharded");
    std::fs::create_dir(&sharded).unwrap();
    let names: Vec<String> = model.tensors.keys().cloned().collect();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (k, part) in [first, second].into_iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", k + 1);
        let shard = Synth {
            tensors: model
                .tensors
                .iter()
                .filter(|(n, _)| part.contains(n))
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect(),
        };
        std::fs::write(sharded.join(&file), shard.to_safetensors(SDtype::F32)).unwrap();
        for n in part {
            weight_map.insert(n.clone(), file.clone().into());
        }
    }
    let index = sharded.join("model.safetensors.index.json");
    std::fs::write(
        &index,
        serde_json::json!({ "metadata": {}, "weight_map": weight_map }).to_string(),
    )
    .unwrap();
    assert_eq!(fp_of(&index), whole, "index of shards");
    // A consolidated copy beside the shards is not part of the sharded checkpoint.
    std::fs::write(
        sharded.join("consolidated.safetensors"),
        Synth::random("conv", 4, 8).to_safetensors(SDtype::F32),
    )
    .unwrap();
    assert_eq!(
        fp_of(&sharded),
        whole,
        "directory of shards, read through its index"
    );
    std::fs::remove_file(&index).unwrap();
    assert_ne!(
        fp_of(&sharded),
        whole,
        "without the index every file in the folder counts"
    );
    std::fs::remove_file(sharded.join("consolidated.safetensors")).unwrap();
    assert_eq!(fp_of(&sharded), whole, "directory of shards");
    assert_eq!(whole.hash(), fp_of(&sharded).hash());
    assert_eq!(whole.hash(), fp_of(&single).hash());

    // The canonical encoding round-trips and its hash is the commitment.
    let encoded = whole.encode();
    assert_eq!(Fingerprint::decode(&encoded).unwrap(), whole);
    assert_eq!(fingerprint::encoding::hash_encoding(&encoded), whole.hash());
    // Any change to the weights changes both the content root and the commitment.
    let changed = fingerprint::fingerprint(
        &Model::from_bytes("x", model.perturbed(1e-3, 1).to_safetensors(SDtype::F32)).unwrap(),
        &CpuBackend,
        |_| {},
    )
    .unwrap();
    assert_ne!(changed.content_root, whole.content_root);
    assert_ne!(changed.hash(), whole.hash());
}

fn error_of(bytes: Vec<u8>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let err = Model::open(&path).expect_err("bad input is refused");
    let message = err.to_string();
    assert!(
        message.contains("bad.safetensors"),
        "the error names the file: {message}"
    );
    message
}

fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn bad_input_gets_an_error_naming_the_problem() {
    let good = Synth::random("mlp", 8, 1).to_safetensors(SDtype::F32);
    assert!(error_of(good[..good.len() - 3].to_vec()).contains("truncated file"));
    assert!(error_of(vec![1, 2, 3]).contains("truncated"));
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(error_of(huge).contains("100 MB"));
    let mut beyond = good.clone();
    beyond[..8].copy_from_slice(&((good.len() as u64) * 2).to_le_bytes());
    assert!(error_of(beyond).contains("beyond the end of the file"));
    assert!(error_of(with_header("{not json", &[])).contains("malformed header JSON"));
    let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    assert!(error_of(with_header(overlap, &[0; 12])).contains("overlapping or out-of-range"));
    let mismatch = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    assert!(error_of(with_header(mismatch, &[0; 8])).contains("do not match its byte length"));
    let unsupported = r#"{"a":{"dtype":"F4","shape":[8],"data_offsets":[0,4]}}"#;
    assert!(error_of(with_header(unsupported, &[0; 4])).contains("unsupported dtype F4"));

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(Model::open(&missing), Err(Error::Io { .. })));
    assert!(matches!(
        Model::open(dir.path()),
        Err(Error::EmptyDirectory { .. })
    ));
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index, r#"{"weight_map":{"a":"gone.safetensors"}}"#).unwrap();
    assert!(Model::open(&index)
        .unwrap_err()
        .to_string()
        .contains("gone.safetensors"));
}

#[test]
fn non_finite_values_are_deterministic() {
    let mut model = Synth::random("mlp", 16, 4);
    let data = &mut model.tensors.get_mut("embed.weight").unwrap().1;
    data[0] = f32::NAN;
    data[1] = f32::INFINITY;
    data[2] = f32::NEG_INFINITY;
    let a = Model::from_bytes("a", model.to_safetensors(SDtype::F32)).unwrap();
    let first = fingerprint::fingerprint(&a, &CpuBackend, |_| {}).unwrap();
    let second = fingerprint::fingerprint(&a, &CpuBackend, |_| {}).unwrap();
    assert_eq!(first, second);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes, and valid files with arbitrary corruption, never panic.
    #[test]
    fn header_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Model::from_bytes("fuzz", bytes);
    }

    #[test]
    fn corrupted_files_never_panic(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8), cut in 0usize..400) {
        let mut bytes = Synth::random("conv", 2, 9).to_safetensors(SDtype::F32);
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        bytes.truncate(bytes.len() - cut.min(bytes.len()));
        if let Ok(model) = Model::from_bytes("fuzz", bytes) {
            let _ = fingerprint::fingerprint(&model, &CpuBackend, |_| {});
        }
    }

    #[test]
    fn fingerprint_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut input = b"MRFP\x01\x00\x20\x00\x67\xe6\x09\x6a".to_vec();
        input.extend(bytes);
        let _ = Fingerprint::decode(&input);
    }
}
