//! Output receipts through the `registry` program on a real anvil: a provider holding an
//! output license commits a batch of outputs and each verifies; every forgery a freeloader
//! would try is refused with a reason that names it.

use registry::outputs::{OutputLeaf, Receipt, Tree};

use crate::market::{id, path_str, Env, ACCOUNT, DAY};
use crate::models::write_model;

const AUTHOR: u32 = 0;
const PROVIDER: u32 = 1;
const STRANGER: u32 = 2;

/// A model with a 30-day output offering, bought by the provider; returns (model, license).
fn output_license(env: &Env, seed: u32) -> (String, String) {
    let weights = env.path(&format!("model-{seed}.safetensors"));
    write_model(&weights, seed, 0.0);
    let minted = env.ok(
        AUTHOR,
        &["mint", path_str(&weights), "--name", "m", "--json"],
    );
    let model = id(&minted, "model");
    let offered = env.ok(
        AUTHOR,
        &[
            "offer",
            &model,
            "--kind",
            "output",
            "--price",
            "0",
            "--duration",
            "30d",
            "--json",
        ],
    );
    let bought = env.ok(PROVIDER, &["buy", &id(&offered, "offering"), "--json"]);
    (model, id(&bought, "license"))
}

fn outputs(env: &Env) -> Vec<std::path::PathBuf> {
    let dir = env.path("outs");
    std::fs::create_dir_all(dir.join("more")).unwrap();
    // Written after the chain's latest block (anvil mines only on demand): the commit's own
    // block is the one whose time counts, and an output of a moment ago is no output "from
    // the future".
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let files = [
        dir.join("a.txt"),
        dir.join("b.txt"),
        dir.join("more").join("c.bin"),
    ];
    for (i, f) in files.iter().enumerate() {
        std::fs::write(f, format!("output {i} of a model").repeat(100 * (i + 1))).unwrap();
    }
    files.to_vec()
}

fn receipt_of(file: &std::path::Path) -> Receipt {
    Receipt::read(&registry::outputs::batch::receipt_path(file)).unwrap()
}

/// Writes `receipt` as a separate file and verifies `file` against it; returns the exit code
/// and the JSON answer.
fn verify_with(env: &Env, file: &std::path::Path, receipt: &Receipt) -> (i32, serde_json::Value) {
    let path = env.path("forged.receipt.json");
    std::fs::write(&path, serde_json::to_vec(receipt).unwrap()).unwrap();
    let out = env.run(
        PROVIDER,
        &[
            "outputs",
            "verify",
            path_str(file),
            "--receipt",
            path_str(&path),
            "--json",
        ],
    );
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
    )
}

#[test]
fn committed_outputs_verify_and_forgeries_do_not() {
    let env = Env::start(false);
    let (model, license) = output_license(&env, 61);
    let files = outputs(&env);
    let outs = env.path("outs");

    // Not the holder: refused before anything is hashed or sent.
    let stranger = env.fails(
        STRANGER,
        &["outputs", "commit", path_str(&outs), "--license", &license],
        2,
    );
    assert!(
        stranger.contains(&format!("may not commit outputs under license {license}"))
            && stranger.contains("held by"),
        "{stranger}"
    );
    assert!(!env.path("outs/a.txt.receipt.json").exists());

    let committed = env.ok(
        PROVIDER,
        &[
            "outputs",
            "commit",
            path_str(&outs),
            "--license",
            &license,
            "--json",
        ],
    );
    assert_eq!(committed["count"], 3);
    assert_eq!(committed["model"], model.as_str());
    for file in &files {
        let out = env.ok(STRANGER, &["outputs", "verify", path_str(file), "--json"]);
        assert_eq!(out["valid"], true, "{out}");
        assert_eq!(out["license"], license.as_str());
        assert_eq!(out["model"], model.as_str());
        assert_eq!(
            out["provider"].as_str().unwrap().to_lowercase(),
            ACCOUNT[PROVIDER as usize].to_lowercase()
        );
        assert_eq!(out["root"], committed["root"]);
    }
    // A receipt is never overwritten.
    let again = env.fails(
        PROVIDER,
        &[
            "outputs",
            "commit",
            path_str(&files[0]),
            "--license",
            &license,
        ],
        2,
    );
    assert!(again.contains("a receipt is never overwritten"), "{again}");

    // Another output's proof.
    let (a, b, c) = (
        receipt_of(&files[0]),
        receipt_of(&files[1]),
        receipt_of(&files[2]),
    );
    let mut forged = b.clone();
    forged.proof = c.proof.clone();
    let (code, out) = verify_with(&env, &files[1], &forged);
    assert_eq!(code, 1, "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("the proof does not lead"),
        "{out}"
    );

    // A root never committed: a batch of one leaf (the root is the leaf) the provider made up.
    let mut made_up = a.clone();
    made_up.leaf.salt = ethers::types::H256::repeat_byte(7);
    made_up.leaf_hash = made_up.leaf.hash();
    made_up.root = made_up.leaf_hash;
    made_up.proof = vec![];
    let (code, out) = verify_with(&env, &files[0], &made_up);
    assert_eq!(code, 1, "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("was never committed"),
        "{out}"
    );

    // A receipt from another chain: self-consistent, for chain 1.
    let mut elsewhere = a.clone();
    elsewhere.leaf.chain_id = 1;
    elsewhere.leaf_hash = elsewhere.leaf.hash();
    let tree = Tree::build(&[elsewhere.leaf_hash]).unwrap();
    elsewhere.root = tree.root();
    elsewhere.proof = vec![];
    let (code, out) = verify_with(&env, &files[0], &elsewhere);
    assert_eq!(code, 1, "{out}");
    assert!(
        out["reason"].as_str().unwrap().contains("for chain 1"),
        "{out}"
    );

    // A leaf claiming another license, under the committed root: the proof breaks.
    let mut other: Receipt = a.clone();
    other.leaf.license_id += 1.into();
    let (code, _) = verify_with(&env, &files[0], &other);
    assert_eq!(code, 1);

    // Not a receipt at all: an error, exit 2.
    std::fs::write(env.path("junk.json"), b"{\"format\": 3}").unwrap();
    let junk = env.fails(
        PROVIDER,
        &[
            "outputs",
            "verify",
            path_str(&files[0]),
            "--receipt",
            "junk.json",
        ],
        2,
    );
    assert!(junk.contains("not a receipt"), "{junk}");

    // A changed byte.
    let mut bytes = std::fs::read(&files[2]).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&files[2], bytes).unwrap();
    let changed = env.run(PROVIDER, &["outputs", "verify", path_str(&files[2])]);
    assert_eq!(changed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(stderr.contains("the file changed"), "{stderr}");

    // Dated after the chain's time (milliseconds for seconds), or one file named twice:
    // refused before anything is sent.
    std::fs::write(env.path("new.txt"), b"new output").unwrap();
    let future = env.fails(
        PROVIDER,
        &[
            "outputs",
            "commit",
            "new.txt",
            "--license",
            &license,
            "--produced-at",
            "1700000000000",
        ],
        2,
    );
    assert!(future.contains("after the chain's time"), "{future}");
    let twice = env.fails(
        PROVIDER,
        &[
            "outputs",
            "commit",
            "new.txt",
            "new.txt",
            "--license",
            &license,
        ],
        2,
    );
    assert!(twice.contains("named twice"), "{twice}");
    assert!(!env.path("new.txt.receipt.json").exists());

    // Once the license has expired: no new batch, but what was committed stays valid.
    env.advance(31 * DAY);
    std::fs::write(env.path("late.txt"), b"too late").unwrap();
    let late = env.fails(
        PROVIDER,
        &["outputs", "commit", "late.txt", "--license", &license],
        2,
    );
    assert!(late.contains("it is not valid now"), "{late}");
    let still = env.ok(
        PROVIDER,
        &["outputs", "verify", path_str(&files[0]), "--json"],
    );
    assert_eq!(still["valid"], true);
}

/// `--publish` stores the leaf list: anyone holding an output can find its leaf there, and
/// `index` indexes it.
#[test]
fn a_published_batch_lists_its_leaves_in_the_content_store() {
    let env = Env::start(false);
    let (_, license) = output_license(&env, 62);
    let files = outputs(&env);
    let committed = env.ok(
        PROVIDER,
        &[
            "outputs",
            "commit",
            path_str(&files[0]),
            path_str(&files[1]),
            "--license",
            &license,
            "--publish",
            "--produced-at",
            "1700000000",
            "--json",
        ],
    );
    let uri = committed["uri"].as_str().unwrap();
    let cid = uri.strip_prefix("ipfs://").unwrap();
    let listed = env.run(PROVIDER, &["content", "get", cid]);
    assert!(listed.status.success());
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let leaves: Vec<OutputLeaf> = serde_json::from_value(list["leaves"].clone()).unwrap();
    assert_eq!(leaves.len(), 2);
    let receipt = receipt_of(&files[1]);
    assert_eq!(receipt.uri.as_deref(), Some(uri));
    assert!(leaves.contains(&receipt.leaf));
    assert_eq!(receipt.leaf.produced_at, 1_700_000_000);
    let hashes: Vec<_> = leaves.iter().map(OutputLeaf::hash).collect();
    assert_eq!(
        format!("{:?}", Tree::build(&hashes).unwrap().root()),
        committed["root"].as_str().unwrap()
    );

    // `index --once` indexes the published list (the SQLite file in the working folder).
    env.ok(PROVIDER, &["db", "migrate"]);
    let indexed = env.run(PROVIDER, &["index", "--once"]);
    let stdout = String::from_utf8_lossy(&indexed.stdout);
    assert!(indexed.status.success(), "{stdout}");
    let line = format!(
        "outputs of batch {}: 2 indexed",
        committed["root"].as_str().unwrap()
    );
    assert!(stdout.contains(&line), "{stdout}");
}

/// With `--trusted-block`, a receipt verifies with no node (the node named is not there): its
/// bundled header and receipt proof show the commitment; a hash not trusted, a changed file,
/// a tampered transaction receipt, another batch's leaf with this batch's proof, and a receipt
/// bundling no proof each fail by name.
#[test]
fn a_receipt_verifies_offline_against_a_trusted_block() {
    let env = Env::start(false);
    let (model, license) = output_license(&env, 63);
    let files = outputs(&env);
    let commit = |files: &[&std::path::Path]| {
        let mut args = vec!["outputs", "commit"];
        args.extend(files.iter().map(|f| path_str(f)));
        args.extend(["--license", &license, "--json"]);
        env.ok(PROVIDER, &args)
    };
    commit(&[&files[0], &files[1]]);
    commit(&[&files[2]]);
    let receipt = receipt_of(&files[1]);
    assert!(receipt.inclusion.is_some(), "commit bundles the proof");
    let trusted = format!("{:?}", receipt.block_hash);
    let offline = |file: &std::path::Path, receipt: &Receipt, trusted: &str| {
        let path = env.path("offline.receipt.json");
        std::fs::write(&path, serde_json::to_vec(receipt).unwrap()).unwrap();
        let out = env.run(
            STRANGER,
            &[
                "--rpc-url",
                "http://127.0.0.1:9",
                "outputs",
                "verify",
                path_str(file),
                "--receipt",
                path_str(&path),
                "--trusted-block",
                trusted,
                "--json",
            ],
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (
            out.status.code().unwrap(),
            json,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (code, out, err) = offline(&files[1], &receipt, &trusted);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out["valid"], true);
    assert_eq!(out["license"], license.as_str());
    assert_eq!(out["model"], model.as_str());
    assert_eq!(
        out["provider"].as_str().unwrap().to_lowercase(),
        ACCOUNT[PROVIDER as usize].to_lowercase()
    );
    assert_eq!(out["block"], receipt.block);
    assert_eq!(out["block_hash"], trusted.as_str());
    assert_eq!(out["committed_at"], receipt.committed_at);

    let reason = |(code, out, err): (i32, serde_json::Value, String)| {
        assert_eq!(code, 1, "{out} {err}");
        out["reason"].as_str().unwrap().to_string()
    };
    let other_hash = format!("0x{}", "11".repeat(32));
    assert!(reason(offline(&files[1], &receipt, &other_hash)).contains("not the trusted"));
    assert!(reason(offline(&files[0], &receipt, &trusted)).contains("the file changed"));
    let mut tampered = receipt.clone();
    let inclusion = tampered.inclusion.as_mut().unwrap();
    let mut bytes = inclusion.receipt.to_vec();
    *bytes.last_mut().unwrap() ^= 1;
    inclusion.receipt = bytes.into();
    let why = reason(offline(&files[1], &tampered, &trusted));
    assert!(why.contains("not in block"), "{why}");
    // The other batch's leaf and proof (valid for its own root) with this block's proof.
    let mut spliced = receipt_of(&files[2]);
    spliced.inclusion = receipt.inclusion.clone();
    let why = reason(offline(&files[2], &spliced, &trusted));
    assert!(why.contains("committed no root"), "{why}");

    // Contracts named on the command line need the chain id with them (no node to ask).
    let out = env.run(
        STRANGER,
        &[
            "--registry-address",
            &format!("{:?}", receipt.contracts.registry),
            "--market-address",
            &format!("{:?}", receipt.contracts.market),
            "outputs",
            "verify",
            path_str(&files[1]),
            "--trusted-block",
            &trusted,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs the chain id"), "{err}");

    let mut bare = receipt.clone();
    bare.inclusion = None;
    let (code, _, err) = offline(&files[1], &bare, &trusted);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bundles no block header"), "{err}");
}
