//! The `registry` program as a user runs it.

mod escrow;
mod fingerprint;
mod folders;
mod index;
mod loopholes;
mod market;
mod outputs;
mod token;
mod up;

use test_support::{dbs, jsipfs, models};

use std::process::Command;

pub(crate) fn registry() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_registry"));
    for var in [
        "REGISTRY_CONFIG",
        "REGISTRY_RPC_URL",
        "REGISTRY_PRIVATE_KEY",
        "REGISTRY_PRIVATE_KEY_FILE",
        "REGISTRY_DEV_ACCOUNT",
        "REGISTRY_CHAIN_ID",
        "REGISTRY_DEPLOYMENT",
        "REGISTRY_IPFS",
        "REGISTRY_REGISTRY_ADDRESS",
        "REGISTRY_MARKET_ADDRESS",
        "REGISTRY_BACKEND",
        "REGISTRY_IDENTITY",
        "REGISTRY_KEEPER_CRASH",
        "DATABASE_URL",
    ] {
        command.env_remove(var);
    }
    command
}

#[test]
fn deploy_to_a_managed_anvil_prints_and_saves_the_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deployment.json");
    let output = registry()
        .args(["deploy", "--exit", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for key in ["registry", "market", "deployer"] {
        let address = printed[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {printed}"));
        assert_eq!(address.len(), 42, "{key} is an address: {address}");
        assert_ne!(address, format!("0x{}", "0".repeat(40)));
        assert_eq!(printed[key], saved[key], "printed and saved {key} agree");
    }
    assert_ne!(printed["registry"], printed["market"]);
    assert_eq!(printed["chain_id"], 31337);
    assert!(printed["rpc_url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let output = registry()
        .args(["deploy", "--rpc-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: a signer is required with --rpc-url"),
        "{stderr}"
    );

    let output = registry()
        .args([
            "deploy",
            "--rpc-url",
            "http://127.0.0.1:9",
            "--private-key",
            "0xnothex",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: invalid private key"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout on error");

    // Port 9 (discard) has no JSON-RPC node: a connection error, not a hang.
    let key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let output = registry()
        .args([
            "deploy",
            "--rpc-url",
            "http://127.0.0.1:9",
            "--private-key",
            key,
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: rpc request to http://127.0.0.1:9"),
        "{stderr}"
    );
}
