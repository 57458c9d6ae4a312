//! Licenses priced in ERC-20 tokens, through the `registry` program against a real anvil: amounts
//! in the token's own decimals, the approval sent before buying and renewing, credits and
//! withdrawals per currency, a buyer without the tokens refused before anything is sent, and a
//! fee-on-transfer token refused by the market. The tokens are the mocks of
//! `contracts/test/mocks`, compiled by the repository's forge and deployed by the test.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use ethers::abi::{Abi, Tokenize};
use ethers::contract::{Contract, ContractFactory};
use ethers::types::{Address, Bytes, U256};
use registry::chain::{self, Client};
use registry::erc20::Erc20;
use serde_json::Value;

use crate::market::{id, path_str, Env, ACCOUNT, DAY};
use crate::models::write_model;

/// The ABI and creation bytecode of each mock token, compiled into a temporary folder so the
/// project's own `out/` and cache are left alone.
fn mock_tokens() -> impl Fn(&str) -> (Abi, Bytes) {
    let contracts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    let forge = contracts.join("../node_modules/@foundry-rs/forge-linux-amd64/bin/forge");
    assert!(
        forge.exists(),
        "forge not found at {}: run `npm ci` at the repository root",
        forge.display()
    );
    let build = tempfile::tempdir().unwrap();
    let out = build.path().join("out");
    let status = Command::new(&forge)
        .current_dir(&contracts)
        .args(["build", "test/mocks/MockERC20.sol", "--out"])
        .arg(&out)
        .arg("--cache-path")
        .arg(build.path().join("cache"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "forge build of the mock tokens: {status}");
    move |contract| {
        let path = out.join(format!("MockERC20.sol/{contract}.json"));
        let _keep = &build;
        let artifact: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let abi: Abi = serde_json::from_value(artifact["abi"].clone()).unwrap();
        let bytecode = artifact["bytecode"]["object"].as_str().unwrap();
        (abi, bytecode.parse().unwrap())
    }
}

/// A deployed mock token: minted through its own ABI, read through the client's [`Erc20`].
struct Token {
    contract: Contract<Client>,
    erc20: Erc20,
}

impl Token {
    async fn deploy(
        client: Arc<Client>,
        (abi, bytecode): (Abi, Bytes),
        args: impl Tokenize,
    ) -> Self {
        let factory = ContractFactory::new(abi, bytecode, client.clone());
        let contract = factory.deploy(args).unwrap().send().await.unwrap();
        let erc20 = Erc20::new(contract.address(), client);
        Self { contract, erc20 }
    }

    fn address(&self) -> String {
        format!("{:?}", self.contract.address())
    }

    async fn mint(&self, to: &str, amount: U256) {
        let to: Address = to.parse().unwrap();
        let call = self.contract.method::<_, ()>("mint", (to, amount)).unwrap();
        let receipt = call.send().await.unwrap().await.unwrap().unwrap();
        assert_eq!(receipt.status, Some(1.into()));
    }

    async fn balance(&self, of: &str) -> U256 {
        self.erc20.balance_of(of.parse().unwrap()).await.unwrap()
    }

    async fn allowance(&self, owner: &str, spender: &str) -> U256 {
        let (owner, spender) = (owner.parse().unwrap(), spender.parse().unwrap());
        self.erc20.allowance(owner, spender).await.unwrap()
    }
}

fn credits_in(env: &Env, account: usize, token: &str) -> String {
    let v = env.ok(
        0,
        &["balance", ACCOUNT[account], "--currency", token, "--json"],
    );
    v["credits"]["amount"].as_str().unwrap().to_string()
}

#[test]
fn licenses_priced_in_an_erc20_token() {
    let artifact = mock_tokens();
    let env = Env::start(false);
    let client = env
        .runtime
        .block_on(chain::connect(
            env.devnet.endpoint(),
            chain::dev_wallet(0).unwrap(),
            None,
        ))
        .unwrap();
    // A dollar token: 6 decimals, so 2.5 TUSD is 2,500,000 base units.
    let tusd = env.runtime.block_on(Token::deploy(
        client.clone(),
        artifact("SixDecimalsERC20"),
        (),
    ));
    let dollars = |n: u64| U256::from(n) * U256::exp10(6);
    env.runtime.block_on(tusd.mint(ACCOUNT[1], dollars(10)));
    let token = tusd.address();
    let fee = env.runtime.block_on(Token::deploy(
        client.clone(),
        artifact("FeeOnTransferERC20"),
        U256::from(100),
    ));
    // A token of the seller's own making, which the market was not deployed with.
    let junk = env
        .runtime
        .block_on(Token::deploy(client, artifact("SixDecimalsERC20"), ()));

    // The market accepts the currencies it is deployed with, and no others.
    let deployed = env.ok(
        0,
        &[
            "deploy",
            "--rpc-url",
            env.devnet.endpoint(),
            "--currency",
            &token,
            "--currency",
            &fee.address(),
            "--json",
        ],
    );
    let market = deployed["market"].as_str().unwrap().to_string();

    let model = env.path("m.safetensors");
    write_model(&model, 3, 0.0);
    env.ok(0, &["mint", path_str(&model), "--name", "m"]);
    let refused = env.fails(
        0,
        &[
            "offer",
            "1",
            "--kind",
            "access",
            "--price",
            "1",
            "--currency",
            &junk.address(),
        ],
        2,
    );
    assert!(refused.contains("CurrencyNotAccepted"), "{refused}");
    assert!(
        refused.contains("registry deploy --currency"),
        "hint: {refused}"
    );
    let offered = env.ok(
        0,
        &[
            "offer",
            "1",
            "--kind",
            "access",
            "--price",
            "2.5",
            "--currency",
            &token,
            "--duration",
            "1d",
            "--json",
        ],
    );
    assert_eq!(offered["price"]["wei"], "2500000", "{offered}");
    assert_eq!(offered["price"]["symbol"], "TUSD");
    assert_eq!(offered["price"]["currency"], token.as_str());
    // A price finer than the token's decimals is refused, not rounded.
    let finer = env.fails(
        0,
        &[
            "offer",
            "1",
            "--kind",
            "access",
            "--price",
            "0.0000001",
            "--currency",
            &token,
            "--duration",
            "1d",
        ],
        2,
    );
    assert!(
        finer.contains("0.0000001") && finer.contains("more than 6 decimal places"),
        "{finer}"
    );

    // Buying approves the market for the price and pays in the token.
    let bought = env.ok(1, &["buy", "1", "--json"]);
    assert_eq!(id(&bought, "license"), "1");
    assert_eq!(bought["price"]["amount"], "2.5");
    assert_eq!(bought["price"]["symbol"], "TUSD");
    let (held, approved) = env.runtime.block_on(async {
        (
            tusd.balance(ACCOUNT[1]).await,
            tusd.allowance(ACCOUNT[1], &market).await,
        )
    });
    assert_eq!(held, dollars(10) - dollars(5) / 2);
    assert_eq!(
        approved,
        U256::zero(),
        "the approval was for exactly the price"
    );
    assert_eq!(credits_in(&env, 0, &token), "2.5");
    assert_eq!(
        env.credits(0),
        "0",
        "nothing credited in the native currency"
    );
    env.ok(0, &["rights", ACCOUNT[1], "1"]);

    // Renewing before the license lapses pays the offering's price in the same token.
    env.advance(DAY / 2);
    env.fails(0, &["rights", ACCOUNT[1], "1", "--at", "+1d"], 1);
    let renewed = env.ok(1, &["renew", "1", "--json"]);
    assert_eq!(renewed["price"]["amount"], "2.5");
    env.ok(0, &["rights", ACCOUNT[1], "1", "--at", "+1d"]);
    assert_eq!(credits_in(&env, 0, &token), "5");
    assert_eq!(env.runtime.block_on(tusd.balance(ACCOUNT[1])), dollars(5));

    // A buyer without the tokens is refused before any transaction, naming the token and amounts.
    let short = env.fails(2, &["buy", "1"], 2);
    assert!(
        short.contains(&format!("holds 0 of token {token}")) && short.contains("the price is 2.5"),
        "{short}"
    );
    assert!(short.contains("hint: "), "{short}");
    assert_eq!(
        env.runtime.block_on(tusd.allowance(ACCOUNT[2], &market)),
        U256::zero(),
        "no approval was sent"
    );

    // Withdrawing in the token moves the credits to the author's wallet.
    let withdrawn = env.ok(0, &["withdraw", "--currency", &token, "--json"]);
    assert_eq!(withdrawn["amount"]["amount"], "5");
    assert_eq!(withdrawn["amount"]["symbol"], "TUSD");
    assert_eq!(env.runtime.block_on(tusd.balance(ACCOUNT[0])), dollars(5));
    assert_eq!(credits_in(&env, 0, &token), "0");
    let nothing = env.fails(0, &["withdraw", "--currency", &token], 2);
    assert!(nothing.contains("NothingToWithdraw"), "{nothing}");

    // A token that takes a 1% fee on each transfer would leave the market short: refused.
    env.runtime.block_on(fee.mint(ACCOUNT[1], U256::exp10(18)));
    env.ok(
        0,
        &[
            "offer",
            "1",
            "--kind",
            "output",
            "--price",
            "0.5",
            "--currency",
            &fee.address(),
            "--duration",
            "30d",
        ],
    );
    let refused = env.fails(1, &["buy", "2"], 2);
    assert!(refused.contains("FeeOnTransferToken"), "{refused}");
    assert_eq!(
        env.runtime.block_on(fee.balance(ACCOUNT[1])),
        U256::exp10(18),
        "the reverted purchase took nothing"
    );
    env.fails(0, &["rights", ACCOUNT[1], "1", "--kind", "output"], 1);
}
