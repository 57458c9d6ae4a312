//! The chain client: a signer on an HTTP JSON-RPC provider with request timeouts (so a dropped
//! connection is an error, not a hang), sending of contract calls with receipts checked, and
//! decoding of reverts into the contracts' custom errors.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use contracts::{LicenseMarketErrors, ModelRegistryErrors};
use ethers::contract::{ContractCall, ContractError, ContractRevert};
use ethers::middleware::SignerMiddleware;
use ethers::providers::{Http, Middleware, Provider};
use ethers::signers::{LocalWallet, Signer};
use ethers::types::TransactionReceipt;

use crate::{Error, Result};

/// Time a single JSON-RPC request may take.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// How often pending transactions are polled for a receipt.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The signing client every write goes through.
pub type Client = SignerMiddleware<Provider<Http>, LocalWallet>;

/// A read-only provider with the request timeout.
pub fn provider(url: &str) -> Result<Provider<Http>> {
    let parsed: url::Url = url.parse().map_err(|e: url::ParseError| Error::RpcUrl {
        url: url.into(),
        reason: e.to_string(),
    })?;
    let http = reqwest::Client::builder()
        .timeout(RPC_TIMEOUT)
        .build()
        .map_err(|e| Error::RpcUrl {
            url: url.into(),
            reason: e.to_string(),
        })?;
    Ok(Provider::new(Http::new_with_client(parsed, http)).interval(POLL_INTERVAL))
}

/// Connects a signer to `url`. The wallet is bound to the node's chain id; when
/// `expected_chain_id` is given and differs, that is an error.
pub async fn connect(
    url: &str,
    wallet: LocalWallet,
    expected_chain_id: Option<u64>,
) -> Result<Arc<Client>> {
    let provider = provider(url)?;
    let chain_id = provider
        .get_chainid()
        .await
        .map_err(|e| Error::Rpc {
            url: url.into(),
            message: e.to_string(),
        })?
        .as_u64();
    if let Some(expected) = expected_chain_id {
        if expected != chain_id {
            return Err(Error::ChainIdMismatch {
                url: url.into(),
                expected,
                actual: chain_id,
            });
        }
    }
    Ok(Arc::new(SignerMiddleware::new(
        provider,
        wallet.with_chain_id(chain_id),
    )))
}

/// Parses a hex private key (with or without 0x).
pub fn wallet_from_key(key: &str) -> Result<LocalWallet> {
    key.trim()
        .parse::<LocalWallet>()
        .map_err(|e| Error::PrivateKey(e.to_string()))
}

/// Which contract a call goes to, so its reverts decode with that contract's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Registry,
    Market,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Registry => "ModelRegistry",
            Target::Market => "LicenseMarket",
        }
    }
}

/// A contract's custom error, decoded from a revert into the bindings' typed enums.
#[derive(Debug, Clone)]
pub enum Revert {
    Registry(ModelRegistryErrors),
    Market(LicenseMarketErrors),
}

impl Revert {
    /// The contract that reverted.
    pub fn contract(&self) -> &'static str {
        match self {
            Revert::Registry(_) => Target::Registry.name(),
            Revert::Market(_) => Target::Market.name(),
        }
    }

    /// The error as `Name { field: value, .. }`.
    pub fn describe(&self) -> String {
        match self {
            Revert::Registry(e) => describe(e),
            Revert::Market(e) => describe(e),
        }
    }

    /// Whether the revert says a model or license id is unknown (either contract).
    pub fn is_unknown_id(&self) -> bool {
        matches!(
            self,
            Revert::Registry(ModelRegistryErrors::UnknownModel(_))
                | Revert::Market(
                    LicenseMarketErrors::UnknownModel(_) | LicenseMarketErrors::UnknownLicense(_)
                )
        )
    }
}

/// Turns a contract error into [`Error::Reverted`] when its revert data is one of `target`'s
/// custom errors, else into a generic error with `context`.
pub fn decode_error<M: Middleware>(target: Target, context: &str, err: ContractError<M>) -> Error {
    let registry = || {
        err.decode_contract_revert::<ModelRegistryErrors>()
            .map(Revert::Registry)
    };
    let market = || {
        err.decode_contract_revert::<LicenseMarketErrors>()
            .map(Revert::Market)
    };
    // A mint's license checks run in the market (`consume`), whose errors bubble up through
    // the registry: try the other contract's errors second.
    let reason = match target {
        Target::Registry => registry().or_else(market),
        Target::Market => market().or_else(registry),
    };
    match reason {
        Some(revert) => Error::Reverted(Box::new(revert)),
        None => Error::Contract {
            context: context.into(),
            message: err.to_string(),
        },
    }
}

/// The decoded error of a revert, as `Name { field: value, .. }`.
fn describe<E: ContractRevert + Debug>(err: &E) -> String {
    // The generated enum wraps one struct per error: `Name(Name { .. })`; show the struct.
    let debug = format!("{err:?}");
    match debug.split_once('(') {
        Some((variant, rest)) if rest.starts_with(variant) && rest.ends_with(')') => {
            rest[..rest.len() - 1].to_string()
        }
        _ => debug,
    }
}

/// Sends a contract transaction, waits for its receipt and checks its status. Reverts (at gas
/// estimation or in the mined transaction) come back decoded.
pub async fn send<M, D>(
    target: Target,
    context: &str,
    call: ContractCall<M, D>,
) -> Result<TransactionReceipt>
where
    M: Middleware + 'static,
    D: ethers::abi::Detokenize,
{
    let pending = call
        .send()
        .await
        .map_err(|e| decode_error(target, context, e))?;
    let tx = format!("{:?}", pending.tx_hash());
    let receipt = mined(pending, &tx)
        .await?
        .map_err(|e| Error::Contract {
            context: context.into(),
            message: e.to_string(),
        })?
        .ok_or(Error::TxDropped)?;
    if receipt.status != Some(1.into()) {
        return Err(Error::TxFailed { tx });
    }
    Ok(receipt)
}

/// Default of [`set_tx_timeout`].
pub const TX_TIMEOUT: Duration = Duration::from_secs(600);

static TX_TIMEOUT_SECS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(TX_TIMEOUT.as_secs());

/// How long a sent transaction is waited for before [`Error::TxTimeout`] (the program's
/// `--tx-timeout`): a node that accepts a transaction and never mines it must not hang the
/// caller for ever.
pub fn set_tx_timeout(timeout: Duration) {
    TX_TIMEOUT_SECS.store(
        timeout.as_secs().max(1),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Waits for `pending` to be mined, at most the transaction timeout.
pub(crate) async fn mined<F: std::future::IntoFuture>(pending: F, tx: &str) -> Result<F::Output> {
    let waited = Duration::from_secs(TX_TIMEOUT_SECS.load(std::sync::atomic::Ordering::Relaxed));
    tokio::time::timeout(waited, pending.into_future())
        .await
        .map_err(|_| Error::TxTimeout {
            tx: tx.into(),
            seconds: waited.as_secs(),
        })
}

/// Runs a view call, decoding reverts.
pub async fn call<M, D>(target: Target, context: &str, call: ContractCall<M, D>) -> Result<D>
where
    M: Middleware + 'static,
    D: ethers::abi::Detokenize,
{
    call.call()
        .await
        .map_err(|e| decode_error(target, context, e))
}

/// The mnemonic of anvil's (and hardhat's) funded dev accounts. Public knowledge: these keys
/// hold value only on dev chains.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// The wallet of dev account `index` of [`DEV_MNEMONIC`] (anvil's `(index)` account).
pub fn dev_wallet(index: u32) -> Result<LocalWallet> {
    ethers::signers::MnemonicBuilder::<ethers::signers::coins_bip39::English>::default()
        .phrase(DEV_MNEMONIC)
        .index(index)
        .and_then(|b| b.build())
        .map_err(|e| Error::PrivateKey(format!("dev account {index}: {e}")))
}

/// Reads a private key from a file (hex, surrounding whitespace ignored).
pub fn wallet_from_file(path: &std::path::Path) -> Result<LocalWallet> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::PrivateKey(format!("reading key file {}: {e}", path.display())))?;
    wallet_from_key(&text)
        .map_err(|e| Error::PrivateKey(format!("key file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_are_anvils() {
        let wallet = dev_wallet(0).unwrap();
        let expected =
            wallet_from_key("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap();
        assert_eq!(wallet.address(), expected.address());
        assert_ne!(dev_wallet(1).unwrap().address(), wallet.address());
    }

    #[test]
    fn bad_keys_are_named_errors() {
        assert!(wallet_from_key("0x1234").is_err());
        let err = wallet_from_file(std::path::Path::new("/no/such/key")).unwrap_err();
        assert!(err.to_string().contains("/no/such/key"), "{err}");
    }
}
