//! One module per subcommand (or per pair of closely related ones).

mod buy;
mod compare;
mod content;
mod db;
mod deploy;
mod download;
mod fingerprint;
mod index;
mod keys;
mod mint;
mod offer;
mod outputs;
mod rights;
mod serve;
mod show;
mod up;
mod values;
mod verify;
mod withdraw;

use std::process::ExitCode;

use clap::Subcommand;

use crate::settings::{NoDeployment, NoRpcUrl, NoSigner, Settings};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the whole market in one process: anvil, deployment, content store, database,
    /// indexer, keeper, web app and API (state in .registry/; --demo seeds a small market).
    Up(up::Args),
    /// Deploy the registry and license market contracts and print their addresses.
    Deploy(deploy::Args),
    /// Files in the content store (embedded or a Kubo node) and CAR files.
    #[command(subcommand)]
    Content(content::Command),
    /// Fingerprint, store and mint a model.
    Mint(mint::Args),
    /// Publish a license offering on a model you own.
    Offer(offer::OfferArgs),
    /// Close an offering for new sales (licenses sold stay valid).
    CloseOffer(offer::CloseArgs),
    /// Buy a license from an offering.
    Buy(buy::BuyArgs),
    /// Renew a time-bound license.
    Renew(buy::RenewArgs),
    /// Download a model's weights you may use (decrypting an encrypted model's), checked
    /// against the chain.
    Download(download::Args),
    /// Reclaim the escrowed price of a license whose key was not delivered in time.
    Refund(keys::RefundArgs),
    /// Print the signer's age recipient (its identity is created on first use).
    Identity(keys::IdentityArgs),
    /// Deliver model keys to buyers of encrypted models (or approve/revoke keepers).
    Keeper(keys::KeeperArgs),
    /// Receipts for outputs produced under an output license: commit and verify.
    #[command(subcommand)]
    Outputs(outputs::Command),
    /// May ADDRESS use a right of MODEL? Exit code 0 for yes, 1 for no.
    Rights(rights::Args),
    /// Check a model's weights against the chain. Exit code 0 when they match, 1 when not.
    Verify(verify::Args),
    /// Show a model: record, lineage, offerings.
    Show(show::Args),
    /// Withdraw your credited sales and royalties.
    Withdraw(withdraw::WithdrawArgs),
    /// Credits an account may withdraw.
    Balance(withdraw::BalanceArgs),
    /// The read side's database: migrations.
    #[command(subcommand)]
    Db(db::Command),
    /// Follow the chain into the database (reorg- and crash-safe).
    Index(index::Args),
    /// Serve the GraphQL API (and GraphiQL, health, explorer, IPFS gateway) over the database.
    Serve(serve::Args),
    /// Fingerprint a model: its commitment hash and content root.
    Fingerprint(fingerprint::Args),
    /// Compare two models (weights or saved fingerprints): identical, derived or unrelated.
    Compare(compare::Args),
}

impl Command {
    pub(crate) async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        match self {
            Command::Up(args) => args.run(settings).await,
            Command::Deploy(args) => args.run(settings).await,
            Command::Content(command) => command.run(settings).await,
            Command::Mint(args) => args.run(settings).await,
            Command::Offer(args) => args.run(settings).await,
            Command::CloseOffer(args) => args.run(settings).await,
            Command::Buy(args) => args.run(settings).await,
            Command::Renew(args) => args.run(settings).await,
            Command::Download(args) => args.run(settings).await,
            Command::Refund(args) => args.run(settings).await,
            Command::Identity(args) => args.run(settings).await,
            Command::Keeper(args) => args.run(settings).await,
            Command::Outputs(command) => command.run(settings).await,
            Command::Rights(args) => args.run(settings).await,
            Command::Verify(args) => args.run(settings).await,
            Command::Show(args) => args.run(settings).await,
            Command::Withdraw(args) => args.run(settings).await,
            Command::Balance(args) => args.run(settings).await,
            Command::Db(command) => command.run(settings).await,
            Command::Index(args) => args.run(settings).await,
            Command::Serve(args) => args.run(settings).await,
            Command::Fingerprint(args) => args.run(settings).await,
            Command::Compare(args) => args.run(settings).await,
        }
    }
}

/// A hint for errors a user can fix.
pub(crate) fn hint(err: &anyhow::Error) -> Option<String> {
    if err.downcast_ref::<NoSigner>().is_some() {
        return Some(
            "pass --private-key, --private-key-file or --dev-account (or REGISTRY_PRIVATE_KEY)"
                .into(),
        );
    }
    if err.downcast_ref::<NoDeployment>().is_some() {
        return Some("run `registry deploy` first, or pass --deployment FILE or --registry-address and --market-address".into());
    }
    if err.downcast_ref::<NoRpcUrl>().is_some() {
        return Some("pass --rpc-url (or REGISTRY_RPC_URL)".into());
    }
    if let Some(e) = err.downcast_ref::<mint::NoFineTuneLicense>() {
        return Some(format!(
            "buy a fine-tune license of model {} (`registry show {}` lists its offerings), or pass --license",
            e.0, e.0
        ));
    }
    if let Some(err) = err.downcast_ref::<registry::Error>() {
        return match err {
            registry::Error::AnvilNotFound { .. } => Some(
                "`npm ci` at the repository root installs anvil; or put anvil on PATH, or set REGISTRY_ANVIL=/path/to/anvil; or pass --rpc-url of a running node".into(),
            ),
            registry::Error::Rpc { .. } => Some("is the node running? check --rpc-url".into()),
            registry::Error::PrivateKey(_) => Some(
                "pass 32 bytes as hex, e.g. 0xac09…; or omit --rpc-url for a managed anvil".into(),
            ),
            registry::Error::UndeclaredParent { model, .. } => Some(format!(
                "if it is derived, declare it: --parent {model} (with your fine-tune license of it); `registry show {model}` lists its offerings; --force mints anyway"
            )),
            registry::Error::DuplicateContent { model, .. } => Some(format!(
                "these exact weights are model {model} (`registry show {model}`); a derivative must change them"
            )),
            registry::Error::NoLicense { model, .. } => Some(format!(
                "buy an access license: `registry show {model}` lists the offerings, `registry buy OFFERING` buys one"
            )),
            registry::Error::KeyPending { license, .. } => Some(format!(
                "a keeper delivers the key once it runs (`registry keeper`); after the deadline `registry refund {license}` returns the price"
            )),
            registry::Error::NotARecipient { .. } => Some(
                "use the identity the key was wrapped to (--identity FILE); a license bought second-hand needs a fresh key from a keeper".into(),
            ),
            registry::Error::IdentityMissing { .. } => Some(
                "pass an existing age identity file, or leave --identity out to use the account's own".into(),
            ),
            registry::Error::NotDeployed { .. } => Some(
                "redeploy with `registry deploy`, or point --deployment at this chain's file".into(),
            ),
            registry::Error::Reverted(revert) => revert_hint(revert),
            registry::Error::Store(e) => store_hint(e),
            registry::Error::Content(e) => content_hint(e),
            registry::Error::IndexerRunning { .. } => {
                Some("stop the other `registry index`, or index into another --database-url".into())
            }
            registry::Error::WrongDeployment { .. } => {
                Some("use a fresh --database-url for this deployment".into())
            }
            registry::Error::ChainIdMismatch { .. } => {
                Some("check --rpc-url, --chain-id and the deployment file".into())
            }
            registry::Error::Fingerprint(e) => fingerprint_hint(e),
            registry::Error::Contract { message, .. }
                if message.to_lowercase().contains("insufficient funds") =>
            {
                Some("the signer cannot pay the price plus gas: fund it, or sign with another account".into())
            }
            registry::Error::InsufficientTokens { token, .. } => Some(format!(
                "the offering is priced in the ERC-20 token {token:?}: get enough of it, or sign with another account"
            )),
            _ => None,
        };
    }
    if let Some(e) = err.downcast_ref::<::store::Error>() {
        return store_hint(e);
    }
    if let Some(e) = err.downcast_ref::<::content::Error>() {
        return content_hint(e);
    }
    fingerprint_hint(err.downcast_ref::<::fingerprint::Error>()?)
}

/// A hint for a contract's revert a user can act on.
fn revert_hint(revert: &registry::chain::Revert) -> Option<String> {
    use contracts::{LicenseMarketErrors as M, ModelRegistryErrors as R};
    use registry::chain::Revert;
    match revert {
        Revert::Market(M::LicenseAlreadyUsed(_)) => {
            Some("a fine-tune license admits one derivative: buy another".into())
        }
        Revert::Market(M::CurrencyNotAccepted(_)) => {
            Some("price in the native currency or in an ERC-20 the market was deployed with (`registry deploy --currency`)".into())
        }
        Revert::Market(M::RoyaltyBelowFloor(_)) => {
            Some("the model's derivative royalty floor is the least a fine-tune offering may ask: raise --royalty-bps".into())
        }
        Revert::Market(M::PublisherNotOwner(_)) => {
            Some("the model changed hands since this offering was published: `registry show MODEL` lists the new owner's offerings".into())
        }
        Revert::Market(M::OwnerChangedThisBlock(_)) | Revert::Registry(R::OwnerChangedThisBlock(_)) => {
            Some("a model that changed hands in this block cannot act or be paid until the next block: try again".into())
        }
        Revert::Market(M::LicenseLapsed(_)) => {
            Some("a lapsed license cannot be renewed: buy a new one".into())
        }
        Revert::Market(M::DeliveryNotOverdue(_)) => {
            Some("a refund opens at the delivery deadline: wait for a keeper, or try again after it".into())
        }
        Revert::Market(M::NotKeeper(_)) => {
            Some("the model's owner approves keepers with `registry keeper approve ADDRESS`".into())
        }
        Revert::Market(M::PriceAboveMax(_)) => {
            Some("raise --max-price to at least the price".into())
        }
        _ => None,
    }
}

fn store_hint(err: &::store::Error) -> Option<String> {
    match err {
        ::store::Error::SchemaBehind { .. } => {
            Some("run `registry db migrate` (with the same --database-url)".into())
        }
        _ => None,
    }
}

fn content_hint(err: &::content::Error) -> Option<String> {
    match err {
        ::content::Error::BlockNotFound { .. } => Some(
            "the content is not in this store: pass --ipfs (the folder or node that holds it), or import a CAR".into(),
        ),
        ::content::Error::CorruptStoredBlock { path, .. } => Some(format!(
            "delete {} and add or import the content again",
            path.display()
        )),
        ::content::Error::Ipfs { .. } => {
            Some("is the IPFS node running? check --ipfs http://HOST:PORT".into())
        }
        _ => None,
    }
}

fn fingerprint_hint(err: &::fingerprint::Error) -> Option<String> {
    match err {
        ::fingerprint::Error::EmptyDirectory { .. } | ::fingerprint::Error::Header { .. } => {
            Some("pass a .safetensors file, a folder of them, or a *.safetensors.index.json".into())
        }
        ::fingerprint::Error::Gpu { .. } => {
            Some("--backend cpu computes the same fingerprint without a GPU".into())
        }
        _ => None,
    }
}
