//! Small generated safetensors models for tests, shared by the registry crate's and the CLI's
//! test binaries.

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// Writes a two-layer model with weights from `seed`, plus `noise` times a second stream.
pub fn write_model(path: &Path, seed: u32, noise: f32) {
    let value = registry::demo::uniform;
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = [
        ("fc1.weight", vec![64, 32]),
        ("fc2.weight", vec![16, 64]),
        ("fc1.bias", vec![64]),
    ]
    .into_iter()
    .enumerate()
    .map(|(t, (name, shape))| {
        let n: usize = shape.iter().product();
        let bytes = (0..n as u32)
            .flat_map(|k| {
                let k = k + 10_000 * t as u32;
                (value(k, seed) + noise * value(k, seed ^ 0xdead)).to_le_bytes()
            })
            .collect();
        (name.to_string(), shape, bytes)
    })
    .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}
