//! One module per subcommand.

mod deploy;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Deploy the registry and license market contracts and print their addresses.
    Deploy(deploy::Args),
}

impl Command {
    pub(crate) async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Deploy(args) => args.run().await,
        }
    }
}

/// A hint for errors a user can fix.
pub(crate) fn hint(err: &anyhow::Error) -> Option<&'static str> {
    match err.downcast_ref::<registry::Error>()? {
        registry::Error::AnvilNotFound { .. } => {
            Some("`npm ci` at the repository root installs anvil")
        }
        registry::Error::Rpc { .. } => Some("is the node running? check --rpc-url"),
        registry::Error::PrivateKey(_) => {
            Some("pass 32 bytes as hex, e.g. 0xac09…; or omit --rpc-url for a managed anvil")
        }
        _ => None,
    }
}
