//! Model folders through the `registry` program: a Hugging Face style release (sharded
//! safetensors with their index, config, tokenizer, card) minted as one model and stored as
//! one directory, downloaded back byte for byte, verified; the same weights in one file have
//! the same content root (so they are the same model, refused as a duplicate).

use std::path::Path;

use safetensors::SafeTensors;
use serde_json::json;

use crate::market::{id, path_str, Env};
use crate::models::write_model;

/// Splits the one-file model at `single` into a Hugging Face folder at `dir`: two shards, the
/// index naming each tensor's shard, and the files beside the weights.
fn hugging_face_folder(single: &Path, dir: &Path) -> Vec<&'static str> {
    std::fs::create_dir_all(dir).unwrap();
    let bytes = std::fs::read(single).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    let (first, second) = names.split_at(1);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = part
            .iter()
            .map(|name| (name.clone(), tensors.tensor(name).unwrap()))
            .collect();
        std::fs::write(
            dir.join(shard),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
        for name in part {
            weight_map.insert(name.clone(), shard.into());
        }
    }
    let index = json!({ "metadata": { "total_size": bytes.len() }, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"hidden_size": 64}"#).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        br#"{"model_max_length": 512}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("README.md"),
        b"---\nlicense: apache-2.0\n---\n# folder model\n",
    )
    .unwrap();
    std::fs::write(dir.join(".gitattributes"), b"*.safetensors filter=lfs\n").unwrap();
    vec![
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "config.json",
        "tokenizer_config.json",
        "README.md",
    ]
}

#[test]
fn a_model_folder_is_minted_downloaded_and_verified_whole() {
    let env = Env::start(false);
    let single = env.path("single.safetensors");
    write_model(&single, 91, 0.0);
    let folder = env.path("release");
    let files = hugging_face_folder(&single, &folder);

    // One file or its shards: the same content root.
    let of_file = env.ok(0, &["fingerprint", path_str(&single), "--json"]);
    let of_folder = env.ok(0, &["fingerprint", path_str(&folder), "--json"]);
    assert_eq!(of_file["content_root"], of_folder["content_root"]);
    assert_eq!(of_file["fingerprint"], of_folder["fingerprint"]);

    // Minted from the folder: the weights are its directory, config and card included.
    let minted = env.ok(
        0,
        &["mint", path_str(&folder), "--name", "release", "--json"],
    );
    let model = id(&minted, "model");
    let weights = id(&minted, "weights_cid");
    let listed = env.path("listed");
    env.ok(0, &["content", "get", &weights, "--out", path_str(&listed)]);
    for name in &files {
        assert_eq!(
            std::fs::read(listed.join(name)).unwrap(),
            std::fs::read(folder.join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(
        !listed.join(".gitattributes").exists(),
        "hidden files stay out, as ipfs add -r"
    );

    // The same weights as one file are the same model: refused.
    let refused = env.fails(0, &["mint", path_str(&single), "--name", "again"], 2);
    assert!(
        refused.contains(&format!("already registered as model {model}")),
        "{refused}"
    );

    // Downloaded by its owner into a new folder, checked against the chain, byte for byte.
    let out = env.path("downloaded");
    let done = env.ok(0, &["download", &model, "--out", path_str(&out), "--json"]);
    assert_eq!(done["model"], model);
    for name in &files {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(folder.join(name)).unwrap(),
            "{name}"
        );
    }
    // An existing target is not written into.
    let again = env.fails(0, &["download", &model, "--out", path_str(&out)], 2);
    assert!(again.contains("already exists"), "{again}");
    let verified = env.ok(0, &["verify", &model, "--json"]);
    assert_eq!(verified["ok"], true, "{verified}");

    // Encrypted models are one file: a folder with --encrypt is refused by name.
    let sealed = env.fails(
        0,
        &["mint", path_str(&folder), "--name", "x", "--encrypt"],
        2,
    );
    assert!(sealed.contains("is a folder"), "{sealed}");

    // Weights the fingerprint would not read (a loader's first choice beside the shards):
    // refused, naming the file.
    let other = env.path("other");
    hugging_face_folder(&single, &other);
    write_model(&other.join("model.safetensors"), 92, 0.0);
    let stray = env.fails(0, &["mint", path_str(&other), "--name", "stray"], 2);
    assert!(
        stray.contains("model.safetensors") && stray.contains("does not cover"),
        "{stray}"
    );
}

/// A GGUF v3 file holding `single`'s tensors as F32, as llama.cpp lays one out.
fn gguf_of(single: &Path, out: &Path) {
    let bytes = std::fs::read(single).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    let mut file = b"GGUF".to_vec();
    file.extend_from_slice(&3u32.to_le_bytes());
    file.extend_from_slice(&(names.len() as u64).to_le_bytes());
    file.extend_from_slice(&0u64.to_le_bytes());
    let mut data = Vec::new();
    for name in &names {
        let t = tensors.tensor(name).unwrap();
        file.extend_from_slice(&(name.len() as u64).to_le_bytes());
        file.extend_from_slice(name.as_bytes());
        file.extend_from_slice(&(t.shape().len() as u32).to_le_bytes());
        for d in t.shape().iter().rev() {
            file.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&(data.len() as u64).to_le_bytes());
        data.extend_from_slice(t.data());
        data.resize(data.len().div_ceil(32) * 32, 0);
    }
    file.resize(file.len().div_ceil(32) * 32, 0);
    file.extend_from_slice(&data);
    std::fs::write(out, file).unwrap();
}

#[test]
fn a_gguf_model_is_minted_downloaded_and_verified() {
    let env = Env::start(false);
    let single = env.path("single.safetensors");
    write_model(&single, 93, 0.0);
    let gguf = env.path("model.gguf");
    gguf_of(&single, &gguf);
    let minted = env.ok(0, &["mint", path_str(&gguf), "--name", "gguf", "--json"]);
    let model = id(&minted, "model");
    // Downloaded whole (it is no safetensors file to check as it arrives), checked, written.
    let out = env.path("downloaded.gguf");
    env.ok(0, &["download", &model, "--out", path_str(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&gguf).unwrap());
    let verified = env.ok(0, &["verify", &model, "--json"]);
    assert_eq!(verified["ok"], true, "{verified}");
    // Encrypted models are safetensors files: a GGUF with --encrypt is refused by name.
    let sealed = env.fails(0, &["mint", path_str(&gguf), "--name", "x", "--encrypt"], 2);
    assert!(sealed.contains("is a GGUF file"), "{sealed}");
}

/// An 8-bit GPTQ copy of `single` in a folder, as AutoGPTQ packs one: each 2-D weight `W`
/// (`out × in`) becomes `qweight` (I32, four inputs a word), `qzeros` (the zero point 128,
/// stored minus one), `scales` (F16, one group) and `g_idx`; the rest stays as stored.
fn gptq8_of(single: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let bytes = std::fs::read(single).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in tensors.tensors() {
        let (Some(prefix), [rows, cols]) = (name.strip_suffix(".weight"), t.shape()) else {
            out.push((
                name.clone(),
                t.dtype(),
                t.shape().to_vec(),
                t.data().to_vec(),
            ));
            continue;
        };
        let (rows, cols) = (*rows, *cols);
        let w: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let scales: Vec<half::f16> = (0..rows)
            .map(|j| {
                let max = w[j * cols..(j + 1) * cols]
                    .iter()
                    .fold(0f32, |m, x| m.max(x.abs()));
                half::f16::from_f32(max / 127.0)
            })
            .collect();
        let q = |j: usize, i: usize| {
            ((w[j * cols + i] / scales[j].to_f32()).round() + 128.0).clamp(0.0, 255.0) as u32
        };
        let words = |v: Vec<u32>| {
            v.into_iter()
                .flat_map(u32::to_le_bytes)
                .collect::<Vec<u8>>()
        };
        let qweight = (0..cols / 4)
            .flat_map(|r| (0..rows).map(move |j| (r, j)))
            .map(|(r, j)| (0..4).fold(0u32, |word, k| word | (q(j, 4 * r + k) << (8 * k))))
            .collect();
        let zeros = vec![127u32 * 0x0101_0101; rows / 4];
        let i32s = safetensors::Dtype::I32;
        out.extend([
            (
                format!("{prefix}.qweight"),
                i32s,
                vec![cols / 4, rows],
                words(qweight),
            ),
            (
                format!("{prefix}.qzeros"),
                i32s,
                vec![1, rows / 4],
                words(zeros),
            ),
            (
                format!("{prefix}.scales"),
                safetensors::Dtype::F16,
                vec![1, rows],
                scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
            ),
            (
                format!("{prefix}.g_idx"),
                i32s,
                vec![cols],
                vec![0; cols * 4],
            ),
        ]);
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = out
        .iter()
        .map(|(n, d, s, b)| {
            let view = safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap();
            (n.clone(), view)
        })
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    let config =
        json!({"quantization_config": {"quant_method": "gptq", "bits": 8, "group_size": -1}});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn a_gptq_copy_of_a_registered_model_is_refused_as_an_undeclared_derivative() {
    let env = Env::start(false);
    let single = env.path("original.safetensors");
    write_model(&single, 94, 0.0);
    let minted = env.ok(
        0,
        &["mint", path_str(&single), "--name", "original", "--json"],
    );
    let model = id(&minted, "model");
    // Its packed integers are read as the weights they stand for: the same parameters.
    let packed = env.path("gptq");
    gptq8_of(&single, &packed);
    let of_original = env.ok(0, &["fingerprint", path_str(&single), "--json"]);
    let of_packed = env.ok(0, &["fingerprint", path_str(&packed), "--json"]);
    assert_eq!(of_packed["parameters"], of_original["parameters"]);
    assert_ne!(of_packed["content_root"], of_original["content_root"]);
    // So minting it as a new model is refused, naming the original.
    let refused = env.fails(1, &["mint", path_str(&packed), "--name", "copy"], 2);
    assert!(
        refused.contains(&format!("from model {model}"))
            && refused.contains("not declared as a parent"),
        "{refused}"
    );
}
