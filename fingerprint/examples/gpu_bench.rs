//! GPU benchmark and bit-identity check: `gpu_bench PATH [BACKENDS]` (default `cpu,cuda`).
//!
//! For each backend: the whole fingerprint of PATH (a warm-up run, then a timed one) and its
//! GB/s from the page cache; every backend's fingerprint must equal the CPU's bit for bit (the
//! program exits 1 otherwise). Then, for each GPU backend, the kernel's rate on one resident
//! block (the largest residual-anchored matrix of the model, up to 128 MiB, its data uploaded
//! once and the kernel launched 20 times): GB/s for weights already on the device.

use std::process::ExitCode;
use std::time::Instant;

use fingerprint::backend::{self, BackendKind};
use fingerprint::scale::{self, Axis};
use fingerprint::sketch::{self, SideJob};
use fingerprint::{Fingerprint, Model};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: gpu_bench PATH [cpu,cuda,wgpu]");
    let kinds: Vec<BackendKind> = args
        .next()
        .unwrap_or_else(|| "cpu,cuda".into())
        .split(',')
        .map(|k| k.parse().expect("a backend name"))
        .collect();
    let model = Model::open(path.as_ref()).expect("the model opens");
    let bytes = model.data_bytes() as f64;
    println!(
        "{path}: {:.2} GB in {} tensors",
        bytes / 1e9,
        model.tensors().len()
    );
    let mut reference: Option<Fingerprint> = None;
    let mut ok = true;
    for kind in kinds {
        let backend = match backend::create(kind) {
            Ok(b) => b,
            Err(e) => {
                println!("{kind}: unavailable ({e})");
                ok = false;
                continue;
            }
        };
        let _ = fingerprint::fingerprint(&model, backend.as_ref(), |_| {}).expect("fingerprints");
        let started = Instant::now();
        let fp = fingerprint::fingerprint(&model, backend.as_ref(), |_| {}).expect("fingerprints");
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{kind}: whole fingerprint {seconds:.3} s, {:.2} GB/s end to end, {}",
            bytes / seconds / 1e9,
            fingerprint::hex(&fp.hash())
        );
        match &reference {
            None => reference = Some(fp),
            Some(r) if *r == fp => println!("{kind}: identical to the first backend, bit for bit"),
            Some(_) => {
                println!("{kind}: DIFFERS from the first backend");
                ok = false;
            }
        }
        if kind != BackendKind::Cpu {
            resident(&model, kind);
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The kernel's rate on the largest anchored matrix, resident on the device.
fn resident(model: &Model, kind: BackendKind) {
    let Some(anchors) = fingerprint::anchor::compute(model) else {
        println!("{kind}: no vocabulary table, no resident measurement");
        return;
    };
    let width = u64::from(anchors.width);
    let Some(t) = model
        .tensors()
        .iter()
        .filter(|t| t.shape.len() == 2 && t.shape[1] == width && t.dtype.sketchable())
        .filter(|t| t.byte_len() <= 128 << 20)
        .max_by_key(|t| t.byte_len())
    else {
        return;
    };
    let (rows, cols) = (t.shape[0] as usize, t.shape[1] as usize);
    let data = model.data(t);
    let bytes: &[u8] = &data;
    let tops = scale::unit_tops(t.dtype, bytes, rows, cols, Axis::Rows);
    let job = SideJob {
        dtype: t.dtype,
        bytes,
        rows: rows as u32,
        cols: cols as u32,
        axis: Axis::Rows,
        tops: &tops,
        bits: sketch::bits_for(cols as u64, anchors.table.max).expect("bits"),
        probes: &anchors.table,
    };
    let seconds = match kind {
        BackendKind::Cuda => {
            fingerprint::backend::gpu::CudaBackend::cuda().and_then(|b| b.time_resident(&job, 20))
        }
        _ => fingerprint::backend::gpu::WgpuBackend::wgpu().and_then(|b| b.time_resident(&job, 20)),
    };
    match seconds {
        Ok(s) => println!(
            "{kind}: resident {} ({rows}x{cols} {}): {:.3} ms per pass, {:.1} GB/s",
            t.name,
            t.dtype.name(),
            s * 1e3,
            t.byte_len() as f64 / s / 1e9
        ),
        Err(e) => println!("{kind}: resident measurement failed: {e}"),
    }
}
