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

    /// Fetches one block, checked against its CID. A node that sends more than a block can
    /// hold is cut off at [`MAX_BLOCK`] (it could fill this process's memory before the
    /// check).
    pub async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        let text = cid.to_string();
        let call = async {
            let mut stream = self.client.block_get(&text);
            let mut block = Vec::new();
            while let Some(chunk) = stream.try_next().await? {
                if block.len() + chunk.len() > MAX_BLOCK {
                    return Ok(None);
                }
                block.extend_from_slice(&chunk);
            }
            Ok::<_, ipfs_api_backend_hyper::Error>(Some(block))
        };
        let Some(block) = self.timed(&format!("block/get {cid}"), call).await? else {
            return Err(Error::Ipfs {
                url: self.url.clone(),
                message: format!("block/get {cid}: more than {MAX_BLOCK} bytes"),
            });
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A node that answers `version`, then answers every other call with `bytes` zeros (as
    /// fast as it is read), until the client goes. Returns its URL.
    fn flooding_node(bytes: u64) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if stream.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head);
                    if head.contains("/api/v0/version") {
                        let body = r#"{"Version":"0.30.0","Commit":"","Repo":"16","System":"amd64/linux","Golang":"go1.22"}"#;
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        return;
                    }
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {bytes}\r\n\r\n"
                    );
                    let zeros = vec![0u8; 1 << 16];
                    let mut sent = 0;
                    while sent < bytes && stream.write_all(&zeros).is_ok() {
                        sent += zeros.len() as u64;
                    }
                });
            }
        });
        url
    }

    /// A lying node answers a block read with 1 GiB: the read stops past the most a block
    /// may hold, not after holding the whole answer.
    #[tokio::test]
    async fn a_node_that_answers_a_block_with_a_flood_is_cut_off() {
        let kubo = Kubo::connect(&flooding_node(1 << 30)).await.unwrap();
        let cid = cids::cid_of(Version::V1, cids::RAW, b"a block");
        let err = kubo.get(&cid).await.unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
