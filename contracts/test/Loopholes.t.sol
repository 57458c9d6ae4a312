// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Fixture} from "./utils/Fixture.sol";
import {MockERC20} from "./mocks/MockERC20.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {LicenseKind, MintParams, Terms} from "../src/Types.sol";

/// @dev forge's `cool`: marks an account's storage cold again, so two gas measurements in one
/// test both pay for cold slots, as separate transactions would.
interface VmCool {
    function cool(address target) external;
}

/// @notice One test per finding of the contracts audit (shared/reviews/contracts.md), each played
/// as the attacker would and asserting the behaviour of the contracts v2. The audit reproduced
/// every one of these scenarios on the previous contracts (its proofs of concept passed there),
/// so each test here failed on them: the call that now reverts went through, or the value
/// asserted was different.
contract LoopholesTest is Fixture {
    address internal mallory = address(0xBAD);

    function setUp() public override {
        super.setUp();
        vm.label(mallory, "mallory");
    }

    /// F1 (Medium): a transient owner of a model token (one transaction: an NFT pool, a loan, an
    /// escrow) extracted permanent, royalty-free rights. On the old contracts Mallory, holding
    /// model A for a moment, minted a derivative by the owner path owing A nothing, published and
    /// bought herself free perpetual 0% fine-tune and access licenses that outlived her
    /// ownership, and Alice was credited 0 after 20 ether of the derivative's sales (the audit's
    /// `test_F1_transientOwnerExtractsPermanentRoyaltyFreeRights` passed). Now the owner path owes
    /// A's derivative royalty floor to whoever owns A at each sale, no offering goes below the
    /// floor, and a holder's offerings sell neither in the block it got the model nor after it
    /// let go of it.
    function test_F1_transientOwnerCannotSellItselfRightsAndOwesTheFloor() public {
        // Alice's model A: every derivative owes it at least 20%.
        MintParams memory p = _params(alice);
        p.derivativeRoyaltyBps = 2_000;
        vm.prank(alice);
        uint256 a = registry.mint(p);
        _publishFineTune(a, 1 ether, 0, 2_000);

        // Mallory gets A, for this block only.
        vm.roll(block.number + 1);
        vm.prank(alice);
        registry.transferFrom(alice, mallory, a);

        // 1. No derivative by the owner path in the block Mallory got A.
        MintParams memory child = _params(mallory);
        (child.parents, child.licenses) = (_ids(a), _ids(0));
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.OwnerChangedThisBlock.selector, a));
        registry.mint(child);

        // 2. A royalty-free fine-tune offering cannot be published at all.
        Terms memory t = _terms(a, LicenseKind.FineTune, NATIVE, 0, 0);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.RoyaltyBelowFloor.selector, uint16(0), uint16(2_000)));
        market.publishOffering(t);

        // 3. Free, perpetual offerings at the floor, and a free access one, sell nothing in the
        //    block Mallory got A.
        t.royaltyBps = 2_000;
        vm.prank(mallory);
        uint256 freeFineTune = market.publishOffering(t);
        vm.prank(mallory);
        uint256 freeAccess = market.publishOffering(_terms(a, LicenseKind.Access, NATIVE, 0, 0));
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, a));
        market.buy(freeFineTune, mallory, 0, bytes32(0));
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, a));
        market.buy(freeAccess, carol, 0, bytes32(0));

        // 4. Held into the next block, A admits Mallory's derivative by the owner path, which
        //    owes A the floor for ever.
        vm.roll(block.number + 1);
        uint256 d1 = _mintChild(mallory, _ids(a), _ids(0));
        (uint256[] memory parents, uint16[] memory bps) = _royaltyEdges(d1);
        vm.assertEq(parents, _ids(a), "d1 owes A");
        vm.assertEq(bps[0], 2_000, "the floor, not 0");

        // 5. Mallory gives A back; from the next block on her offerings are dead.
        vm.prank(mallory);
        registry.transferFrom(mallory, alice, a);
        vm.roll(block.number + 1);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PublisherNotOwner.selector, freeFineTune, mallory, alice));
        market.buy(freeFineTune, mallory, 0, bytes32(0));
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PublisherNotOwner.selector, freeAccess, mallory, alice));
        market.buy(freeAccess, mallory, 0, bytes32(0));
        vm.assertEq(market.totalLicenses(), 0, "no license of A was sold to anyone");
        vm.assertFalse(
            market.grants(0, mallory, a, LicenseKind.Access, uint64(block.timestamp)), "no right of A left to Mallory"
        );
        (bool allowed,) = _rightsOf(mallory, a, LicenseKind.FineTune, type(uint64).max);
        vm.assertFalse(allowed, "nor any license");

        // 6. 20 ether of d1's sales pay Alice, A's owner, her 20%.
        uint256 sale = _publish(_terms(d1, LicenseKind.Access, NATIVE, 10 ether, 0));
        _buy(carol, sale);
        _buy(dave, sale);
        vm.assertEq(market.credits(alice, NATIVE), 4 ether, "alice: 20% of 20 ether (old contracts: 0)");
        vm.assertEq(market.credits(mallory, NATIVE), 16 ether, "mallory keeps the rest");
    }

    /// F2 (Medium): a fine-tune license was never consumed. On the old contracts one license of
    /// a `supplyCap = 1`, one-day "exclusive" offering admitted any number of derivatives, by
    /// every later holder it was passed to (the audit's
    /// `test_F2_fineTuneLicenceIsNotConsumed_supplyCapMeaningless` minted 10). Now the mint burns
    /// it: a second derivative reverts `LicenseAlreadyUsed`, and a used license can be neither
    /// passed on nor renewed.
    function test_F2_fineTuneLicenseAdmitsOneDerivativeAndIsBurnt() public {
        uint256 a = _mintBase(alice);
        Terms memory t = _terms(a, LicenseKind.FineTune, NATIVE, 5 ether, DAY);
        t.royaltyBps = 1_000;
        t.supplyCap = 1;
        uint256 exclusive = _publish(t);
        uint256 lic = _buy(bob, exclusive);

        _mintChild(bob, _ids(a), _ids(lic));
        (, address holder) = market.licenseOf(lic);
        vm.assertEq(holder, address(0), "burnt by the mint");
        vm.assertEq(market.balanceOf(bob), 0, "bob holds nothing");

        // A second derivative with the same license.
        MintParams memory p = _params(bob);
        p.parents = _ids(a);
        p.licenses = _ids(lic);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseAlreadyUsed.selector, lic));
        registry.mint(p);

        // Passed on after use: there is nothing left to pass.
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, lic));
        market.transferFrom(bob, carol, lic);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, lic));
        market.ownerOf(lic);
        p = _params(carol);
        p.parents = _ids(a);
        p.licenses = _ids(lic);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseAlreadyUsed.selector, lic));
        registry.mint(p);

        // Nor renewed, and the cap holds: no second license.
        vm.deal(bob, 10 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseAlreadyUsed.selector, lic));
        market.renew{value: 5 ether}(lic, 5 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.SoldOut.selector, exclusive, uint64(1)));
        market.buy{value: 5 ether}(exclusive, bob, 5 ether, bytes32(0));

        // Only the registry consumes licenses.
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotRegistry.selector, bob));
        market.consume(lic, bob, a);
        vm.assertEq(registry.totalModels(), 2, "one derivative from one license (old contracts: 10)");
    }

    /// F11 (Medium): anyone could register someone else's weights again (same content root,
    /// fingerprint and CID) as an unrelated base model, and sell fine-tunes of the copy owing the
    /// original nothing (the audit's `test_F11_duplicateRegistrationOfSomeoneElsesWeights` had
    /// two models sharing Alice's root). Now a content root is registered once:
    /// `DuplicateContent` names the model that has it.
    function test_F11_duplicateContentByAnotherAccountReverts() public {
        MintParams memory p = _params(alice);
        vm.prank(alice);
        uint256 a = registry.mint(p);

        // Mallory replays Alice's parameters, to herself.
        p.to = mallory;
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DuplicateContent.selector, p.contentRoot, a));
        registry.mint(p);

        // Nor as a "derivative" of a model of her own.
        uint256 own = _mintBase(mallory);
        p.parents = _ids(own);
        p.licenses = _ids(0);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DuplicateContent.selector, p.contentRoot, a));
        registry.mint(p);

        vm.assertEq(registry.modelByContent(p.contentRoot), a, "the root is Alice's model's");
        vm.assertEq(registry.totalModels(), 2, "no copy");
    }

    /// F4 (Low): rights checks could be gas-griefed. On the old contracts `rightsOf` scanned
    /// every license ever sent to the account (about 5,000 gas each), and anyone could buy
    /// licenses for a victim from a free offering without its consent (the audit measured 10.15M
    /// gas with 2,000 spam licenses). Now there is no per-holder set: the on-chain view is
    /// `grants` of one license, whose cost does not depend on what the account holds.
    function test_F4_spamLicensesDoNotChangeTheCostOfGrants() public {
        uint256 a = _mintBase(alice);
        uint256 paid = _publish(_terms(a, LicenseKind.Output, NATIVE, 1 ether, 30 * DAY));
        uint256 trial = _publish(_terms(a, LicenseKind.Output, NATIVE, 0, DAY));
        uint256 lic = _buy(carol, paid);
        uint64 now_ = uint64(block.timestamp);

        uint256 quiet = _grantsGas(lic, carol, a, now_);

        // Mallory pushes 200 free licenses of the same model and kind onto Carol.
        vm.startPrank(mallory);
        for (uint256 i; i < 200; ++i) {
            market.buy(trial, carol, 0, bytes32(0));
        }
        vm.stopPrank();
        vm.assertEq(market.balanceOf(carol), 201, "carol holds the spam");

        uint256 spammed = _grantsGas(lic, carol, a, now_);
        vm.assertTrue(market.grants(lic, carol, a, LicenseKind.Output, now_), "still granted");
        uint256 diff = spammed > quiet ? spammed - quiet : quiet - spammed;
        vm.assertLe(diff, 200, "grants costs the same with 0 and with 200 spam licenses");
        vm.assertLt(spammed, 30_000, "and little");
    }

    /// Gas of one cold `grants` call.
    function _grantsGas(uint256 lic, address account, uint256 model, uint64 at) internal returns (uint256 used) {
        VmCool(address(vm)).cool(address(market));
        used = gasleft();
        market.grants(lic, account, model, LicenseKind.Output, at);
        used -= gasleft();
    }

    /// F3 (Low): renewing a lapsed license rewrote its paid history. On the old contracts anyone
    /// could renew, and a renewal after a lapse moved `start`, so "was Carol licensed on day 5?"
    /// flipped from true to false in `rightsOf`, `isLicenseValid` and `grants` once Mallory paid a
    /// renewal on day 90 (the audit's `test_F3_renewalOfLapsedLicenceErasesThePaidWindow`
    /// passed). Now only the holder (or its operator) renews, a lapsed license is not renewed,
    /// and answers about a paid time never change.
    function test_F3_lapsedLicenseCannotBeRenewedAndItsPaidWindowStays() public {
        uint256 a = _mintBase(alice);
        uint256 monthly = _publish(_terms(a, LicenseKind.Output, NATIVE, 1 ether, 30 * DAY));
        uint256 lic = _buy(carol, monthly);
        uint64 day5 = T0 + 5 * DAY;
        vm.assertTrue(market.grants(lic, carol, a, LicenseKind.Output, day5), "carol licensed on day 5");

        vm.warp(T0 + 90 * DAY);
        vm.deal(mallory, 1 ether);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, lic, carol, mallory));
        market.renew{value: 1 ether}(lic, 1 ether);

        vm.deal(carol, 1 ether);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseLapsed.selector, lic, T0 + 30 * DAY));
        market.renew{value: 1 ether}(lic, 1 ether);

        vm.assertTrue(market.isLicenseValid(lic, day5), "still valid on day 5");
        vm.assertTrue(market.grants(lic, carol, a, LicenseKind.Output, day5), "still granted on day 5");
        (bool allowed, uint256 by) = _rightsOf(carol, a, LicenseKind.Output, day5);
        vm.assertTrue(allowed && by == lic, "and by that license");
        vm.assertFalse(market.isLicenseValid(lic, T0 + 90 * DAY), "not now");
        vm.assertEq(market.credits(alice, NATIVE), 1 ether, "one payment");
    }

    /// F6 (Low): the derivative's owner chose the currency its parents were paid in. On the old
    /// contracts any contract passed the currency check, so Bob priced his derivative in his own
    /// open-mint token and Alice's 50% came as 500,000 JUNK and 0 ether (the audit's
    /// `test_F6_royaltiesPaidInACurrencyTheChildOwnerMints` passed). Now offerings are priced in
    /// the native currency or an ERC-20 fixed at the market's deployment.
    function test_F6_junkCurrencyIsNotAccepted() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintChild(bob, _ids(a), _ids(_fineTuneLicense(bob, a, 5_000)));
        MockERC20 junk = new MockERC20("Junk", "JUNK");

        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.CurrencyNotAccepted.selector, address(junk)));
        market.publishOffering(_terms(b, LicenseKind.Access, address(junk), 1_000_000, 0));
        vm.assertFalse(market.acceptsCurrency(address(junk)), "junk");
        vm.assertTrue(market.acceptsCurrency(address(token)), "the deployment's token");

        // In an accepted currency Alice gets her half.
        _buy(carol, _publish(_terms(b, LicenseKind.Access, address(token), 1_000_000, 0)));
        vm.assertEq(market.credits(alice, address(token)), 500_000, "alice's 50%");
    }

    /// F5 (Low): closing an offering killed renewals at its price. On the old contracts Alice
    /// front-ran Carol's renewal on day 29 with `closeOffering`, re-offered at 10x, and Carol paid
    /// 11 ether to keep access (the audit's `test_F5_closeOfferingKillsRenewalAtSnapshotPrice`
    /// passed). Now licenses stay renewable at the original price for the offering's
    /// `renewalPeriod` after closing, and only then does renewing revert `OfferingIsClosed`.
    function test_F5_closingKeepsRenewalsAtTheOriginalPriceForTheRenewalPeriod() public {
        uint256 a = _mintBase(alice);
        Terms memory t = _terms(a, LicenseKind.Access, NATIVE, 1 ether, 30 * DAY);
        t.renewalPeriod = 60 * DAY;
        uint256 o = _publish(t);
        uint256 lic = _buy(carol, o);

        // Day 29: Alice closes and re-offers at 10x just before Carol renews.
        vm.warp(T0 + 29 * DAY);
        vm.prank(alice);
        market.closeOffering(o);
        _publish(_terms(a, LicenseKind.Access, NATIVE, 10 ether, 30 * DAY));

        vm.deal(carol, 1 ether);
        vm.prank(carol);
        vm.assertEq(market.renew{value: 1 ether}(lic, 1 ether), T0 + 60 * DAY, "renewed at 1 ether");
        vm.assertEq(market.credits(alice, NATIVE), 2 ether, "two payments of 1 ether (old contracts: 11)");

        // Renewable until 60 days after the closing (day 89, exclusive).
        vm.warp(T0 + 59 * DAY);
        vm.assertEq(_renew(carol, lic), T0 + 90 * DAY, "day 59");
        vm.warp(T0 + 89 * DAY - 1);
        vm.assertEq(_renew(carol, lic), T0 + 120 * DAY, "the last second of the renewal period");
        vm.warp(T0 + 89 * DAY);
        vm.deal(carol, 1 ether);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, o));
        market.renew{value: 1 ether}(lic, 1 ether);
        vm.assertTrue(market.isLicenseValid(lic, T0 + 120 * DAY - 1), "what was paid stays valid");
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, o));
        market.buy{value: 1 ether}(o, carol, 1 ether, bytes32(0));
    }

    /// F8 (Low/Info): the ERC-2981 receiver was frozen at the mint's `to`, with no setter, while
    /// license proceeds follow the token (the audit's `test_F8_erc2981ReceiverFrozen`: Alice still
    /// got 5% after selling the model to Bob, and nobody could change it). Now the current
    /// receiver can hand the royalty over (`setRoyaltyReceiver`), nobody else can
    /// (`NotRoyaltyReceiver`), and `royaltyInfo` answers after transfers.
    function test_F8_royaltyReceiverCanBeHandedOverByTheReceiverOnly() public {
        MintParams memory p = _params(alice);
        p.saleRoyaltyBps = 500;
        vm.prank(alice);
        uint256 a = registry.mint(p);
        vm.prank(alice);
        registry.transferFrom(alice, bob, a);

        (address receiver, uint256 amount) = registry.royaltyInfo(a, 1 ether);
        vm.assertEq(receiver, alice, "the mint's receiver");
        vm.assertEq(amount, 0.05 ether, "5%");

        // The new owner cannot take it.
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NotRoyaltyReceiver.selector, a, bob));
        registry.setRoyaltyReceiver(a, bob);

        // Alice, who sold the model with its royalty, hands it over.
        vm.expectEmit(address(registry));
        emit ModelRegistry.RoyaltyReceiverChanged(a, bob);
        vm.prank(alice);
        registry.setRoyaltyReceiver(a, bob);
        (receiver, amount) = registry.royaltyInfo(a, 1 ether);
        vm.assertEq(receiver, bob, "bob receives");
        vm.assertEq(amount, 0.05 ether, "the same 5%");

        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NotRoyaltyReceiver.selector, a, alice));
        registry.setRoyaltyReceiver(a, alice);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ZeroAddress.selector));
        registry.setRoyaltyReceiver(a, address(0));
    }

    /// F12 (Info): soulbound licenses looked like ordinary NFTs. On the old contracts a
    /// non-transferable license could be approved to a marketplace (whose listing then failed at
    /// settlement), and there was no ERC-5192 (the audit's
    /// `test_F12_soulboundLicenceCanBeApprovedAndHasNoMetadata` passed). Now such licenses are
    /// ERC-5192 locked: `Locked` at purchase, `locked` true, `approve` reverts
    /// `LicenseNotTransferable`.
    function test_F12_nonTransferableLicenseIsLockedAndCannotBeApproved() public {
        uint256 a = _mintBase(alice);
        Terms memory t = _terms(a, LicenseKind.Access, NATIVE, 0, 0);
        t.transferable = false;
        uint256 soulbound = _publish(t);
        uint256 movable = _publish(_terms(a, LicenseKind.Access, NATIVE, 0, 0));
        address marketplace = address(0x5E11);

        vm.expectEmit(address(market));
        emit LicenseMarket.Locked(1);
        vm.prank(bob);
        uint256 lic = market.buy(soulbound, bob, 0, bytes32(0));

        vm.assertTrue(market.supportsInterface(0xb45a3c0e), "ERC-5192");
        vm.assertTrue(market.locked(lic), "locked");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, lic));
        market.approve(marketplace, lic);
        vm.assertEq(market.getApproved(lic), address(0), "no approval recorded");

        // Transferable licenses are unlocked and can be listed.
        vm.prank(bob);
        uint256 other = market.buy(movable, bob, 0, bytes32(0));
        vm.assertFalse(market.locked(other), "unlocked");
        vm.prank(bob);
        market.approve(marketplace, other);
        vm.assertEq(market.getApproved(other), marketplace, "approved");
    }
}
