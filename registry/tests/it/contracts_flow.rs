//! The market's whole story on a real anvil through the generated bindings: deploy, mint a base
//! model, publish offerings, buy access and fine-tune, mint derivatives, sell a license of a
//! derivative and check every balance credited up the lineage, withdraw, check rights before
//! and after expiry with anvil time travel, and check that each revert arrives decoded. The
//! v2 rules are tried as a freeloader would: a reused fine-tune license, an exact copy, a
//! lapsed renewal.

use contracts::license_market::{
    self, LicenseAlreadyUsed, LicenseLapsed, LicensePurchasedFilter, NothingToWithdraw,
    OfferingIsClosed, PaymentCreditedFilter, PerpetualLicense, PriceAboveMax, Terms, WrongPayment,
};
use contracts::model_registry::{
    self, DuplicateContent, MintParams, ModelMintedFilter, NotParentOwner,
};
use contracts::{
    LicenseKind, LicenseMarket, LicenseMarketErrors, ModelRegistry, ModelRegistryErrors,
};
use ethers::contract::ContractError;
use ethers::middleware::Middleware;
use ethers::types::{Address, TransactionReceipt, U256};
use registry::chain::{self, Client, Target};

use crate::support::{ether, event, events, milli_ether, Chain};

const DAY: u64 = 24 * 60 * 60;

fn root(tag: u8) -> [u8; 32] {
    [tag; 32]
}

fn params(to: Address, tag: u8, parents: &[U256], licenses: &[U256]) -> MintParams {
    MintParams {
        to,
        weights_cid: format!("bafkreimodel{tag}"),
        content_root: root(tag),
        fingerprint: root(tag.wrapping_add(100)),
        metadata_uri: format!("ipfs://bafkreimeta{tag}"),
        sale_royalty_bps: 500,
        derivative_royalty_bps: 0,
        encrypted: false,
        parents: parents.to_vec(),
        licenses: licenses.to_vec(),
    }
}

fn terms(model: U256, kind: LicenseKind, price: U256, duration: u64, royalty_bps: u16) -> Terms {
    Terms {
        model_id: model,
        kind: kind.into(),
        currency: Address::zero(),
        price,
        duration,
        supply_cap: 0,
        transferable: false,
        commercial_use: kind == LicenseKind::Output,
        royalty_bps,
        renewal_period: 0,
        delivery_period: 0,
        terms_uri: "ipfs://bafkreiterms".into(),
        terms_hash: root(0xee),
    }
}

async fn mint(registry: &ModelRegistry<Client>, p: MintParams) -> anyhow::Result<U256> {
    Ok(minted(registry, p).await?.model_id)
}

async fn minted(
    registry: &ModelRegistry<Client>,
    p: MintParams,
) -> anyhow::Result<ModelMintedFilter> {
    let receipt = chain::send(Target::Registry, "mint", registry.mint(p)).await?;
    Ok(event::<ModelMintedFilter>(&receipt))
}

async fn offer(market: &LicenseMarket<Client>, t: Terms) -> anyhow::Result<U256> {
    let receipt = chain::send(Target::Market, "publish", market.publish_offering(t)).await?;
    Ok(event::<license_market::OfferingPublishedFilter>(&receipt).offering_id)
}

async fn buy(
    market: &LicenseMarket<Client>,
    offering: U256,
    holder: Address,
    price: U256,
) -> anyhow::Result<(U256, TransactionReceipt)> {
    let receipt = chain::send(
        Target::Market,
        "buy",
        market.buy(offering, holder, price, [0; 32]).value(price),
    )
    .await?;
    Ok((
        event::<LicensePurchasedFilter>(&receipt).license_id,
        receipt,
    ))
}

fn market_error(err: ContractError<Client>) -> LicenseMarketErrors {
    err.decode_contract_revert::<LicenseMarketErrors>()
        .unwrap_or_else(|| panic!("not a decoded market revert: {err}"))
}

fn registry_error(err: ContractError<Client>) -> ModelRegistryErrors {
    err.decode_contract_revert::<ModelRegistryErrors>()
        .unwrap_or_else(|| panic!("not a decoded registry revert: {err}"))
}

#[tokio::test]
async fn market_story_on_anvil() -> anyhow::Result<()> {
    let chain = Chain::start().await?;
    // Dev accounts: 0 author of the base model, 1 licensee, 2 and 3 authors of derivatives, 4 a
    // buyer of the grandchild's license.
    let (registry_a, market_a) = chain.contracts(0).await?;
    let (_, market_l) = chain.contracts(1).await?;
    let (registry_d, market_d) = chain.contracts(2).await?;
    let (registry_g, market_g) = chain.contracts(3).await?;
    let (_, market_b) = chain.contracts(4).await?;
    let [author, licensee, deriver, grand, buyer] =
        [0, 1, 2, 3, 4].map(|i| ethers::signers::Signer::address(&chain.devnet.wallet(i)));

    // A base model.
    let base_minted = minted(&registry_a, params(author, 1, &[], &[])).await?;
    let base = base_minted.model_id;
    assert_eq!(base, U256::one());
    assert_eq!(registry_a.owner_of(base).call().await?, author);
    let record = base_minted.model;
    assert_eq!(record.weights_cid, "bafkreimodel1");
    assert_eq!(record.content_root, root(1));
    assert_eq!(record.metadata_uri, "ipfs://bafkreimeta1");
    assert_eq!(record.depth, 0);
    assert_eq!(registry_a.model_by_content(root(1)).call().await?, base);
    let header = registry_a.header_of(base).call().await?;
    assert_eq!(
        header.minted_block,
        chain.client(0).await?.get_block_number().await?.as_u64()
    );
    // ERC-2981 on the model token: 5% to the minter's recipient.
    let (receiver, amount) = registry_a.royalty_info(base, ether(100)).call().await?;
    assert_eq!((receiver, amount), (author, ether(5)));

    // Offerings: a 30-day access license, a perpetual fine-tune license owing 10%.
    let access = offer(
        &market_a,
        terms(base, LicenseKind::Access, ether(1), 30 * DAY, 0),
    )
    .await?;
    let fine_tune = offer(
        &market_a,
        terms(base, LicenseKind::FineTune, ether(2), 0, 1_000),
    )
    .await?;

    // Buying access: the offering's price, no more than maxPrice, exactly paid.
    let err = market_l
        .buy(access, licensee, ether(1) - 1, [0; 32])
        .value(ether(1))
        .send()
        .await
        .expect_err("price above max");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::PriceAboveMax(PriceAboveMax {
            price: ether(1),
            max_price: ether(1) - 1
        })
    );
    let err = market_l
        .buy(access, licensee, ether(1), [0; 32])
        .value(ether(2))
        .send()
        .await
        .expect_err("overpaid");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::WrongPayment(WrongPayment {
            sent: ether(2),
            price: ether(1)
        })
    );
    let (access_license, receipt) = buy(&market_l, access, licensee, ether(1)).await?;
    let purchased = event::<LicensePurchasedFilter>(&receipt);
    let bought_at = chain.now().await?;
    assert_eq!(purchased.expiry, bought_at + 30 * DAY);
    let kind = |k: LicenseKind| u8::from(k);
    let grants = |license: U256, who: Address, k: LicenseKind, at: u64| {
        let call = market_l.grants(license, who, base, kind(k), at);
        async move { call.call().await }
    };
    assert!(
        grants(access_license, licensee, LicenseKind::Access, bought_at).await?,
        "access right is granted by the license"
    );
    assert!(
        !grants(access_license, licensee, LicenseKind::FineTune, bought_at).await?,
        "an access license grants no fine-tune right"
    );
    assert!(
        grants(U256::zero(), author, LicenseKind::Output, bought_at).await?,
        "the owner holds every right"
    );
    assert!(!grants(U256::zero(), licensee, LicenseKind::Output, bought_at).await?);

    // Deriving without a license is refused, with the registry's decoded error.
    let err = registry_d
        .mint(params(deriver, 2, &[base], &[U256::zero()]))
        .send()
        .await
        .expect_err("no license");
    assert_eq!(
        registry_error(err),
        ModelRegistryErrors::NotParentOwner(NotParentOwner {
            parent_id: base,
            caller: deriver
        })
    );
    // The same revert through the chain client reads as a message naming the error.
    let err = chain::send(
        Target::Registry,
        "mint",
        registry_d.mint(params(deriver, 2, &[base], &[U256::zero()])),
    )
    .await
    .expect_err("no license");
    let message = err.to_string();
    assert!(
        message.contains("ModelRegistry reverted: NotParentOwner"),
        "{message}"
    );

    // Fine-tune license, then a derivative; its 20% fine-tune offering; a grandchild.
    let (ft_license, _) = buy(&market_d, fine_tune, deriver, ether(2)).await?;
    let child_minted = minted(&registry_d, params(deriver, 2, &[base], &[ft_license])).await?;
    let child = child_minted.model_id;
    let parents = child_minted.parents;
    assert_eq!(parents.len(), 1);
    assert_eq!(
        (
            parents[0].model_id,
            parents[0].license_id,
            parents[0].royalty_bps
        ),
        (base, ft_license, 1_000)
    );
    assert_eq!(registry_d.header_of(child).call().await?.depth, 1);
    let (owner, _, royalty_parents, bps) = registry_d.payees(child).call().await?;
    assert_eq!(
        (owner, royalty_parents, bps),
        (deriver, vec![base], vec![1_000])
    );

    // The license was consumed: a second derivative under it is the market's decoded error,
    // arriving through the registry.
    let (_, holder) = market_d.license_of(ft_license).call().await?;
    assert!(holder.is_zero(), "a consumed license has no holder");
    let err = registry_d
        .mint(params(deriver, 9, &[base], &[ft_license]))
        .send()
        .await
        .expect_err("reused license");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::LicenseAlreadyUsed(LicenseAlreadyUsed {
            license_id: ft_license
        })
    );
    let err = chain::send(
        Target::Registry,
        "mint",
        registry_d.mint(params(deriver, 9, &[base], &[ft_license])),
    )
    .await
    .expect_err("reused license");
    assert!(
        err.to_string()
            .contains("LicenseMarket reverted: LicenseAlreadyUsed"),
        "{err}"
    );
    // An exact copy of the base model is refused, naming the model that has its content.
    let err = registry_d
        .mint(params(deriver, 1, &[], &[]))
        .send()
        .await
        .expect_err("duplicate content");
    assert_eq!(
        registry_error(err),
        ModelRegistryErrors::DuplicateContent(DuplicateContent {
            content_root: root(1),
            model_id: base
        })
    );
    let child_ft = offer(
        &market_d,
        terms(child, LicenseKind::FineTune, ether(1), 0, 2_000),
    )
    .await?;
    let (child_ft_license, receipt) = buy(&market_g, child_ft, grand, ether(1)).await?;
    // The fine-tune sale of the child already pays 10% up to the base model's owner.
    let credits = events::<PaymentCreditedFilter>(&receipt);
    assert_eq!(credits.len(), 2);
    assert_eq!(
        (credits[0].account, credits[0].amount),
        (author, milli_ether(100))
    );
    assert_eq!(
        (credits[1].account, credits[1].amount),
        (deriver, milli_ether(900))
    );
    let grandchild = mint(&registry_g, params(grand, 3, &[child], &[child_ft_license])).await?;
    assert_eq!(registry_g.header_of(grandchild).call().await?.depth, 2);

    // A license of the grandchild: 1 ether split 20% to the child, of which 10% to the base.
    let balances = |market: &LicenseMarket<Client>, who: Address| {
        let call = market.credits(who, Address::zero());
        async move { call.call().await }
    };
    let before = [
        balances(&market_b, author).await?,
        balances(&market_b, deriver).await?,
        balances(&market_b, grand).await?,
    ];
    let grand_access = offer(
        &market_g,
        terms(grandchild, LicenseKind::Output, ether(1), 0, 0),
    )
    .await?;
    let (_, receipt) = buy(&market_b, grand_access, buyer, ether(1)).await?;
    let after = [
        balances(&market_b, author).await?,
        balances(&market_b, deriver).await?,
        balances(&market_b, grand).await?,
    ];
    assert_eq!(
        after[0] - before[0],
        milli_ether(20),
        "base owner: 10% of the child's 20%"
    );
    assert_eq!(
        after[1] - before[1],
        milli_ether(180),
        "child owner: the rest of 20%"
    );
    assert_eq!(
        after[2] - before[2],
        milli_ether(800),
        "grandchild owner: the rest"
    );
    let credited: U256 = events::<PaymentCreditedFilter>(&receipt)
        .iter()
        .map(|c| c.amount)
        .fold(U256::zero(), |a, b| a + b);
    assert_eq!(credited, ether(1), "every wei of the price is credited");

    // 1 + 2 + 1 + 1 ether received, all of it credited, held by the market.
    assert_eq!(after[0], ether(3) + milli_ether(100) + milli_ether(20));
    let provider = chain.client(0).await?;
    assert_eq!(
        provider.get_balance(chain.deployment.market, None).await?,
        ether(5)
    );

    // Withdraw: the author's whole balance arrives, less nothing but gas.
    let wallet_before = provider.get_balance(author, None).await?;
    let receipt = chain::send(
        Target::Market,
        "withdraw",
        market_a.withdraw(Address::zero(), author),
    )
    .await?;
    let gas = receipt.gas_used.unwrap() * receipt.effective_gas_price.unwrap();
    assert_eq!(
        provider.get_balance(author, None).await?,
        wallet_before + after[0] - gas
    );
    assert_eq!(balances(&market_a, author).await?, U256::zero());
    let err = market_a
        .withdraw(Address::zero(), author)
        .send()
        .await
        .expect_err("nothing left");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::NothingToWithdraw(NothingToWithdraw {
            account: author,
            currency: Address::zero()
        })
    );

    // Rights before and after expiry, with anvil's clock moved forward.
    let expiry = purchased.expiry;
    assert!(
        grants(access_license, licensee, LicenseKind::Access, expiry - 1).await?,
        "valid one second before expiry"
    );
    assert!(
        !grants(access_license, licensee, LicenseKind::Access, expiry).await?,
        "expired exactly at expiry"
    );
    let now = chain.advance(31 * DAY).await?;
    assert!(now >= expiry);
    assert!(!grants(access_license, licensee, LicenseKind::Access, now).await?);
    assert!(
        !market_l
            .is_license_valid(access_license, now)
            .call()
            .await?
    );

    // A lapsed license is not renewed (its paid window would move); the past stays paid.
    let err = market_l
        .renew(access_license, ether(1))
        .value(ether(1))
        .send()
        .await
        .expect_err("lapsed");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::LicenseLapsed(LicenseLapsed {
            license_id: access_license,
            expiry
        })
    );
    assert!(grants(access_license, licensee, LicenseKind::Access, bought_at).await?);
    assert!(!grants(access_license, buyer, LicenseKind::Access, bought_at).await?);

    // A perpetual license cannot be renewed; a closed offering sells nothing; licenses sold
    // before the close stay valid.
    let (ft2, _) = buy(&market_l, fine_tune, licensee, ether(2)).await?;
    let err = market_l
        .renew(ft2, ether(2))
        .value(ether(2))
        .send()
        .await
        .expect_err("perpetual");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::PerpetualLicense(PerpetualLicense { license_id: ft2 })
    );
    chain::send(Target::Market, "close", market_a.close_offering(fine_tune)).await?;
    let err = market_l
        .buy(fine_tune, licensee, ether(2), [0; 32])
        .value(ether(2))
        .send()
        .await
        .expect_err("closed");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::OfferingIsClosed(OfferingIsClosed {
            offering_id: fine_tune
        })
    );
    assert!(
        grants(ft2, licensee, LicenseKind::FineTune, chain.now().await?).await?,
        "closing never touches licenses already sold"
    );

    // Non-transferable licenses stay with their holder.
    let err = market_l
        .transfer_from(licensee, buyer, access_license)
        .send()
        .await
        .expect_err("non-transferable");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::LicenseNotTransferable(license_market::LicenseNotTransferable {
            license_id: access_license
        })
    );
    // Once the model changes hands, its former owner's offerings sell nothing: the new owner
    // sets his own terms (and a model held for one block could not have sold anyway).
    chain::send(
        Target::Registry,
        "transfer",
        registry_a.transfer_from(author, buyer, base),
    )
    .await?;
    let err = market_l
        .buy(access, licensee, ether(1), [0; 32])
        .value(ether(1))
        .send()
        .await
        .expect_err("former owner's offering");
    assert_eq!(
        market_error(err),
        LicenseMarketErrors::PublisherNotOwner(license_market::PublisherNotOwner {
            offering_id: access,
            publisher: author,
            owner: buyer
        })
    );
    let header = registry_a.header_of(base).call().await?;
    assert_eq!(
        header.owner_since,
        chain.client(0).await?.get_block_number().await?.as_u64(),
        "the transfer's block is recorded"
    );

    // An unknown model is named in the error.
    let err = registry_a
        .header_of(U256::from(99))
        .call()
        .await
        .expect_err("unknown");
    assert_eq!(
        registry_error(err),
        ModelRegistryErrors::UnknownModel(model_registry::UnknownModel {
            model_id: U256::from(99)
        })
    );
    Ok(())
}
