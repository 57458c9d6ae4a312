//! The signed request a license holder sends a keeper's HTTP endpoint for the model key
//! wrapped to a recipient of its choosing: EIP-712 typed data
//! `KeyRequest(uint256 license,bytes32 recipient,uint64 deadline)` in the domain
//! `{name: "ModelRegistry KeyRequest", version: "1", chainId, verifyingContract: market}`, so a
//! signature made for another chain or another market recovers another address and is
//! refused. Wallets sign it with `eth_signTypedData_v4` (`typed_data_json` is that payload).

use ethers::abi::Token;
use ethers::signers::LocalWallet;
use ethers::types::{Address, Signature, H256, U256};
use ethers::utils::keccak256;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub const DOMAIN_NAME: &str = "ModelRegistry KeyRequest";
pub const DOMAIN_VERSION: &str = "1";
const DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
const REQUEST_TYPE: &str = "KeyRequest(uint256 license,bytes32 recipient,uint64 deadline)";

/// What the holder asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRequest {
    pub license: U256,
    /// The X25519 public key the model key is to be wrapped to.
    pub recipient: [u8; 32],
    /// Unix time after which the request is refused.
    pub deadline: u64,
}

/// A request with its signature, as sent (JSON; amounts as decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedKeyRequest {
    pub license: String,
    /// `age1…`.
    pub recipient: String,
    pub deadline: u64,
    /// 65 bytes, 0x-hex.
    pub signature: String,
}

impl KeyRequest {
    /// The EIP-712 digest the holder signs.
    pub fn digest(&self, chain_id: u64, market: Address) -> H256 {
        let domain = keccak256(ethers::abi::encode(&[
            Token::FixedBytes(keccak256(DOMAIN_TYPE).to_vec()),
            Token::FixedBytes(keccak256(DOMAIN_NAME).to_vec()),
            Token::FixedBytes(keccak256(DOMAIN_VERSION).to_vec()),
            Token::Uint(chain_id.into()),
            Token::Address(market),
        ]));
        let request = keccak256(ethers::abi::encode(&[
            Token::FixedBytes(keccak256(REQUEST_TYPE).to_vec()),
            Token::Uint(self.license),
            Token::FixedBytes(self.recipient.to_vec()),
            Token::Uint(self.deadline.into()),
        ]));
        let mut bytes = Vec::with_capacity(66);
        bytes.extend_from_slice(&[0x19, 0x01]);
        bytes.extend_from_slice(&domain);
        bytes.extend_from_slice(&request);
        H256(keccak256(bytes))
    }

    /// Signs as `wallet` for `market` on `chain_id`.
    pub fn sign(
        &self,
        wallet: &LocalWallet,
        chain_id: u64,
        market: Address,
    ) -> Result<SignedKeyRequest> {
        let signature = wallet
            .sign_hash(self.digest(chain_id, market))
            .map_err(|e| Error::PrivateKey(e.to_string()))?;
        Ok(SignedKeyRequest {
            license: self.license.to_string(),
            recipient: crate::keys::recipient_text(&self.recipient),
            deadline: self.deadline,
            signature: format!("0x{}", hex::encode(signature.to_vec())),
        })
    }

    /// The `eth_signTypedData_v4` payload of this request.
    pub fn typed_data_json(&self, chain_id: u64, market: Address) -> serde_json::Value {
        serde_json::json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "KeyRequest": [
                    {"name": "license", "type": "uint256"},
                    {"name": "recipient", "type": "bytes32"},
                    {"name": "deadline", "type": "uint64"},
                ],
            },
            "primaryType": "KeyRequest",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": chain_id,
                "verifyingContract": format!("{market:?}"),
            },
            "message": {
                "license": self.license.to_string(),
                "recipient": format!("0x{}", hex::encode(self.recipient)),
                "deadline": self.deadline,
            },
        })
    }
}

impl SignedKeyRequest {
    /// The request and the address that signed it for `market` on `chain_id`.
    pub fn recover(&self, chain_id: u64, market: Address) -> Result<(KeyRequest, Address)> {
        let bad = |reason: String| Error::BadKeyRequest(reason);
        let license = U256::from_dec_str(&self.license)
            .map_err(|_| bad(format!("license {:?} is not a decimal id", self.license)))?;
        let recipient = crate::keys::parse_recipient(&self.recipient)?;
        let request = KeyRequest {
            license,
            recipient: crate::keys::recipient_bytes(&recipient),
            deadline: self.deadline,
        };
        let bytes = hex::decode(self.signature.trim_start_matches("0x"))
            .map_err(|_| bad("the signature is not hex".into()))?;
        let signature = Signature::try_from(bytes.as_slice())
            .map_err(|e| bad(format!("the signature is malformed: {e}")))?;
        let signer = signature
            .recover(request.digest(chain_id, market))
            .map_err(|e| bad(format!("the signature does not recover: {e}")))?;
        Ok((request, signer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethers::signers::Signer;

    #[test]
    fn a_signature_recovers_its_signer_only_in_its_own_domain() {
        let wallet = crate::chain::dev_wallet(1).unwrap();
        let market = Address::repeat_byte(0x42);
        let request = KeyRequest {
            license: 7.into(),
            recipient: [9; 32],
            deadline: 1_900_000_000,
        };
        let signed = request.sign(&wallet, 31337, market).unwrap();
        let (back, signer) = signed.recover(31337, market).unwrap();
        assert_eq!(back, request);
        assert_eq!(signer, wallet.address());
        // Another chain, another market: another (meaningless) signer.
        assert_ne!(signed.recover(1, market).unwrap().1, wallet.address());
        assert_ne!(
            signed.recover(31337, Address::repeat_byte(0x43)).unwrap().1,
            wallet.address()
        );
        // Any changed field changes the signer.
        let mut tampered = signed.clone();
        tampered.deadline += 1;
        assert_ne!(tampered.recover(31337, market).unwrap().1, wallet.address());
    }
}
