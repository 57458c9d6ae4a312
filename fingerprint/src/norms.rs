//! Norm gains, folded into the matrices that read the norm's output.
//!
//! An RMSNorm model's residual stream can be rotated only after each norm's gain `g` has been
//! folded into the matrices that read the norm (`W → W·diag(g)`, the gain set to one), which
//! is exactly what SliceGPT and QuaRot do first. So the fingerprint reads such a matrix in its
//! folded form whether or not it is stored folded: its anchored side is probed with `g ⊙ a_p`
//! instead of the anchor `a_p` (`W·(g ⊙ a_p) = (W·diag(g))·a_p`), and a vocabulary head read
//! after the final norm contributes `g ⊙ a_p` to the anchors ([`crate::anchor`]). A folded
//! copy (gains one, or absent) is probed with `a_p` itself: both give the same responses.
//!
//! Which gain belongs to which matrix is not in the weights; it is read from the tensor names
//! of the common conventions ([`gain_name`]): Hugging Face Llama, Mistral, Qwen 2 and Phi-3,
//! and GGUF. Renaming a model's tensors therefore loses the folding of its *unfolded* copy
//! (the rest of its units still match); a folded-and-rotated copy needs no names at all.
//! Gains that are not mostly positive are not folded: Gemma stores `w` for a gain `1 + w`
//! under the same names, and folding `w` would be wrong.

use crate::dtype::{self, Value};
use crate::probe::{ProbeTable, K};
use crate::source::{Model, TensorRef};

/// Target root mean square of an anchor table's integers.
pub(crate) const ANCHOR_RMS: f64 = 32.0;

/// The gain tensor's name for a matrix that reads a norm's output, by naming convention.
pub fn gain_name(matrix: &str) -> Option<String> {
    let hf_attn = [".self_attn.q_proj.weight", ".self_attn.k_proj.weight"];
    let hf_attn_more = [".self_attn.v_proj.weight", ".self_attn.qkv_proj.weight"];
    let hf_mlp = [
        ".mlp.gate_proj.weight",
        ".mlp.up_proj.weight",
        ".mlp.gate_up_proj.weight",
    ];
    let gguf_attn = [
        ".attn_q.weight",
        ".attn_k.weight",
        ".attn_v.weight",
        ".attn_qkv.weight",
    ];
    let gguf_mlp = [".ffn_gate.weight", ".ffn_up.weight"];
    let rules: [(&[&str], &str); 5] = [
        (&hf_attn, ".input_layernorm.weight"),
        (&hf_attn_more, ".input_layernorm.weight"),
        (&hf_mlp, ".post_attention_layernorm.weight"),
        (&gguf_attn, ".attn_norm.weight"),
        (&gguf_mlp, ".ffn_norm.weight"),
    ];
    for (suffixes, gain) in rules {
        for s in suffixes {
            if let Some(prefix) = matrix.strip_suffix(s) {
                return Some(format!("{prefix}{gain}"));
            }
        }
    }
    match matrix {
        "lm_head.weight" => Some("model.norm.weight".into()),
        "output.weight" => Some("output_norm.weight".into()),
        _ => None,
    }
}

fn value_f64(v: Value) -> Option<f64> {
    match v {
        Value::Finite { negative, mag, exp } => {
            let x = f64::from(mag) * 2f64.powi(exp);
            Some(if negative { -x } else { x })
        }
        Value::NaN | Value::Inf { .. } => None,
    }
}

/// The gain to fold into `matrix`, a vector of the residual `width`: `None` when there is
/// none, it cannot be read (not a float vector of that length, or not finite), it is not
/// mostly positive (7/8 of its entries), or it is constant (folding a constant changes no
/// anchor table).
pub fn gain(model: &Model, matrix: &str, width: usize) -> Option<Vec<f64>> {
    let name = gain_name(matrix)?;
    let t: &TensorRef = model.tensors().iter().find(|t| t.name == name)?;
    if t.shape != [width as u64] || t.dtype.float_layout().is_none() {
        return None;
    }
    let data = model.data(t);
    let bytes: &[u8] = &data;
    let g = (0..width)
        .map(|i| value_f64(dtype::decode(t.dtype, t.dtype.bits_at(bytes, i))))
        .collect::<Option<Vec<f64>>>()?;
    let positive = g.iter().filter(|&&x| x > 0.0).count();
    let constant = g.iter().all(|&x| x == g[0]);
    (positive * 8 >= width * 7 && !constant).then_some(g)
}

/// The probe table of exact anchors `sum` (`width × 64`, f64), each multiplied by `gain`
/// where given, scaled to a root mean square of [`ANCHOR_RMS`] per probe and rounded to
/// integers in `[−127, 127]`. Root mean squares do not change under rotations, so neither
/// does the scale.
pub(crate) fn table(sum: &[f64], gain: Option<&[f64]>, width: usize) -> ProbeTable {
    let at = |j: usize, p: usize| sum[j * K + p] * gain.map_or(1.0, |g| g[j]);
    let mut values = vec![0i8; width * K];
    for p in 0..K {
        let ms: f64 = (0..width).map(|j| at(j, p).powi(2)).sum::<f64>() / width as f64;
        if ms > 0.0 {
            let scale = ANCHOR_RMS / ms.sqrt();
            for j in 0..width {
                values[j * K + p] = (at(j, p) * scale).round().clamp(-127.0, 127.0) as i8;
            }
        }
    }
    let max = values
        .iter()
        .map(|v| v.unsigned_abs() as u32)
        .max()
        .unwrap_or(0);
    ProbeTable { values, max }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_find_the_gain_before_them() {
        let cases = [
            (
                "model.layers.3.self_attn.k_proj.weight",
                Some("model.layers.3.input_layernorm.weight"),
            ),
            (
                "model.layers.0.mlp.gate_up_proj.weight",
                Some("model.layers.0.post_attention_layernorm.weight"),
            ),
            ("blk.7.attn_qkv.weight", Some("blk.7.attn_norm.weight")),
            ("blk.7.ffn_up.weight", Some("blk.7.ffn_norm.weight")),
            ("lm_head.weight", Some("model.norm.weight")),
            ("output.weight", Some("output_norm.weight")),
            // writers of the residual stream read no norm
            ("model.layers.3.self_attn.o_proj.weight", None),
            ("model.layers.3.mlp.down_proj.weight", None),
            ("model.embed_tokens.weight", None),
        ];
        for (matrix, gain) in cases {
            assert_eq!(gain_name(matrix).as_deref(), gain, "{matrix}");
        }
    }

    #[test]
    fn a_gain_of_ones_leaves_the_table_as_it_is() {
        let width = 40;
        let sum: Vec<f64> = (0..width * K)
            .map(|i| ((i * 37) % 101) as f64 - 50.0)
            .collect();
        let ones = vec![1.0; width];
        let plain = table(&sum, None, width);
        assert_eq!(table(&sum, Some(&ones), width).values, plain.values);
        // a gain that halves one channel changes that channel's probes only (up to the scale)
        let mut g = ones.clone();
        g[3] = 0.5;
        let folded = table(&sum, Some(&g), width);
        let differ = (0..width)
            .filter(|&j| (0..K).any(|p| folded.values[j * K + p] != plain.values[j * K + p]))
            .collect::<Vec<_>>();
        assert!(differ.contains(&3), "{differ:?}");
    }
}
