//! The gateway against what a client can ask of it: byte ranges (a part in the middle of a
//! file of many blocks, the last bytes, one past the end), more downloads at once than it
//! allows, and content the node does not hold, which it must not fetch from the network (an
//! open proxy).

use std::time::Duration;

use content::{Store, Version};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use web::Limits;

use crate::api::Api;
use crate::dbs::{Kind, TestDb};

/// Bytes that differ from block to block.
fn content(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A gateway allowing one download at once (as `limits` says otherwise) over a store holding
/// one file of 32 MiB: larger than what the sockets between client and server buffer, so
/// that a download whose body is not read stays running. Returns the server, the file's
/// bytes and its URL, and what must live as long as the server.
async fn one_download_at_once(
    limits: Limits,
) -> (Api, Vec<u8>, String, (TestDb, tempfile::TempDir)) {
    let db = TestDb::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(32 << 20);
    let cid = Store::embedded(dir.path())
        .unwrap()
        .store_bytes(&bytes, Version::V1)
        .await
        .unwrap();
    let limits = Limits {
        gateway_streams: 1,
        ..limits
    };
    let api = Api::start_limited(
        db.open().await,
        Store::embedded(dir.path()).unwrap(),
        Vec::new(),
        limits,
    );
    let url = format!("{}/ipfs/{cid}", api.url);
    (api, bytes, url, (db, dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_the_bound_on_downloads() {
    let (api, bytes, url, _keep) = one_download_at_once(Limits::default()).await;
    let size = bytes.len();
    let get = |range: &str| api.http.get(&url).header("Range", range).send();

    // Across block boundaries, deep in the file.
    let part = get("bytes=20000000-21300000").await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 20000000-21300000/{size}").as_str()
    );
    assert_eq!(part.headers()["accept-ranges"], "bytes");
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &bytes[20_000_000..=21_300_000]
    );
    let tail = get("bytes=-100").await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &bytes[size - 100..]);
    let past = get(&format!("bytes={size}-")).await.unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );

    // One download at once: while one runs (its body unread), the next is refused; once its
    // client goes, the place is free again.
    let held = api.http.get(&url).send().await.unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(get("bytes=0-9").await.unwrap().status(), 503);
    drop(held);
    let mut status = 0;
    for _ in 0..100 {
        status = get("bytes=0-9").await.unwrap().status().as_u16();
        if status == 206 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 206, "the download's place is given back");
}

/// Clients that open downloads and never read them (the place each holds is never given back
/// by a client that stays connected) cannot shut the gateway: a download that has not moved
/// for `gateway_stall` ends, and its place is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_gives_its_place_back() {
    let limits = Limits {
        gateway_stall: Duration::from_secs(2),
        ..Limits::default()
    };
    let (api, bytes, url, _keep) = one_download_at_once(limits).await;
    let cid = url.rsplit('/').next().unwrap().to_string();
    // A raw connection that asks and never reads (nor closes).
    let address = api.url.trim_start_matches("http://").to_string();
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(format!("GET /ipfs/{cid} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Its answer begins (it holds the place), then it reads no more.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(idle.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let get = || api.http.get(&url).header("Range", "bytes=0-9").send();
    let mut refused = false;
    let mut status = 0;
    for _ in 0..100 {
        status = get().await.unwrap().status().as_u16();
        refused |= status == 503;
        if refused && status == 206 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the idle client held the one place for a while");
    assert_eq!(status, 206, "and gave it back while still connected");
    // HEAD: a GET's headers (the length too), and no body. (The place the last probe held
    // is given back as its writer ends, a moment after its client has the body.)
    let mut head = api.http.head(&url).send().await.unwrap();
    for _ in 0..50 {
        if head.status() != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        head = api.http.head(&url).send().await.unwrap();
    }
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-content-type-options"], "nosniff");
    assert!(head.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("sandbox"));
    assert_eq!(
        head.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let health = api.http.head(format!("{}/health", api.url)).send();
    assert_eq!(health.await.unwrap().status(), 200);
    drop(idle);
}

/// `folder` stored in an embedded store under `dir`, and a server over it; returns the server
/// and the folder's CID.
async fn serve_folder(
    db: &TestDb,
    dir: &std::path::Path,
    folder: &std::path::Path,
) -> (Api, content::Cid) {
    let blocks = dir.join("blocks");
    let root = Store::embedded(&blocks)
        .unwrap()
        .store_dir(folder, Version::V1, false, &|_| {})
        .await
        .unwrap()
        .cid;
    (
        Api::start(db.open().await, Store::embedded(&blocks).unwrap()),
        root,
    )
}

/// A Kubo RPC endpoint that answers `block/get` only with `offline=true`, as "not found
/// locally" (what Kubo answers for a block it does not hold), and otherwise never: as a node
/// fetching from the network would take. Returns its URL and the paths it was asked.
async fn node_without_the_block() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    node_holding(std::collections::HashMap::new()).await
}

/// [`node_without_the_block`] that holds `blocks` (by CID text) and answers them offline.
async fn node_holding(
    blocks: std::collections::HashMap<String, Vec<u8>>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let blocks = std::sync::Arc::new(blocks);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            let blocks = blocks.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 8_192];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..n]).to_string();
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                seen.lock().unwrap().push(path.clone());
                let held = path
                    .strip_prefix("/api/v0/block/get?arg=")
                    .and_then(|rest| rest.split('&').next())
                    .and_then(|cid| blocks.get(cid));
                let (status, body) = if path.starts_with("/api/v0/version") {
                    (
                        "200 OK",
                        br#"{"Version":"0.30.0","Commit":"","Repo":"16"}"#.to_vec(),
                    )
                } else if path.starts_with("/api/v0/block/get") && path.contains("offline=true") {
                    match held {
                        Some(block) => ("200 OK", block.clone()),
                        None => (
                            "500 Internal Server Error",
                            br#"{"Message":"block was not found locally (offline): ipld: could not find the block","Code":0,"Type":"error"}"#.to_vec(),
                        ),
                    }
                } else {
                    // Fetching from the network: no answer.
                    tokio::time::sleep(Duration::from_secs(3_600)).await;
                    return;
                };
                let mut answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                answer.extend_from_slice(&body);
                let _ = socket.write_all(&answer).await;
            });
        }
    });
    (url, asked)
}

/// A folder of 1,000 names for one file: its listing reads that file's block once, not once
/// or twice per name (a listing of 100,000 names for one 1 MiB block read 200 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_reads_each_distinct_child_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("same");
    std::fs::create_dir(&folder).unwrap();
    for i in 0..1_000 {
        std::fs::write(folder.join(format!("copy-{i:04}.bin")), vec![9u8; 200_000]).unwrap();
    }
    let embedded = Store::embedded(&dir.path().join("blocks")).unwrap();
    let root = embedded
        .store_dir(&folder, Version::V1, false, &|_| {})
        .await
        .unwrap()
        .cid;
    let mut blocks = std::collections::HashMap::new();
    let mut walk = content::Walk::new(root);
    while let Some((cid, block)) = walk.next(&embedded).await.unwrap() {
        blocks.insert(cid.to_string(), block);
    }
    assert_eq!(blocks.len(), 2, "the folder and its one file block");
    let (node, asked) = node_holding(blocks).await;
    let store = Store::open(&content::Location::Kubo(node)).await.unwrap();
    let db = TestDb::new(Kind::Sqlite).await;
    let api = Api::start(db.open().await, store);
    let page = api.http.get(format!("{}/ipfs/{root}", api.url)).send();
    let page = page.await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("copy-0999.bin"), "every entry listed");
    let reads = asked
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.starts_with("/api/v0/block/get"))
        .count();
    assert!(
        reads <= 4,
        "{reads} block reads for a listing of two blocks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_the_node_does_not_hold_is_not_fetched_for_a_client() {
    let (node, asked) = node_without_the_block().await;
    let store = Store::open(&content::Location::Kubo(node)).await.unwrap();
    let db = TestDb::new(Kind::Sqlite).await;
    let api = Api::start(db.open().await, store);
    let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        api.http.get(format!("{}/ipfs/{cid}", api.url)).send(),
    )
    .await
    .expect("answered without waiting on the network")
    .unwrap();
    assert_eq!(answer.status(), 404);
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .filter(|p| p.contains("block/get"))
            .all(|p| p.contains("offline=true")),
        "{asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_listed_and_their_files_served_by_path() {
    let db = TestDb::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("release");
    std::fs::create_dir_all(folder.join("tokenizer")).unwrap();
    std::fs::write(folder.join("config.json"), br#"{"hidden_size": 64}"#).unwrap();
    let shard = content(600_000);
    std::fs::write(folder.join("model.safetensors"), &shard).unwrap();
    std::fs::write(folder.join("tokenizer/vocab.txt"), b"a\nb\n").unwrap();
    std::fs::write(folder.join("<b>odd&name<i>.txt"), b"x").unwrap();
    std::fs::write(folder.join("notes #1?.md"), b"spaced").unwrap();
    std::fs::write(folder.join("c++ 100%.json"), b"plus").unwrap();
    std::fs::create_dir_all(folder.join("a#b")).unwrap();
    std::fs::write(folder.join("a#b/x.txt"), b"deep").unwrap();
    let (api, root) = serve_folder(&db, dir.path(), &folder).await;
    let get = |path: String| api.http.get(format!("{}{path}", api.url)).send();

    // The folder: a listing linking each entry below it, names escaped.
    let listed = get(format!("/ipfs/{root}")).await.unwrap();
    assert_eq!(listed.status(), 200);
    assert!(listed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = listed.text().await.unwrap();
    assert!(
        page.contains(&format!(r#"href="/ipfs/{root}/config.json""#)),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"href="/ipfs/{root}/tokenizer">tokenizer/"#)),
        "{page}"
    );
    assert!(page.contains("600000"), "sizes are listed: {page}");
    assert!(
        page.contains("&lt;b&gt;odd&amp;name&lt;i&gt;.txt") && !page.contains("<b>odd"),
        "{page}"
    );
    // A name with a space, `#` and `?`: linked percent-encoded, and served by that link.
    let link = format!("/ipfs/{root}/notes%20%231%3F.md");
    assert!(page.contains(&link), "{page}");
    assert_eq!(
        get(link).await.unwrap().bytes().await.unwrap().as_ref(),
        b"spaced"
    );
    // `+` and `%` in a name, a folder named with `#`: linked encoded, reached by the link.
    let plus = format!("/ipfs/{root}/c%2B%2B%20100%25.json");
    assert!(page.contains(&plus), "{page}");
    assert_eq!(
        get(plus).await.unwrap().bytes().await.unwrap().as_ref(),
        b"plus"
    );
    let hashed = get(format!("/ipfs/{root}/a%23b"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let deep = format!("/ipfs/{root}/a%23b/x.txt");
    assert!(hashed.contains(&deep), "{hashed}");
    assert_eq!(
        get(deep).await.unwrap().bytes().await.unwrap().as_ref(),
        b"deep"
    );
    // Files by path, nested ones too, ranges as for any file.
    let config = get(format!("/ipfs/{root}/config.json")).await.unwrap();
    assert_eq!(
        config.bytes().await.unwrap().as_ref(),
        br#"{"hidden_size": 64}"#
    );
    let vocab = get(format!("/ipfs/{root}/tokenizer/vocab.txt"))
        .await
        .unwrap();
    assert_eq!(vocab.bytes().await.unwrap().as_ref(), b"a\nb\n");
    let part = api
        .http
        .get(format!("{}/ipfs/{root}/model.safetensors", api.url))
        .header("Range", "bytes=300000-300009")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &shard[300_000..300_010]
    );
    let nested = get(format!("/ipfs/{root}/tokenizer/")).await.unwrap();
    assert!(nested
        .text()
        .await
        .unwrap()
        .contains(&format!("/ipfs/{root}/tokenizer/vocab.txt")));
    // Nothing there, or a path below a file: 404, named.
    for missing in ["nope.json", "config.json/deeper", "tokenizer/nope"] {
        let answer = get(format!("/ipfs/{root}/{missing}")).await.unwrap();
        assert_eq!(answer.status(), 404, "{missing}");
        assert!(
            answer.text().await.unwrap().contains("has nothing at"),
            "{missing}"
        );
    }
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_folder_is_listed_and_served_by_path() {
    let db = TestDb::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("wide");
    std::fs::create_dir_all(&folder).unwrap();
    // 2,000 names of 150 bytes: over Kubo's 256 KiB of links, so stored HAMT-sharded.
    let name = |i: usize| format!("{i:04}-{}", "n".repeat(145));
    for i in 0..2_000 {
        std::fs::write(folder.join(name(i)), format!("entry {i}")).unwrap();
    }
    let (api, root) = serve_folder(&db, dir.path(), &folder).await;
    let get = |path: String| api.http.get(format!("{}{path}", api.url)).send();
    let page = get(format!("/ipfs/{root}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for i in [0, 777, 1_999] {
        assert!(
            page.contains(&format!("/ipfs/{root}/{}", name(i))),
            "entry {i}"
        );
    }
    // In name order, though the shards hold them in hash order.
    let at = |i: usize| page.find(&name(i)).unwrap();
    assert!(at(0) < at(1) && at(1) < at(1_999));
    let served = get(format!("/ipfs/{root}/{}", name(1_234)))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), b"entry 1234");
    let missing = get(format!("/ipfs/{root}/{}", name(2_000))).await.unwrap();
    assert_eq!(missing.status(), 404);
}
