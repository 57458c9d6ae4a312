//! `verify` against records a seller crafted: stored weights that declare far more than the
//! registered tensors (a small DAG linking one leaf again and again), and a folder holding
//! weights the fingerprint does not read.

use content::{cids, Cid, Version};
use registry::progress::Silent;
use registry::Error;

use crate::models::write_model;
use crate::world::World;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A UnixFS file node (DAG-PB, encoded by hand as the protobuf schemas say) linking `leaf`
/// (of `leaf_len` bytes) `times` times: it declares `times × leaf_len` bytes in a few KiB.
fn repeating_file(leaf: &Cid, leaf_len: u64, times: usize) -> Vec<u8> {
    let mut unixfs = vec![0x08, 2]; // Type = File
    varint_field(0x18, leaf_len * times as u64, &mut unixfs); // filesize
    for _ in 0..times {
        varint_field(0x20, leaf_len, &mut unixfs); // blocksizes
    }
    let mut link = Vec::new();
    field(0x0a, &leaf.to_bytes(), &mut link); // Hash
    field(0x12, b"", &mut link); // Name
    varint_field(0x18, leaf_len, &mut link); // Tsize
    let mut node = Vec::new();
    for _ in 0..times {
        field(0x12, &link, &mut node); // Links
    }
    field(0x0a, &unixfs, &mut node); // Data
    node
}

/// `registry verify ID` of the stored weights, on the CPU.
async fn verify_stored(
    world: &World,
    id: ethers::types::U256,
) -> registry::Result<registry::verify::Verification> {
    registry::verify::verify(
        &world.markets[0],
        &world.store(),
        id,
        None,
        fingerprint::BackendKind::Cpu,
        &Silent,
    )
    .await
}

fn varint_field(tag: u8, v: u64, out: &mut Vec<u8>) {
    out.push(tag);
    varint(v, out);
}

/// Weights that declare 1 GiB and 64 MiB more than a model of a few KiB registers: refused
/// before a byte is fetched (it was written to the temporary folder whole, a disk filled at
/// the verifier's cost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_weights_declaring_more_than_the_registered_model_are_refused_unfetched() {
    let world = World::start().await;
    let store = world.store();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("small.safetensors");
    write_model(&model, 97, 0.0);
    let leaf_bytes = vec![1u8; 1 << 20];
    let leaf = cids::cid_of(Version::V1, cids::RAW, &leaf_bytes);
    store.put(&leaf, leaf_bytes).await.unwrap();
    let node = repeating_file(&leaf, 1 << 20, 1024 + 64);
    let crafted = cids::cid_of(Version::V1, cids::DAG_PB, &node);
    store.put(&crafted, node).await.unwrap();
    assert_eq!(
        content::file_size(&store, &crafted).await.unwrap(),
        (1 << 30) + (64 << 20)
    );
    let id = world.mint_record(0, &model, "huge", crafted, None).await;
    let err = verify_stored(&world, id).await.unwrap_err();
    assert!(
        matches!(&err, Error::DownloadSize { declared, .. } if *declared == (1 << 30) + (64 << 20)),
        "{err}"
    );
}

/// A folder whose stored copy holds a `pytorch_model.bin` beside the registered weights (the
/// file a loader may take): not verified as the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_folder_with_weights_the_fingerprint_does_not_read_is_not_verified() {
    let world = World::start().await;
    let store = world.store();
    let dir = tempfile::tempdir().unwrap();
    let folder = |name: &str, seed: u32| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        write_model(&path.join("model.safetensors"), seed, 0.0);
        std::fs::write(path.join("config.json"), b"{}").unwrap();
        path
    };
    let clean = folder("clean", 98);
    // Another model (one record per content), and its copy with a stray weights file.
    let other = folder("other", 99);
    let stray = folder("stray", 99);
    std::fs::write(
        stray.join("pytorch_model.bin"),
        b"a pickle a loader would run",
    )
    .unwrap();
    let verify = |id| verify_stored(&world, id);
    // A record of the model at `recorded` over the folder `stored`.
    let mint = |recorded: std::path::PathBuf, stored: std::path::PathBuf| {
        let (world, store) = (&world, &store);
        async move {
            let cid = store
                .store_dir(&stored, Version::V1, false, &|_| {})
                .await
                .unwrap()
                .cid;
            world.mint_record(0, &recorded, "folder", cid, None).await
        }
    };
    // The clean folder verifies; a record over the stray folder does not.
    let honest = mint(clean.clone(), clean).await;
    assert!(verify(honest).await.unwrap().ok());
    let err = verify(mint(other, stray).await).await.unwrap_err();
    assert!(
        matches!(&err, Error::UncoveredWeights { file, .. } if file.ends_with("pytorch_model.bin")),
        "{err}"
    );
}
