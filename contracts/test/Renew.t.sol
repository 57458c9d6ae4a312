// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {License, LicenseKind, Terms} from "../src/Types.sol";

/// @notice Renewals: extension from the expiry by the holder (or its operator) while the license
/// has not lapsed, at the offering's price, within the renewal period after a closing, and the
/// failures.
contract RenewTest is Fixture {
    uint256 internal model;
    uint256 internal offering;
    uint256 internal lic;

    function setUp() public override {
        super.setUp();
        model = _mintBase(alice);
        offering = _publish(_terms(model, LicenseKind.Access, NATIVE, 1 ether, 30 * DAY));
        lic = _buy(bob, offering);
    }

    function _expiry(uint256 id) internal view returns (uint64) {
        (License memory l,) = market.licenseOf(id);
        return l.expiry;
    }

    function test_renew_whileValidExtendsFromExpiry() public {
        vm.warp(T0 + 10 * DAY);
        vm.deal(bob, 1 ether);
        vm.expectEmit(address(market));
        emit LicenseMarket.LicenseRenewed(lic, bob, 1 ether, T0, T0 + 60 * DAY);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(alice, NATIVE, lic, model, 1 ether);
        vm.prank(bob);
        uint64 expiry = market.renew{value: 1 ether}(lic, 1 ether);

        vm.assertEq(expiry, T0 + 60 * DAY, "returned");
        vm.assertEq(_expiry(lic), T0 + 60 * DAY, "stored");
        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.start, T0, "start unchanged");
        vm.assertEq(market.credits(alice, NATIVE), 2 ether, "paid twice");
        vm.assertEq(market.offeringOf(offering).sold, 1, "a renewal is not a sale");
    }

    /// A lapsed license is not renewed (a new one is bought), so its paid window never moves.
    function test_renew_revertsAfterLapse() public {
        vm.warp(T0 + 30 * DAY + 1);
        vm.assertFalse(market.isLicenseValid(lic, uint64(block.timestamp)), "lapsed");
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseLapsed.selector, lic, T0 + 30 * DAY));
        market.renew{value: 1 ether}(lic, 1 ether);

        vm.warp(T0 + 45 * DAY);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseLapsed.selector, lic, T0 + 30 * DAY));
        market.renew{value: 1 ether}(lic, 1 ether);

        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.start, T0, "start unchanged");
        vm.assertEq(l.expiry, T0 + 30 * DAY, "expiry unchanged");
        vm.assertTrue(market.isLicenseValid(lic, T0 + 10 * DAY), "the paid window stays");
        vm.assertTrue(market.grants(lic, bob, model, LicenseKind.Access, T0 + 10 * DAY), "granted then");
        vm.assertEq(market.credits(alice, NATIVE), 1 ether, "nothing charged");

        // A new license is bought instead.
        uint256 fresh = _buy(bob, offering);
        (l,) = market.licenseOf(fresh);
        vm.assertEq(l.start, T0 + 45 * DAY, "new window");
    }

    function test_renew_exactlyAtExpiryIsALapse() public {
        vm.warp(T0 + 30 * DAY);
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseLapsed.selector, lic, T0 + 30 * DAY));
        market.renew{value: 1 ether}(lic, 1 ether);
    }

    function test_renew_oneSecondBeforeExpiry() public {
        vm.warp(T0 + 30 * DAY - 1);
        vm.assertEq(_renew(bob, lic), T0 + 60 * DAY, "expiry + duration");
    }

    function test_renew_repeatedlyStacks() public {
        _renew(bob, lic);
        _renew(bob, lic);
        vm.assertEq(_expiry(lic), T0 + 90 * DAY, "three periods");
    }

    function test_renew_revertsForAThirdParty() public {
        vm.deal(dave, 1 ether);
        vm.prank(dave);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, lic, bob, dave));
        market.renew{value: 1 ether}(lic, 1 ether);
        vm.assertEq(_expiry(lic), T0 + 30 * DAY, "not renewed");
    }

    function test_renew_byAnApprovedOperatorKeepsTheHolder() public {
        vm.prank(bob);
        market.approve(dave, lic);
        vm.deal(dave, 1 ether);
        vm.expectEmit(address(market));
        emit LicenseMarket.LicenseRenewed(lic, dave, 1 ether, T0, T0 + 60 * DAY);
        vm.prank(dave);
        market.renew{value: 1 ether}(lic, 1 ether);
        vm.assertEq(market.ownerOf(lic), bob, "holder");

        vm.prank(bob);
        market.setApprovalForAll(carol, true);
        vm.assertEq(_renew(carol, lic), T0 + 90 * DAY, "an operator for all");
        vm.assertEq(market.ownerOf(lic), bob, "still the holder");
    }

    function test_renew_revertsForPerpetual() public {
        uint256 perpetual = _buy(bob, _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0)));
        vm.deal(bob, 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PerpetualLicense.selector, perpetual));
        market.renew{value: 1}(perpetual, 1);
    }

    /// Without a renewal period, closing ends renewals at once.
    function test_renew_revertsForClosedOffering() public {
        vm.prank(alice);
        market.closeOffering(offering);
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, offering));
        market.renew{value: 1 ether}(lic, 1 ether);
    }

    function test_renew_withinTheRenewalPeriodAfterClosing() public {
        Terms memory t = _terms(model, LicenseKind.Access, NATIVE, 1 ether, 10 * DAY);
        t.renewalPeriod = 15 * DAY;
        uint256 o = _publish(t);
        uint256 l = _buy(bob, o);
        vm.warp(T0 + 5 * DAY);
        vm.prank(alice);
        market.closeOffering(o);
        // Renewable until the closing + 15 days (T0 + 20 days), exclusive.
        vm.assertEq(_renew(bob, l), T0 + 20 * DAY, "after closing");
        vm.warp(T0 + 20 * DAY - 1);
        vm.assertEq(_renew(bob, l), T0 + 30 * DAY, "last second");
        vm.warp(T0 + 20 * DAY);
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, o));
        market.renew{value: 1 ether}(l, 1 ether);
        vm.assertTrue(market.isLicenseValid(l, T0 + 30 * DAY - 1), "paid time stays valid");
    }

    /// Renewals do not need the publisher to own the model: they pay the current owner.
    function test_renew_afterTheModelChangedHands() public {
        vm.prank(alice);
        registry.transferFrom(alice, carol, model);
        vm.roll(block.number + 1);
        _renew(bob, lic);
        vm.assertEq(market.credits(carol, NATIVE), 1 ether, "the new owner");
        vm.assertEq(market.credits(alice, NATIVE), 1 ether, "the purchase");
    }

    function test_renew_revertsForABurntLicense() public {
        uint256 ft = _buy(bob, _publishFineTune(model, 0, 10 * DAY, 0));
        _mintChild(bob, _ids(model), _ids(ft));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseAlreadyUsed.selector, ft));
        market.renew(ft, 0);
    }

    function test_renew_revertsWhenPriceAboveMax() public {
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PriceAboveMax.selector, 1 ether, 0.5 ether));
        market.renew{value: 1 ether}(lic, 0.5 ether);
    }

    function test_renew_revertsForWrongPayment() public {
        vm.deal(bob, 2 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.WrongPayment.selector, 0.5 ether, 1 ether));
        market.renew{value: 0.5 ether}(lic, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.WrongPayment.selector, 2 ether, 1 ether));
        market.renew{value: 2 ether}(lic, 2 ether);
    }

    function test_renew_revertsForUnknownLicense() public {
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, 2));
        market.renew(2, 0);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, 0));
        market.renew(0, 0);
    }

    function test_renew_ignoresTheSupplyCap() public {
        Terms memory t = _terms(model, LicenseKind.Access, NATIVE, 1, DAY);
        t.supplyCap = 1;
        uint256 capped = _publish(t);
        uint256 only = _buy(bob, capped);
        _renew(bob, only);
        vm.assertEq(_expiry(only), T0 + 2 * DAY, "renewed");
    }

    function test_renew_erc20() public {
        uint256 o = _publish(_terms(model, LicenseKind.Output, address(token), 7e18, 7 * DAY));
        uint256 l = _buy(bob, o);
        vm.warp(T0 + 6 * DAY);
        vm.assertEq(_renew(bob, l), T0 + 14 * DAY, "from the expiry");
        vm.assertEq(market.credits(alice, address(token)), 14e18, "two payments");
        vm.assertEq(token.balanceOf(address(market)), 14e18, "held");
        vm.assertEq(token.balanceOf(bob), 0, "bob paid");

        vm.deal(bob, 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NativeNotAccepted.selector, 1));
        market.renew{value: 1}(l, 7e18);
    }

    function test_renew_nonTransferableStillRenewable() public {
        Terms memory t = _terms(model, LicenseKind.FineTune, NATIVE, 3, DAY);
        t.transferable = false;
        uint256 l = _buy(bob, _publish(t));
        vm.assertEq(_renew(bob, l), T0 + 2 * DAY, "renewed");
    }
}
