//! What encryption costs an author and a licensee, end to end through the library calls the
//! `registry` program makes, on a managed anvil and the embedded store:
//!
//! - `mint` of the same weights in plaintext and with `--encrypt` (fingerprinting, storing
//!   with read-back, metadata and the transaction), each on a fresh chain and store, runs
//!   interleaved; and the storing stage alone (`store_file` against `add_encrypted`);
//! - `download` of the encrypted model after a purchase and a keeper's delivery (fetch,
//!   decrypt, fingerprint check against the chain, write), of the plaintext one, and the fetch
//!   and decryption alone.
//!
//! `bash scripts/bench-encryption.sh` (writes a 1 GB synthetic bf16 model first), or
//! `cargo bench -p registry --bench encryption -- WEIGHTS [RUNS]`.

use std::path::Path;
use std::time::{Duration, Instant};

use age::x25519::Identity;
use content::{Store, Version};
use contracts::LicenseKind;
use ethers::types::{Address, U256};
use registry::access::{download, DownloadRequest};
use registry::chain;
use registry::deploy::deploy;
use registry::devnet::{Devnet, DevnetOptions};
use registry::keeper::Keeper;
use registry::keys::recipient_bytes;
use registry::market::{Market, OfferingTerms};
use registry::mint::{mint, MintRequest, Minted};
use registry::progress::Silent;
use registry::sealed::{add_encrypted, fetch_decrypted, ModelKey};

struct Chain {
    _devnet: Devnet,
    markets: Vec<Market>,
    dir: tempfile::TempDir,
    store: Store,
}

async fn chain() -> Chain {
    let devnet = Devnet::start(&DevnetOptions::default()).await.unwrap();
    let client = |i| chain::connect(devnet.endpoint(), devnet.wallet(i), None);
    let deployment = deploy(client(0).await.unwrap(), &[]).await.unwrap();
    let mut markets = Vec::new();
    for i in 0..3 {
        markets.push(
            Market::new(client(i).await.unwrap(), deployment.clone())
                .await
                .unwrap(),
        );
    }
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let store = Store::embedded(&dir.path().join("ipfs")).unwrap();
    Chain {
        _devnet: devnet,
        markets,
        dir,
        store,
    }
}

async fn mint_on(
    c: &Chain,
    weights: &Path,
    encrypt_to: Option<Vec<age::x25519::Recipient>>,
) -> (Minted, Duration) {
    let request = MintRequest {
        weights: weights.to_path_buf(),
        name: "bench".into(),
        description: None,
        parents: vec![],
        to: None,
        sale_royalty_bps: 0,
        derivative_royalty_bps: 0,
        force: false,
        backend: fingerprint::BackendKind::Cpu,
        cid_version: Version::V1,
        encrypt_to,
    };
    let start = Instant::now();
    let minted = mint(&c.markets[0], &c.store, &request, &Silent)
        .await
        .unwrap();
    (minted, start.elapsed())
}

/// Wall and CPU seconds one `download` of `model` to `out` takes (the file is removed
/// afterwards).
async fn timed_download(
    market: &Market,
    store: &Store,
    identity: &Identity,
    model: U256,
    out: &Path,
) -> (f64, f64) {
    let request = DownloadRequest {
        model,
        out: out.to_path_buf(),
        license: None,
        backend: fingerprint::BackendKind::Cpu,
        key_endpoint: None,
    };
    let (start, cpu) = (Instant::now(), cpu_secs());
    download(market, store, identity, &request, &Silent)
        .await
        .unwrap();
    let took = (secs(start.elapsed()), cpu_secs() - cpu);
    std::fs::remove_file(out).unwrap();
    took
}

/// CPU seconds this process has used (user and system, all threads), from /proc: what a
/// step costs on 2 cores beside its wall time.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) close with ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 (the 12th and 13th after the name), in clock
    // ticks of 1/100 s on Linux.
    ticks(11)
        .zip(ticks(12))
        .map_or(f64::NAN, |(u, s)| (u + s) / 100.0)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mbps(bytes: u64, d: f64) -> f64 {
    bytes as f64 / d / 1e6
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let weights = args
        .next()
        .expect("usage: encryption WEIGHTS [RUNS] (scripts/bench-encryption.sh writes one)");
    let weights = Path::new(&weights);
    let runs: usize = args.next().map(|r| r.parse().unwrap()).unwrap_or(3);
    let bytes = std::fs::metadata(weights).unwrap().len();
    println!(
        "weights: {} ({:.2} GB), {runs} runs each",
        weights.display(),
        bytes as f64 / 1e9
    );

    let author = Identity::generate();
    let keeper = Identity::generate();
    let (mut plain, mut sealed) = (Vec::new(), Vec::new());
    let (mut store_plain, mut store_sealed) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Whole mints, each on a fresh chain and store (the same weights cannot be minted
        // twice on one registry).
        let c = chain().await;
        let (_, t) = mint_on(&c, weights, None).await;
        plain.push(secs(t));
        drop(c);
        let c = chain().await;
        let (_, t) = mint_on(
            &c,
            weights,
            Some(vec![author.to_public(), keeper.to_public()]),
        )
        .await;
        sealed.push(secs(t));
        drop(c);
        // The storing stage alone.
        let c = chain().await;
        let start = Instant::now();
        c.store
            .store_file(weights, Version::V1, &|_| {})
            .await
            .unwrap();
        store_plain.push(secs(start.elapsed()));
        let start = Instant::now();
        add_encrypted(&c.store, weights, &keeper.to_public(), Version::V1, &|_| {})
            .await
            .unwrap();
        store_sealed.push(secs(start.elapsed()));
        println!(
            "run {run}: mint {:.2} s plaintext, {:.2} s encrypted; storing {:.2} s / {:.2} s",
            plain[run], sealed[run], store_plain[run], store_sealed[run]
        );
    }
    let (p, s) = (median(plain), median(sealed));
    println!(
        "mint (median): plaintext {p:.2} s, encrypted {s:.2} s: encryption adds {:+.1}%",
        (s / p - 1.0) * 100.0
    );
    let (sp, ss) = (median(store_plain), median(store_sealed));
    println!(
        "storing stage (median): plaintext {sp:.2} s ({:.0} MB/s), encrypted {ss:.2} s ({:.0} MB/s)",
        mbps(bytes, sp),
        mbps(bytes, ss)
    );

    // Downloads: an encrypted model bought, delivered by a keeper, downloaded; and the same
    // weights in plaintext.
    let c = chain().await;
    let (minted, _) = mint_on(
        &c,
        weights,
        Some(vec![author.to_public(), keeper.to_public()]),
    )
    .await;
    let terms = |model| OfferingTerms {
        model_id: model,
        kind: LicenseKind::Access.into(),
        currency: Address::zero(),
        price: U256::exp10(15),
        duration: 0,
        supply_cap: 0,
        transferable: false,
        commercial_use: false,
        royalty_bps: 0,
        renewal_period: 0,
        delivery_period: 86_400,
        terms_uri: String::new(),
        terms_hash: [0; 32],
    };
    c.markets[0]
        .set_keeper(c.markets[2].address(), true)
        .await
        .unwrap();
    let (offering, _) = c.markets[0].publish(terms(minted.model)).await.unwrap();
    let buyer = Identity::generate();
    c.markets[1]
        .buy(
            offering,
            c.markets[1].address(),
            U256::exp10(15),
            Some(recipient_bytes(&buyer.to_public())),
        )
        .await
        .unwrap();
    Keeper::new(&c.markets[2], &c.store, keeper.clone(), 0)
        .pass()
        .await
        .unwrap();
    let out = c.dir.path().join("downloaded.safetensors");
    let delivered = c.markets[1].delivery(U256::one()).await.unwrap().unwrap();
    let wrapped = c
        .store
        .read_bytes(
            &content::cids::parse(&delivered.wrapped_key_cid).unwrap(),
            1 << 16,
        )
        .await
        .unwrap();
    let key = ModelKey::unwrap(&wrapped, &buyer, "bench").unwrap();
    let (mut full, mut full_cpu) = (Vec::new(), Vec::new());
    let (mut fetch, mut fetch_cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (wall, cpu) = timed_download(&c.markets[1], &c.store, &buyer, minted.model, &out).await;
        full.push(wall);
        full_cpu.push(cpu);
        let (start, cpu) = (Instant::now(), cpu_secs());
        fetch_decrypted(&c.store, &minted.weights, &key, &out, &|_| {})
            .await
            .unwrap();
        fetch.push(secs(start.elapsed()));
        fetch_cpu.push(cpu_secs() - cpu);
        std::fs::remove_file(&out).unwrap();
    }
    // The check alone, on the file at rest (page cache warm).
    let (mut check, mut check_cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (start, cpu) = (Instant::now(), cpu_secs());
        let model = fingerprint::Model::open(weights).unwrap();
        fingerprint::fingerprint(&model, &fingerprint::backend::CpuBackend, |_| {}).unwrap();
        check.push(secs(start.elapsed()));
        check_cpu.push(cpu_secs() - cpu);
    }
    println!(
        "fingerprint of the file at rest (median): {:.2} s ({:.2} CPU s)",
        median(check),
        median(check_cpu)
    );
    let (f, d) = (median(full), median(fetch));
    println!(
        "download encrypted (median): {f:.2} s, {:.0} MB/s with the fingerprint check ({:.2} CPU s); fetch and decrypt alone {d:.2} s, {:.0} MB/s ({:.2} CPU s)",
        mbps(bytes, f),
        median(full_cpu),
        mbps(bytes, d),
        median(fetch_cpu),
    );
    drop(c);
    let c = chain().await;
    let out = c.dir.path().join("downloaded.safetensors");
    let (minted, _) = mint_on(&c, weights, None).await;
    let (mut plain_dl, mut plain_cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        // The owner downloads: no purchase needed for the plaintext comparison.
        let (wall, cpu) = timed_download(&c.markets[0], &c.store, &buyer, minted.model, &out).await;
        plain_dl.push(wall);
        plain_cpu.push(cpu);
    }
    let pd = median(plain_dl);
    println!(
        "download plaintext (median): {pd:.2} s, {:.0} MB/s with the fingerprint check ({:.2} CPU s)",
        mbps(bytes, pd),
        median(plain_cpu)
    );
}
