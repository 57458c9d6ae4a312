//! Encrypted weights: the weights of an encrypted model are stored only as an age file
//! (X25519, ChaCha20-Poly1305 in 64 KiB chunks), encrypted to a fresh identity per model, the
//! *model key*. The model key itself travels only wrapped: in the model's envelope (an age
//! file readable by the author and the keepers the author named) and in one wrapped copy per
//! buyer, each an age file readable by one recipient.
//!
//! Encryption and decryption stream: the cipher runs on a blocking thread joined to the
//! content store's importer or exporter by a pipe, so a file of any size is never in memory
//! and the cipher and the store's hashing use a core each.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use age::secrecy::ExposeSecret;
use age::x25519::{Identity, Recipient};
use tokio_util::io::SyncIoBridge;

use crate::{Error, Result};
use content::{add, Added, Cid, Parts, Reading, Store, Version};

/// Pipe capacity between the cipher thread and the store.
const PIPE: usize = 1 << 20;

/// A model's key: the X25519 identity its weights are encrypted to.
pub struct ModelKey(Identity);

impl std::fmt::Debug for ModelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "ModelKey({})", self.0.to_public())
    }
}

impl ModelKey {
    pub fn generate() -> Self {
        ModelKey(Identity::generate())
    }

    pub fn recipient(&self) -> Recipient {
        self.0.to_public()
    }

    pub fn identity(&self) -> &Identity {
        &self.0
    }

    /// The key wrapped to `recipients`: an age file only they can open. This is both the
    /// model's envelope (author and keepers) and what a buyer receives (one recipient).
    pub fn wrap(&self, recipients: &[Recipient]) -> Result<Vec<u8>> {
        let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as _))
            .map_err(|e| Error::Encrypt(e.to_string()))?;
        let mut out = Vec::new();
        let mut writer = encryptor
            .wrap_output(&mut out)
            .map_err(|e| Error::Encrypt(e.to_string()))?;
        writer
            .write_all(self.0.to_string().expose_secret().as_bytes())
            .and_then(|()| writer.finish().map(|_| ()))
            .map_err(|e| Error::Encrypt(e.to_string()))?;
        Ok(out)
    }

    /// Opens a wrapped key (`what` names it in errors: "the envelope of model 3").
    pub fn unwrap(wrapped: &[u8], identity: &Identity, what: &str) -> Result<Self> {
        let decryptor = age::Decryptor::new(wrapped).map_err(|e| Error::Decrypt {
            what: what.into(),
            reason: e.to_string(),
        })?;
        let mut reader = decryptor
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => Error::NotARecipient {
                    what: what.into(),
                    recipient: identity.to_public().to_string(),
                },
                e => Error::Decrypt {
                    what: what.into(),
                    reason: e.to_string(),
                },
            })?;
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|e| Error::Decrypt {
                what: what.into(),
                reason: e.to_string(),
            })?;
        let key = text
            .trim()
            .parse::<Identity>()
            .map_err(|e| Error::Decrypt {
                what: what.into(),
                reason: format!("it does not hold a model key ({e})"),
            })?;
        Ok(ModelKey(key))
    }
}

/// Encrypts the file at `path` to `recipient` and adds only the ciphertext to `store`;
/// `progress` counts plaintext bytes read.
pub async fn add_encrypted(
    store: &Store,
    path: &Path,
    recipient: &Recipient,
    version: Version,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Added> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.into(),
        cause: source,
    })?;
    let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient as _))
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    let (reader, writer) = tokio::io::duplex(PIPE);
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = read.clone();
    let path_owned = path.to_path_buf();
    let cipher = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut input = CountingReader {
            inner: std::io::BufReader::with_capacity(PIPE, file),
            count: counter,
            failed: false,
        };
        let sink = std::io::BufWriter::with_capacity(PIPE, SyncIoBridge::new(writer));
        let mut stream = encryptor
            .wrap_output(sink)
            .map_err(|e| Error::Encrypt(e.to_string()))?;
        std::io::copy(&mut input, &mut stream).map_err(|source| {
            if input.failed {
                Error::Io {
                    path: path_owned.clone(),
                    cause: source,
                }
            } else {
                // The pipe closed: the store's error (returned by the importer) says why.
                Error::Write(source.to_string())
            }
        })?;
        let mut sink = stream.finish().map_err(|e| Error::Encrypt(e.to_string()))?;
        sink.flush().map_err(|e| Error::Encrypt(e.to_string()))?;
        let mut bridge = sink
            .into_inner()
            .map_err(|e| Error::Encrypt(e.error().to_string()))?;
        // Closing the pipe ends the importer's input.
        bridge
            .shutdown()
            .map_err(|e| Error::Encrypt(e.to_string()))?;
        Ok(())
    });
    let added = add(store, reader, version, &|_| {
        progress(read.load(std::sync::atomic::Ordering::Relaxed))
    })
    .await
    .map_err(Error::from);
    let ciphered = cipher
        .await
        .map_err(|e| Error::Encrypt(format!("the cipher thread failed: {e}")))?;
    let added = match (added, ciphered) {
        // Failing to read the file explains an importer that saw its input end early ...
        (_, Err(e @ Error::Io { .. })) => return Err(e),
        // ... while a store that failed explains a cipher whose pipe closed.
        (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        (Ok(added), Ok(())) => added,
    };
    store.pin(&added.cid).await?;
    store.check_readback(&added).await?;
    Ok(added)
}

/// Streams the age file `cid` out of `store`, decrypts it with `key` and writes the plaintext
/// to `out`; returns the plaintext's length. A block that does not match its CID, a truncated
/// file or a chunk that fails authentication is an error, and `out` then holds a prefix at
/// most (callers write to a temporary file).
pub async fn fetch_decrypted(
    store: &Store,
    cid: &Cid,
    key: &ModelKey,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let file = std::fs::File::create(out).map_err(|source| Error::Io {
        path: out.into(),
        cause: source,
    })?;
    decrypt_into(store, cid, key, file, out, progress, Reading::Checked).await
}

/// [`fetch_decrypted`] into any writer (`out` names it in errors), the blocks read as
/// `reading` says; the writer is dropped on the cipher thread when the stream ends or fails.
pub async fn decrypt_into<W: Write + Send + 'static>(
    store: &Store,
    cid: &Cid,
    key: &ModelKey,
    file: W,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
    reading: Reading,
) -> Result<u64> {
    // The store's parts travel to the cipher thread as they were read: no copy on the way.
    let (parts_tx, parts_rx) = tokio::sync::mpsc::channel(PARTS_IN_FLIGHT);
    let identity = key.0.clone();
    let what = format!("the weights {cid}");
    let out_path = out.to_path_buf();
    let plain = tokio::task::spawn_blocking(move || -> Result<u64> {
        let input = Received {
            parts: parts_rx,
            part: Vec::new(),
            at: 0,
        };
        let decryptor = age::Decryptor::new_buffered(input).map_err(|e| Error::Decrypt {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        let mut stream = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| Error::Decrypt {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let mut sink = std::io::BufWriter::with_capacity(PIPE, file);
        let n = std::io::copy(&mut stream, &mut sink).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                Error::Decrypt {
                    what: what.clone(),
                    reason: e.to_string(),
                }
            } else {
                Error::Io {
                    path: out_path.clone(),
                    cause: e,
                }
            }
        })?;
        sink.flush().map_err(|source| Error::Io {
            path: out_path,
            cause: source,
        })?;
        Ok(n)
    });
    let fetched = async move {
        let mut parts = Parts::new(*cid, reading);
        while let Some(part) = parts.next(store).await? {
            parts_tx
                .send(part)
                .await
                .map_err(|_| Error::Write("the decryptor stopped reading".into()))?;
            progress(parts.read());
        }
        // Dropping the sender ends the decryptor's input.
        Ok::<_, Error>(parts.read())
    }
    .await;
    let plain = plain
        .await
        .map_err(|e| Error::Encrypt(format!("the cipher thread failed: {e}")))?;
    match (fetched, plain) {
        // The decryptor stopped reading (a wrong key, a failed chunk): its error says why.
        (Err(Error::Write(_)), Err(e)) => Err(e),
        // A store error (a corrupt block) explains a decryptor that saw its input end early.
        (Err(e), _) => Err(e),
        (Ok(_), plain) => plain,
    }
}

/// Parts of a file in flight between the store and the cipher thread.
const PARTS_IN_FLIGHT: usize = 8;

/// The cipher thread's input: the parts the store's reader sends, read in place.
struct Received {
    parts: tokio::sync::mpsc::Receiver<Vec<u8>>,
    part: Vec<u8>,
    at: usize,
}

impl BufRead for Received {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.at == self.part.len() {
            // `None`: the sender is gone, at the end of the file or on a store error (which
            // the reader reports itself).
            match self.parts.blocking_recv() {
                Some(part) => (self.part, self.at) = (part, 0),
                None => return Ok(&[]),
            }
        }
        Ok(&self.part[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.part.len());
    }
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Counts the bytes read through it, for progress, and remembers whether reading failed (to
/// tell a bad input file from a store that stopped taking the output).
struct CountingReader<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
    failed: bool,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.failed = true)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}
