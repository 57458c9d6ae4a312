// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Fixture} from "./utils/Fixture.sol";
import {FeeOnTransferERC20} from "./mocks/MockERC20.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {License, LicenseKind, Terms} from "../src/Types.sol";

/// @notice Purchases in the native currency and in ERC-20s, and every way a purchase fails.
contract BuyTest is Fixture {
    uint256 internal model;

    function setUp() public override {
        super.setUp();
        model = _mintBase(alice);
    }

    function test_buy_nativeMintsSnapshotAndCredits() public {
        Terms memory t = _terms(model, LicenseKind.Output, NATIVE, 1 ether, 30 * DAY);
        t.transferable = false;
        t.commercialUse = true;
        t.termsHash = keccak256("output terms v1");
        uint256 offering = _publish(t);
        vm.warp(T0 + 5);
        vm.deal(bob, 1 ether);

        vm.expectEmit(address(market));
        emit IERC721.Transfer(address(0), carol, 1);
        vm.expectEmit(address(market));
        emit LicenseMarket.Locked(1);
        vm.expectEmit(address(market));
        emit LicenseMarket.LicensePurchased(1, offering, model, bob, carol, 1 ether, T0 + 5, T0 + 5 + 30 * DAY);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(alice, NATIVE, 1, model, 1 ether);
        vm.prank(bob);
        uint256 lic = market.buy{value: 1 ether}(offering, carol, 2 ether, bytes32(0));

        vm.assertEq(lic, 1, "id");
        vm.assertEq(market.totalLicenses(), 1, "total");
        vm.assertEq(market.ownerOf(lic), carol, "holder");
        (License memory l, address holder) = market.licenseOf(lic);
        vm.assertEq(holder, carol, "licenseOf holder");
        License memory expected = License({
            offeringId: offering,
            modelId: model,
            kind: LicenseKind.Output,
            currency: NATIVE,
            price: 1 ether,
            duration: 30 * DAY,
            transferable: false,
            commercialUse: true,
            royaltyBps: 0,
            start: T0 + 5,
            expiry: T0 + 5 + 30 * DAY
        });
        vm.assertEq(keccak256(abi.encode(l)), keccak256(abi.encode(expected)), "snapshot");
        vm.assertEq(market.offeringOf(offering).sold, 1, "sold");
        vm.assertEq(market.credits(alice, NATIVE), 1 ether, "credited");
        vm.assertEq(address(market).balance, 1 ether, "held");
        vm.assertEq(bob.balance, 0, "paid");
        vm.assertEq(market.balanceOf(carol), 1, "held by carol");
        vm.assertTrue(market.locked(lic), "non-transferable: locked");
        vm.assertTrue(market.grants(lic, carol, model, LicenseKind.Output, T0 + 5), "granted to carol");
    }

    function test_buy_erc20PullsExactlyThePrice() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, address(token), 250e18, 0));
        token.mint(bob, 1_000e18);
        vm.prank(bob);
        token.approve(address(market), type(uint256).max);

        vm.expectEmit(address(market));
        emit LicenseMarket.LicensePurchased(1, offering, model, bob, bob, 250e18, T0, 0);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(alice, address(token), 1, model, 250e18);
        vm.prank(bob);
        uint256 lic = market.buy(offering, bob, 250e18, bytes32(0));

        vm.assertEq(token.balanceOf(bob), 750e18, "payer");
        vm.assertEq(token.balanceOf(address(market)), 250e18, "market");
        vm.assertEq(market.credits(alice, address(token)), 250e18, "credit");
        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.expiry, 0, "perpetual");
        vm.assertEq(l.currency, address(token), "currency");
    }

    function test_buy_perpetualHasZeroExpiry() public {
        uint256 lic = _buy(bob, _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0)));
        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.expiry, 0, "expiry");
        vm.assertEq(l.start, T0, "start");
        vm.assertTrue(market.isLicenseValid(lic, type(uint64).max), "valid forever");
    }

    function test_buy_free() public {
        uint256 nativeFree = _publish(_terms(model, LicenseKind.Access, NATIVE, 0, 0));
        uint256 tokenFree = _publish(_terms(model, LicenseKind.Access, address(token), 0, 0));
        vm.recordLogs();
        vm.prank(bob);
        market.buy(nativeFree, bob, 0, bytes32(0));
        vm.prank(bob);
        market.buy(tokenFree, bob, 0, bytes32(0));
        vm.assertEq(vm.getRecordedLogs().length, 4, "a Transfer and a LicensePurchased each, no credit");
        vm.assertEq(market.credits(alice, NATIVE), 0, "nothing credited");
        vm.assertEq(token.balanceOf(address(market)), 0, "nothing received");
    }

    function test_buy_revertsForWrongNativePayment() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, NATIVE, 1 ether, 0));
        vm.deal(bob, 3 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.WrongPayment.selector, 1 ether - 1, 1 ether));
        market.buy{value: 1 ether - 1}(offering, bob, 1 ether, bytes32(0));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.WrongPayment.selector, 2 ether, 1 ether));
        market.buy{value: 2 ether}(offering, bob, 2 ether, bytes32(0));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.WrongPayment.selector, 0, 1 ether));
        market.buy(offering, bob, 1 ether, bytes32(0));
    }

    function test_buy_revertsWhenPriceAboveMax() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, NATIVE, 1 ether, 0));
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PriceAboveMax.selector, 1 ether, 1 ether - 1));
        market.buy{value: 1 ether}(offering, bob, 1 ether - 1, bytes32(0));
    }

    function test_buy_revertsWhenSoldOut() public {
        Terms memory t = _terms(model, LicenseKind.Access, NATIVE, 1, 0);
        t.supplyCap = 2;
        uint256 offering = _publish(t);
        _buy(bob, offering);
        _buy(carol, offering);
        vm.assertEq(market.offeringOf(offering).sold, 2, "sold");
        vm.deal(dave, 1);
        vm.prank(dave);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.SoldOut.selector, offering, uint64(2)));
        market.buy{value: 1}(offering, dave, 1, bytes32(0));
    }

    function test_buy_unlimitedSupply() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, NATIVE, 0, 0));
        for (uint256 i; i < 20; ++i) {
            _buy(bob, offering);
        }
        vm.assertEq(market.offeringOf(offering).sold, 20, "sold");
        vm.assertEq(market.balanceOf(bob), 20, "held");
    }

    function test_buy_revertsForClosedOffering() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.prank(alice);
        market.closeOffering(offering);
        vm.deal(bob, 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, offering));
        market.buy{value: 1}(offering, bob, 1, bytes32(0));
    }

    function test_buy_revertsForUnknownOffering() public {
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownOffering.selector, 1));
        market.buy(1, bob, 0, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownOffering.selector, 0));
        market.buy(0, bob, 0, bytes32(0));
    }

    function test_buy_revertsForZeroHolder() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.deal(bob, 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.ZeroAddress.selector));
        market.buy{value: 1}(offering, address(0), 1, bytes32(0));
    }

    /// Even a fee-on-transfer token its deployment accepted cannot be sold in.
    function test_buy_revertsForFeeOnTransferToken() public {
        FeeOnTransferERC20 fee = new FeeOnTransferERC20(100); // 1%
        LicenseMarket m = _marketAccepting(address(fee));
        vm.prank(alice);
        uint256 offering = m.publishOffering(_terms(model, LicenseKind.Access, address(fee), 1_000, 0));
        fee.mint(bob, 1_000);
        vm.prank(bob);
        fee.approve(address(m), 1_000);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.FeeOnTransferToken.selector, address(fee), 1_000, 990));
        m.buy(offering, bob, 1_000, bytes32(0));
        vm.assertEq(m.totalLicenses(), 0, "no license");
        vm.assertEq(fee.balanceOf(bob), 1_000, "nothing taken");
    }

    function test_buy_revertsForNativeWithErc20Offering() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, address(token), 5, 0));
        token.mint(bob, 5);
        vm.prank(bob);
        token.approve(address(market), 5);
        vm.deal(bob, 5);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NativeNotAccepted.selector, 5));
        market.buy{value: 5}(offering, bob, 5, bytes32(0));

        // Also for a free ERC-20 offering.
        uint256 free = _publish(_terms(model, LicenseKind.Access, address(token), 0, 0));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NativeNotAccepted.selector, 1));
        market.buy{value: 1}(free, bob, 0, bytes32(0));
    }

    function test_buy_revertsWithoutAllowance() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, address(token), 5, 0));
        token.mint(bob, 5);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(market), 0, 5));
        market.buy(offering, bob, 5, bytes32(0));
    }

    function test_buy_forAnotherHolderGrantsTheHolder() public {
        uint256 offering = _publish(_terms(model, LicenseKind.FineTune, NATIVE, 3, 0));
        vm.deal(bob, 3);
        vm.prank(bob);
        uint256 lic = market.buy{value: 3}(offering, carol, 3, bytes32(0));
        vm.assertEq(market.ownerOf(lic), carol, "holder");
        vm.assertEq(market.balanceOf(bob), 0, "payer holds nothing");
        vm.assertEq(market.balanceOf(carol), 1, "holder holds it");
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.FineTune, T0), "not the payer");
        vm.assertTrue(market.grants(lic, carol, model, LicenseKind.FineTune, T0), "the holder");
        vm.assertEq(_licensesHeld(carol, model, LicenseKind.FineTune), _ids(lic), "carol's");
    }

    /// After a model changes hands its previous owner's offerings stop selling; the new owner's
    /// offerings and the renewals of licenses already sold pay the new owner.
    function test_buy_creditsTheCurrentModelOwner() public {
        uint256 old = _publish(_terms(model, LicenseKind.Access, NATIVE, 10, DAY));
        uint256 lic = _buy(bob, old);
        vm.prank(alice);
        registry.transferFrom(alice, dave, model);
        uint256 fresh = _publish(_terms(model, LicenseKind.Access, NATIVE, 10, 0));

        vm.deal(bob, 20);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, model));
        market.buy{value: 10}(fresh, bob, 10, bytes32(0));
        vm.roll(block.number + 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PublisherNotOwner.selector, old, alice, dave));
        market.buy{value: 10}(old, bob, 10, bytes32(0));

        _buy(bob, fresh);
        _renew(bob, lic);
        vm.assertEq(market.credits(dave, NATIVE), 20, "new owner: a sale and a renewal");
        vm.assertEq(market.credits(alice, NATIVE), 10, "publisher: the sale before the transfer");
    }

    function test_buy_revertsInTheBlockOfAModelTransfer() public {
        vm.prank(alice);
        registry.transferFrom(alice, dave, model);
        uint256 offering = _publish(_terms(model, LicenseKind.Access, NATIVE, 0, 0));
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, model));
        market.buy(offering, bob, 0, bytes32(0));
        vm.roll(block.number + 1);
        vm.assertEq(market.buy(offering, bob, 0, bytes32(0)), 1, "sold from the next block");

        // A round trip within one block blocks sales too, though the publisher owns the model.
        vm.roll(block.number + 1);
        vm.prank(dave);
        registry.transferFrom(dave, carol, model);
        vm.prank(carol);
        registry.transferFrom(carol, dave, model);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, model));
        market.buy(offering, bob, 0, bytes32(0));
        vm.roll(block.number + 1);
        vm.assertEq(market.buy(offering, bob, 0, bytes32(0)), 2, "and again from the next block");
    }

    function test_buy_inTheMintBlockIsAllowed() public {
        uint256 fresh = _mintBase(bob);
        uint256 offering = _publish(_terms(fresh, LicenseKind.Access, NATIVE, 0, 0));
        vm.assertEq(market.buy(offering, carol, 0, bytes32(0)), 1, "sold in the block of the mint");
    }

    function test_buy_snapshotSurvivesAClosedOffering() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Access, NATIVE, 10, 10 * DAY));
        uint256 lic = _buy(bob, offering);
        vm.prank(alice);
        market.closeOffering(offering);
        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.price, 10, "price");
        vm.assertEq(l.expiry, T0 + 10 * DAY, "expiry");
    }
}
