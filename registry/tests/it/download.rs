//! Downloads fingerprint the weights while they are written: the fingerprint of a file read
//! behind its writer is the file's own, a writer that stops releases its reader, and an author
//! who lies about the weights (other weights stored than committed, a wrong plaintext size) is
//! caught before anything is written under the asked-for name.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use age::x25519::Identity;
use content::Blockstore;
use ethers::types::U256;
use registry::access::{download, DownloadRequest};
use registry::arriving::{Arrival, ArrivingFile};
use registry::progress::Silent;
use registry::verify::fingerprint_arriving;
use registry::Error;

use crate::models::write_model;
use crate::world::World;

/// A model of one 512 KiB tensor (from `seed`) and a header with metadata: several blocks
/// in the store, the header in the first.
fn write_large_model(path: &Path, seed: u32) {
    let bytes: Vec<u8> = (0..512 * 256u32)
        .flat_map(|k| {
            let x = (k ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(2_654_435_761);
            ((x >> 8) as f32 / 16_777_216.0 - 0.5).to_le_bytes()
        })
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![512, 256], &bytes)
            .unwrap();
    let metadata = Some(std::collections::HashMap::from([(
        "about".to_string(),
        "note".to_string(),
    )]));
    std::fs::write(
        path,
        safetensors::serialize([("w", view)], metadata).unwrap(),
    )
    .unwrap();
}

fn file_fingerprint(path: &Path) -> fingerprint::Fingerprint {
    let model = fingerprint::Model::open(path).unwrap();
    fingerprint::fingerprint(&model, &fingerprint::backend::CpuBackend, |_| {}).unwrap()
}

/// Writes `bytes` to `out` in small pieces with pauses, as a slow download would, stopping
/// after `stop_at` bytes; returns the fingerprint read behind the writer.
fn fingerprint_behind_a_writer(
    bytes: &[u8],
    out: &Path,
    stop_at: usize,
) -> Option<fingerprint::Fingerprint> {
    let arrival = Arrival::new();
    let mut file = ArrivingFile::create(out, bytes.len() as u64, arrival.clone()).unwrap();
    let reader = {
        let (out, arrival) = (out.to_path_buf(), arrival.clone());
        std::thread::spawn(move || {
            fingerprint_arriving(
                &out,
                &arrival,
                fingerprint::BackendKind::Cpu,
                &AtomicU64::new(0),
            )
            .unwrap()
        })
    };
    for piece in bytes[..stop_at].chunks(1000) {
        file.write_all(piece).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    drop(file);
    reader.join().unwrap()
}

#[test]
fn a_file_fingerprinted_behind_its_writer_has_its_own_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("m.safetensors");
    write_model(&original, 90, 0.0);
    let bytes = std::fs::read(&original).unwrap();
    let out = dir.path().join("arriving.safetensors");
    // Read too early (no gate), most of this file would still be zeros.
    let arrived = fingerprint_behind_a_writer(&bytes, &out, bytes.len()).unwrap();
    let at_rest = file_fingerprint(&original);
    assert!(
        arrived == at_rest,
        "read behind the writer: {}, at rest: {}",
        fingerprint::hex(&arrived.hash()),
        fingerprint::hex(&at_rest.hash())
    );
    // A writer that stops halfway releases the reader, which reports nothing.
    let out = dir.path().join("short.safetensors");
    assert!(fingerprint_behind_a_writer(&bytes, &out, bytes.len() / 2).is_none());
}

/// A bitsandbytes int8 checkpoint (`w.weight` I8 with its row scales `w.SCB`), whose weight
/// the fingerprint reads dequantized.
fn write_packed_model(path: &Path) {
    let (rows, cols) = (256usize, 512usize);
    let weight: Vec<u8> = (0..rows * cols)
        .map(|k| ((k as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let scb: Vec<u8> = (0..rows)
        .flat_map(|r| (1.0 + r as f32 / 64.0).to_le_bytes())
        .collect();
    let view =
        |dtype, shape, data| safetensors::tensor::TensorView::new(dtype, shape, data).unwrap();
    let tensors = [
        (
            "w.weight",
            view(safetensors::Dtype::I8, vec![rows, cols], &weight[..]),
        ),
        ("w.SCB", view(safetensors::Dtype::F32, vec![rows], &scb[..])),
    ];
    std::fs::write(path, safetensors::serialize(tensors, None).unwrap()).unwrap();
}

#[test]
fn a_packed_file_fingerprinted_behind_its_writer_is_dequantized_from_what_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("packed.safetensors");
    write_packed_model(&original);
    assert_eq!(
        fingerprint::Model::open(&original).unwrap().tensors()[0].dtype,
        fingerprint::Dtype::F32,
        "read dequantized"
    );
    let bytes = std::fs::read(&original).unwrap();
    // Dequantized while opening: read before its bytes arrive, the weight would be zeros.
    let out = dir.path().join("arriving.safetensors");
    let arrived = fingerprint_behind_a_writer(&bytes, &out, bytes.len()).unwrap();
    assert!(arrived == file_fingerprint(&original));
    let out = dir.path().join("short.safetensors");
    assert!(fingerprint_behind_a_writer(&bytes, &out, bytes.len() / 2).is_none());
    // Progress counts the file's bytes (the download's stage), though the dequantized
    // tensors read as four times as many.
    let out = dir.path().join("whole.safetensors");
    let arrival = Arrival::new();
    let mut file = ArrivingFile::create(&out, bytes.len() as u64, arrival.clone()).unwrap();
    file.write_all(&bytes).unwrap();
    drop(file);
    let done = AtomicU64::new(0);
    fingerprint_arriving(&out, &arrival, fingerprint::BackendKind::Cpu, &done)
        .unwrap()
        .unwrap();
    let done = done.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        done > 0 && done <= bytes.len() as u64,
        "{done} of {}",
        bytes.len()
    );
}

/// Downloads model `model` as account 0's owner, expecting a failure; checks that nothing is
/// left in `dir`, neither the asked-for file nor a temporary one.
async fn refused(world: &World, author: &Identity, model: U256, dir: &Path) -> Error {
    let request = DownloadRequest {
        model,
        out: dir.join("out.safetensors"),
        license: None,
        backend: fingerprint::BackendKind::Cpu,
        key_endpoint: None,
    };
    let err = download(&world.markets[0], &world.store(), author, &request, &Silent)
        .await
        .unwrap_err();
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?} after {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_author_lying_about_the_weights_is_caught_by_the_download() {
    let world = World::start().await;
    let author = Identity::generate();
    let models = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let weights = |seed: u32| {
        let path = models.path().join(format!("{seed}.safetensors"));
        write_model(&path, seed, 0.0);
        path
    };
    let (a, b) = (weights(91), weights(92));
    let len = std::fs::metadata(&a).unwrap().len();
    let recipient = author.to_public();
    let sealed = Some((&recipient, len));

    // Told the truth, the same crafted mint downloads.
    let honest = world.mint_crafted(0, &a, "honest", &a, sealed).await;
    let request = DownloadRequest {
        model: honest,
        out: out.path().join("honest.safetensors"),
        license: None,
        backend: fingerprint::BackendKind::Cpu,
        key_endpoint: None,
    };
    let got = download(
        &world.markets[0],
        &world.store(),
        &author,
        &request,
        &Silent,
    )
    .await
    .unwrap();
    assert!(got.verification.ok() && got.bytes == len);
    assert_eq!(
        std::fs::read(&request.out).unwrap(),
        std::fs::read(&a).unwrap()
    );
    std::fs::remove_file(&request.out).unwrap();

    // Other weights stored than committed, encrypted or not.
    let swapped = world.mint_crafted(0, &b, "swapped", &a, sealed).await;
    let err = refused(&world, &author, swapped, out.path()).await;
    assert!(
        matches!(&err, Error::DownloadMismatch { differ, .. } if differ.contains("content root") && differ.contains("fingerprint")),
        "{err}"
    );
    let c = weights(93);
    let plain = world
        .mint_crafted(0, &c, "swapped in plaintext", &a, None)
        .await;
    let err = refused(&world, &author, plain, out.path()).await;
    assert!(matches!(err, Error::DownloadMismatch { .. }), "{err}");

    // A plaintext size that is a byte short, a byte long, or longer than the ciphertext.
    for (seed, declared, found) in [
        (94, len - 1, format!("more than {}", len - 1)),
        (95, len + 1, len.to_string()),
        (96, 1 << 40, "at most".to_string()),
    ] {
        let w = weights(seed);
        let model = world
            .mint_crafted(0, &w, "sized", &w, Some((&recipient, declared)))
            .await;
        let err = refused(&world, &author, model, out.path()).await;
        assert!(
            matches!(&err, Error::DownloadSize { declared: d, found: f, .. } if *d == declared && f.starts_with(&found)),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("model {model}")), "{err}");
    }

    // Blocks are read without hashing them again; a block corrupt on disk still is named:
    // one of the tensors' (found by the checked walk after the content root differs), and
    // one holding the header's metadata (which the content root does not cover: those blocks
    // are always checked).
    let blocks = Blockstore::open(world.store_dir.path()).unwrap();
    for (seed, which) in [(1u32, 2usize), (2, 1)] {
        let d = models.path().join(format!("large-{seed}.safetensors"));
        write_large_model(&d, seed);
        let plain = world.mint_crafted(0, &d, "plain", &d, None).await;
        let view = world.markets[0].model(plain).await.unwrap();
        let root = content::cids::parse(&view.model.weights_cid).unwrap();
        let mut walk = content::Walk::new(root);
        let mut leaves = Vec::new();
        while let Some((cid, _)) = walk.next(&world.store()).await.unwrap() {
            leaves.push(cid);
        }
        assert!(leaves.len() >= 3, "a root and several leaves");
        let leaf = leaves[which];
        let mut block = std::fs::read(blocks.path_of(&leaf)).unwrap();
        // A tensor's first byte, or a byte of the metadata's value in the header.
        let byte = match which {
            1 => block.windows(4).position(|w| w == b"note").unwrap(),
            _ => 0,
        };
        block[byte] ^= 1;
        std::fs::write(blocks.path_of(&leaf), block).unwrap();
        let err = refused(&world, &author, plain, out.path()).await;
        assert!(
            matches!(&err, Error::Content(content::Error::CorruptStoredBlock { cid, .. }) if *cid == leaf.to_string()),
            "{err}"
        );
    }
}
