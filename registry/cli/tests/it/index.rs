//! `registry index` killed (SIGKILL) at random instants, over and over, and restarted: the end
//! state equals a clean replay, on SQLite and on PostgreSQL. Also `registry db migrate` and the
//! refusals of a second indexer and of a schema that is behind.

use std::process::{Command, Stdio};
use std::time::Duration;

use contracts::LicenseKind;
use ethers::types::{Address, U256};
use registry::devnet::{Devnet, DevnetOptions};
use registry::market::{Market, OfferingTerms};

use crate::dbs::{Kind, TestDb};
use crate::models::write_model;
use crate::registry;

/// Kills per database kind (the issue asks for at least 20 in one run).
const KILLS: usize = 22;
/// Offerings published and bought in the workload (two blocks each).
const WORKLOAD: u64 = 150;

struct Chain {
    runtime: tokio::runtime::Runtime,
    devnet: Devnet,
    dir: tempfile::TempDir,
}

impl Chain {
    /// anvil with the contracts deployed and a workload of ~300 blocks mined.
    fn with_workload() -> Chain {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let devnet = runtime
            .block_on(Devnet::start(&DevnetOptions::default()))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain {
            runtime,
            devnet,
            dir,
        };
        let out = chain
            .registry(&[
                "deploy",
                "--rpc-url",
                chain.devnet.endpoint(),
                "--dev-account",
                "0",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let model = chain.dir.path().join("m.safetensors");
        write_model(&model, 3, 0.0);
        let out = chain
            .registry(&[
                "--dev-account",
                "0",
                "mint",
                model.to_str().unwrap(),
                "--name",
                "m",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        chain.extend(WORKLOAD);
        chain
    }

    /// Publishes and buys `n` more offerings (two blocks each).
    fn extend(&self, n: u64) {
        self.runtime.block_on(async {
            let deployment =
                registry::deploy::Deployment::load(&self.dir.path().join("deployment.json"))
                    .unwrap();
            let client =
                |i| registry::chain::connect(self.devnet.endpoint(), self.devnet.wallet(i), None);
            let author = Market::new(client(0).await.unwrap(), deployment.clone())
                .await
                .unwrap();
            let buyer = Market::new(client(1).await.unwrap(), deployment)
                .await
                .unwrap();
            for i in 0..n {
                let price = U256::exp10(15) * (i + 1);
                let (offering, _) = author
                    .publish(OfferingTerms {
                        model_id: U256::one(),
                        kind: LicenseKind::Access.into(),
                        currency: Address::zero(),
                        price,
                        duration: 3_600,
                        supply_cap: 0,
                        transferable: false,
                        commercial_use: false,
                        royalty_bps: 0,
                        renewal_period: 0,
                        delivery_period: 0,
                        terms_uri: String::new(),
                        terms_hash: [0; 32],
                    })
                    .await
                    .unwrap();
                buyer
                    .buy(offering, buyer.address(), price, None)
                    .await
                    .unwrap();
            }
        });
    }

    fn registry(&self, args: &[&str]) -> Command {
        let mut command = registry();
        command
            .current_dir(self.dir.path())
            .args(["--ipfs", self.dir.path().join("ipfs").to_str().unwrap()])
            .args(args);
        command
    }

    fn index(&self, db: &TestDb) -> Command {
        let mut command = self.registry(&[
            "--database-url",
            &db.url,
            "index",
            "--once",
            "--max-range",
            "1",
            "--confirmations",
            "2",
        ]);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        command
    }
}

/// The address in the `metrics at http://ADDR/metrics` line an indexer prints (the rest of its
/// stderr is drained on a thread).
fn metrics_address(stderr: std::process::ChildStderr) -> String {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("metrics at http://") {
            let address = rest.trim_end_matches("/metrics").to_string();
            std::thread::spawn(move || lines.for_each(drop));
            return address;
        }
    }
    panic!("the indexer printed no metrics address");
}

/// A plain HTTP/1.1 GET: the whole answer, status line and headers included.
fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
}

/// The value of the sample line `name value` (0 when absent).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn kill_and_restart(kind: Kind) {
    let chain = Chain::with_workload();
    let db = chain.runtime.block_on(TestDb::new(kind));
    // A fixed-seed generator: varied but reproducible kill times.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ kind as u64;
    let mut killed = 0;
    let mut purchases = WORKLOAD;
    while killed < KILLS {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let delay = Duration::from_millis(20 + (x >> 33) % 120);
        let mut child = chain.index(&db).spawn().unwrap();
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            // It reached the head before the kill: give it more to do.
            assert!(status.success(), "index failed: {status}");
            chain.extend(20);
            purchases += 20;
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        killed += 1;
    }
    let out = chain.index(&db).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let replay = chain.runtime.block_on(TestDb::new(kind));
    let out = chain.index(&replay).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    chain.runtime.block_on(async {
        let a = db.open().await.history().await.unwrap();
        let b = replay.open().await.history().await.unwrap();
        assert_eq!(
            a["licenses"].len() as u64,
            purchases,
            "every purchase is indexed"
        );
        assert_eq!(a, b, "after {killed} kills the state equals a clean replay");
        db.drop_db().await;
        replay.drop_db().await;
    });
    assert!(killed >= 20, "killed {killed} times");
}

#[test]
fn killed_at_random_points_ends_equal_to_a_clean_replay_on_sqlite() {
    kill_and_restart(Kind::Sqlite);
}

#[test]
fn killed_at_random_points_ends_equal_to_a_clean_replay_on_postgres() {
    kill_and_restart(Kind::Postgres);
}

#[test]
fn migrate_then_one_indexer_per_database() {
    let chain = Chain::with_workload();
    let db = chain.runtime.block_on(TestDb::empty(Kind::Sqlite));
    // A schema that is behind is refused, with a hint.
    let out = chain.index(&db).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("behind") && stderr.contains("registry db migrate"),
        "{stderr}"
    );
    let out = chain
        .registry(&["--database-url", &db.url, "db", "migrate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A following indexer holds the lock (and serves its metrics); a second one is refused.
    let mut follower = chain
        .registry(&[
            "--database-url",
            &db.url,
            "index",
            "--poll-ms",
            "100",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = metrics_address(follower.stderr.take().unwrap());
    // Followed to the head: its blocks and events are counted.
    let mut text = String::new();
    for _ in 0..100 {
        text = http_get(&metrics, "/metrics");
        if sample(&text, "registry_indexer_events_total") > 0.0
            && sample(&text, "registry_indexer_cursor_block")
                == sample(&text, "registry_indexer_head_block")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/openmetrics-text"), "{text}");
    assert!(
        sample(&text, "registry_indexer_events_total") >= 2.0 * WORKLOAD as f64,
        "{text}"
    );
    assert!(
        sample(&text, "registry_indexer_cursor_block") > 0.0,
        "{text}"
    );
    let out = chain.index(&db).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("another indexer"), "{stderr}");
    follower.kill().unwrap();
    follower.wait().unwrap();
    let out = chain.index(&db).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
