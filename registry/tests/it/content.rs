//! The content store against a real IPFS daemon (js-ipfs, Kubo RPC): the embedded importer's
//! CIDs equal the daemon's own `add` for every boundary size, both backends round-trip, CAR
//! files move DAGs between them, and corruption is detected and named.

use cid::Cid;
use content::{self, car, Kubo, Store, Version, CHUNK_SIZE};

use crate::jsipfs::JsIpfs;

/// Deterministic bytes that do not repeat (so leaves are distinct), from a 64-bit LCG.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

/// What the daemon's own importer (`/api/v0/add`) answers for `data`.
async fn daemon_add(api: &str, data: &[u8], version: Version) -> Cid {
    let v = if version == Version::V1 { 1 } else { 0 };
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(data.to_vec())
            .file_name("f")
            .mime_str("application/octet-stream")
            .unwrap(),
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/api/v0/add?cid-version={v}&pin=false"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["Hash"]
        .as_str()
        .unwrap_or_else(|| panic!("no Hash in {answer}"))
        .parse()
        .unwrap()
}

async fn read_all(store: &Store, cid: &Cid) -> Vec<u8> {
    let mut out = Vec::new();
    content::cat(store, cid, &mut out, &|_| {}).await.unwrap();
    out
}

#[tokio::test]
async fn cids_equal_the_daemons_and_both_backends_round_trip() {
    let daemon = JsIpfs::start();
    let dir = tempfile::tempdir().unwrap();
    let embedded = Store::embedded(dir.path()).unwrap();
    let node = Store::Kubo(Box::new(Kubo::connect(daemon.api()).await.unwrap()));
    let sizes = [
        ("empty", 0),
        ("1 byte", 1),
        ("exactly one chunk", CHUNK_SIZE),
        ("one chunk + 1 byte", CHUNK_SIZE + 1),
        ("10 MB", 10_000_000),
        // More than 174 chunks: the balanced layout needs a second level of inner nodes.
        ("180 chunks + 7 bytes", 180 * CHUNK_SIZE + 7),
    ];
    for (i, (label, len)) in sizes.into_iter().enumerate() {
        let data = bytes(len, i as u64 + 1);
        for version in [Version::V0, Version::V1] {
            let expected = daemon_add(daemon.api(), &data, version).await;
            let added = content::add(&embedded, data.as_slice(), version, &|_| {})
                .await
                .unwrap();
            assert_eq!(
                added.cid, expected,
                "{label}, {version:?}: embedded vs daemon"
            );
            assert_eq!(added.cid.version(), version, "{label}");
            assert_eq!(added.size, len as u64);
            assert_eq!(
                read_all(&embedded, &added.cid).await,
                data,
                "{label} embedded"
            );

            // Through the node: blocks built here, pushed, checked, pinned, read back.
            let pushed = node
                .store_bytes(&data, version)
                .await
                .unwrap_or_else(|e| panic!("{label}, {version:?}: {e}"));
            assert_eq!(pushed, expected, "{label}, {version:?}: pushed vs daemon");
            assert_eq!(read_all(&node, &pushed).await, data, "{label} via the node");
        }
    }
}

#[tokio::test]
async fn car_files_move_a_dag_between_stores() {
    let daemon = JsIpfs::start();
    let dir = tempfile::tempdir().unwrap();
    let source = Store::embedded(&dir.path().join("a")).unwrap();
    // Repeated chunks (zeros) give a DAG with shared leaves: each block goes once into the CAR.
    let mut data = vec![0u8; 3 * CHUNK_SIZE];
    data.extend(bytes(200 * CHUNK_SIZE, 9));
    let added = content::add(&source, data.as_slice(), Version::V1, &|_| {})
        .await
        .unwrap();
    let car_path = dir.path().join("model.car");
    let written = car::export(&source, &added.cid, &car_path).await.unwrap();
    assert!(
        written < added.blocks,
        "shared zero leaves are written once"
    );

    let other = Store::embedded(&dir.path().join("b")).unwrap();
    assert_eq!(
        car::import(&other, &car_path).await.unwrap(),
        vec![added.cid]
    );
    assert_eq!(read_all(&other, &added.cid).await, data);

    let node = Store::Kubo(Box::new(Kubo::connect(daemon.api()).await.unwrap()));
    assert_eq!(
        car::import(&node, &car_path).await.unwrap(),
        vec![added.cid]
    );
    assert_eq!(read_all(&node, &added.cid).await, data);

    // A CAR whose block does not match its CID is refused, naming the file and the block.
    let mut bad = std::fs::read(&car_path).unwrap();
    let at = bad.len() - 10;
    bad[at] ^= 0xff;
    let bad_path = dir.path().join("bad.car");
    std::fs::write(&bad_path, bad).unwrap();
    let third = Store::embedded(&dir.path().join("c")).unwrap();
    let err = car::import(&third, &bad_path)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.car") && err.contains("corrupt"), "{err}");

    // A truncated CAR misses blocks: the import says the DAG is incomplete.
    let whole = std::fs::read(&car_path).unwrap();
    let truncated_path = dir.path().join("truncated.car");
    std::fs::write(&truncated_path, &whole[..whole.len() / 2]).unwrap();
    let fourth = Store::embedded(&dir.path().join("d")).unwrap();
    let err = car::import(&fourth, &truncated_path)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.car"), "{err}");
}

#[tokio::test]
async fn a_flipped_byte_in_a_stored_block_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::embedded(dir.path()).unwrap();
    let data = bytes(5 * CHUNK_SIZE, 3);
    let added = content::add(&store, data.as_slice(), Version::V1, &|_| {})
        .await
        .unwrap();
    // Corrupt the third leaf: find its file by walking the DAG.
    let mut walk = content::Walk::new(added.cid);
    let mut leaves = Vec::new();
    while let Some((cid, _)) = walk.next(&store).await.unwrap() {
        if cid.codec() == content::cids::RAW {
            leaves.push(cid);
        }
    }
    let victim = leaves[2];
    let Store::Embedded(blocks) = &store else {
        unreachable!()
    };
    let path = blocks.path_of(&victim);
    let mut block = std::fs::read(&path).unwrap();
    block[100] ^= 0x01;
    std::fs::write(&path, block).unwrap();

    let mut out = Vec::new();
    let err = content::cat(&store, &added.cid, &mut out, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&victim.to_string()), "names the block: {err}");
    assert!(err.contains("corrupt"), "{err}");
    assert!(
        out.len() <= 2 * CHUNK_SIZE,
        "nothing past the corrupt block is written"
    );
}

#[tokio::test]
async fn import_does_not_depend_on_read_sizes() {
    // 64 MiB through a reader that yields odd-sized pieces: the importer must not depend on
    // read sizes, and the result must equal the one-shot import.
    struct Dribble {
        data: Vec<u8>,
        at: usize,
    }
    impl tokio::io::AsyncRead for Dribble {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = (self.data.len() - self.at).min(buf.remaining()).min(7_919);
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::embedded(dir.path()).unwrap();
    let data = bytes(64 << 20, 11);
    let whole = content::add(&store, data.as_slice(), Version::V0, &|_| {})
        .await
        .unwrap();
    let dribbled = content::add(
        &store,
        Dribble {
            data: data.clone(),
            at: 0,
        },
        Version::V0,
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(whole, dribbled);
}

/// A model-like folder: shards over several chunks, small and empty files, nested and empty
/// folders, and a hidden file `ipfs add -r` leaves out.
fn model_folder(root: &std::path::Path) -> Vec<(&'static str, Vec<u8>)> {
    let files = vec![
        ("config.json", b"{\"hidden_size\": 64}".to_vec()),
        (
            "model-00001-of-00002.safetensors",
            bytes(2 * CHUNK_SIZE + 5, 11),
        ),
        ("model-00002-of-00002.safetensors", bytes(1, 12)),
        (
            "model.safetensors.index.json",
            b"{\"weight_map\": {}}".to_vec(),
        ),
        ("empty.txt", Vec::new()),
        ("tokenizer/vocab.txt", bytes(1000, 13)),
        ("tokenizer/merges/a.bin", bytes(CHUNK_SIZE, 14)),
        ("README.md", b"# a model card\n".to_vec()),
    ];
    for (name, data) in &files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    std::fs::create_dir_all(root.join("empty-folder")).unwrap();
    std::fs::write(root.join(".gitattributes"), b"*.safetensors filter=lfs\n").unwrap();
    files
}

/// What the daemon's own `add` answers for the folder `root` sent as `ipfs add -r` sends it
/// (a part per folder and per file, named by path; hidden entries left out).
async fn daemon_add_dir(api: &str, root: &std::path::Path, version: Version) -> Cid {
    let mut form = reqwest::multipart::Form::new();
    let mut stack = vec![(root.to_path_buf(), "model".to_string())];
    while let Some((dir, name)) = stack.pop() {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(Vec::new())
                .file_name(name.clone())
                .mime_str("application/x-directory")
                .unwrap(),
        );
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push((entry.path(), child));
            } else {
                form = form.part(
                    "file",
                    reqwest::multipart::Part::bytes(std::fs::read(entry.path()).unwrap())
                        .file_name(child)
                        .mime_str("application/octet-stream")
                        .unwrap(),
                );
            }
        }
    }
    let v = if version == Version::V1 { 1 } else { 0 };
    let answer = reqwest::Client::new()
        // The daemon shards only when told to (js-ipfs's experimental sharding), and then by
        // entry count: every folder sent here holds either under 1,000 entries and under Kubo's
        // 256 KiB of links, or over both, so the daemon shards exactly where Kubo does.
        .post(format!(
            "{api}/api/v0/add?cid-version={v}&pin=false&shard-split-threshold=1000"
        ))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // One JSON line per entry; the folder's own is named `model`.
    let line = answer
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["Name"] == "model")
        .unwrap_or_else(|| panic!("no line for the folder in {answer}"));
    line["Hash"].as_str().unwrap().parse().unwrap()
}

fn assert_same_tree(written: &std::path::Path, files: &[(&str, Vec<u8>)]) {
    for (name, data) in files {
        assert_eq!(&std::fs::read(written.join(name)).unwrap(), data, "{name}");
    }
    assert!(written.join("empty-folder").is_dir());
}

#[tokio::test]
async fn folders_equal_the_daemons_add_r_and_round_trip() {
    let daemon = JsIpfs::start();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    let files = model_folder(&folder);
    let embedded = Store::embedded(&dir.path().join("blocks")).unwrap();
    let node = Store::Kubo(Box::new(Kubo::connect(daemon.api()).await.unwrap()));
    for version in [Version::V0, Version::V1] {
        let expected = daemon_add_dir(daemon.api(), &folder, version).await;
        let added = embedded
            .store_dir(&folder, version, false, &|_| {})
            .await
            .unwrap();
        assert_eq!(added.cid, expected, "{version:?}: embedded vs daemon");
        assert_eq!(
            added.files.len(),
            files.len(),
            "the hidden file is left out"
        );
        assert_eq!(
            added.dirs, 4,
            "model, tokenizer, tokenizer/merges, empty-folder"
        );
        // Through the daemon's RPC, block by block: the same CID.
        let through = node
            .store_dir(&folder, version, false, &|_| {})
            .await
            .unwrap();
        assert_eq!(through.cid, expected, "{version:?}: through Kubo RPC");
        // Written back from either store: the same tree, byte for byte.
        for (store, label) in [(&embedded, "embedded"), (&node, "daemon")] {
            let out = dir.path().join(format!("out-{label}-{version:?}"));
            let written = content::get_dir(store, &expected, &out, &|_| {})
                .await
                .unwrap();
            assert_eq!(written.files.len(), files.len());
            assert_same_tree(&out, &files);
            assert!(!out.join(".gitattributes").exists());
        }
    }
    // Hidden entries on request: another folder, with the file.
    let with_hidden = add_dir_cid(&embedded, &folder, true).await;
    let without = add_dir_cid(&embedded, &folder, false).await;
    assert_ne!(with_hidden, without);
    let out = dir.path().join("out-hidden");
    content::get_dir(&embedded, &with_hidden, &out, &|_| {})
        .await
        .unwrap();
    assert!(out.join(".gitattributes").is_file());

    // A CAR of the folder carries it to another store whole.
    let car_file = dir.path().join("model.car");
    car::export(&embedded, &without, &car_file).await.unwrap();
    let other = Store::embedded(&dir.path().join("other-blocks")).unwrap();
    assert_eq!(car::import(&other, &car_file).await.unwrap(), vec![without]);
    let out = dir.path().join("out-car");
    content::get_dir(&other, &without, &out, &|_| {})
        .await
        .unwrap();
    assert_same_tree(&out, &files);
}

async fn add_dir_cid(store: &Store, folder: &std::path::Path, hidden: bool) -> Cid {
    store
        .store_dir(folder, Version::V1, hidden, &|_| {})
        .await
        .unwrap()
        .cid
}

/// A folder of `count` small files whose names are `len` characters long.
fn wide_folder(root: &std::path::Path, count: usize, len: usize) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(root).unwrap();
    (0..count)
        .map(|i| {
            let name = format!("{i:06}-{}", "w".repeat(len - 7));
            let data = format!("file {i}").into_bytes();
            std::fs::write(root.join(&name), &data).unwrap();
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn a_folder_too_large_for_one_node_is_hamt_sharded_as_the_daemon_shards_it() {
    let daemon = JsIpfs::start();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    // 2,000 links of 120-character names: over Kubo's 256 KiB of link names and CIDs, so
    // Kubo shards it; over the daemon's 1,000 entries, so it shards it too, in the same layout.
    let files = wide_folder(&folder, 2_000, 120);
    let embedded = Store::embedded(&dir.path().join("blocks")).unwrap();
    let node = Store::Kubo(Box::new(Kubo::connect(daemon.api()).await.unwrap()));
    for version in [Version::V0, Version::V1] {
        let expected = daemon_add_dir(daemon.api(), &folder, version).await;
        let added = embedded
            .store_dir(&folder, version, false, &|_| {})
            .await
            .unwrap();
        assert_eq!(added.cid, expected, "{version:?}: embedded vs daemon");
    }
    // Through the daemon's RPC, block by block: the same CID.
    let root = add_dir_cid(&embedded, &folder, false).await;
    let through = node
        .store_dir(&folder, Version::V1, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(through.cid, root, "through Kubo RPC");
    // Read back from either store: every entry, byte for byte.
    for (store, label) in [(&embedded, "embedded"), (&node, "daemon")] {
        let out = dir.path().join(format!("out-{label}"));
        let written = content::get_dir(store, &root, &out, &|_| {}).await.unwrap();
        assert_eq!(written.files.len(), files.len(), "{label}");
        for (name, data) in &files {
            assert_eq!(
                &std::fs::read(out.join(name)).unwrap(),
                data,
                "{label}: {name}"
            );
        }
    }
    // Listed in name order, measured, resolved by name through the shards.
    let listed = content::directory::list(&embedded, &root, content::Reading::Checked)
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    let mut sorted: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    sorted.sort();
    assert_eq!(names, sorted);
    let tree = content::tree_size(&embedded, &root).await.unwrap();
    assert_eq!(tree.entries, 2_000);
    let (name, data) = &files[1_234];
    let file = content::directory::resolve(
        &embedded,
        &root,
        std::slice::from_ref(name),
        content::Reading::Checked,
    )
    .await
    .unwrap();
    let mut read = Vec::new();
    content::cat(&embedded, &file, &mut read, &|_| {})
        .await
        .unwrap();
    assert_eq!(&read, data);
    // A CAR of it carries every shard.
    let car_file = dir.path().join("sharded.car");
    car::export(&embedded, &root, &car_file).await.unwrap();
    let other = Store::embedded(&dir.path().join("other")).unwrap();
    assert_eq!(car::import(&other, &car_file).await.unwrap(), vec![root]);
    assert_eq!(
        content::tree_size(&other, &root).await.unwrap().entries,
        2_000
    );
}
