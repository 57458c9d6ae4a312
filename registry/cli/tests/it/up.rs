//! `registry up --demo`: the whole market in one process; its web app used in a real browser
//! (`web/tests/browser/market.mjs`: Chromium driven by playwright-core, a purchase signed by
//! an injected EIP-1193 wallet); a clean stop on Ctrl-C; a second start that resumes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::registry;

/// A running `registry up`.
struct Up {
    child: Child,
    /// The web app's base URL, without the trailing slash.
    base: String,
    rpc: String,
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Spawns `registry up [--demo]` in `dir` (free ports), its logs in `dir/up-N.log`.
fn spawn(dir: &Path, n: u32, demo: bool, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(dir.join(format!("up-{n}.log"))).unwrap();
    registry()
        .current_dir(dir)
        .args(["up", "--listen", "127.0.0.1:0", "--anvil-port", "0"])
        .args(demo.then_some("--demo"))
        .env("REGISTRY_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Starts `registry up --demo` in `dir` and waits for the URLs it prints.
fn start(dir: &Path, n: u32) -> Up {
    start_with(dir, n, true)
}

fn start_with(dir: &Path, n: u32, demo: bool) -> Up {
    let mut child = spawn(dir, n, demo, &[]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut base, mut rpc) = (None, None);
    while base.is_none() || rpc.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(240))
            .unwrap_or_else(|_| {
                panic!(
                    "registry up printed no URLs; its log:\n{}",
                    std::fs::read_to_string(dir.join(format!("up-{n}.log"))).unwrap_or_default()
                )
            });
        if let Some(url) = line.strip_prefix("market") {
            base = Some(url.trim().trim_end_matches('/').to_string());
        } else if let Some(rest) = line.strip_prefix("chain") {
            rpc = rest.split_whitespace().next().map(str::to_string);
        }
    }
    Up {
        child,
        base: base.unwrap(),
        rpc: rpc.unwrap(),
    }
}

/// Ctrl-C, as a terminal sends it; the exit status within 30 s.
fn interrupt(mut up: Up) -> std::process::ExitStatus {
    ctrl_c(&mut up.child).expect("registry up stops within 30 s of Ctrl-C")
}

fn ctrl_c(child: &mut Child) -> Option<std::process::ExitStatus> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Some(status) = child.try_wait().unwrap() {
        return Some(status);
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    None
}

/// A test that fails halfway still stops its market (and so its anvil).
impl Drop for Up {
    fn drop(&mut self) {
        let _ = ctrl_c(&mut self.child);
    }
}

fn graphql(runtime: &tokio::runtime::Runtime, base: &str, query: &str) -> Value {
    runtime.block_on(async {
        let answer: Value = reqwest::Client::new()
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer.get("errors").is_none(), "{answer}");
        answer["data"].clone()
    })
}

/// Polls `query` until `ready` holds (the indexer and its workers run beside the server).
fn until(
    runtime: &tokio::runtime::Runtime,
    base: &str,
    query: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let data = graphql(runtime, base, query);
        if ready(&data) {
            return data;
        }
        assert!(Instant::now() < deadline, "never ready: {data}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

const MARKET: &str = r#"{
  models(first: 20) { nodes { id name flagged { model { id } } fingerprintSummary { status } } }
  licenses(first: 50) { nodes { id holder } }
  outputBatches(first: 5) { nodes { count leafList { status } } }
}"#;

const FRANK: &str = "0x976ea74026e726554db657fa54763abd0c3a0aa9";

#[test]
fn up_demo_serves_a_market_a_browser_uses_and_resumes_after_ctrl_c() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let up = start(dir.path(), 1);

    // The demo as the indexer found it on the chain: four models, the copy flagged against
    // the model it copies, fingerprints checked, five licenses, the output batch's list.
    let seeded = until(&runtime, &up.base, MARKET, |d| {
        let models = d["models"]["nodes"].as_array().unwrap();
        models.len() == 4
            && models
                .iter()
                .all(|m| m["fingerprintSummary"]["status"] == "ok")
            && d["outputBatches"]["nodes"][0]["leafList"]["status"] == "INDEXED"
    });
    let models = seeded["models"]["nodes"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["aurora-base", "basil-encoder", "aurora-chat", "copycat"]
    );
    let flagged: Vec<(&str, &str)> = models
        .iter()
        .filter(|m| !m["flagged"].is_null())
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["flagged"]["model"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        flagged,
        [("copycat", "1")],
        "only the copy is flagged, against aurora-base"
    );
    assert_eq!(seeded["licenses"]["nodes"].as_array().unwrap().len(), 5);

    // The web app in Chromium: every page, and purchases through the injected wallet.
    let shots = repository().join("target/browser-screenshots");
    let browser = std::process::Command::new("node")
        .current_dir(repository())
        .arg("web/tests/browser/market.mjs")
        .args([&up.base, &up.rpc])
        .arg(&shots)
        .output()
        .expect("node runs (Node 20 is a prerequisite; `npm ci` installs playwright-core)");
    let said = String::from_utf8_lossy(&browser.stdout);
    eprintln!("{said}{}", String::from_utf8_lossy(&browser.stderr));
    assert!(
        browser.status.success(),
        "browser checks failed (screenshots in {}):\n{said}\n{}",
        shots.display(),
        String::from_utf8_lossy(&browser.stderr)
    );
    assert!(said.contains("browser checks passed"));
    for shot in [
        "catalogue.png",
        "model-aurora-chat.png",
        "account-dave.png",
        "rights-yes.png",
        "catalogue-phone.png",
    ] {
        assert!(shots.join(shot).is_file(), "no screenshot {shot}");
    }
    let bought = |runtime: &tokio::runtime::Runtime, base: &str| -> Vec<String> {
        let held = graphql(
            runtime,
            base,
            &format!(r#"{{ licenses(where: {{ holder: "{FRANK}" }}) {{ nodes {{ id }} }} }}"#),
        );
        held["licenses"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = bought(&runtime, &up.base);
    assert_eq!(
        before.len(),
        2,
        "the browser bought two licenses: {before:?}"
    );

    // Ctrl-C stops everything cleanly, anvil's chain saved.
    let status = interrupt(up);
    assert!(status.success(), "registry up exited with {status}");
    assert!(dir.path().join(".registry/anvil.json").is_file());

    // A second start resumes: same deployment, not seeded again, the purchases still there,
    // on the chain as in the index.
    let up = start(dir.path(), 2);
    let log = std::fs::read_to_string(dir.path().join("up-2.log")).unwrap();
    assert!(log.contains("resuming the deployment"), "{log}");
    assert!(log.contains("already seeded"), "{log}");
    let resumed = until(&runtime, &up.base, MARKET, |d| {
        d["models"]["nodes"].as_array().unwrap().len() == 4
    });
    assert_eq!(resumed["licenses"]["nodes"].as_array().unwrap().len(), 7);
    assert_eq!(bought(&runtime, &up.base), before);
    let rights = graphql(
        &runtime,
        &up.base,
        &format!(r#"{{ rights(address: "{FRANK}", model: "2", kind: ACCESS) {{ allowed }} }}"#),
    );
    assert_eq!(rights["rights"]["allowed"], true);

    // Killed outright (no Ctrl-C): its anvil outlives it. The next start stops that anvil
    // (which saves its chain) and resumes on it.
    let mut killed = up;
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let up = start(dir.path(), 3);
    let log = std::fs::read_to_string(dir.path().join("up-3.log")).unwrap();
    assert!(log.contains("stopping the anvil"), "{log}");
    assert!(log.contains("resuming the deployment"), "{log}");
    assert_eq!(bought(&runtime, &up.base), before);
    let status = interrupt(up);
    assert!(status.success(), "registry up exited with {status}");
}

/// Starts `registry up --demo` with its seeding paused after each step, and returns it once
/// the first model is minted.
fn seeding(dir: &Path) -> Child {
    let child = spawn(dir, 1, true, &[("REGISTRY_DEMO_PAUSE_MS", "2000")]);
    let log = dir.join("up-1.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("minted model 1")
    {
        assert!(Instant::now() < deadline, "the seeding never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The indexed models as (id, name), once at least `count` are there and all are named.
fn named_models(
    runtime: &tokio::runtime::Runtime,
    base: &str,
    count: usize,
) -> Vec<(String, String)> {
    let market = until(runtime, base, MARKET, |d| {
        let models = d["models"]["nodes"].as_array().unwrap();
        models.len() >= count && models.iter().all(|m| m["name"].is_string())
    });
    market["models"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().into(),
                m["name"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn demo_models() -> Vec<(String, String)> {
    ["aurora-base", "basil-encoder", "aurora-chat", "copycat"]
        .iter()
        .enumerate()
        .map(|(i, name)| ((i + 1).to_string(), name.to_string()))
        .collect()
}

#[test]
fn a_demo_interrupted_while_seeding_is_rolled_back_and_seeded_whole_next_time() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut first = seeding(dir.path());
    let status = ctrl_c(&mut first).expect("stops within 30 s");
    assert!(status.success(), "exited with {status}");
    let said = std::fs::read_to_string(dir.path().join("up-1.log")).unwrap();
    assert!(said.contains("rolled back"), "{said}");
    assert!(!dir.path().join(".registry/demo.json").exists());

    // The chain kept nothing of the partial demo: the model minted before Ctrl-C is gone.
    let up = start_with(dir.path(), 2, false);
    std::thread::sleep(Duration::from_secs(2));
    let market = graphql(&runtime, &up.base, MARKET);
    assert_eq!(market["models"]["nodes"], json!([]), "{market}");
    assert!(interrupt(up).success());

    // The next start with --demo seeds the whole demo on the same deployment.
    let up = start(dir.path(), 3);
    let said = std::fs::read_to_string(dir.path().join("up-3.log")).unwrap();
    assert!(said.contains("resuming the deployment"), "{said}");
    assert_eq!(named_models(&runtime, &up.base, 4), demo_models());
    assert!(dir.path().join(".registry/demo.json").is_file());

    // A second `registry up` on the same folder is refused (it would stop this one's anvil).
    let second = spawn(dir.path(), 4, true, &[]).wait_with_output().unwrap();
    assert_eq!(second.status.code(), Some(2));
    let said = std::fs::read_to_string(dir.path().join("up-4.log")).unwrap();
    assert!(said.contains("another `registry up` runs on"), "{said}");
    assert_eq!(named_models(&runtime, &up.base, 4), demo_models());
    assert!(interrupt(up).success());
}

#[test]
fn a_demo_killed_while_seeding_is_finished_by_the_next_start() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Killed outright after the first mint: no rollback; its anvil lives on with the model.
    let mut first = seeding(dir.path());
    first.kill().unwrap();
    first.wait().unwrap();
    // The next start stops that anvil (its chain saved) and finishes the demo: the model
    // already minted is reused, not minted again (which the registry would refuse).
    let up = start(dir.path(), 2);
    let said = std::fs::read_to_string(dir.path().join("up-2.log")).unwrap();
    assert!(said.contains("stopping the anvil"), "{said}");
    assert_eq!(named_models(&runtime, &up.base, 4), demo_models());
    assert!(interrupt(up).success());
}
