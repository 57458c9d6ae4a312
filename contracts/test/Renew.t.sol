// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {License, LicenseKind, Terms} from "../src/Types.sol";

/// @notice Renewals: extension from max(now, expiry), the snapshotted price, and the failures.
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

    function test_renew_afterLapseExtendsFromNow() public {
        vm.warp(T0 + 45 * DAY);
        vm.assertFalse(market.isLicenseValid(lic, uint64(block.timestamp)), "lapsed");
        uint64 expiry = _renew(bob, lic);
        vm.assertEq(expiry, T0 + 75 * DAY, "now + duration");
        vm.assertTrue(market.isLicenseValid(lic, uint64(block.timestamp)), "valid again");
        vm.assertFalse(market.isLicenseValid(lic, T0 + 75 * DAY), "until the new expiry");
        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.start, T0 + 45 * DAY, "a lapsed license restarts at the renewal");
        vm.assertFalse(market.isLicenseValid(lic, T0 + 40 * DAY), "the unpaid gap is not covered");
        (bool allowed,) = market.rightsOf(bob, model, LicenseKind.Access, T0 + 40 * DAY);
        vm.assertFalse(allowed, "rightsOf agrees on the gap");
    }

    function test_renew_exactlyAtExpiry() public {
        vm.warp(T0 + 30 * DAY);
        vm.assertEq(_renew(bob, lic), T0 + 60 * DAY, "expiry + duration");
    }

    function test_renew_oneSecondBeforeExpiry() public {
        vm.warp(T0 + 30 * DAY - 1);
        vm.assertEq(_renew(bob, lic), T0 + 60 * DAY, "expiry + duration");
    }

    function test_renew_repeatedlyStacks() public {
        _renew(bob, lic);
        _renew(carol, lic);
        vm.assertEq(_expiry(lic), T0 + 90 * DAY, "three periods");
    }

    function test_renew_byAThirdPartyKeepsTheHolder() public {
        vm.deal(dave, 1 ether);
        vm.expectEmit(address(market));
        emit LicenseMarket.LicenseRenewed(lic, dave, 1 ether, T0, T0 + 60 * DAY);
        vm.prank(dave);
        market.renew{value: 1 ether}(lic, 1 ether);
        vm.assertEq(market.ownerOf(lic), bob, "holder");
    }

    function test_renew_revertsForPerpetual() public {
        uint256 perpetual = _buy(bob, _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0)));
        vm.deal(bob, 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PerpetualLicense.selector, perpetual));
        market.renew{value: 1}(perpetual, 1);
    }

    function test_renew_revertsForClosedOffering() public {
        vm.prank(alice);
        market.closeOffering(offering);
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, offering));
        market.renew{value: 1 ether}(lic, 1 ether);
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
        vm.warp(T0 + 8 * DAY);
        vm.assertEq(_renew(carol, l), T0 + 15 * DAY, "from now");
        vm.assertEq(market.credits(alice, address(token)), 14e18, "two payments");
        vm.assertEq(token.balanceOf(address(market)), 14e18, "held");
        vm.assertEq(token.balanceOf(carol), 0, "carol paid");

        vm.deal(carol, 1);
        vm.prank(carol);
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
