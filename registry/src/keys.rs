//! Age identities: one X25519 identity per signer account, kept in a file only its owner can
//! read (`.registry/keys/<address>.txt`, the format `age-keygen` writes, so `rage -i FILE`
//! reads it), and the conversions between an age recipient (`age1…`) and the 32 bytes a
//! purchase records on-chain.

use std::io::Write;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use age::x25519::{Identity, Recipient};
use bech32::{FromBase32, ToBase32, Variant};
use ethers::types::Address;

use crate::{Error, Result};

/// The bech32 prefix of age X25519 recipients.
const RECIPIENT_HRP: &str = "age";

/// Where the identity of `account` lives under `dir` (`.registry/keys` by default).
pub fn identity_path(dir: &Path, account: Address) -> PathBuf {
    dir.join(format!("{account:#x}.txt"))
}

/// Reads the identity at `path`, creating it (mode 0600, never printed) when the file does
/// not exist. Returns whether it was created.
pub fn load_or_create(path: &Path) -> Result<(Identity, bool)> {
    match load(path) {
        Err(Error::IdentityMissing { .. }) => Ok((create(path)?, true)),
        other => other.map(|identity| (identity, false)),
    }
}

/// Reads the identity at `path`: the first `AGE-SECRET-KEY-1…` line; `#` lines are comments.
pub fn load(path: &Path) -> Result<Identity> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::IdentityMissing { path: path.into() })
        }
        Err(source) => {
            return Err(Error::Io {
                path: path.into(),
                cause: source,
            })
        }
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| Error::IdentityFile {
            path: path.into(),
            reason: "no identity line in it".into(),
        })?;
    line.parse::<Identity>().map_err(|e| Error::IdentityFile {
        path: path.into(),
        reason: format!("not an age X25519 identity ({e})"),
    })
}

fn create(path: &Path) -> Result<Identity> {
    let io = |source| Error::Io {
        path: path.into(),
        cause: source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let identity = Identity::generate();
    let text = format!(
        "# created by the model registry for one account; keep it secret\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    );
    // Written whole to a private temporary file, then linked into place: a crash leaves no
    // empty identity file, and of two processes creating it at once one wins and the other
    // reads the winner's whole file.
    let mut tmp = tempfile::Builder::new()
        .prefix(".identity-")
        .permissions(private())
        .tempfile_in(&dir)
        .map_err(io)?;
    tmp.write_all(text.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    match std::fs::hard_link(tmp.path(), path) {
        Ok(()) => Ok(identity),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(io(e)),
    }
}

fn private() -> std::fs::Permissions {
    #[cfg(unix)]
    {
        std::os::unix::fs::PermissionsExt::from_mode(0o600)
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(".")
            .expect("the working folder exists")
            .permissions()
    }
}

/// Parses an `age1…` X25519 recipient.
pub fn parse_recipient(text: &str) -> Result<Recipient> {
    text.trim()
        .parse::<Recipient>()
        .map_err(|e| Error::InvalidRecipient {
            recipient: text.into(),
            reason: e.to_string(),
        })
}

/// The 32 bytes of the X25519 public key (what `buy` records).
pub fn recipient_bytes(recipient: &Recipient) -> [u8; 32] {
    let text = recipient.to_string();
    let (_, data, _) = bech32::decode(&text).expect("age prints valid bech32");
    let bytes = Vec::<u8>::from_base32(&data).expect("age prints whole bytes");
    bytes.try_into().expect("an X25519 public key is 32 bytes")
}

/// The `age1…` text of the recipient whose public key is `bytes` (any 32 bytes encode).
pub fn recipient_text(bytes: &[u8; 32]) -> String {
    bech32::encode(RECIPIENT_HRP, bytes.to_base32(), Variant::Bech32).expect("the prefix is valid")
}

/// The recipient whose public key is `bytes`.
pub fn recipient_from_bytes(bytes: &[u8; 32]) -> Result<Recipient> {
    parse_recipient(&recipient_text(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_round_trips_through_its_bytes() {
        let identity = Identity::generate();
        let recipient = identity.to_public();
        let bytes = recipient_bytes(&recipient);
        assert_ne!(bytes, [0; 32]);
        let back = recipient_from_bytes(&bytes).unwrap();
        assert_eq!(back.to_string(), recipient.to_string());
    }

    #[test]
    fn identity_file_is_created_once_private_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = identity_path(dir.path(), Address::repeat_byte(0xab));
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.to_public().to_string(), again.to_public().to_string());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "identity file mode {mode:o}");
        }
    }

    #[test]
    fn racing_creators_end_with_one_whole_identity() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = identity_path(dir.path(), Address::from_low_u64_be(round));
            let recipients: Vec<String> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| load_or_create(&path).map(|(i, _)| i.to_public().to_string()))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap().unwrap())
                    .collect()
            });
            assert!(
                recipients.iter().all(|r| *r == recipients[0]),
                "{recipients:?}"
            );
            // No temporary file is left behind.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn malformed_identity_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, "# comment\nAGE-SECRET-KEY-1NOTAKEY\n").unwrap();
        let Err(err) = load(&path) else {
            panic!("a malformed identity loaded")
        };
        let err = err.to_string();
        assert!(err.contains("bad.txt"), "{err}");
        assert!(err.contains("not an age X25519 identity"), "{err}");
    }
}
