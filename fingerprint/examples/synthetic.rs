//! Writes a synthetic safetensors model of about `SIZE_MB` megabytes (default 1024) to `PATH`,
//! for benchmarks: `cargo run --release -p fingerprint --example synthetic -- PATH [SIZE_MB]
//! [f32|f16|bf16] [small|llama7b]`. A token embedding (32 000 rows) comes first, so the
//! residual anchors are exercised, then transformer blocks (`small`: 2048 wide, 4 square
//! projections and a 4x MLP; `llama7b`: 4096 wide, 11008 MLP with gate, up and down). Streams
//! the data, so memory stays small.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: synthetic PATH [SIZE_MB]");
    let size_mb: u64 = args
        .next()
        .map(|s| s.parse().expect("SIZE_MB is a number"))
        .unwrap_or(1024);
    let dtype = args.next().unwrap_or_else(|| "f32".into());
    let size: u64 = match dtype.as_str() {
        "f32" => 4,
        "f16" | "bf16" => 2,
        other => panic!("unknown dtype {other} (f32, f16 or bf16)"),
    };
    let shape = args.next().unwrap_or_else(|| "small".into());
    let (width, ff) = match shape.as_str() {
        "small" => (2048u64, 8192u64),
        "llama7b" => (4096, 11008),
        other => panic!("unknown shape {other} (small or llama7b)"),
    };
    let mut block: Vec<(String, [u64; 2])> = vec![
        ("attn.q.weight".into(), [width, width]),
        ("attn.k.weight".into(), [width, width]),
        ("attn.v.weight".into(), [width, width]),
        ("attn.o.weight".into(), [width, width]),
        ("mlp.up.weight".into(), [ff, width]),
        ("mlp.down.weight".into(), [width, ff]),
    ];
    if shape == "llama7b" {
        block.push(("mlp.gate.weight".into(), [ff, width]));
    }
    let block_bytes: u64 = block.iter().map(|(_, s)| s[0] * s[1] * size).sum();
    let embed = [32_000u64, width];
    let embed_bytes = embed[0] * embed[1] * size;
    let blocks = (size_mb * 1_000_000)
        .saturating_sub(embed_bytes)
        .div_ceil(block_bytes)
        .max(1);
    let mut tensors = Vec::new();
    tensors.push(("embed_tokens.weight".to_string(), embed, 0, embed_bytes));
    let mut offset = embed_bytes;
    for b in 0..blocks {
        for (name, shape) in &block {
            let len = shape[0] * shape[1] * size;
            tensors.push((format!("blocks.{b}.{name}"), *shape, offset, offset + len));
            offset += len;
        }
    }
    let header: serde_json::Map<String, serde_json::Value> = tensors
        .iter()
        .map(|(n, s, a, b)| {
            (
                n.clone(),
                serde_json::json!({"dtype": dtype.to_uppercase(), "shape": s, "data_offsets": [a, b]}),
            )
        })
        .collect();
    let mut header = serde_json::to_string(&header)?.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(&header)?;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut buf = Vec::with_capacity(1 << 20);
    for (_, shape, _, _) in &tensors {
        let scale = 1.0 / (shape[1] as f32).sqrt();
        let mut left = shape[0] * shape[1];
        while left > 0 {
            let n = left.min(1 << 18);
            buf.clear();
            for _ in 0..n {
                // xorshift64*, then a sum of two uniforms: cheap, roughly bell-shaped weights.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
                let u = (r >> 40) as f32 / (1u64 << 24) as f32
                    + (r & 0xff_ffff) as f32 / (1u64 << 24) as f32
                    - 1.0;
                let x = u * scale;
                match size {
                    4 => buf.extend_from_slice(&x.to_le_bytes()),
                    _ if dtype == "f16" => {
                        buf.extend_from_slice(&half::f16::from_f32(x).to_le_bytes())
                    }
                    _ => buf.extend_from_slice(&half::bf16::from_f32(x).to_le_bytes()),
                }
            }
            out.write_all(&buf)?;
            left -= n;
        }
    }
    out.flush()?;
    eprintln!(
        "wrote {path}: {} tensors, {:.1} MB",
        tensors.len(),
        offset as f64 / 1e6
    );
    Ok(())
}
