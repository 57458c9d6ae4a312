//! Writes a synthetic safetensors model of about `SIZE_MB` megabytes (default 1024) of f32
//! weights to `PATH`, for benchmarks: `cargo run --release -p fingerprint --example synthetic --
//! PATH [SIZE_MB]`. Streams the data, so memory stays small.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: synthetic PATH [SIZE_MB]");
    let size_mb: u64 = args
        .next()
        .map(|s| s.parse().expect("SIZE_MB is a number"))
        .unwrap_or(1024);
    // Transformer-like blocks of 2048-wide layers: 4 square projections and a 4x MLP.
    let width = 2048u64;
    let block: Vec<(String, [u64; 2])> = vec![
        ("attn.q.weight".into(), [width, width]),
        ("attn.k.weight".into(), [width, width]),
        ("attn.v.weight".into(), [width, width]),
        ("attn.o.weight".into(), [width, width]),
        ("mlp.up.weight".into(), [4 * width, width]),
        ("mlp.down.weight".into(), [width, 4 * width]),
    ];
    let block_bytes: u64 = block.iter().map(|(_, s)| s[0] * s[1] * 4).sum();
    let blocks = (size_mb * 1_000_000).div_ceil(block_bytes).max(1);
    let mut tensors = Vec::new();
    let mut offset = 0u64;
    for b in 0..blocks {
        for (name, shape) in &block {
            let len = shape[0] * shape[1] * 4;
            tensors.push((format!("blocks.{b}.{name}"), *shape, offset, offset + len));
            offset += len;
        }
    }
    let header: serde_json::Map<String, serde_json::Value> = tensors
        .iter()
        .map(|(n, s, a, b)| {
            (
                n.clone(),
                serde_json::json!({"dtype": "F32", "shape": s, "data_offsets": [a, b]}),
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
                buf.extend_from_slice(&(u * scale).to_le_bytes());
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
