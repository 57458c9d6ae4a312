//! An HTTP proxy in front of anvil that fails on purpose: it drops some connections without an
//! answer and answers others `429 Too Many Requests`, the way overloaded or rate-limited RPC
//! providers do, and refuses `eth_getLogs` ranges wider than a few blocks, as capped providers
//! do. The indexer must retry and halve its ranges through it and end in exactly the state a
//! direct replay produces. It can also lie in `eth_getLogs` answers, as nodes have: every log
//! twice, a log marked `removed`, a log of a block outside the range; the index must not
//! change. And it can answer like a backend that lags the head (range answers without the
//! newest blocks' logs, empty answers by block hash) or a node without finality (no
//! `finalized` block), or pin the `finalized` block where the test wants it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sea_orm::EntityTrait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::dbs::{Kind, TestDb};
use crate::world::{options, World};

/// Counts what the proxy did.
#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicUsize,
    dropped: AtomicUsize,
    limited: AtomicUsize,
    /// `eth_getLogs` calls refused for spanning more than [`MAX_LOG_RANGE`] blocks.
    refused: AtomicUsize,
    /// `eth_getLogs` answers with logs added.
    lied: AtomicUsize,
    /// When not 0, the head the proxy shows (blocks above it are not there), like a lagging
    /// backend behind a load balancer. Set by the test.
    ceiling: std::sync::atomic::AtomicU64,
    /// When not 0, the block whose header is answered once with another fork's hash.
    forked_header: std::sync::atomic::AtomicU64,
    /// When not 0, the block answered once as not there (`null`), as a lagging backend of a
    /// load balancer answers a block its head is past.
    missing_header: std::sync::atomic::AtomicU64,
    /// When not 0, range `eth_getLogs` answers leave out the logs of blocks above it, as a
    /// backend that lags the head answers a range it only partly has.
    range_ceiling: std::sync::atomic::AtomicU64,
    /// When set, `eth_getLogs` by block hash answers no logs.
    empty_by_hash: std::sync::atomic::AtomicBool,
    /// Log answers the proxy emptied or cut.
    emptied: AtomicUsize,
    /// When set, `eth_getBlockReceipts` is answered as a method the node does not have.
    no_block_receipts: std::sync::atomic::AtomicBool,
    /// `eth_getBlockReceipts` calls so answered.
    block_receipts_refused: AtomicUsize,
    /// `eth_getTransactionReceipt` calls forwarded.
    tx_receipts: AtomicUsize,
    /// The `finalized` block tag: 0 passes it through, [`NO_FINALITY`] answers it the way a
    /// node without finality refuses it, any other number is the block answered for it.
    finalized: std::sync::atomic::AtomicU64,
}

/// [`Counters::finalized`]: the node refuses the `finalized` tag.
const NO_FINALITY: u64 = u64::MAX;

/// The widest `eth_getLogs` range the proxy lets through, like providers that cap it.
const MAX_LOG_RANGE: u64 = 5;

/// The block span of an `eth_getLogs` request, if the body is one.
fn log_range(body: &[u8]) -> Option<u64> {
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    if request["method"] != "eth_getLogs" {
        return None;
    }
    let number = |key: &str| {
        let text = request["params"][0][key].as_str()?;
        u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
    };
    Some(number("toBlock")? + 1 - number("fromBlock")?)
}

/// Starts the proxy; about one request in `every` fails (dropped or rate-limited), picked by a
/// hash of its sequence number so failures do not fall into step with the client's calls;
/// with `lie`, log answers get their logs repeated and false ones added.
async fn start_proxy(upstream: String, every: Option<usize>, lie: bool) -> (String, Arc<Counters>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counters = Arc::new(Counters::default());
    let seen = Arc::new(AtomicUsize::new(0));
    let c = counters.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (http, upstream, c, seen) =
                (http.clone(), upstream.clone(), c.clone(), seen.clone());
            tokio::spawn(async move {
                let _ = serve(socket, http, upstream, c, seen, every, lie).await;
            });
        }
    });
    (url, counters)
}

async fn serve(
    socket: TcpStream,
    http: reqwest::Client,
    upstream: String,
    counters: Arc<Counters>,
    seen: Arc<AtomicUsize>,
    every: Option<usize>,
    lie: bool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(socket);
    loop {
        // Request line and headers.
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        if let Some(answer) = missing(&body, &counters.missing_header) {
            json_ok(reader.get_mut(), answer.as_bytes()).await?;
            continue;
        }
        if let Some(answer) = receipts(&body, &counters) {
            json_ok(reader.get_mut(), answer.as_bytes()).await?;
            continue;
        }
        let ceiling = counters.ceiling.load(Ordering::SeqCst);
        if ceiling > 0 {
            if let Some(answer) = behind(&body, ceiling) {
                json_ok(reader.get_mut(), answer.as_bytes()).await?;
                continue;
            }
        }
        let body = match finalized_tag(&body, counters.finalized.load(Ordering::SeqCst)) {
            Tagged::Answer(answer) => {
                json_ok(reader.get_mut(), answer.as_bytes()).await?;
                continue;
            }
            Tagged::Ask(other) => other,
            Tagged::Pass => body,
        };
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        let h = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        if let Some(every) = every.filter(|e| h.is_multiple_of(*e as u64)) {
            if (h / every as u64).is_multiple_of(2) {
                counters.dropped.fetch_add(1, Ordering::SeqCst);
                // Hang up without an answer: a dropped connection.
                return Ok(());
            }
            counters.limited.fetch_add(1, Ordering::SeqCst);
            let answer = "rate limited";
            let response = format!(
                "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            reader.get_mut().write_all(response.as_bytes()).await?;
            continue;
        }
        if log_range(&body).is_some_and(|span| span > MAX_LOG_RANGE) {
            counters.refused.fetch_add(1, Ordering::SeqCst);
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let answer = serde_json::json!({
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": { "code": -32005, "message": format!("block range too large: at most {MAX_LOG_RANGE} blocks") }
            })
            .to_string();
            json_ok(reader.get_mut(), answer.as_bytes()).await?;
            continue;
        }
        let answer = http
            .post(&upstream)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .map_err(std::io::Error::other)?
            .bytes()
            .await
            .map_err(std::io::Error::other)?;
        counters.forwarded.fetch_add(1, Ordering::SeqCst);
        let answer = match fork_header(&body, &answer, &counters.forked_header) {
            Some(forked) => forked.into(),
            None => answer,
        };
        let answer = match cut_logs(&body, &answer, &counters) {
            Some(cut) => {
                counters.emptied.fetch_add(1, Ordering::SeqCst);
                cut.into()
            }
            None => answer,
        };
        let answer = match (lie, is_get_logs(&body)) {
            (true, true) => {
                counters.lied.fetch_add(1, Ordering::SeqCst);
                lie_about(&body, &answer).into()
            }
            _ => answer,
        };
        json_ok(reader.get_mut(), &answer).await?;
    }
}

/// Answers `200 OK` with a JSON body.
async fn json_ok(socket: &mut TcpStream, answer: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        answer.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(answer).await
}

/// An indexer that reads the chain through `proxy`.
async fn through(
    proxy: &str,
    world: &World,
    db: &TestDb,
    content: Option<content::Store>,
    options: registry::indexer::Options,
) -> registry::indexer::Indexer {
    registry::indexer::Indexer::open(db.open().await, proxy, world.deployment(), content, options)
        .await
        .unwrap()
}

/// `null` for block `missing` (once).
fn missing(request: &[u8], missing: &std::sync::atomic::AtomicU64) -> Option<String> {
    let block = missing.load(Ordering::SeqCst);
    if block == 0 {
        return None;
    }
    let request: serde_json::Value = serde_json::from_slice(request).ok()?;
    if request["method"] != "eth_getBlockByNumber" || request["params"][0] != format!("{block:#x}")
    {
        return None;
    }
    missing
        .compare_exchange(block, 0, Ordering::SeqCst, Ordering::SeqCst)
        .ok()?;
    Some(serde_json::json!({ "jsonrpc": "2.0", "id": request["id"], "result": null }).to_string())
}

/// Refuses `eth_getBlockReceipts` the way a node without it does (when told to), and counts
/// the per-transaction receipts asked instead.
fn receipts(request: &[u8], counters: &Counters) -> Option<String> {
    let request: serde_json::Value = serde_json::from_slice(request).ok()?;
    match request["method"].as_str()? {
        "eth_getTransactionReceipt" => {
            counters.tx_receipts.fetch_add(1, Ordering::SeqCst);
            None
        }
        "eth_getBlockReceipts" if counters.no_block_receipts.load(Ordering::SeqCst) => {
            counters
                .block_receipts_refused
                .fetch_add(1, Ordering::SeqCst);
            Some(
                serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": request["id"],
                    "error": { "code": -32601, "message": "the method eth_getBlockReceipts does not exist/is not available" }
                })
                .to_string(),
            )
        }
        _ => None,
    }
}

/// The header of block `forked` (once) with another fork's hash, as a backend on another
/// fork would give it.
fn fork_header(
    request: &[u8],
    answer: &[u8],
    forked: &std::sync::atomic::AtomicU64,
) -> Option<Vec<u8>> {
    let block = forked.load(Ordering::SeqCst);
    if block == 0 {
        return None;
    }
    let request: serde_json::Value = serde_json::from_slice(request).ok()?;
    if request["method"] != "eth_getBlockByNumber" || request["params"][0] != format!("{block:#x}")
    {
        return None;
    }
    forked
        .compare_exchange(block, 0, Ordering::SeqCst, Ordering::SeqCst)
        .ok()?;
    let mut answer: serde_json::Value = serde_json::from_slice(answer).ok()?;
    answer["result"]["hash"] = format!("0x{}", "cd".repeat(32)).into();
    serde_json::to_vec(&answer).ok()
}

/// The answer of a node whose head is `ceiling`, for the calls that show it: its block number,
/// and no block above it.
fn behind(request: &[u8], ceiling: u64) -> Option<String> {
    let request: serde_json::Value = serde_json::from_slice(request).ok()?;
    let result = match request["method"].as_str()? {
        "eth_blockNumber" => serde_json::Value::from(format!("{ceiling:#x}")),
        "eth_getBlockByNumber" => {
            let text = request["params"][0].as_str()?;
            let number = u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()?;
            if number <= ceiling {
                return None;
            }
            serde_json::Value::Null
        }
        _ => return None,
    };
    Some(serde_json::json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }).to_string())
}

fn is_get_logs(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|r| r["method"] == "eth_getLogs")
}

/// What the proxy does with a request for the `finalized` block.
enum Tagged {
    /// Not such a request, or passed through.
    Pass,
    /// Answered by the proxy.
    Answer(String),
    /// Forwarded as this request instead.
    Ask(Vec<u8>),
}

fn finalized_tag(body: &[u8], setting: u64) -> Tagged {
    let Ok(mut request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Tagged::Pass;
    };
    if setting == 0
        || request["method"] != "eth_getBlockByNumber"
        || request["params"][0] != "finalized"
    {
        return Tagged::Pass;
    }
    if setting == NO_FINALITY {
        // As geth answers before the merge.
        return Tagged::Answer(
            serde_json::json!({
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": { "code": -39001, "message": "finalized block not found" }
            })
            .to_string(),
        );
    }
    request["params"][0] = format!("{setting:#x}").into();
    Tagged::Ask(serde_json::to_vec(&request).unwrap())
}

/// The log answer as the proxy's settings cut it: empty by block hash, or without the logs
/// above the range ceiling; `None` when unchanged.
fn cut_logs(request: &[u8], answer: &[u8], counters: &Counters) -> Option<Vec<u8>> {
    let request: serde_json::Value = serde_json::from_slice(request).ok()?;
    if request["method"] != "eth_getLogs" {
        return None;
    }
    let mut answer: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let logs = answer["result"].as_array()?.clone();
    let by_hash = request["params"][0].get("blockHash").is_some();
    let ceiling = counters.range_ceiling.load(Ordering::SeqCst);
    let kept: Vec<serde_json::Value> = if by_hash {
        if !counters.empty_by_hash.load(Ordering::SeqCst) {
            return None;
        }
        Vec::new()
    } else {
        if ceiling == 0 {
            return None;
        }
        logs.iter()
            .filter(|log| {
                let number = log["blockNumber"].as_str().unwrap_or("0x0");
                u64::from_str_radix(number.trim_start_matches("0x"), 16).unwrap() <= ceiling
            })
            .cloned()
            .collect()
    };
    if kept.len() == logs.len() {
        return None;
    }
    answer["result"] = kept.into();
    serde_json::to_vec(&answer).ok()
}

/// An `eth_getLogs` answer with every log twice, then a copy of the first marked `removed`
/// and a copy placed in the block after the range (each at a log index of its own, so that
/// applied, it would be a new event).
fn lie_about(request: &[u8], answer: &[u8]) -> Vec<u8> {
    let request: serde_json::Value = serde_json::from_slice(request).unwrap();
    let mut answer: serde_json::Value = serde_json::from_slice(answer).unwrap();
    let Some(logs) = answer["result"].as_array().cloned() else {
        return serde_json::to_vec(&answer).unwrap();
    };
    let mut lies = Vec::new();
    for log in &logs {
        lies.push(log.clone());
        lies.push(log.clone());
    }
    if let Some(first) = logs.first() {
        let mut removed = first.clone();
        removed["removed"] = true.into();
        removed["logIndex"] = "0x3e8".into();
        lies.push(removed);
        // Past the range, or past the block asked by hash.
        let to = request["params"][0]["toBlock"]
            .as_str()
            .or(first["blockNumber"].as_str())
            .unwrap();
        let after = u64::from_str_radix(to.trim_start_matches("0x"), 16).unwrap() + 1;
        let mut outside = first.clone();
        outside["blockNumber"] = format!("{after:#x}").into();
        outside["blockHash"] = format!("0x{}", "ab".repeat(32)).into();
        outside["logIndex"] = "0x7d0".into();
        lies.push(outside);
    }
    answer["result"] = lies.into();
    serde_json::to_vec(&answer).unwrap()
}

/// Every log twice, removed logs and logs beyond the range: the index is the one a truthful
/// node gives.
#[tokio::test]
async fn logs_repeated_removed_or_out_of_range_change_nothing() {
    let world = World::start().await;
    world.workload().await;
    let (proxy, counters) = start_proxy(world.url().to_string(), None, true).await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = through(&proxy, &world, &db, Some(world.store()), options()).await;
    indexer.sync().await.unwrap();
    assert!(counters.lied.load(Ordering::SeqCst) > 0, "{counters:?}");
    let replay = world.replay(Kind::Sqlite).await;
    assert_eq!(
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
}

#[tokio::test]
async fn rpc_failures_are_retried_without_skipping_or_repeating_a_block() {
    let world = World::start().await;
    world.workload().await;
    let (proxy, counters) = start_proxy(world.url().to_string(), Some(4), false).await;

    let db = TestDb::new(Kind::Sqlite).await;
    let flaky_options = registry::indexer::Options {
        max_range: 50,
        max_retries: None,
        // Range reads below the last few blocks, for the proxy to refuse.
        reorg_window: 4,
        ..options()
    };
    let mut indexer = through(
        &proxy,
        &world,
        &db,
        Some(world.store()),
        flaky_options.clone(),
    )
    .await;
    indexer.sync().await.unwrap();
    assert!(counters.dropped.load(Ordering::SeqCst) > 0, "{counters:?}");
    assert!(counters.limited.load(Ordering::SeqCst) > 0, "{counters:?}");
    assert!(
        counters.refused.load(Ordering::SeqCst) > 0,
        "ranges were halved: {counters:?}"
    );
    // The indexer's metrics count every failure the proxy caused, by kind (the connection
    // the indexer opened with included).
    let text = indexer.metrics().render();
    let failures = |kind: &str| -> usize {
        text.lines()
            .filter(|l| {
                l.starts_with("registry_indexer_rpc_errors_total{")
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
            .sum()
    };
    assert_eq!(
        failures("failed"),
        counters.dropped.load(Ordering::SeqCst),
        "{text}"
    );
    assert_eq!(
        failures("rate_limited"),
        counters.limited.load(Ordering::SeqCst),
        "{text}"
    );
    assert_eq!(
        indexer
            .metrics()
            .rpc_errors("eth_getLogs", registry::indexer::metrics::Failure::Refused),
        counters.refused.load(Ordering::SeqCst) as u64,
        "{text}"
    );
    let (blocks, events) = indexer.metrics().applied();
    assert_eq!(blocks, indexer.cursor(), "{text}");
    assert!(events > 0, "{text}");

    let replay = world.replay_with(Kind::Sqlite, flaky_options).await;
    assert_eq!(
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
}

/// A node whose head falls behind the indexed blocks (a lagging backend) is waited for: no
/// reorg, nothing undone, even while the chain grows; once it catches up, indexing goes on.
#[tokio::test]
async fn a_node_behind_the_index_is_waited_for() {
    use registry::indexer::Step;
    let world = World::start().await;
    world.workload().await;
    let (proxy, counters) = start_proxy(world.url().to_string(), None, false).await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = through(&proxy, &world, &db, Some(world.store()), options()).await;
    let head = indexer.sync().await.unwrap();
    let before = db.open().await.history().await.unwrap();
    counters.ceiling.store(head - 3, Ordering::SeqCst);
    assert_eq!(
        indexer.step().await.unwrap(),
        Step::Behind { head: head - 3 }
    );
    world.activity(1, 7).await;
    assert_eq!(
        indexer.step().await.unwrap(),
        Step::Behind { head: head - 3 }
    );
    assert_eq!(db.open().await.history().await.unwrap(), before);
    let reorgs = store::entity::reorgs::Entity::find()
        .all(db.open().await.conn())
        .await
        .unwrap();
    assert!(reorgs.is_empty(), "{reorgs:?}");

    counters.ceiling.store(0, Ordering::SeqCst);
    indexer.sync().await.unwrap();
    let replay = world.replay(Kind::Sqlite).await;
    assert_eq!(
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
}

/// A range whose first block's header came from another fork (read once from a backend on
/// it) is read again: the hash stored for the block is the chain's; a block below the head
/// answered once as not there is retried, not fatal.
#[tokio::test]
async fn a_first_block_read_from_another_fork_is_read_again() {
    use ethers::providers::Middleware;
    let world = World::start().await;
    let (proxy, counters) = start_proxy(world.url().to_string(), None, false).await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = through(&proxy, &world, &db, None, options()).await;
    let head = indexer.sync().await.unwrap();
    let provider = registry::chain::provider(world.url()).unwrap();
    counters.forked_header.store(head + 1, Ordering::SeqCst);
    // And a block below the head the node does not have yet, once: retried, not fatal.
    counters.missing_header.store(head + 2, Ordering::SeqCst);
    for _ in 0..3 {
        let _: String = provider.request("evm_mine", ()).await.unwrap();
    }
    indexer.sync().await.unwrap();
    assert_eq!(
        counters.forked_header.load(Ordering::SeqCst),
        0,
        "the proxy answered the forked header"
    );
    assert_eq!(
        counters.missing_header.load(Ordering::SeqCst),
        0,
        "the proxy answered a block as missing"
    );
    let stored = store::entity::blocks::Entity::find_by_id((head + 1) as i64)
        .one(db.open().await.conn())
        .await
        .unwrap()
        .unwrap();
    let real = provider.get_block(head + 1).await.unwrap().unwrap();
    assert_eq!(stored.hash, format!("{:?}", real.hash.unwrap()));
}

/// The indexer's recorded state.
async fn state(db: &TestDb) -> store::entity::indexer_state::Model {
    store::entity::indexer_state::Entity::find_by_id(1)
        .one(db.open().await.conn())
        .await
        .unwrap()
        .unwrap()
}

/// A backend that lags the head answers a range `eth_getLogs` without the newest blocks'
/// logs, with no error; above the finalized block logs are asked by block hash, so the index
/// is whole.
#[tokio::test]
async fn range_answers_above_the_finalized_block_are_not_trusted() {
    let world = World::start().await;
    world.workload().await;
    let head = world.chain.head().await.unwrap();
    let (proxy, counters) = start_proxy(world.url().to_string(), None, false).await;
    // anvil in the tests finalizes two blocks below the head; the workload's last
    // transactions are in the two blocks above.
    counters.range_ceiling.store(head - 2, Ordering::SeqCst);
    let db = TestDb::new(Kind::Sqlite).await;
    // History of one block: everything up to the finalized block is read in ranges.
    let narrow = registry::indexer::Options {
        reorg_window: 1,
        ..options()
    };
    let mut indexer = through(&proxy, &world, &db, Some(world.store()), narrow.clone()).await;
    indexer.sync().await.unwrap();
    assert_eq!(state(&db).await.finalized_block as u64, head - 2);
    let replay = world.replay_with(Kind::Sqlite, narrow).await;
    assert_eq!(
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
    assert!(
        counters.emptied.load(Ordering::SeqCst) == 0,
        "no range answer reached above the finalized block: {counters:?}"
    );
}

/// A node that answers no logs for a block whose bloom names our contracts (a backend that
/// does not have the block yet, and says nothing) is caught: the block's receipts, which
/// rebuild its receipts root, give the logs.
#[tokio::test]
async fn an_empty_answer_by_block_hash_is_checked_against_the_receipts() {
    let world = World::start().await;
    world.workload().await;
    let (proxy, counters) = start_proxy(world.url().to_string(), None, false).await;
    counters.empty_by_hash.store(true, Ordering::SeqCst);
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = through(&proxy, &world, &db, Some(world.store()), options()).await;
    indexer.sync().await.unwrap();
    assert!(counters.emptied.load(Ordering::SeqCst) > 0, "{counters:?}");
    let replay = world.replay(Kind::Sqlite).await;
    assert_eq!(
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
}

/// The same on a node without `eth_getBlockReceipts`: one receipt per transaction, which
/// must rebuild the receipts root just the same; the refusals are counted as the node's word.
#[tokio::test]
async fn without_block_receipts_an_empty_answer_is_checked_one_receipt_at_a_time() {
    let world = World::start().await;
    world.workload().await;
    let (proxy, counters) = start_proxy(world.url().to_string(), None, false).await;
    counters.empty_by_hash.store(true, Ordering::SeqCst);
    counters.no_block_receipts.store(true, Ordering::SeqCst);
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = through(&proxy, &world, &db, Some(world.store()), options()).await;
    indexer.sync().await.unwrap();
    let refused = counters.block_receipts_refused.load(Ordering::SeqCst);
    assert!(refused > 0, "{counters:?}");
    assert!(
        counters.tx_receipts.load(Ordering::SeqCst) >= refused,
        "every refused block's receipts were asked one by one: {counters:?}"
    );
    assert_eq!(
        indexer.metrics().rpc_errors(
            "eth_getBlockReceipts",
            registry::indexer::metrics::Failure::Refused
        ),
        refused as u64
    );
    let replay = world.replay(Kind::Sqlite).await;
    assert_eq!(
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
}

/// The finalized block is the node's, not the head minus confirmations; a node without
/// finality falls back on confirmations; history above the finalized block is never pruned,
/// however far below the head.
#[tokio::test]
async fn the_node_s_finalized_block_decides_finality_and_pruning() {
    use registry::indexer::{Finality, Options};
    let world = World::start().await;
    world.workload().await;
    let head = world.chain.head().await.unwrap();
    let (proxy, counters) = start_proxy(world.url().to_string(), None, false).await;

    let db = TestDb::new(Kind::Sqlite).await;
    let tagged = Options {
        confirmations: 0,
        ..options()
    };
    through(&proxy, &world, &db, None, tagged.clone())
        .await
        .sync()
        .await
        .unwrap();
    assert_eq!(
        state(&db).await.finalized_block as u64,
        head - 2,
        "anvil's tag"
    );

    let db = TestDb::new(Kind::Sqlite).await;
    let counted = Options {
        finality: Finality::Confirmations,
        confirmations: 5,
        ..options()
    };
    through(&proxy, &world, &db, None, counted)
        .await
        .sync()
        .await
        .unwrap();
    assert_eq!(state(&db).await.finalized_block as u64, head - 5);

    counters.finalized.store(NO_FINALITY, Ordering::SeqCst);
    let db = TestDb::new(Kind::Sqlite).await;
    let fallback = Options {
        confirmations: 7,
        ..options()
    };
    through(&proxy, &world, &db, None, fallback)
        .await
        .sync()
        .await
        .unwrap();
    assert_eq!(state(&db).await.finalized_block as u64, head - 7);

    // Finality stalled at block 3: a reorg window of 4 blocks prunes nothing above it.
    counters.finalized.store(3, Ordering::SeqCst);
    let db = TestDb::new(Kind::Sqlite).await;
    let stalled = Options {
        reorg_window: 4,
        ..tagged
    };
    through(&proxy, &world, &db, None, stalled)
        .await
        .sync()
        .await
        .unwrap();
    let state = state(&db).await;
    assert_eq!(state.finalized_block, 3);
    assert!(state.pruned_to <= 3, "pruned to {}", state.pruned_to);
    let kept = store::entity::blocks::Entity::find()
        .all(db.open().await.conn())
        .await
        .unwrap();
    assert!(
        kept.iter().any(|b| b.number == 4),
        "the hash of block 4, above the finalized block, is kept"
    );
}

/// A reorg whose common ancestor the node answers once as not there (a lagging backend, a
/// dropped call) is searched again, not looked for lower: the rollback stops at the real
/// ancestor (looking lower rolled back blocks the chain still has, down to the prune horizon,
/// where the indexer stopped).
#[tokio::test]
async fn a_reorg_whose_ancestor_is_answered_missing_once_rolls_back_to_it() {
    use ethers::providers::Middleware;
    let world = World::start().await;
    world.workload().await;
    let (proxy, counters) = start_proxy(world.url().to_string(), None, false).await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = through(&proxy, &world, &db, None, options()).await;
    let ancestor = indexer.sync().await.unwrap();
    let provider = registry::chain::provider(world.url()).unwrap();
    let snapshot: ethers::types::U256 = provider.request("evm_snapshot", ()).await.unwrap();
    world.activity(2, 1).await;
    let old_head = indexer.sync().await.unwrap();
    let reverted: bool = provider.request("evm_revert", [snapshot]).await.unwrap();
    assert!(reverted);
    world.activity(1, 7).await;
    while provider.get_block_number().await.unwrap().as_u64() <= old_head {
        let _: String = provider.request("evm_mine", ()).await.unwrap();
    }
    counters.missing_header.store(ancestor, Ordering::SeqCst);
    let mut reorgs = Vec::new();
    for _ in 0..20 {
        match indexer.step().await {
            Ok(registry::indexer::Step::Reorg { ancestor, .. }) => reorgs.push(ancestor),
            Ok(_) => {}
            Err(e) => tracing::info!("step failed, retried: {e}"),
        }
        if !reorgs.is_empty() {
            break;
        }
    }
    assert_eq!(
        counters.missing_header.load(Ordering::SeqCst),
        0,
        "the proxy answered the ancestor as missing"
    );
    assert_eq!(reorgs, vec![ancestor], "rolled back to the real ancestor");
}

/// A node that once names a head far above the chain (finality by confirmations) while the
/// index backfills: the finalized block recorded stays at or below what is indexed (it only
/// grows, so it stayed pinned above the chain, every row read as final, for good).
#[tokio::test]
async fn one_spiked_head_does_not_pin_the_finalized_block_above_the_chain() {
    use registry::indexer::{Finality, Options};
    let world = World::start().await;
    world.workload().await;
    let head = world.chain.head().await.unwrap();
    let (proxy, counters) = start_proxy(world.url().to_string(), None, false).await;
    let db = TestDb::new(Kind::Sqlite).await;
    let counted = Options {
        finality: Finality::Confirmations,
        confirmations: 5,
        max_range: 2,
        ..options()
    };
    let mut indexer = through(&proxy, &world, &db, None, counted).await;
    counters.ceiling.store(head + 10_000, Ordering::SeqCst);
    let _ = indexer.step().await;
    counters.ceiling.store(0, Ordering::SeqCst);
    let recorded = state(&db).await;
    assert!(
        recorded.finalized_block <= recorded.cursor_block,
        "finalized {} above the cursor {}",
        recorded.finalized_block,
        recorded.cursor_block
    );
    indexer.sync().await.unwrap();
    assert_eq!(
        state(&db).await.finalized_block as u64,
        head - 5,
        "confirmations of the real head"
    );
}
