//! Seeded synthetic models and the derivations the verdict tests apply to them.

use std::collections::BTreeMap;

use fingerprint::{backend::CpuBackend, Fingerprint, Model, Tokens};
use safetensors::tensor::TensorView;
use safetensors::Dtype as SDtype;

/// A model in memory: tensors by name, as f32 row-major with a shape.
#[derive(Debug, Clone)]
pub(crate) struct Synth {
    pub(crate) tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

/// splitmix64: small, seeded, good enough for test weights.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub(crate) fn normal(&mut self) -> f32 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

/// The architectures the tests use: (name, shape) lists.
pub(crate) fn architecture(kind: &str, width: usize) -> Vec<(String, Vec<usize>)> {
    let mut t = Vec::new();
    match kind {
        "mlp" => {
            t.push(("embed.weight".to_string(), vec![500, width]));
            for l in 0..3 {
                t.push((format!("layers.{l}.fc1.weight"), vec![4 * width, width]));
                t.push((format!("layers.{l}.fc1.bias"), vec![4 * width]));
                t.push((format!("layers.{l}.fc2.weight"), vec![width, 4 * width]));
                t.push((format!("layers.{l}.norm.weight"), vec![width]));
            }
            t.push(("head.weight".to_string(), vec![10, width]));
        }
        "attn" => {
            for l in 0..2 {
                for p in ["q", "k", "v", "o"] {
                    t.push((format!("blocks.{l}.attn.{p}.weight"), vec![width, width]));
                }
                t.push((format!("blocks.{l}.mlp.up.weight"), vec![3 * width, width]));
                t.push((
                    format!("blocks.{l}.mlp.down.weight"),
                    vec![width, 3 * width],
                ));
                t.push((format!("blocks.{l}.ln.weight"), vec![width]));
            }
        }
        "conv" => {
            t.push(("conv1.weight".to_string(), vec![width, 3, 3, 3]));
            t.push(("conv2.weight".to_string(), vec![2 * width, width, 3, 3]));
            t.push(("conv2.bias".to_string(), vec![2 * width]));
            t.push(("fc.weight".to_string(), vec![10, 2 * width * 4]));
        }
        other => panic!("unknown architecture {other}"),
    }
    t
}

impl Synth {
    /// Independently "trained" weights: normal, scaled by 1/sqrt(fan-in); norms around 1.
    pub(crate) fn random(kind: &str, width: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let tensors = architecture(kind, width)
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let data = if shape.len() == 1 {
                    (0..n).map(|_| 1.0 + 0.1 * rng.normal()).collect()
                } else {
                    let fan_in: usize = shape[1..].iter().product();
                    let scale = 1.0 / (fan_in as f32).sqrt();
                    (0..n).map(|_| rng.normal() * scale).collect()
                };
                (name, (shape, data))
            })
            .collect();
        Self { tensors }
    }

    pub(crate) fn map(&self, mut f: impl FnMut(&str, &mut Vec<usize>, &mut Vec<f32>)) -> Self {
        let mut out = self.clone();
        for (name, (shape, data)) in out.tensors.iter_mut() {
            f(name, shape, data);
        }
        out
    }

    /// Every element plus noise of `relative` times the tensor's standard deviation.
    pub(crate) fn perturbed(&self, relative: f32, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        self.map(|_, _, data| {
            let std = (data.iter().map(|x| x * x).sum::<f32>() / data.len() as f32).sqrt();
            data.iter_mut()
                .for_each(|x| *x += relative * std * rng.normal());
        })
    }

    /// Zeroes the smaller half (by magnitude) of every matrix.
    pub(crate) fn pruned(&self) -> Self {
        self.map(|_, shape, data| {
            if shape.len() >= 2 {
                let mut mags: Vec<f32> = data.iter().map(|x| x.abs()).collect();
                mags.sort_by(f32::total_cmp);
                let cut = mags[mags.len() / 2];
                data.iter_mut()
                    .filter(|x| x.abs() < cut)
                    .for_each(|x| *x = 0.0);
            }
        })
    }

    /// Symmetric int8 quantization per row, then back to f32.
    pub(crate) fn int8_round_trip(&self) -> Self {
        self.map(|_, shape, data| {
            let row = shape[1..].iter().product::<usize>().max(1);
            for chunk in data.chunks_mut(row) {
                let scale = chunk.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
                if scale > 0.0 {
                    chunk
                        .iter_mut()
                        .for_each(|x| *x = (*x / scale).round().clamp(-127.0, 127.0) * scale);
                }
            }
        })
    }

    pub(crate) fn bf16_round_trip(&self) -> Self {
        self.map(|_, _, data| {
            data.iter_mut()
                .for_each(|x| *x = half::bf16::from_f32(*x).to_f32())
        })
    }

    /// The element-wise mean of two models of the same architecture.
    pub(crate) fn merged(&self, other: &Synth) -> Self {
        let mut out = self.clone();
        for (name, (_, data)) in out.tensors.iter_mut() {
            let (_, o) = &other.tensors[name];
            data.iter_mut()
                .zip(o)
                .for_each(|(x, y)| *x = 0.5 * *x + 0.5 * y);
        }
        out
    }

    pub(crate) fn renamed(&self) -> Self {
        let tensors = self
            .tensors
            .iter()
            .map(|(n, t)| (format!("model.renamed.{}", n.replace('.', "_")), t.clone()))
            .collect();
        Self { tensors }
    }

    /// Every 2-D matrix stored transposed (as some frameworks store linear layers).
    pub(crate) fn transposed(&self) -> Self {
        self.map(|_, shape, data| {
            if shape.len() == 2 {
                let (m, n) = (shape[0], shape[1]);
                let t: Vec<f32> = (0..n)
                    .flat_map(|j| (0..m).map(move |i| (i, j)))
                    .map(|(i, j)| data[i * n + j])
                    .collect();
                *data = t;
                shape.swap(0, 1);
            }
        })
    }

    /// Serializes with every tensor in `dtype` (F32, F16, BF16, or I8 as symmetric per-tensor
    /// quantized values).
    pub(crate) fn to_safetensors(&self, dtype: SDtype) -> Vec<u8> {
        let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, (shape, data))| {
                let bytes: Vec<u8> = match dtype {
                    SDtype::F32 => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    SDtype::F16 => data
                        .iter()
                        .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                        .collect(),
                    SDtype::BF16 => data
                        .iter()
                        .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                        .collect(),
                    SDtype::I8 => {
                        let scale = data.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
                        data.iter()
                            .map(|x| {
                                if scale > 0.0 {
                                    (x / scale).round() as i8 as u8
                                } else {
                                    0
                                }
                            })
                            .collect()
                    }
                    other => panic!("unsupported test dtype {other:?}"),
                };
                (name.clone(), shape.clone(), bytes)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = encoded
            .iter()
            .map(|(name, shape, bytes)| {
                (
                    name.clone(),
                    TensorView::new(dtype, shape.clone(), bytes).expect("valid view"),
                )
            })
            .collect();
        safetensors::serialize(views, None).expect("serializes")
    }

    pub(crate) fn fingerprint_as(&self, dtype: SDtype) -> Fingerprint {
        self.fingerprint_with(dtype, None)
    }

    /// The fingerprint of the model stored in `dtype`, its vocabulary `tokens`.
    pub(crate) fn fingerprint_with(&self, dtype: SDtype, tokens: Option<&Tokens>) -> Fingerprint {
        let model = Model::from_bytes("synthetic", self.to_safetensors(dtype))
            .expect("valid model")
            .with_tokens(tokens.cloned());
        fingerprint::fingerprint(&model, &CpuBackend, |_| {}).expect("fingerprints")
    }

    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.fingerprint_as(SDtype::F32)
    }
}

impl Synth {
    /// The F32 tensors of an opened model.
    pub(crate) fn from_model(model: &Model) -> Self {
        let tensors = model
            .tensors()
            .iter()
            .filter(|t| t.dtype == fingerprint::Dtype::F32)
            .map(|t| {
                let data = model
                    .data(t)
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                (
                    t.name.clone(),
                    (t.shape.iter().map(|&d| d as usize).collect(), data),
                )
            })
            .collect();
        Self { tensors }
    }

    /// A model of the same tensor names and shapes with independent random weights.
    pub(crate) fn random_like(&self, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        self.map(|_, shape, data| {
            let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
            let scale = if shape.len() == 1 {
                0.1
            } else {
                1.0 / (fan_in as f32).sqrt()
            };
            let offset = if shape.len() == 1 { 1.0 } else { 0.0 };
            data.iter_mut()
                .for_each(|x| *x = offset + scale * rng.normal());
        })
    }
}
