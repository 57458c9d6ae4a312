//! Whole fingerprints are bit-identical on every backend available here (the CPU, and wgpu on
//! lavapipe or a GPU); CUDA where a driver is present.

use fingerprint::backend::{self, BackendKind, CpuBackend};
use fingerprint::Model;
use safetensors::Dtype as SDtype;

use crate::synth::Synth;

#[test]
fn cpu_and_wgpu_fingerprints_are_identical() {
    let wgpu = backend::create(BackendKind::Wgpu)
        .expect("a wgpu adapter (apt-get install mesa-vulkan-drivers)");
    let cuda = backend::create(BackendKind::Cuda).ok();
    for (arch, width) in [("mlp", 48), ("attn", 40), ("conv", 7)] {
        for dtype in [SDtype::F32, SDtype::F16, SDtype::BF16, SDtype::I8] {
            let model = Model::from_bytes(
                "m",
                Synth::random(arch, width, 5)
                    .perturbed(0.3, 6)
                    .to_safetensors(dtype),
            )
            .unwrap();
            let cpu = fingerprint::fingerprint(&model, &CpuBackend, |_| {}).unwrap();
            let gpu = fingerprint::fingerprint(&model, wgpu.as_ref(), |_| {}).unwrap();
            assert_eq!(cpu, gpu, "{arch} {dtype:?}: wgpu differs from the CPU");
            assert_eq!(cpu.hash(), gpu.hash());
            if let Some(cuda) = &cuda {
                assert_eq!(
                    fingerprint::fingerprint(&model, cuda.as_ref(), |_| {}).unwrap(),
                    cpu,
                    "{arch} {dtype:?}: cuda"
                );
            }
        }
    }
}
