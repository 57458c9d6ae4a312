//! One module per subcommand.

mod compare;
mod deploy;
mod fingerprint;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Deploy the registry and license market contracts and print their addresses.
    Deploy(deploy::Args),
    /// Fingerprint a model: its commitment hash and content root.
    Fingerprint(fingerprint::Args),
    /// Compare two models (weights or saved fingerprints): identical, derived or unrelated.
    Compare(compare::Args),
}

impl Command {
    pub(crate) async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Deploy(args) => args.run().await,
            Command::Fingerprint(args) => args.run().await,
            Command::Compare(args) => args.run().await,
        }
    }
}

/// A hint for errors a user can fix.
pub(crate) fn hint(err: &anyhow::Error) -> Option<&'static str> {
    if let Some(err) = err.downcast_ref::<registry::Error>() {
        return match err {
            registry::Error::AnvilNotFound { .. } => {
                Some("`npm ci` at the repository root installs anvil")
            }
            registry::Error::Rpc { .. } => Some("is the node running? check --rpc-url"),
            registry::Error::PrivateKey(_) => {
                Some("pass 32 bytes as hex, e.g. 0xac09…; or omit --rpc-url for a managed anvil")
            }
            _ => None,
        };
    }
    match err.downcast_ref::<::fingerprint::Error>()? {
        ::fingerprint::Error::EmptyDirectory { .. } | ::fingerprint::Error::Header { .. } => {
            Some("pass a .safetensors file, a folder of them, or a *.safetensors.index.json")
        }
        ::fingerprint::Error::Gpu { .. } => {
            Some("--backend cpu computes the same fingerprint without a GPU")
        }
        _ => None,
    }
}
