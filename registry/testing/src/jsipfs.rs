//! A real IPFS daemon speaking the Kubo RPC API (js-ipfs, installed by `npm ci` in
//! `registry/tests/js-ipfs`), started on free loopback ports with a fresh repository and killed
//! when dropped. Shared by the registry crate's and the CLI's tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct JsIpfs {
    child: Child,
    api: String,
    _repo: tempfile::TempDir,
}

impl std::fmt::Debug for JsIpfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsIpfs").field("api", &self.api).finish()
    }
}

/// The folder with the daemon's package.json, found above this crate.
fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("registry/tests/js-ipfs"))
        .find(|d| d.join("package.json").is_file())
        .expect("registry/tests/js-ipfs is in the repository")
}

impl JsIpfs {
    pub fn start() -> Self {
        let bin = package_dir().join("node_modules/.bin/jsipfs");
        assert!(
            bin.is_file(),
            "{} is missing: run `npm ci --prefix registry/tests/js-ipfs` (scripts/test.sh does)",
            bin.display()
        );
        let repo = tempfile::tempdir().expect("a temporary folder");
        let repo_path = repo.path().join("repo");
        let init = Command::new(&bin)
            .args(["init", "--profile", "test", "--empty-repo"])
            .env("IPFS_PATH", &repo_path)
            .output()
            .expect("jsipfs init runs");
        assert!(
            init.status.success(),
            "jsipfs init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // Loopback only, ports chosen by the OS, no peers, no routing: a private offline node.
        let config_path = repo_path.join("config");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        for key in ["API", "Gateway", "RPC"] {
            config["Addresses"][key] = "/ip4/127.0.0.1/tcp/0".into();
        }
        config["Addresses"]["Swarm"] = serde_json::json!(["/ip4/127.0.0.1/tcp/0"]);
        config["Bootstrap"] = serde_json::json!([]);
        config["Routing"] = serde_json::json!({ "Type": "none" });
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();

        let mut child = Command::new(&bin)
            .args(["daemon", "--offline"])
            .env("IPFS_PATH", &repo_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("jsipfs daemon starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads the banner, then keeps draining so the daemon never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut api = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("HTTP API listening on /ip4/127.0.0.1/tcp/") {
                    api = rest
                        .split('/')
                        .next()
                        .map(|port| format!("http://127.0.0.1:{port}"));
                }
                if line.contains("Daemon is ready") {
                    let _ = tx.send(api.take());
                }
            }
        });
        let api = rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .flatten()
            .expect("js-ipfs reported its API address and readiness within 60 s");
        Self {
            child,
            api,
            _repo: repo,
        }
    }

    /// The Kubo RPC endpoint, `http://127.0.0.1:PORT`.
    pub fn api(&self) -> &str {
        &self.api
    }
}

impl Drop for JsIpfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
