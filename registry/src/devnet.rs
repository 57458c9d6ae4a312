//! A managed anvil: the embedded default chain. Started on a free loopback port, its dev keys
//! read from its banner, its output drained so it never blocks, and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ethers::signers::LocalWallet;
use ethers::types::U256;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Error, Result};

/// How long anvil may take to print its address.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a managed anvil.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// The anvil binary; found with [`locate_anvil`] when `None`.
    pub anvil: Option<PathBuf>,
    pub chain_id: u64,
    /// Seconds between blocks; `None` mines a block per transaction.
    pub block_time: Option<u64>,
    /// Dev accounts to create, each funded with 10,000 ether.
    pub accounts: u32,
    /// Keep no state of past blocks (`anvil --prune-history`): calls at an old block fail,
    /// but a long run stays fast (anvil otherwise snapshots the whole state at every block,
    /// so each block costs more than the last).
    pub prune_history: bool,
    /// Slots per epoch (`anvil --slots-in-an-epoch`): anvil names the block two epochs below
    /// the head `finalized`; `None` keeps anvil's 32 (finalized 64 blocks below the head).
    pub slots_in_an_epoch: Option<u64>,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Keep the chain in this file (`anvil --state`): loaded at start when it exists, written
    /// every [`STATE_INTERVAL`] and when stopped with [`Devnet::stop`], so a restarted devnet
    /// resumes with the same blocks, hashes and logs.
    pub state: Option<PathBuf>,
    /// Run anvil in a process group of its own, so a terminal's Ctrl-C reaches only this
    /// program, which stops anvil itself once the rest has stopped (and a seeding
    /// interrupted halfway can still be rolled back on it).
    pub own_process_group: bool,
}

/// Seconds between writes of a kept chain's state (what a killed devnet can lose).
pub const STATE_INTERVAL: u64 = 2;

impl Default for DevnetOptions {
    fn default() -> Self {
        Self {
            anvil: None,
            chain_id: 31337,
            block_time: None,
            accounts: 10,
            prune_history: false,
            slots_in_an_epoch: None,
            port: 0,
            state: None,
            own_process_group: false,
        }
    }
}

/// A running anvil. Dropping it kills the process.
#[derive(Debug)]
pub struct Devnet {
    child: Child,
    endpoint: String,
    chain_id: u64,
    keys: Vec<String>,
}

impl Devnet {
    /// Starts anvil on a free port of 127.0.0.1 and waits until it listens.
    pub async fn start(options: &DevnetOptions) -> Result<Self> {
        let anvil = match &options.anvil {
            Some(path) => path.clone(),
            None => locate_anvil()?,
        };
        let mut command = Command::new(&anvil);
        command
            .args(["--host", "127.0.0.1", "--port", &options.port.to_string()])
            .args(["--chain-id", &options.chain_id.to_string()])
            .args(["--accounts", &options.accounts.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if options.prune_history {
            command.arg("--prune-history");
        }
        if let Some(slots) = options.slots_in_an_epoch {
            command.args(["--slots-in-an-epoch", &slots.to_string()]);
        }
        if options.own_process_group {
            command.process_group(0);
        }
        if let Some(state) = &options.state {
            command.arg("--state").arg(state);
            command.args(["--state-interval", &STATE_INTERVAL.to_string()]);
        }
        if let Some(seconds) = options.block_time {
            command.args(["--block-time", &seconds.to_string()]);
        }
        let mut child = command.spawn().map_err(|source| Error::AnvilSpawn {
            path: anvil.clone(),
            cause: source,
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stdout).lines();

        let banner = async {
            let mut banner = Banner::default();
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if banner.feed(&line) {
                    return Ok(banner);
                }
            }
            let mut err = String::new();
            let mut stderr_lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = stderr_lines.next_line().await {
                err.push_str(&line);
                err.push('\n');
            }
            Err(Error::AnvilExited {
                output: err.trim().to_string(),
            })
        };
        let banner = tokio::time::timeout(READY_TIMEOUT, banner)
            .await
            .map_err(|_| Error::AnvilTimeout {
                seconds: READY_TIMEOUT.as_secs(),
            })??;

        // anvil logs every request to stdout; a full pipe would stall it.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::trace!(target: "anvil", "{line}");
            }
        });
        let endpoint = format!("http://{}", banner.address.expect("feed returned true"));
        tracing::info!(%endpoint, "anvil is listening");
        Ok(Self {
            child,
            endpoint,
            chain_id: options.chain_id,
            keys: banner.keys,
        })
    }

    /// Records the chain's state (`evm_snapshot`); [`Devnet::revert`] returns to it.
    pub async fn snapshot(&self) -> Result<U256> {
        self.call("evm_snapshot", ()).await
    }

    /// Returns the chain to a [`Devnet::snapshot`]: the blocks since are gone.
    pub async fn revert(&self, snapshot: U256) -> Result<bool> {
        self.call("evm_revert", [snapshot]).await
    }

    async fn call<P, R>(&self, method: &str, params: P) -> Result<R>
    where
        P: serde::Serialize + Send + Sync + std::fmt::Debug,
        R: serde::Serialize + serde::de::DeserializeOwned + Send + std::fmt::Debug,
    {
        crate::chain::provider(&self.endpoint)?
            .request(method, params)
            .await
            .map_err(|e| Error::Rpc {
                url: self.endpoint.clone(),
                message: format!("{method}: {e}"),
            })
    }

    /// The anvil process's id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The HTTP JSON-RPC endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The funded dev accounts' private keys, hex with 0x.
    pub fn private_keys(&self) -> &[String] {
        &self.keys
    }

    /// A wallet of dev account `index`, bound to this chain id.
    pub fn wallet(&self, index: usize) -> LocalWallet {
        use ethers::signers::Signer;
        let key = &self.keys[index];
        key.parse::<LocalWallet>()
            .expect("anvil prints valid keys")
            .with_chain_id(self.chain_id)
    }

    /// Stops anvil and waits for it to exit: asked with SIGINT first, so a kept chain's
    /// state is written, then killed if it has not exited within ten seconds.
    pub async fn stop(mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Some(pid) = self.child.id() {
            if kill(Pid::from_raw(pid as i32), Signal::SIGINT).is_ok()
                && tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                    .await
                    .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// What anvil prints before it serves: its dev keys, then the address it listens on.
#[derive(Debug, Default)]
struct Banner {
    in_keys: bool,
    keys: Vec<String>,
    address: Option<String>,
}

impl Banner {
    /// Takes one line; true once the listening address is known.
    fn feed(&mut self, line: &str) -> bool {
        let line = line.trim();
        if line == "Private Keys" {
            self.in_keys = true;
        } else if line.starts_with("Wallet") || line.starts_with("Chain ID") {
            self.in_keys = false;
        } else if self.in_keys && line.starts_with('(') {
            if let Some(key) = line.split_whitespace().nth(1) {
                self.keys.push(key.to_string());
            }
        } else if let Some(address) = line.strip_prefix("Listening on ") {
            self.address = Some(address.trim().to_string());
            return true;
        }
        false
    }
}

/// Where anvil's npm package puts the binary, below a folder holding `node_modules`.
const PACKAGED_ANVIL: &str = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

/// Finds the anvil binary: `$REGISTRY_ANVIL`, then `anvil` on `PATH`, then the npm package
/// (`npm ci` at the repository root installs it) in a `node_modules` of the current folder or
/// one of its parents, or of the folder of this program or one of its parents (a
/// `target/release/registry` run from anywhere finds its checkout's). Nothing is baked in at
/// compile time, so a binary moved to another machine looks there.
pub fn locate_anvil() -> Result<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    find_anvil(
        std::env::var_os("REGISTRY_ANVIL"),
        std::env::var_os("PATH"),
        &roots,
    )
}

/// [`locate_anvil`] over the given variables and folders.
fn find_anvil(
    configured: Option<std::ffi::OsString>,
    path: Option<std::ffi::OsString>,
    roots: &[PathBuf],
) -> Result<PathBuf> {
    if let Some(anvil) = configured {
        let anvil = PathBuf::from(anvil);
        return match anvil.is_file() {
            true => Ok(anvil),
            false => Err(Error::AnvilNotFound {
                looked: format!("REGISTRY_ANVIL={} (no such file)", anvil.display()),
            }),
        };
    }
    let mut looked = Vec::new();
    if let Some(paths) = path {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("anvil");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        looked.push("anvil on PATH".to_string());
    }
    for root in roots {
        let candidate = root.join(PACKAGED_ANVIL);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    looked.push(format!(
        "{PACKAGED_ANVIL} in the current folder, the program's folder and their parents"
    ));
    Err(Error::AnvilNotFound {
        looked: looked.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anvil_is_found_by_variable_path_or_node_modules_and_never_by_build_location() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("anvil"), b"").unwrap();
        let project = dir.path().join("project");
        let packaged = project.join(PACKAGED_ANVIL);
        std::fs::create_dir_all(packaged.parent().unwrap()).unwrap();
        std::fs::write(&packaged, b"").unwrap();
        let nested = project.join("models/llama");
        let path = std::env::join_paths([dir.path().join("empty"), bin.clone()]).unwrap();

        // The variable wins, and must name a file.
        let configured = Some(packaged.clone().into_os_string());
        assert_eq!(
            find_anvil(configured, Some(path.clone()), &[]).unwrap(),
            packaged
        );
        let missing = Some(dir.path().join("nope").into_os_string());
        let err = find_anvil(missing, Some(path.clone()), &[]).unwrap_err();
        assert!(err.to_string().contains("REGISTRY_ANVIL="), "{err}");
        // Then PATH, then a node_modules above a folder.
        assert_eq!(
            find_anvil(None, Some(path), std::slice::from_ref(&nested)).unwrap(),
            bin.join("anvil")
        );
        let roots: Vec<PathBuf> = nested.ancestors().map(Path::to_path_buf).collect();
        assert_eq!(find_anvil(None, None, &roots).unwrap(), packaged);
        // Nowhere: the error says where it looked.
        let err = find_anvil(
            None,
            Some(dir.path().join("empty").into_os_string()),
            &roots[..2],
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("anvil on PATH") && message.contains(PACKAGED_ANVIL),
            "{message}"
        );
    }

    #[test]
    fn banner_yields_keys_and_address() {
        let mut banner = Banner::default();
        let text = "Available Accounts\n==================\n\n(0) 0xf39F (10000.000000000000000000 ETH)\n\n\
                    Private Keys\n==================\n\n(0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n\
                    (1) 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n\n\
                    Wallet\n==================\nMnemonic: test test\n\nChain ID\n==================\n\n31337\n\n\
                    Listening on 127.0.0.1:38687";
        let mut ready = false;
        for line in text.lines() {
            ready = banner.feed(line);
        }
        assert!(ready);
        assert_eq!(banner.address.as_deref(), Some("127.0.0.1:38687"));
        assert_eq!(banner.keys.len(), 2);
        assert!(banner.keys[1].starts_with("0x59c6"));
    }
}
