//! Content identifiers: building SHA-256 CIDs the way Kubo does, and checking a block against
//! its CID.

use cid::{Cid, Version};
use multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Multicodec of DAG-PB blocks.
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks.
pub const RAW: u64 = 0x55;
/// Multihash code of SHA2-256, the only hash Kubo uses by default (and the only one read here).
pub const SHA2_256: u64 = 0x12;

/// The CID of `block` under `codec` with SHA2-256. CIDv0 exists only for DAG-PB.
pub fn cid_of(version: Version, codec: u64, block: &[u8]) -> Cid {
    let digest = Sha256::digest(block);
    let hash = Multihash::<64>::wrap(SHA2_256, &digest).expect("32 bytes fit in a multihash");
    match version {
        Version::V0 => {
            debug_assert_eq!(codec, DAG_PB, "CIDv0 is always dag-pb");
            Cid::new_v0(hash).expect("sha2-256 is valid for CIDv0")
        }
        Version::V1 => Cid::new_v1(codec, hash),
    }
}

/// Parses a CID in any multibase (Kubo prints base32, js-ipfs base58btc, CIDv0 is base58).
pub fn parse(text: &str) -> Result<Cid> {
    let text = text.trim();
    let text = text
        .strip_prefix("ipfs://")
        .or_else(|| text.strip_prefix("/ipfs/"))
        .unwrap_or(text);
    text.parse::<Cid>().map_err(|e| Error::InvalidCid {
        cid: text.into(),
        reason: e.to_string(),
    })
}

/// Checks that `block` hashes to `cid`'s multihash. Returns what is wrong, if anything.
pub fn verify(cid: &Cid, block: &[u8]) -> Result<()> {
    let hash = cid.hash();
    if hash.code() != SHA2_256 {
        return Err(Error::UnsupportedHash {
            cid: cid.to_string(),
            code: hash.code(),
        });
    }
    let digest = Sha256::digest(block);
    if hash.digest() != digest.as_slice() {
        return Err(Error::CorruptBlock {
            cid: cid.to_string(),
            actual: hex::encode(digest),
        });
    }
    Ok(())
}

/// Whether two CIDs name the same block: same codec and multihash. CIDv0 and a CIDv1 DAG-PB
/// of the same hash are the same block (nodes answer in either form).
pub fn same_block(a: &Cid, b: &Cid) -> bool {
    a.codec() == b.codec() && a.hash() == b.hash()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubo_cids_of_known_blocks() {
        // What an IPFS daemon answers for `printf "hello world\n" | ipfs add --cid-version=1`.
        assert_eq!(
            cid_of(Version::V1, RAW, b"hello world\n").to_string(),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        );
        // Kubo's empty file, CIDv0.
        assert_eq!(
            cid_of(Version::V0, DAG_PB, &[0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]).to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
    }

    #[test]
    fn verify_names_the_corrupt_block() {
        let cid = cid_of(Version::V1, RAW, b"abc");
        verify(&cid, b"abc").unwrap();
        let err = verify(&cid, b"abd").unwrap_err().to_string();
        assert!(err.contains(&cid.to_string()), "{err}");
    }

    #[test]
    fn parse_accepts_every_base_and_names_bad_input() {
        let v1 = cid_of(Version::V1, RAW, b"abc");
        let b58 = v1
            .to_string_of_base(cid::multibase::Base::Base58Btc)
            .unwrap();
        assert_eq!(parse(&b58).unwrap(), v1);
        assert_eq!(parse(&format!("ipfs://{v1}")).unwrap(), v1);
        let err = parse("bafy-not-a-cid").unwrap_err().to_string();
        assert!(err.contains("bafy-not-a-cid"), "{err}");
    }

    #[test]
    fn v0_and_v1_dag_pb_are_the_same_block() {
        let v0 = cid_of(Version::V0, DAG_PB, b"x");
        let v1 = cid_of(Version::V1, DAG_PB, b"x");
        assert!(same_block(&v0, &v1));
        assert!(!same_block(&v1, &cid_of(Version::V1, RAW, b"x")));
    }
}
