//! Opens a model and reads every tensor once as the fingerprint reads it (dequantized, for a
//! quantized one), hashing it; prints the tensors, the bytes read and the time. Run under
//! `/usr/bin/time -v` for the peak memory: `scripts/bench-memory.sh`.
//!   cargo run --release -p fingerprint --example read_all -- PATH

use std::time::Instant;

use fingerprint::Model;

fn main() -> fingerprint::Result<()> {
    let path = std::env::args().nth(1).expect("usage: read_all PATH");
    let t = Instant::now();
    let model = Model::open(path.as_ref())?;
    let opened = t.elapsed().as_secs_f64();
    let mut read = 0u64;
    for tensor in model.storage_order() {
        let data = model.data(tensor);
        std::hint::black_box(fingerprint::content::data_hash(
            tensor.dtype,
            &tensor.shape,
            &data,
        ));
        read += data.len() as u64;
    }
    println!(
        "{} tensors, {:.1} MB read as the fingerprint reads them, opened in {opened:.2} s, read in {:.2} s",
        model.tensors().len(),
        read as f64 / 1e6,
        t.elapsed().as_secs_f64() - opened
    );
    Ok(())
}
