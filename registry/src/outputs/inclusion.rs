//! Offline proof of a commitment: the block's header and a Merkle-Patricia proof of the
//! committing transaction's receipt under the header's `receiptsRoot`.
//!
//! Given a block hash the verifier trusts (from its own node, an explorer, a light client), a
//! receipt that bundles an [`Inclusion`] shows with no node at all that the transaction
//! succeeded in that block and emitted its logs: the header hashes to the trusted hash, the
//! header names the receipts root, the proof leads from that root to the receipt (the trie's
//! key is the RLP of the transaction's index), and the receipt holds the status and the logs.
//!
//! Headers are encoded from the node's JSON in the field order of the Ethereum yellow paper
//! and its later EIPs (base fee, withdrawals, blob gas, beacon root, requests hash), and the
//! encoding is accepted only if it hashes to the block's hash, so a field this code does not
//! know is an error at commit time rather than a receipt that never verifies.

use alloy_trie::proof::ProofRetainer;
use alloy_trie::{HashBuilder, Nibbles};
use ethers::types::{Address, Bytes, Log, TransactionReceipt, H256};
use ethers::utils::keccak256;
use ethers::utils::rlp::{self, Rlp, RlpStream};
use serde::{Deserialize, Serialize};

/// A block header and the proof of one transaction's receipt in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inclusion {
    /// The RLP-encoded header: its keccak-256 is the block's hash.
    pub header: Bytes,
    /// The transaction's index in the block.
    pub index: u64,
    /// The transaction's receipt, EIP-2718-encoded (a type byte, then the RLP list).
    pub receipt: Bytes,
    /// The trie nodes from the receipts root down to the receipt, root first.
    pub proof: Vec<Bytes>,
}

/// What an inclusion shows, once checked against a trusted block hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    pub block: u64,
    /// The block's time (unix seconds).
    pub timestamp: u64,
    /// The transaction's logs: (address, topics, data).
    pub logs: Vec<(Address, Vec<H256>, Vec<u8>)>,
}

/// The header fields, in encoding order, with how each is encoded; the optional ones are
/// present from the fork that added them on, each only after all earlier ones.
const HEADER_FIELDS: [(&str, Field); 21] = [
    ("parentHash", Field::Bytes),
    ("sha3Uncles", Field::Bytes),
    ("miner", Field::Bytes),
    ("stateRoot", Field::Bytes),
    ("transactionsRoot", Field::Bytes),
    ("receiptsRoot", Field::Bytes),
    ("logsBloom", Field::Bytes),
    ("difficulty", Field::Number),
    ("number", Field::Number),
    ("gasLimit", Field::Number),
    ("gasUsed", Field::Number),
    ("timestamp", Field::Number),
    ("extraData", Field::Bytes),
    ("mixHash", Field::Bytes),
    ("nonce", Field::Bytes),
    ("baseFeePerGas", Field::Number),
    ("withdrawalsRoot", Field::Bytes),
    ("blobGasUsed", Field::Number),
    ("excessBlobGas", Field::Number),
    ("parentBeaconBlockRoot", Field::Bytes),
    ("requestsHash", Field::Bytes),
];

/// Fields every header has (up to `nonce`).
const REQUIRED_FIELDS: usize = 15;

#[derive(Debug, Clone, Copy)]
enum Field {
    /// A byte string as given (hashes, addresses, the bloom, the nonce, extra data).
    Bytes,
    /// A number: big-endian without leading zeros.
    Number,
}

/// The RLP encoding of the header the node gave as JSON (`eth_getBlockByHash`).
pub fn encode_header(block: &serde_json::Value) -> Result<Vec<u8>, String> {
    let mut present = Vec::new();
    for (i, (name, field)) in HEADER_FIELDS.iter().enumerate() {
        match block.get(*name).filter(|v| !v.is_null()) {
            Some(value) => {
                if present.len() < i {
                    return Err(format!(
                        "the header has {name} but not {}",
                        HEADER_FIELDS[present.len()].0
                    ));
                }
                let text = value
                    .as_str()
                    .ok_or_else(|| format!("{name} is not a hex string"))?;
                let bytes = hex_bytes(text).ok_or_else(|| format!("{name} {text:?} is not hex"))?;
                present.push((*field, bytes));
            }
            None if i < REQUIRED_FIELDS => return Err(format!("the header has no {name}")),
            None => {}
        }
    }
    let mut s = RlpStream::new_list(present.len());
    for (field, bytes) in &present {
        match field {
            Field::Bytes => s.append(&bytes.as_slice()),
            Field::Number => {
                let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
                s.append(&&bytes[start..])
            }
        };
    }
    Ok(s.out().to_vec())
}

/// `0x…` hex as bytes; an odd number of digits (as numbers come) gets a leading zero.
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("0x")?;
    if digits.len() % 2 == 1 {
        hex::decode(format!("0{digits}")).ok()
    } else {
        hex::decode(digits).ok()
    }
}

/// A receipt as the block's receipt trie holds it: EIP-2718 (the transaction's type byte,
/// unless legacy, then `[status, cumulativeGasUsed, logsBloom, logs]`).
pub fn encode_receipt(receipt: &TransactionReceipt) -> Vec<u8> {
    let mut out = Vec::new();
    match receipt.transaction_type.map(|t| t.as_u64()) {
        Some(kind) if kind > 0 => out.push(kind as u8),
        _ => {}
    }
    out.extend_from_slice(&rlp::encode(receipt));
    out
}

/// The trie key of the receipt at `index`: the RLP of the index.
fn key(index: u64) -> Nibbles {
    Nibbles::unpack(rlp::encode(&index))
}

/// A trie builder fed with `receipts` (encoded, in block order), retaining the proof of
/// `proven`'s path when given.
fn receipts_trie(receipts: &[Vec<u8>], proven: Option<Nibbles>) -> HashBuilder {
    // The trie's leaves in key order: the RLP of 0 (0x80) sorts after 1..=127.
    let mut keyed: Vec<(Nibbles, &Vec<u8>)> = receipts
        .iter()
        .enumerate()
        .map(|(i, r)| (key(i as u64), r))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    let mut builder = HashBuilder::default();
    if let Some(target) = proven {
        builder = builder.with_proof_retainer(ProofRetainer::from_iter([target]));
    }
    for (k, value) in &keyed {
        builder.add_leaf(*k, value);
    }
    builder
}

/// The receipts root of a block whose receipts are `receipts` (encoded with
/// [`encode_receipt`], in block order): what its header names if they are all of them.
pub fn receipts_root(receipts: &[Vec<u8>]) -> H256 {
    H256(receipts_trie(receipts, None).root().0)
}

impl Inclusion {
    /// The inclusion of the receipt at `index` among a block's `receipts` (encoded, in
    /// order), with the block's `header`. Refused when the receipts do not rebuild the
    /// header's receipts root.
    pub fn build(header: Vec<u8>, receipts: &[Vec<u8>], index: u64) -> Result<Self, String> {
        let wanted = receipts
            .get(index as usize)
            .ok_or_else(|| format!("the block has no transaction {index}"))?
            .clone();
        let target = key(index);
        let mut builder = receipts_trie(receipts, Some(target));
        let root = H256(builder.root().0);
        let proof: Vec<Bytes> = builder
            .take_proof_nodes()
            .into_nodes_sorted()
            .into_iter()
            .filter(|(path, _)| target.starts_with(path))
            .map(|(_, node)| Bytes::from(node.to_vec()))
            .collect();
        let expected = header_receipts_root(&header)?;
        if root != expected {
            return Err(format!(
                "the block's receipts build root {root:?}, its header names {expected:?}"
            ));
        }
        Ok(Self {
            header: header.into(),
            index,
            receipt: wanted.into(),
            proof,
        })
    }

    /// Checks the inclusion against the block hash `trusted` and reads what it shows; the
    /// error says what does not hold.
    pub fn open(&self, trusted: H256) -> Result<Included, String> {
        let hashed = H256(keccak256(&self.header));
        if hashed != trusted {
            return Err(format!(
                "the bundled header is of block {hashed:?}, not the trusted {trusted:?}"
            ));
        }
        let header = Rlp::new(&self.header);
        let fields = header
            .item_count()
            .map_err(|e| format!("the header is not RLP: {e}"))?;
        if !(REQUIRED_FIELDS..=HEADER_FIELDS.len()).contains(&fields) {
            return Err(format!(
                "{hashed:?} is not a block header ({fields} fields)"
            ));
        }
        let number = header_number(&header, 8, "number")?;
        let timestamp = header_number(&header, 11, "timestamp")?;
        let root = header_receipts_root(&self.header)?;
        let nodes: Vec<alloy_primitives::Bytes> = self
            .proof
            .iter()
            .map(|node| alloy_primitives::Bytes::from(node.to_vec()))
            .collect();
        alloy_trie::proof::verify_proof(
            alloy_primitives::B256::from(root.0),
            key(self.index),
            Some(self.receipt.to_vec()),
            &nodes,
        )
        .map_err(|e| format!("the receipt is not in block {number}'s receipts: {e}"))?;
        let (status, logs) = decode_receipt(&self.receipt)?;
        if status != 1 {
            return Err(format!("the transaction failed in block {number}"));
        }
        Ok(Included {
            block: number,
            timestamp,
            logs,
        })
    }
}

fn header_receipts_root(header: &[u8]) -> Result<H256, String> {
    let bad = |e: rlp::DecoderError| format!("the header is not RLP: {e}");
    let bytes: Vec<u8> = Rlp::new(header).val_at(5).map_err(bad)?;
    if bytes.len() != 32 {
        return Err("the header's receipts root is not 32 bytes".into());
    }
    Ok(H256::from_slice(&bytes))
}

fn header_number(header: &Rlp<'_>, at: usize, name: &str) -> Result<u64, String> {
    header
        .val_at::<u64>(at)
        .map_err(|e| format!("the header's {name} does not decode: {e}"))
}

/// The status and logs of an EIP-2718 receipt.
#[allow(clippy::type_complexity)]
fn decode_receipt(bytes: &[u8]) -> Result<(u64, Vec<(Address, Vec<H256>, Vec<u8>)>), String> {
    let body = match bytes.first() {
        // A typed receipt: the type byte, then the list (legacy ones start with the list).
        Some(kind) if *kind < 0x7f => &bytes[1..],
        _ => bytes,
    };
    let bad = |e: rlp::DecoderError| format!("the receipt does not decode: {e}");
    let r = Rlp::new(body);
    let status: u64 = r.val_at(0).map_err(bad)?;
    let mut logs = Vec::new();
    for log in r.at(3).map_err(bad)?.iter() {
        let address: Address = log.val_at(0).map_err(bad)?;
        let topics: Vec<H256> = log.list_at(1).map_err(bad)?;
        let data: Vec<u8> = log.val_at(2).map_err(bad)?;
        logs.push((address, topics, data));
    }
    Ok((status, logs))
}

/// The log of `included` that `address` emitted with `topic0`, as an ethers log.
pub fn find_log(included: &Included, address: Address, topic0: H256) -> Vec<Log> {
    included
        .logs
        .iter()
        .filter(|(a, topics, _)| *a == address && topics.first() == Some(&topic0))
        .map(|(a, topics, data)| Log {
            address: *a,
            topics: topics.clone(),
            data: data.clone().into(),
            ..Log::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethers::types::{Bloom, U256, U64};

    /// A block anvil 1.7.1 mined (Prague rules: every optional field present), as
    /// `eth_getBlockByNumber` gave it, and the hash it gave.
    const BLOCK: &str = r#"{
        "hash": "0x911b23ff259e1f8282555c0ceee9526b25fb42ee1198ffc3e57f8b0ba7b995fc",
        "parentHash": "0x8d1587ebb05301ffcdf2dba731544357b28d285e5c3936fd46d1d2d938e2035b",
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "miner": "0x0000000000000000000000000000000000000000",
        "stateRoot": "0xed0c045469eb8a2ae4714b016f5ce7c3438484b8870289c12340a8958b74a22f",
        "transactionsRoot": "0x1c00dac2ab8ce8dea52b32cc69df37b264d20f7667e7932e2cb074b2861cea60",
        "receiptsRoot": "0xf78dfb743fbd92ade140711c8bbc542b5e307f0ab7984eff35d751969fe57efa",
        "logsBloom": "0xBLOOM",
        "difficulty": "0x0",
        "number": "0x1",
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x5208",
        "timestamp": "0x6b13c6ce",
        "extraData": "0x",
        "mixHash": "0xa5c0e791e1cb15400b12632473bee7824167361f686c490c03a738c07382f99c",
        "nonce": "0x0000000000000000",
        "baseFeePerGas": "0x3b9aca00",
        "withdrawalsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
        "blobGasUsed": "0x0",
        "excessBlobGas": "0x0",
        "parentBeaconBlockRoot": "0x0000000000000000000000000000000000000000000000000000000000000000",
        "requestsHash": "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "totalDifficulty": "0x0",
        "size": "0x2d7",
        "uncles": [],
        "transactions": ["0x37eac23662b2822928a6dc8fc09af37777c9aac186a0e0f94fa1352b368b1bba"],
        "withdrawals": []
    }"#;

    fn block() -> serde_json::Value {
        serde_json::from_str(&BLOCK.replace("BLOOM", &"0".repeat(512))).unwrap()
    }

    /// The block's one receipt (a plain transfer, type 2), as `eth_getBlockReceipts` gave it.
    fn transfer_receipt() -> TransactionReceipt {
        TransactionReceipt {
            transaction_type: Some(U64::from(2)),
            status: Some(U64::from(1)),
            cumulative_gas_used: U256::from(0x5208),
            logs_bloom: Bloom::zero(),
            ..TransactionReceipt::default()
        }
    }

    #[test]
    fn a_header_encodes_to_its_hash_and_its_receipts_to_its_root() {
        let header = encode_header(&block()).unwrap();
        assert_eq!(
            format!("{:?}", H256(keccak256(&header))),
            "0x911b23ff259e1f8282555c0ceee9526b25fb42ee1198ffc3e57f8b0ba7b995fc"
        );
        let receipts = vec![encode_receipt(&transfer_receipt())];
        let inclusion = Inclusion::build(header.clone(), &receipts, 0).unwrap();
        let trusted = H256(keccak256(&header));
        let included = inclusion.open(trusted).unwrap();
        assert_eq!((included.block, included.timestamp), (1, 0x6b13c6ce));
        assert!(included.logs.is_empty());

        // Another trusted hash, a changed receipt or another index are refused.
        let err = inclusion.open(H256::repeat_byte(1)).unwrap_err();
        assert!(err.contains("not the trusted"), "{err}");
        let mut changed = inclusion.clone();
        let mut r = changed.receipt.to_vec();
        *r.last_mut().unwrap() ^= 1;
        changed.receipt = r.into();
        let err = changed.open(trusted).unwrap_err();
        assert!(err.contains("not in block 1's receipts"), "{err}");
        // A receipt list that does not rebuild the header's root is refused at build time.
        let mut failed = transfer_receipt();
        failed.status = Some(U64::zero());
        let err = Inclusion::build(header, &[encode_receipt(&failed)], 0).unwrap_err();
        assert!(err.contains("build root"), "{err}");
        // A header missing a required field, or with a gap in the optional ones, is refused.
        let mut gap = block();
        gap.as_object_mut().unwrap().remove("withdrawalsRoot");
        assert!(encode_header(&gap)
            .unwrap_err()
            .contains("but not withdrawalsRoot"));
        let mut short = block();
        short.as_object_mut().unwrap().remove("mixHash");
        assert!(encode_header(&short).unwrap_err().contains("no mixHash"));
    }

    /// Every receipt of blocks of 1 to 300 transactions proves against the root alloy-trie
    /// computes for the list (past 127, the keys' RLP changes length), and only its own.
    #[test]
    fn every_receipt_proves_against_the_ordered_root() {
        for n in [1usize, 2, 3, 16, 127, 128, 129, 300] {
            let receipts: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let mut r = transfer_receipt();
                    r.cumulative_gas_used = U256::from(21_000 * (i + 1));
                    r.transaction_type = Some(U64::from(i as u64 % 3));
                    encode_receipt(&r)
                })
                .collect();
            let root = alloy_trie::root::ordered_trie_root_with_encoder(&receipts, |r, out| {
                out.extend_from_slice(r)
            });
            let mut fields = block();
            fields["receiptsRoot"] = serde_json::Value::from(format!("{root:?}"));
            let header = encode_header(&fields).unwrap();
            let trusted = H256(keccak256(&header));
            for i in [0, n / 2, n - 1] {
                let inclusion = Inclusion::build(header.clone(), &receipts, i as u64).unwrap();
                inclusion
                    .open(trusted)
                    .unwrap_or_else(|e| panic!("{n}/{i}: {e}"));
                if n > 1 {
                    let mut other = inclusion.clone();
                    other.index = ((i + 1) % n) as u64;
                    assert!(other.open(trusted).is_err(), "{n}/{i} as another index");
                }
            }
        }
    }
}
