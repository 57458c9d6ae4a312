//! The few ERC-20 calls the market needs: decimals and symbol (to read and print amounts) and
//! allowance/approve (to pay for licenses in a token).

use std::sync::Arc;

use ethers::types::{Address, U256};

use crate::chain::Client;
use crate::{Error, Result};

#[allow(unreachable_pub, missing_docs, clippy::all)]
mod abi {
    ethers::contract::abigen!(
        Erc20Abi,
        r#"[
            function decimals() external view returns (uint8)
            function symbol() external view returns (string)
            function balanceOf(address account) external view returns (uint256)
            function allowance(address owner, address spender) external view returns (uint256)
            function approve(address spender, uint256 amount) external returns (bool)
        ]"#
    );
}

/// An ERC-20 token at an address.
#[derive(Debug, Clone)]
pub struct Erc20 {
    address: Address,
    token: abi::Erc20Abi<Client>,
}

impl Erc20 {
    pub fn new(address: Address, client: Arc<Client>) -> Self {
        Self {
            address,
            token: abi::Erc20Abi::new(address, client),
        }
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Contract {
            context: format!("token {:?}: {what}", self.address),
            message: e.to_string(),
        }
    }

    pub async fn decimals(&self) -> Result<u8> {
        self.token
            .decimals()
            .call()
            .await
            .map_err(|e| self.error("decimals()", e))
    }

    pub async fn symbol(&self) -> Result<String> {
        self.token
            .symbol()
            .call()
            .await
            .map_err(|e| self.error("symbol()", e))
    }

    pub async fn balance_of(&self, account: Address) -> Result<U256> {
        self.token
            .balance_of(account)
            .call()
            .await
            .map_err(|e| self.error("balanceOf()", e))
    }

    pub async fn allowance(&self, owner: Address, spender: Address) -> Result<U256> {
        self.token
            .allowance(owner, spender)
            .call()
            .await
            .map_err(|e| self.error("allowance()", e))
    }

    /// Approves `spender` for `amount` unless the signer's allowance already covers it. A signer
    /// holding less than `amount` is refused here, before the approval is paid for: the token's
    /// own revert inside the market's call would reach the user as an undecoded error.
    pub async fn approve_at_least(&self, spender: Address, amount: U256) -> Result<()> {
        let owner = self.token.client().address();
        let held = self.balance_of(owner).await?;
        if held < amount {
            let decimals = self.decimals().await?;
            return Err(Error::InsufficientTokens {
                token: self.address,
                account: owner,
                have: crate::amount::format_amount(held, decimals),
                need: crate::amount::format_amount(amount, decimals),
            });
        }
        if self.allowance(owner, spender).await? >= amount {
            return Ok(());
        }
        let pending = self.token.approve(spender, amount);
        let pending = pending
            .send()
            .await
            .map_err(|e| self.error("approve()", e))?;
        let tx = format!("{:?}", pending.tx_hash());
        let receipt = crate::chain::mined(pending, &tx)
            .await?
            .map_err(|e| self.error("approve()", e))?
            .ok_or(Error::TxDropped)?;
        if receipt.status != Some(1.into()) {
            return Err(Error::TxFailed {
                tx: format!("{:?}", receipt.transaction_hash),
            });
        }
        Ok(())
    }
}
