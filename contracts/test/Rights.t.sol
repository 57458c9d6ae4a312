// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {License, LicenseKind} from "../src/Types.sol";

/// @notice The on-chain rights view `grants`, isLicenseValid and licenseOf. The removed
/// `rightsOf` (a scan of every license an account held, perpetual first, else the longest lasting)
/// is rebuilt on `grants` by the fixture's `_rightsOf`, as an indexer would answer it; its tests
/// keep their scenarios and check each answer against `grants`.
contract RightsTest is Fixture {
    uint256 internal model;
    uint256 internal monthly;
    uint256 internal yearly;
    uint256 internal forever;

    function setUp() public override {
        super.setUp();
        model = _mintBase(alice);
        monthly = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 30 * DAY));
        yearly = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 365 * DAY));
        forever = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
    }

    function _rights(address who, uint64 at) internal view returns (bool allowed, uint256 id) {
        (allowed, id) = _rightsOf(who, model, LicenseKind.Access, at);
        if (id != 0) vm.assertTrue(market.grants(id, who, model, LicenseKind.Access, at), "granted on-chain");
    }

    function test_grants_ownerHoldsEveryRightAtAnyTime() public view {
        for (uint8 k; k < 3; ++k) {
            vm.assertTrue(market.grants(0, alice, model, LicenseKind(k), 0), "at 0");
            vm.assertTrue(market.grants(0, alice, model, LicenseKind(k), type(uint64).max), "any time");
            (bool allowed, uint256 id) = _rightsOf(alice, model, LicenseKind(k), T0);
            vm.assertTrue(allowed && id == 0, "as owner");
            vm.assertFalse(market.grants(0, bob, model, LicenseKind(k), T0), "not another account");
        }
    }

    function test_rightsOf_noLicense() public view {
        (bool allowed, uint256 id) = _rights(bob, T0);
        vm.assertFalse(allowed, "not allowed");
        vm.assertEq(id, 0, "no id");
    }

    function test_rightsOf_validLicenseWindow() public {
        vm.warp(T0 + 100);
        uint256 lic = _buy(bob, monthly);
        uint64 start = T0 + 100;
        uint64 expiry = start + 30 * DAY;

        (bool allowed, uint256 id) = _rights(bob, start);
        vm.assertTrue(allowed && id == lic, "at start");
        (allowed, id) = _rights(bob, expiry - 1);
        vm.assertTrue(allowed && id == lic, "last second");
        (allowed, id) = _rights(bob, expiry);
        vm.assertFalse(allowed, "exactly at expiry");
        vm.assertEq(id, 0, "no id at expiry");
        (allowed,) = _rights(bob, start - 1);
        vm.assertFalse(allowed, "before start");
        (allowed,) = _rights(bob, 0);
        vm.assertFalse(allowed, "at 0");

        vm.assertTrue(market.isLicenseValid(lic, start), "valid at start");
        vm.assertTrue(market.isLicenseValid(lic, expiry - 1), "valid before expiry");
        vm.assertFalse(market.isLicenseValid(lic, expiry), "invalid at expiry");
        vm.assertFalse(market.isLicenseValid(lic, start - 1), "invalid before start");
    }

    function test_rightsOf_picksPerpetualFirst() public {
        _buy(bob, yearly);
        uint256 perpetual = _buy(bob, forever);
        _buy(bob, monthly);
        (bool allowed, uint256 id) = _rights(bob, T0);
        vm.assertTrue(allowed, "allowed");
        vm.assertEq(id, perpetual, "perpetual wins");
        (, id) = _rights(bob, type(uint64).max);
        vm.assertEq(id, perpetual, "perpetual forever");
    }

    function test_rightsOf_picksLongestLasting() public {
        uint256 m = _buy(bob, monthly);
        uint256 y = _buy(bob, yearly);
        vm.warp(T0 + 10 * DAY);
        uint256 m2 = _buy(bob, monthly); // expires T0 + 40 days, before the yearly one
        (bool allowed, uint256 id) = _rights(bob, T0 + 10 * DAY);
        vm.assertTrue(allowed, "allowed");
        vm.assertEq(id, y, "yearly lasts longest");
        (, id) = _rights(bob, T0 + 5 * DAY);
        vm.assertEq(id, y, "before m2 started");
        // A renewed monthly can overtake the yearly one.
        for (uint256 i; i < 12; ++i) {
            _renew(bob, m);
        }
        (, id) = _rights(bob, T0 + 10 * DAY);
        vm.assertEq(id, m, "renewed monthly lasts longest");
        (, id) = _rights(bob, T0 + 365 * DAY);
        vm.assertEq(id, m, "only m at the yearly's expiry");
        vm.assertTrue(m2 != 0, "m2 bought");
    }

    function test_rightsOf_ignoresExpiredAmongSeveral() public {
        uint256 m = _buy(bob, monthly);
        uint256 y = _buy(bob, yearly);
        (, uint256 id) = _rights(bob, T0 + 30 * DAY);
        vm.assertEq(id, y, "monthly expired");
        (, id) = _rights(bob, T0 + 365 * DAY);
        vm.assertEq(id, 0, "both expired");
        vm.assertTrue(m != y, "distinct");
    }

    function test_rightsOf_isPerKindAndModel() public {
        uint256 lic = _buy(bob, forever);
        uint256 other = _mintBase(carol);
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.FineTune, T0), "other kind");
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.Output, T0), "other kind");
        vm.assertFalse(market.grants(lic, bob, other, LicenseKind.Access, T0), "other model");
        (bool allowed,) = _rightsOf(bob, model, LicenseKind.FineTune, T0);
        vm.assertFalse(allowed, "other kind");
        (allowed,) = _rightsOf(bob, other, LicenseKind.Access, T0);
        vm.assertFalse(allowed, "other model");
        (allowed,) = _rightsOf(bob, model, LicenseKind.Access, T0);
        vm.assertTrue(allowed, "this one");
    }

    function test_grants_falseForUnknownModel() public view {
        vm.assertFalse(market.grants(0, bob, 2, LicenseKind.Access, T0), "model 2");
        vm.assertFalse(market.grants(0, address(0), 0, LicenseKind.Access, T0), "model 0, nobody");
        vm.assertFalse(market.grants(0, alice, type(uint256).max, LicenseKind.Access, T0), "max");
    }

    function test_licenseOf_and_isLicenseValid_revertForUnknownLicense() public {
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, 0));
        market.licenseOf(0);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, 1));
        market.licenseOf(1);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, 1));
        market.isLicenseValid(1, T0);
    }

    function test_licenseOf_returnsLicenseAndHolder() public {
        uint256 lic = _buy(bob, yearly);
        (License memory l, address holder) = market.licenseOf(lic);
        vm.assertEq(holder, bob, "holder");
        vm.assertEq(l.offeringId, yearly, "offering");
        vm.assertEq(l.modelId, model, "model");
        vm.assertEq(l.start, T0, "start");
        vm.assertEq(l.expiry, T0 + 365 * DAY, "expiry");
    }

    function test_balanceOf_countsValidAndExpired() public {
        _buy(bob, monthly);
        _buy(bob, forever);
        vm.warp(T0 + 400 * DAY);
        vm.assertEq(market.balanceOf(bob), 2, "both");
        vm.assertEq(market.balanceOf(carol), 0, "none");
    }

    function test_grants_burntLicenseGrantsNothing() public {
        uint256 ft = _buy(bob, _publishFineTune(model, 0, 0, 0));
        vm.assertTrue(market.grants(ft, bob, model, LicenseKind.FineTune, T0), "before use");
        _mintChild(bob, _ids(model), _ids(ft));
        vm.assertFalse(market.grants(ft, bob, model, LicenseKind.FineTune, T0), "consumed");
        (License memory l, address holder) = market.licenseOf(ft);
        vm.assertEq(holder, address(0), "no holder");
        vm.assertEq(l.modelId, model, "the record stays");
        vm.assertTrue(market.isLicenseValid(ft, T0), "its window too");
    }

    function test_grants_checksHolderModelKindAndWindow() public {
        vm.warp(T0 + 100);
        uint256 lic = _buy(bob, monthly);
        uint64 start = T0 + 100;
        uint64 expiry = start + 30 * DAY;
        vm.assertTrue(market.grants(lic, bob, model, LicenseKind.Access, start), "at start");
        vm.assertTrue(market.grants(lic, bob, model, LicenseKind.Access, expiry - 1), "last second");
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.Access, expiry), "at expiry");
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.Access, start - 1), "before start");
        vm.assertFalse(market.grants(lic, carol, model, LicenseKind.Access, start), "other account");
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.Output, start), "other kind");
        vm.assertFalse(market.grants(lic, bob, model + 1, LicenseKind.Access, start), "other model");
        vm.assertFalse(market.grants(0, bob, model, LicenseKind.Access, start), "license 0");
        vm.assertFalse(market.grants(lic + 1, bob, model, LicenseKind.Access, start), "unknown license");
    }
}
