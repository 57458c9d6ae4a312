//! A Kubo node (or any node that speaks the Kubo RPC API, such as js-ipfs) as the content store.
//!
//! Blocks are built here and pushed with `block/put`, naming codec and hash, and the CID the
//! node answers must name the same block; reads use `block/get` and are checked against their
//! CID like the embedded store's. (`add` is not used: the node would chunk by its own settings,
//! and js-ipfs answers it in a shape ipfs-api cannot parse.)

use std::io::Cursor;
use std::time::Duration;

use cid::{Cid, Version};
use futures::TryStreamExt as _;
use ipfs_api_backend_hyper::request::BlockPut;
use ipfs_api_backend_hyper::{IpfsApi, IpfsClient, TryFromUri};

use super::cids;
use crate::{Error, Result};

/// Time one RPC call may take (a block is at most a few hundred KiB; pins walk the whole DAG).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest block read (IPFS blocks are at most 2 MiB; ours 1 MiB).
const MAX_BLOCK: usize = 4 << 20;

/// A connection to a Kubo RPC endpoint.
pub struct Kubo {
    url: String,
    client: IpfsClient,
    /// For calls the client library cannot word (options it does not know).
    http: reqwest::Client,
}

impl std::fmt::Debug for Kubo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubo").field("url", &self.url).finish()
    }
}

impl Kubo {
    /// Connects to `url` (`http://HOST:PORT`) and checks that a node answers there.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = IpfsClient::from_str(url).map_err(|e| Error::Ipfs {
            url: url.into(),
            message: format!("invalid url: {e}"),
        })?;
        let kubo = Self {
            url: url.into(),
            client,
            http: reqwest::Client::new(),
        };
        let version = kubo.timed("version", kubo.client.version()).await?;
        tracing::debug!(url, version = %version.version, "connected to the ipfs node");
        Ok(kubo)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn timed<T, E: std::fmt::Display>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::Ipfs {
                url: self.url.clone(),
                message: format!("{what}: {e}"),
            }),
            Err(_) => Err(Error::Ipfs {
                url: self.url.clone(),
                message: format!("{what}: no answer within {} s", CALL_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Pushes one block and checks that the node stored it under the same CID.
    pub async fn put(&self, cid: &Cid, block: Vec<u8>) -> Result<()> {
        let format = match (cid.version(), cid.codec()) {
            (Version::V0, _) => "v0",
            (_, cids::DAG_PB) => "dag-pb",
            (_, cids::RAW) => "raw",
            (_, codec) => {
                return Err(Error::Ipfs {
                    url: self.url.clone(),
                    message: format!("block {cid} has codec {codec:#x}, which is not pushed"),
                })
            }
        };
        let options = BlockPut {
            format: Some(format),
            mhtype: Some("sha2-256"),
            mhlen: Some(32),
            pin: Some(false),
        };
        let answer = self
            .timed(
                &format!("block/put {cid}"),
                self.client
                    .block_put_with_options(Cursor::new(block), options),
            )
            .await?;
        let answered = cids::parse(&answer.key)?;
        if !cids::same_block(cid, &answered) {
            return Err(Error::IpfsCidMismatch {
                url: self.url.clone(),
                expected: cid.to_string(),
                answered: answer.key,
            });
        }
        Ok(())
    }

    /// Fetches one block, checked against its CID.
    pub async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        let text = cid.to_string();
        let block: Vec<u8> = self
            .timed(
                &format!("block/get {cid}"),
                self.client
                    .block_get(&text)
                    .map_ok(|chunk| chunk.to_vec())
                    .try_concat(),
            )
            .await?;
        cids::verify(cid, &block)?;
        Ok(block)
    }

    /// Fetches one block only if the node holds it (Kubo's `offline` option: for this call it
    /// does not ask the network), checked against its CID. What a public gateway reads, so that
    /// it never fetches content from the network for its clients (an open proxy).
    pub async fn get_held(&self, cid: &Cid) -> Result<Vec<u8>> {
        let url = format!("{}/api/v0/block/get?arg={cid}&offline=true", self.url);
        let call = async {
            let answer = self.http.post(&url).send().await?;
            let status = answer.status();
            let mut body = Vec::new();
            let mut stream = answer;
            while let Some(chunk) = stream.chunk().await? {
                if body.len() + chunk.len() > MAX_BLOCK {
                    return Ok((status, None));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>((status, Some(body)))
        };
        let (status, body) = self
            .timed(&format!("block/get {cid} (offline)"), call)
            .await?;
        let Some(body) = body else {
            return Err(Error::Ipfs {
                url: self.url.clone(),
                message: format!("block/get {cid}: more than {MAX_BLOCK} bytes"),
            });
        };
        if !status.is_success() {
            let message = String::from_utf8_lossy(&body);
            // Kubo: "block was not found locally (offline)".
            if message.contains("not found") {
                return Err(Error::BlockNotFound {
                    cid: cid.to_string(),
                    store: self.url.clone(),
                });
            }
            return Err(Error::Ipfs {
                url: self.url.clone(),
                message: format!("block/get {cid}: {status}: {}", message.trim()),
            });
        }
        cids::verify(cid, &body)?;
        Ok(body)
    }

    /// Pins `root` and everything below it.
    pub async fn pin(&self, root: &Cid) -> Result<()> {
        self.timed(
            &format!("pin/add {root}"),
            self.client.pin_add(&root.to_string(), true),
        )
        .await?;
        Ok(())
    }
}
