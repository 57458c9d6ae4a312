//! The managed anvil: starts on a free port, yields funded keys, stops when dropped.

use ethers::providers::Middleware;
use registry::chain;
use registry::devnet::{Devnet, DevnetOptions};

#[tokio::test]
async fn managed_anvil_serves_and_stops() -> anyhow::Result<()> {
    let devnet = Devnet::start(&DevnetOptions {
        chain_id: 4242,
        accounts: 3,
        ..DevnetOptions::default()
    })
    .await?;
    assert_eq!(devnet.private_keys().len(), 3);
    let provider = chain::provider(devnet.endpoint())?;
    assert_eq!(provider.get_chainid().await?.as_u64(), 4242);
    let address = ethers::signers::Signer::address(&devnet.wallet(2));
    assert!(
        provider.get_balance(address, None).await? > 0.into(),
        "dev account is funded"
    );

    let url = devnet.endpoint().to_string();
    devnet.stop().await;
    // A stopped node is an error, not a hang (the client has a request timeout).
    let err = chain::provider(&url)?
        .get_chainid()
        .await
        .expect_err("node is gone");
    assert!(err.to_string().to_lowercase().contains("error"), "{err}");
    Ok(())
}

#[tokio::test]
async fn wrong_chain_id_is_refused() -> anyhow::Result<()> {
    let devnet = Devnet::start(&DevnetOptions::default()).await?;
    let err = chain::connect(devnet.endpoint(), devnet.wallet(0), Some(1))
        .await
        .expect_err("chain id differs");
    assert!(
        matches!(
            err,
            registry::Error::ChainIdMismatch {
                expected: 1,
                actual: 31337,
                ..
            }
        ),
        "unexpected error: {err}"
    );
    Ok(())
}
