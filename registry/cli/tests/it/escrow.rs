//! Encrypted models as their users meet them through the `registry` program, against a real
//! anvil and the embedded store: the author mints encrypted and goes offline, a buyer pays into
//! escrow, a keeper delivers the key, the buyer downloads; and every way it can go wrong,
//! tried the way a freeloader, a flaky keeper or a tamperer would.

use std::process::Stdio;

use content::{Blockstore, Cid};

use crate::market::{id, path_str, Env, ACCOUNT, DAY};
use crate::models::write_model;

const AUTHOR: u32 = 0;
const BUYER: u32 = 1;
const KEEPER: u32 = 2;
const KEEPER_B: u32 = 3;

/// An encrypted model with a keeper (account 2, approved) and an access offering; returns
/// (model, offering, weights file).
fn encrypted_market(env: &Env, seed: u32, price: &str) -> (String, String, std::path::PathBuf) {
    let keeper = env.ok(KEEPER, &["identity", "--json"]);
    let weights = env.path(&format!("model-{seed}.safetensors"));
    write_model(&weights, seed, 0.0);
    let minted = env.ok(
        AUTHOR,
        &[
            "mint",
            path_str(&weights),
            "--name",
            "sealed",
            "--encrypt",
            "--keeper",
            keeper["recipient"].as_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(minted["encrypted"], true);
    let model = id(&minted, "model");
    env.ok(AUTHOR, &["keeper", "approve", ACCOUNT[KEEPER as usize]]);
    let offered = env.ok(
        AUTHOR,
        &[
            "offer",
            &model,
            "--kind",
            "access",
            "--price",
            price,
            "--duration",
            "30d",
            "--transferable",
            "--json",
        ],
    );
    assert_eq!(offered["delivery_period"], DAY);
    (model, id(&offered, "offering"), weights)
}

fn blocks(env: &Env) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![env.path("ipfs").join("blocks")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The buyer's identity file is created on first use, private, and never printed.
#[test]
fn identities_are_created_private_and_only_the_recipient_is_printed() {
    let env = Env::start(false);
    let out = env.run(BUYER, &["identity"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.trim().starts_with("age1"), "{stdout}");
    let file = env.path(&format!(".registry/keys/{}.txt", ACCOUNT[BUYER as usize]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("AGE-SECRET-KEY-1"));
    assert!(!stdout.contains("AGE-SECRET-KEY") && !stderr.contains("AGE-SECRET-KEY"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The same recipient every time.
    let again = env.ok(BUYER, &["identity", "--json"]);
    assert_eq!(again["recipient"].as_str().unwrap(), stdout.trim());
}

/// The whole flow: no plaintext in the store, escrow until delivery, the keeper delivers, the
/// buyer downloads exactly the original; a stranger and a wrong identity are refused by name.
#[test]
fn encrypted_model_is_bought_delivered_by_a_keeper_and_downloaded() {
    let env = Env::start(false);
    let (model, offering, weights) = encrypted_market(&env, 41, "0.5");
    let original = std::fs::read(&weights).unwrap();

    // No block holds the plaintext: not the safetensors header, not any stretch of tensor data.
    let header_len = u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let data = &original[8 + header_len..];
    // (Tensor names and shapes are public: the fingerprint and metadata carry them.)
    let probes: Vec<&[u8]> = vec![
        &original[8..8 + header_len],
        &data[..32],
        &data[data.len() / 2..data.len() / 2 + 32],
        &data[data.len() - 32..],
    ];
    let stored = blocks(&env);
    assert!(
        stored.len() >= 4,
        "weights, envelope, fingerprint, metadata"
    );
    for block in &stored {
        let bytes = std::fs::read(block).unwrap();
        for probe in &probes {
            assert!(
                !contains(&bytes, probe),
                "{} holds plaintext",
                block.display()
            );
        }
    }

    // Checking an encrypted model against the chain needs the plaintext: a licensee's.
    let verify = env.fails(BUYER, &["verify", &model], 2);
    assert!(
        verify.contains(&format!("model {model} is encrypted")),
        "{verify}"
    );
    // An id beyond 64 bits is an error, not a crash.
    let huge = env.fails(
        BUYER,
        &["download", "18446744073709551616", "--out", "h.safetensors"],
        2,
    );
    assert!(huge.contains("18446744073709551616"), "{huge}");
    // Buying for someone else needs their recipient: the signer's own would lock them out.
    let for_other = env.fails(
        BUYER,
        &["buy", &offering, "--for", ACCOUNT[KEEPER as usize]],
        2,
    );
    assert!(for_other.contains("needs --recipient"), "{for_other}");

    // A stranger gets a named refusal with the offering that sells access.
    let refused = env.fails(
        BUYER,
        &["download", &model, "--out", "stolen.safetensors"],
        2,
    );
    assert!(
        refused.contains(&format!(
            "no valid access or fine-tune license of model {model}"
        )),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("offerings on sale: {offering}")),
        "{refused}"
    );
    assert!(!env.path("stolen.safetensors").exists());

    // The purchase pays into escrow: nobody is credited before the key is delivered.
    let bought = env.ok(BUYER, &["buy", &offering, "--json"]);
    let license = id(&bought, "license");
    assert!(bought["key_deadline"].as_u64().unwrap() > 0);
    assert_eq!(env.credits(AUTHOR as usize), "0");
    let waiting = env.fails(
        BUYER,
        &["download", &model, "--out", "early.safetensors"],
        2,
    );
    assert!(
        waiting.contains(&format!(
            "license {license} of model {model} is waiting for its key"
        )),
        "{waiting}"
    );

    // The keeper delivers, and the author (offline all along) is paid.
    let delivered = env.run(KEEPER, &["keeper", "--once"]);
    let stdout = String::from_utf8_lossy(&delivered.stdout);
    assert!(
        delivered.status.success(),
        "{}",
        String::from_utf8_lossy(&delivered.stderr)
    );
    assert!(
        stdout.contains(&format!("delivered license {license}")),
        "{stdout}"
    );
    assert_eq!(env.credits(AUTHOR as usize), "0.5");
    // A second pass has nothing left to do.
    let again = env.run(KEEPER, &["keeper", "--once"]);
    assert!(String::from_utf8_lossy(&again.stdout).trim().is_empty());

    // The buyer downloads exactly the original, checked against the chain.
    let got = env.ok(
        BUYER,
        &["download", &model, "--out", "got.safetensors", "--json"],
    );
    assert_eq!(got["encrypted"], true);
    assert_eq!(got["license"], license.as_str());
    assert_eq!(
        std::fs::read(env.path("got.safetensors")).unwrap(),
        original
    );

    // The right license under the wrong identity: the key is not wrapped to it.
    let other = env.ok(KEEPER_B, &["identity", "--json"]);
    let other = std::path::PathBuf::from(other["identity_file"].as_str().unwrap());
    let other = env.path(path_str(&other));
    let wrong = env.fails(
        BUYER,
        &[
            "--identity",
            path_str(&other),
            "download",
            &model,
            "--out",
            "wrong.safetensors",
        ],
        2,
    );
    assert!(
        wrong.contains(&format!(
            "the key delivered to license {license} is not wrapped to this identity"
        )),
        "{wrong}"
    );
    assert!(!env.path("wrong.safetensors").exists());
}

/// A tampered ciphertext block is caught by its CID before anything is decrypted or written.
#[test]
fn a_tampered_ciphertext_block_is_named() {
    let env = Env::start(false);
    let (model, offering, _) = encrypted_market(&env, 42, "0");
    env.ok(BUYER, &["buy", &offering]);
    env.ok(KEEPER, &["keeper", "--once"]);
    let shown = env.ok(BUYER, &["show", &model, "--json"]);
    let cid: Cid = shown["weights_cid"].as_str().unwrap().parse().unwrap();
    let store = Blockstore::open(env.path("ipfs")).unwrap();
    let block = store.path_of(&cid);
    let mut bytes = std::fs::read(&block).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    std::fs::write(&block, &bytes).unwrap();
    let err = env.fails(BUYER, &["download", &model, "--out", "x.safetensors"], 2);
    assert!(
        err.contains(&format!("block {cid}")) && err.contains("is corrupt"),
        "{err}"
    );
    assert!(!env.path("x.safetensors").exists());
}

/// No delivery by the deadline: the buyer takes the price back (not a second before), the
/// license is burnt, and a keeper that wakes up late cannot deliver any more.
#[test]
fn an_undelivered_purchase_is_refunded_after_the_deadline_only() {
    let env = Env::start(false);
    let (_, offering, _) = encrypted_market(&env, 43, "0.25");
    let bought = env.ok(BUYER, &["buy", &offering, "--json"]);
    let license = id(&bought, "license");
    let early = env.fails(BUYER, &["refund", &license], 2);
    assert!(early.contains("DeliveryNotOverdue"), "{early}");
    assert!(early.contains("hint: "), "{early}");
    env.advance(DAY);
    let refunded = env.ok(BUYER, &["refund", &license, "--json"]);
    assert_eq!(refunded["payer"].as_str().unwrap(), ACCOUNT[BUYER as usize]);
    assert_eq!(refunded["amount"], "250000000000000000");
    assert_eq!(env.credits(BUYER as usize), "0.25");
    assert_eq!(env.credits(AUTHOR as usize), "0");
    let twice = env.fails(BUYER, &["refund", &license], 2);
    assert!(twice.contains("NotPendingDelivery"), "{twice}");
    // The late keeper finds nothing owed.
    let late = env.run(KEEPER, &["keeper", "--once"]);
    assert!(late.status.success());
    assert!(!String::from_utf8_lossy(&late.stdout).contains("delivered"));
}

/// Two keepers racing over the same purchases deliver each key once; a keeper killed between
/// storing a wrapped key and delivering it delivers exactly once when restarted.
#[test]
fn racing_and_crashing_keepers_deliver_each_key_once() {
    let env = Env::start(false);
    let keeper_b = env.ok(KEEPER_B, &["identity", "--json"]);
    let keeper = env.ok(KEEPER, &["identity", "--json"]);
    let weights = env.path("raced.safetensors");
    write_model(&weights, 44, 0.0);
    let minted = env.ok(
        AUTHOR,
        &[
            "mint",
            path_str(&weights),
            "--name",
            "raced",
            "--encrypt",
            "--keeper",
            keeper["recipient"].as_str().unwrap(),
            "--keeper",
            keeper_b["recipient"].as_str().unwrap(),
            "--json",
        ],
    );
    let model = id(&minted, "model");
    env.ok(AUTHOR, &["keeper", "approve", ACCOUNT[KEEPER as usize]]);
    env.ok(
        AUTHOR,
        &["keeper", "approve", keeper_b["account"].as_str().unwrap()],
    );
    let offered = env.ok(
        AUTHOR,
        &[
            "offer", &model, "--kind", "access", "--price", "0.1", "--json",
        ],
    );
    let offering = id(&offered, "offering");
    let licenses: Vec<String> = (0..3)
        .map(|_| id(&env.ok(BUYER, &["buy", &offering, "--json"]), "license"))
        .collect();

    // Both keepers at once.
    let spawn = |account: u32| {
        crate::registry()
            .current_dir(env.dir.path())
            .args([
                "--ipfs",
                &env.ipfs,
                "--dev-account",
                &account.to_string(),
                "keeper",
                "--once",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(KEEPER), spawn(KEEPER_B));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    for license in &licenses {
        let delivered = said
            .matches(&format!("delivered license {license} "))
            .count();
        assert_eq!(delivered, 1, "license {license}: {said}");
    }
    // The author was paid once per sale.
    assert_eq!(env.credits(AUTHOR as usize), "0.3");

    // A keeper killed after storing the wrapped key, before delivering it.
    let crashed_license = id(&env.ok(BUYER, &["buy", &offering, "--json"]), "license");
    let crashed = crate::registry()
        .current_dir(env.dir.path())
        .env("REGISTRY_KEEPER_CRASH", "stored")
        .args([
            "--ipfs",
            &env.ipfs,
            "--dev-account",
            &KEEPER.to_string(),
            "keeper",
            "--once",
        ])
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    assert_eq!(env.credits(AUTHOR as usize), "0.3", "nothing delivered yet");
    let restarted = env.run(KEEPER, &["keeper", "--once"]);
    let said = String::from_utf8_lossy(&restarted.stdout);
    assert_eq!(
        said.matches(&format!("delivered license {crashed_license} "))
            .count(),
        1,
        "{said}"
    );
    assert_eq!(env.credits(AUTHOR as usize), "0.4");
    let third = env.run(KEEPER, &["keeper", "--once"]);
    assert!(String::from_utf8_lossy(&third.stdout).trim().is_empty());
    // And the buyer gets the model under the late key.
    let got = env.ok(
        BUYER,
        &[
            "download",
            &model,
            "--license",
            &crashed_license,
            "--out",
            "late.safetensors",
            "--json",
        ],
    );
    assert_eq!(got["license"], crashed_license.as_str());
    assert_eq!(
        std::fs::read(env.path("late.safetensors")).unwrap(),
        std::fs::read(&weights).unwrap()
    );
}

/// A plaintext model downloads too, under a license, and is checked against the chain.
#[test]
fn plaintext_models_download_under_a_license() {
    let env = Env::start(false);
    let weights = env.path("plain.safetensors");
    write_model(&weights, 45, 0.0);
    let minted = env.ok(
        AUTHOR,
        &["mint", path_str(&weights), "--name", "plain", "--json"],
    );
    let model = id(&minted, "model");
    let offered = env.ok(
        AUTHOR,
        &[
            "offer", &model, "--kind", "access", "--price", "0", "--json",
        ],
    );
    assert_eq!(offered["delivery_period"], 0);
    env.fails(BUYER, &["download", &model, "--out", "p.safetensors"], 2);
    let bought = env.ok(BUYER, &["buy", &id(&offered, "offering"), "--json"]);
    assert!(bought["key_deadline"].is_null());
    let got = env.ok(
        BUYER,
        &["download", &model, "--out", "p.safetensors", "--json"],
    );
    assert_eq!(got["encrypted"], false);
    assert_eq!(
        std::fs::read(env.path("p.safetensors")).unwrap(),
        std::fs::read(&weights).unwrap()
    );
    // The owner downloads without a license.
    let own = env.ok(
        AUTHOR,
        &["download", &model, "--out", "own.safetensors", "--json"],
    );
    assert_eq!(own["license"], "0");
}

/// The same flow through a real IPFS daemon (js-ipfs over the Kubo RPC API): the daemon holds
/// only the age file, and the buyer gets the original back.
#[test]
fn encrypted_models_work_through_an_ipfs_daemon() {
    let env = Env::start(true);
    let (model, offering, weights) = encrypted_market(&env, 46, "0");
    env.ok(BUYER, &["buy", &offering]);
    env.ok(KEEPER, &["keeper", "--once"]);
    env.ok(BUYER, &["download", &model, "--out", "d.safetensors"]);
    let original = std::fs::read(&weights).unwrap();
    assert_eq!(std::fs::read(env.path("d.safetensors")).unwrap(), original);
    let shown = env.ok(BUYER, &["show", &model, "--json"]);
    let stored = env.run(
        BUYER,
        &["content", "get", shown["weights_cid"].as_str().unwrap()],
    );
    assert!(stored.status.success());
    assert!(stored.stdout.starts_with(b"age-encryption.org/v1\n"));
    assert!(!contains(&stored.stdout, &original[original.len() - 64..]));
}

/// A license sold on: its new holder downloads with a fresh key from a keeper's endpoint
/// (`registry serve --keeper`), and the old holder is refused there.
#[test]
fn a_resold_license_downloads_with_a_fresh_key_from_the_keepers_endpoint() {
    use std::io::BufRead;

    let env = Env::start(false);
    let (model, offering, weights) = encrypted_market(&env, 47, "0.01");
    let license = id(&env.ok(BUYER, &["buy", &offering, "--json"]), "license");
    env.ok(KEEPER, &["keeper", "--once"]);

    // The buyer sells the license on to account 3.
    let deployment = registry::deploy::Deployment::load(&env.path("deployment.json")).unwrap();
    env.runtime.block_on(async {
        let client = registry::chain::connect(
            env.devnet.endpoint(),
            env.devnet.wallet(BUYER as usize),
            None,
        )
        .await
        .unwrap();
        let (_, market) = deployment.contracts(client);
        market
            .transfer_from(
                ACCOUNT[BUYER as usize].parse().unwrap(),
                env.ok(KEEPER_B, &["identity", "--json"])["account"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
                license.parse::<ethers::types::U256>().unwrap(),
            )
            .send()
            .await
            .unwrap()
            .await
            .unwrap();
    });

    // The keeper serves keys.
    env.ok(KEEPER, &["db", "migrate"]);
    let mut serve = crate::registry()
        .current_dir(env.dir.path())
        .args(["--ipfs", &env.ipfs, "--dev-account", &KEEPER.to_string()])
        .args(["serve", "--keeper", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line.trim().trim_end_matches("/graphql").to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{line}");

    // Without the endpoint the new holder cannot open the key delivered to the buyer.
    let stuck = env.fails(KEEPER_B, &["download", &model, "--out", "r.safetensors"], 2);
    assert!(stuck.contains("is not wrapped to this identity"), "{stuck}");
    let got = env.ok(
        KEEPER_B,
        &[
            "download",
            &model,
            "--out",
            "r.safetensors",
            "--key-endpoint",
            &endpoint,
            "--json",
        ],
    );
    assert_eq!(got["license"], license.as_str());
    assert_eq!(
        std::fs::read(env.path("r.safetensors")).unwrap(),
        std::fs::read(&weights).unwrap()
    );
    // The old holder holds no license any more: refused before any key request.
    let old = env.fails(
        BUYER,
        &[
            "download",
            &model,
            "--out",
            "o.safetensors",
            "--license",
            &license,
            "--key-endpoint",
            &endpoint,
        ],
        2,
    );
    assert!(
        old.contains(&format!("license {license} grants neither")),
        "{old}"
    );
    serve.kill().unwrap();
    serve.wait().unwrap();
}
