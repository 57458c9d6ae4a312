//! Fingerprints a model on the CPU and prints the time of each stage and the throughput:
//! `cargo run --release -p fingerprint --example throughput -- PATH`.

use std::time::Instant;

use fingerprint::backend::CpuBackend;
use fingerprint::Model;

fn main() -> fingerprint::Result<()> {
    let path = std::env::args().nth(1).expect("usage: throughput PATH");
    let model = Model::open(path.as_ref())?;
    let bytes = model.data_bytes() as f64;
    let t = Instant::now();
    for tensor in model.tensors() {
        std::hint::black_box(fingerprint::content::data_hash(
            tensor.dtype,
            &tensor.shape,
            &model.data(tensor),
        ));
    }
    let hash = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let fp = fingerprint::fingerprint(&model, &CpuBackend, |_| {})?;
    let all = t.elapsed().as_secs_f64();
    println!(
        "{:.1} MB: content hashes {:.3} s ({:.2} GB/s); whole fingerprint {:.3} s ({:.2} GB/s); {}",
        bytes / 1e6,
        hash,
        bytes / hash / 1e9,
        all,
        bytes / all / 1e9,
        fingerprint::hex(&fp.hash())
    );
    Ok(())
}
