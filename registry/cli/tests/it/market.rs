//! The whole market story through the `registry` program, against a real anvil and each content
//! backend (the embedded store and a real IPFS daemon over the Kubo RPC API): deploy, mint,
//! offer, buy, refuse an undeclared derivative, mint a declared one, royalties up the lineage,
//! withdraw, rights before and after expiry, renew, verify, tampering, and bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use ethers::providers::Middleware;
use registry::devnet::{Devnet, DevnetOptions};
use serde_json::Value;

use crate::jsipfs::JsIpfs;
use crate::models::write_model;
use crate::registry;

pub(crate) const ACCOUNT: [&str; 3] = [
    "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
    "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
    "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
];
pub(crate) const DAY: u64 = 86_400;

pub(crate) struct Env {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) devnet: Devnet,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ipfs: String,
    _daemon: Option<JsIpfs>,
}

impl Env {
    pub(crate) fn start(kubo: bool) -> Self {
        // Multi-threaded, so the task draining anvil's output runs while the test blocks.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let devnet = runtime
            .block_on(Devnet::start(&DevnetOptions::default()))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (ipfs, daemon) = if kubo {
            let daemon = JsIpfs::start();
            (daemon.api().to_string(), Some(daemon))
        } else {
            (dir.path().join("ipfs").display().to_string(), None)
        };
        let env = Self {
            runtime,
            devnet,
            dir,
            ipfs,
            _daemon: daemon,
        };
        let deployed = env.ok(0, &["deploy", "--rpc-url", env.devnet.endpoint(), "--json"]);
        assert_eq!(deployed["chain_id"], 31337);
        env
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `registry` as dev account `account` on this deployment and content store.
    pub(crate) fn run(&self, account: u32, args: &[&str]) -> Output {
        registry()
            .current_dir(self.dir.path())
            .args(["--ipfs", &self.ipfs, "--dev-account", &account.to_string()])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns stdout parsed as JSON when it is JSON.
    pub(crate) fn ok(&self, account: u32, args: &[&str]) -> Value {
        let out = self.run(account, args);
        assert!(
            out.status.success(),
            "registry {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Runs and expects exit code `code`; returns stderr.
    pub(crate) fn fails(&self, account: u32, args: &[&str], code: i32) -> String {
        let out = self.run(account, args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "registry {args:?}: stdout {} stderr {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    pub(crate) fn credits(&self, account: usize) -> String {
        let v = self.ok(0, &["balance", ACCOUNT[account], "--json"]);
        v["credits"]["amount"].as_str().unwrap().to_string()
    }

    /// Moves the chain's clock forward and mines a block.
    pub(crate) fn advance(&self, seconds: u64) {
        let provider = registry::chain::provider(self.devnet.endpoint()).unwrap();
        self.runtime.block_on(async {
            let _: i64 = provider
                .request("evm_increaseTime", [seconds])
                .await
                .unwrap();
            let _: String = provider.request("evm_mine", ()).await.unwrap();
            provider.get_block_number().await.unwrap();
        });
    }
}

pub(crate) fn id(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

pub(crate) fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn story(kubo: bool) {
    let env = Env::start(kubo);
    let base = env.path("base.safetensors");
    let tuned = env.path("tuned.safetensors");
    write_model(&base, 1, 0.0);
    // A fine-tune: the base weights plus 3% noise.
    write_model(&tuned, 1, 0.03);

    // The author mints the base model and offers fine-tune and access licenses.
    let minted = env.ok(0, &["mint", path_str(&base), "--name", "base", "--json"]);
    assert_eq!(id(&minted, "model"), "1");
    let weights_cid = id(&minted, "weights_cid");
    assert!(
        weights_cid.starts_with("bafk"),
        "one chunk, raw leaf: {weights_cid}"
    );
    let fine_tune = env.ok(
        0,
        &[
            "offer",
            "1",
            "--kind",
            "fine-tune",
            "--price",
            "1",
            "--royalty-bps",
            "2000",
            "--duration",
            "30d",
            "--json",
        ],
    );
    assert_eq!(id(&fine_tune, "offering"), "1");
    let access = env.ok(
        0,
        &[
            "offer",
            "1",
            "--kind",
            "access",
            "--price",
            "0.1",
            "--duration",
            "1h",
            "--json",
        ],
    );
    assert_eq!(id(&access, "offering"), "2");

    // A licensee buys access and fine-tune rights.
    let bought = env.ok(1, &["buy", "2", "--json"]);
    assert_eq!(id(&bought, "license"), "1");
    assert_eq!(bought["holder"], ACCOUNT[1]);
    let ft_license = env.ok(1, &["buy", "1", "--json"]);
    assert_eq!(id(&ft_license, "license"), "2");

    // Minting the fine-tune without declaring its parent is refused, naming the parent.
    let refused = env.fails(1, &["mint", path_str(&tuned), "--name", "tuned"], 2);
    assert!(refused.contains("derived from model 1"), "{refused}");
    assert!(refused.contains("--parent 1"), "hint: {refused}");
    // Declared, it mints, with the fine-tune license found automatically.
    let derived = env.ok(
        1,
        &[
            "mint",
            path_str(&tuned),
            "--name",
            "tuned",
            "--parent",
            "1",
            "--json",
        ],
    );
    assert_eq!(id(&derived, "model"), "2");
    assert_eq!(derived["parents"][0]["license"], "2");
    assert_eq!(derived["related"][0]["model"], 1);
    let shown = env.ok(0, &["show", "2", "--json"]);
    assert_eq!(shown["parents"][0]["model"], "1");
    assert_eq!(shown["parents"][0]["royalty_bps"], 2000);
    assert_eq!(shown["owner"], ACCOUNT[1]);

    // A sale of the derivative pays 20% up the lineage.
    env.ok(
        1,
        &[
            "offer",
            "2",
            "--kind",
            "access",
            "--price",
            "0.5",
            "--duration",
            "1d",
        ],
    );
    let sale = env.ok(2, &["buy", "3", "--json"]);
    let license = id(&sale, "license");
    assert_eq!(license, "3");
    // Base owner: 1 (fine-tune) + 0.1 (access) + 0.1 (20% of 0.5); derivative owner: 0.4.
    assert_eq!(env.credits(0), "1.2");
    assert_eq!(env.credits(1), "0.4");

    // Withdrawals empty the balance; a second one is the contract's decoded error.
    let withdrawn = env.ok(0, &["withdraw", "--json"]);
    assert_eq!(withdrawn["amount"]["amount"], "1.2");
    assert_eq!(env.credits(0), "0");
    let nothing = env.fails(0, &["withdraw"], 2);
    assert!(nothing.contains("NothingToWithdraw"), "{nothing}");

    // Rights: yes now, no after the one-day expiry; the holder renews before it lapses.
    let yes = env.ok(0, &["rights", ACCOUNT[2], "2", "--json"]);
    assert_eq!(yes["allowed"], true);
    assert_eq!(yes["license"], "3");
    env.fails(0, &["rights", ACCOUNT[2], "2", "--at", "+2d"], 1);
    env.fails(0, &["rights", ACCOUNT[2], "2", "--kind", "output"], 1);
    let owner = env.ok(
        0,
        &["rights", ACCOUNT[1], "2", "--kind", "output", "--json"],
    );
    assert_eq!(owner["owner"], true);
    let renewed = env.ok(2, &["renew", &license, "--json"]);
    let (start, expiry) = (
        renewed["start"].as_u64().unwrap(),
        renewed["expiry"].as_u64().unwrap(),
    );
    assert_eq!(expiry, start + 2 * DAY, "one more day from the old expiry");
    assert_eq!(env.credits(0), "0.1", "the renewal paid royalties again");
    env.advance(DAY + DAY / 2);
    env.ok(0, &["rights", ACCOUNT[2], "2"]);
    env.advance(DAY);
    let lapsed = env.run(0, &["rights", ACCOUNT[2], "2"]);
    assert_eq!(lapsed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&lapsed.stdout).starts_with("no"));

    // Verification: the stored weights match the chain; a tampered copy does not.
    let verified = env.ok(2, &["verify", "2", "--json"]);
    assert_eq!(verified["ok"], true);
    let tampered = env.path("tampered.safetensors");
    let mut bytes = std::fs::read(&tuned).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    std::fs::write(&tampered, bytes).unwrap();
    let differs = env.fails(2, &["verify", "2", "--weights", path_str(&tampered)], 1);
    assert!(differs.contains("content root"), "{differs}");

    // Bad input gets clear errors.
    let price = env.fails(2, &["buy", "3", "--max-price", "0.1"], 2);
    assert!(price.contains("PriceAboveMax"), "{price}");
    let broke_key = "0x0123456789012345678901234567890123456789012345678901234567890123";
    let broke = registry()
        .current_dir(env.dir.path())
        .args(["--ipfs", &env.ipfs, "--private-key", broke_key, "buy", "3"])
        .output()
        .unwrap();
    let broke_err = String::from_utf8_lossy(&broke.stderr);
    assert_eq!(broke.status.code(), Some(2), "{broke_err}");
    assert!(
        broke_err.to_lowercase().contains("insufficient funds"),
        "{broke_err}"
    );
    assert!(broke_err.contains("hint: "), "{broke_err}");
    let missing = env.fails(0, &["mint", "no-such.safetensors", "--name", "x"], 2);
    assert!(missing.contains("no-such.safetensors"), "{missing}");
    let bad_cid = env.fails(0, &["content", "get", "bafy-not-a-cid"], 2);
    assert!(bad_cid.contains("invalid cid"), "{bad_cid}");
    let chain = env.fails(0, &["--chain-id", "1", "show", "1"], 2);
    assert!(chain.contains("chain id mismatch"), "{chain}");
    let unknown = env.fails(0, &["show", "99"], 2);
    assert!(unknown.contains("UnknownModel"), "{unknown}");

    // Every command's output for the content it stored reads back through the CLI.
    let fetched = env.path("fetched.safetensors");
    env.ok(
        0,
        &["content", "get", &weights_cid, "--out", path_str(&fetched)],
    );
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(&base).unwrap()
    );
}

#[test]
fn market_story_on_the_embedded_store() {
    story(false);
}

#[test]
fn market_story_on_an_ipfs_daemon() {
    story(true);
}

#[test]
fn a_corrupted_stored_block_fails_verification_naming_the_block() {
    let env = Env::start(false);
    let model = env.path("m.safetensors");
    write_model(&model, 7, 0.0);
    let minted = env.ok(0, &["mint", path_str(&model), "--name", "m", "--json"]);
    let cid = id(&minted, "weights_cid");
    // The weights are one raw block: find its file in the embedded store and flip a byte.
    let parsed: cid::Cid = cid.parse().unwrap();
    let digest = hex::encode(parsed.hash().digest());
    let block = env
        .path("ipfs")
        .join("blocks")
        .join(&digest[..2])
        .join(&digest);
    let mut bytes = std::fs::read(&block).unwrap();
    bytes[200] ^= 1;
    std::fs::write(&block, bytes).unwrap();
    let err = env.fails(0, &["verify", "1"], 2);
    assert!(err.contains(&cid) && err.contains("corrupt"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn content_commands_round_trip_and_export_car() {
    let env = Env::start(false);
    let file = env.path("data.bin");
    let data: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let added = env.ok(0, &["content", "add", path_str(&file), "--json"]);
    let cid = id(&added, "cid");
    assert_eq!(added["size"], 700_000);
    let v0 = env.run(
        0,
        &["content", "add", "--cid-version", "0", path_str(&file)],
    );
    assert!(String::from_utf8_lossy(&v0.stdout).starts_with("Qm"));
    let car = env.path("data.car");
    env.ok(0, &["content", "export-car", &cid, path_str(&car)]);
    // Import into a fresh store and read it back from there.
    let other = env.path("other-store");
    let imported = registry()
        .args([
            "--ipfs",
            path_str(&other),
            "content",
            "import-car",
            path_str(&car),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let roots: Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(roots["roots"][0], cid.as_str());
    let out = registry()
        .args(["--ipfs", path_str(&other), "content", "get", &cid])
        .output()
        .unwrap();
    assert_eq!(out.stdout, data);
}

#[test]
fn settings_come_from_config_then_env_then_flags() {
    let env = Env::start(false);
    let signer = |envs: &[(&str, &str)], args: &[&str]| -> String {
        let mut command = registry();
        command
            .current_dir(env.dir.path())
            .envs(envs.iter().copied());
        let out = command
            .args(args)
            .args(["balance", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["account"].as_str().unwrap().to_string()
    };
    // Nothing given on anvil's chain: dev account 0.
    assert_eq!(signer(&[], &[]), ACCOUNT[0]);
    std::fs::write(env.path("registry.toml"), "dev_account = 2\n").unwrap();
    assert_eq!(signer(&[], &[]), ACCOUNT[2], "the config file");
    assert_eq!(
        signer(&[("REGISTRY_DEV_ACCOUNT", "1")], &[]),
        ACCOUNT[1],
        "env over file"
    );
    assert_eq!(
        signer(&[("REGISTRY_DEV_ACCOUNT", "1")], &["--dev-account", "0"]),
        ACCOUNT[0],
        "flag over env"
    );
    // A typo in the config file is an error naming the file and the key.
    std::fs::write(env.path("registry.toml"), "dev_acount = 2\n").unwrap();
    let out = registry()
        .current_dir(env.dir.path())
        .args(["balance"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("registry.toml") && stderr.contains("dev_acount"),
        "{stderr}"
    );
}

/// A node that takes a transaction and never mines it: the program gives up after
/// `--tx-timeout`, naming the transaction and saying it may still be mined.
#[test]
fn a_transaction_never_mined_times_out_with_a_named_error() {
    let env = Env::start(false);
    let provider = registry::chain::provider(env.devnet.endpoint()).unwrap();
    env.runtime.block_on(async {
        let _: () = provider.request("evm_setAutomine", [false]).await.unwrap();
    });
    let err = env.fails(
        0,
        &["keeper", "approve", ACCOUNT[1], "--tx-timeout", "2"],
        2,
    );
    assert!(
        err.contains("was not mined within 2 s") && err.contains("it may still be"),
        "{err}"
    );
}
