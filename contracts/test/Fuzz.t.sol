// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {License, LicenseKind, MintParams, Terms} from "../src/Types.sol";

/// @notice Property tests over prices, royalty shares, durations and timestamps.
contract FuzzTest is Fixture {
    /// The largest price an offering takes (larger ones revert PriceTooLarge at publish).
    uint256 internal constant MAX_PRICE = type(uint96).max;
    /// Licenses store their start in 40 bits (seconds until the year 36812).
    uint64 internal constant MAX_TIME = type(uint40).max;

    mapping(address => uint256) internal expected;

    // ------------------------------------------------------------ royalty split

    /// Reference split: each royalty parent gets floor(amount * bps / 10_000), split again; the
    /// model's owner keeps the rest.
    function _split(uint256 modelId, uint256 amount) internal {
        if (amount == 0) return;
        (uint256[] memory parents, uint16[] memory bps) = _royaltyEdges(modelId);
        uint256 rest = amount;
        for (uint256 i; i < parents.length; ++i) {
            uint256 share = amount * bps[i] / 10_000;
            rest -= share;
            _split(parents[i], share);
        }
        expected[registry.ownerOf(modelId)] += rest;
    }

    function _lineage(uint16 bpsAB, uint16 bpsBC, uint16 bpsAC) internal returns (uint256 c) {
        uint256 a = _mintBase(alice);
        uint256 b = _mintChild(bob, _ids(a), _ids(_fineTuneLicense(bob, a, bpsAB)));
        uint256 lb = _fineTuneLicense(carol, b, bpsBC);
        uint256 la = _fineTuneLicense(carol, a, bpsAC);
        c = _mintChild(carol, _ids(b, a), _ids(lb, la));
    }

    /// A (alice) <- B (bob, bpsAB) <- C (carol, bpsBC) and C <- A directly (bpsAC); a sale of C.
    function testFuzz_splitSumsExactlyToPrice(uint256 price, uint16 bpsAB, uint16 bpsBC, uint16 bpsAC, bool erc20)
        public
    {
        price = bound(price, 0, MAX_PRICE);
        bpsAB = uint16(bound(bpsAB, 0, 10_000));
        bpsBC = uint16(bound(bpsBC, 0, 10_000));
        bpsAC = uint16(bound(bpsAC, 0, 10_000 - bpsBC));
        uint256 c = _lineage(bpsAB, bpsBC, bpsAC);

        address currency = erc20 ? address(token) : NATIVE;
        _buy(dave, _publish(_terms(c, LicenseKind.Access, currency, price, 0)));

        _split(c, price);
        uint256 sum;
        address[3] memory owners = [alice, bob, carol];
        for (uint256 i; i < 3; ++i) {
            uint256 got = market.credits(owners[i], currency);
            vm.assertEq(got, expected[owners[i]], "credit matches the reference split");
            sum += got;
        }
        vm.assertEq(sum, price, "sum of credits == price");
        vm.assertEq(market.credits(dave, currency), 0, "buyer credited nothing");
        uint256 held = erc20 ? token.balanceOf(address(market)) : address(market).balance;
        vm.assertEq(held, price, "held");
    }

    /// Every owner's share is at least its exact fraction rounded down, and the model owner's
    /// remainder is less than one wei per royalty node.
    function testFuzz_singleEdgeShare(uint256 price, uint16 bps) public {
        price = bound(price, 0, MAX_PRICE);
        bps = uint16(bound(bps, 0, 10_000));
        uint256 a = _mintBase(alice);
        uint256 b = _mintChild(bob, _ids(a), _ids(_fineTuneLicense(bob, a, bps)));
        _buy(dave, _publish(_terms(b, LicenseKind.Output, address(token), price, 0)));
        vm.assertEq(market.credits(alice, address(token)), price * bps / 10_000, "parent share");
        vm.assertEq(market.credits(bob, address(token)), price - price * bps / 10_000, "owner rest");
    }

    // ------------------------------------------------------------ purchases

    function testFuzz_buyPaymentChecks(uint256 price, uint256 maxPrice, uint256 sent) public {
        price = bound(price, 0, MAX_PRICE);
        sent = bound(sent, 0, MAX_PRICE);
        uint256 model = _mintBase(alice);
        uint256 offering = _publish(_terms(model, LicenseKind.Access, NATIVE, price, 0));
        vm.deal(bob, sent);
        vm.prank(bob);
        if (price > maxPrice) {
            vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PriceAboveMax.selector, price, maxPrice));
        } else if (sent != price) {
            vm.expectRevert(abi.encodeWithSelector(LicenseMarket.WrongPayment.selector, sent, price));
        }
        market.buy{value: sent}(offering, bob, maxPrice, bytes32(0));
        bool ok = price <= maxPrice && sent == price;
        vm.assertEq(market.totalLicenses(), ok ? 1 : 0, "sold iff paid exactly within max");
        vm.assertEq(address(market).balance, ok ? price : 0, "held");
    }

    function testFuzz_supplyCap(uint8 cap, uint8 attempts) public {
        cap = uint8(bound(cap, 0, 12));
        attempts = uint8(bound(attempts, 0, 16));
        uint256 model = _mintBase(alice);
        Terms memory t = _terms(model, LicenseKind.Access, NATIVE, 0, 0);
        t.supplyCap = cap;
        uint256 offering = _publish(t);
        uint256 sold;
        for (uint256 i; i < attempts; ++i) {
            if (cap != 0 && sold >= cap) {
                vm.expectRevert(abi.encodeWithSelector(LicenseMarket.SoldOut.selector, offering, uint64(cap)));
                market.buy(offering, bob, 0, bytes32(0));
            } else {
                market.buy(offering, bob, 0, bytes32(0));
                ++sold;
            }
        }
        vm.assertEq(market.offeringOf(offering).sold, sold, "sold");
        vm.assertLe(sold, cap == 0 ? attempts : cap, "never above the cap");
    }

    // ------------------------------------------------------------ time

    function testFuzz_expiryAndValidityBoundary(uint64 start, uint64 duration, uint64 at) public {
        start = uint64(bound(start, 1, MAX_TIME));
        duration = uint64(bound(duration, 0, market.MAX_DURATION()));
        vm.warp(start);
        uint256 model = _mintBase(alice);
        uint256 lic = _buy(bob, _publish(_terms(model, LicenseKind.Access, NATIVE, 1, duration)));
        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.start, start, "start");
        vm.assertEq(l.expiry, duration == 0 ? 0 : start + duration, "expiry");

        bool valid = at >= start && (duration == 0 || at < start + duration);
        vm.assertEq(market.isLicenseValid(lic, at), valid, "validity at a random time");
        vm.assertEq(market.grants(lic, bob, model, LicenseKind.Access, at), valid, "grants agrees");
        (bool allowed, uint256 id) = _rightsOf(bob, model, LicenseKind.Access, at);
        vm.assertEq(allowed, valid, "rightsOf agrees");
        vm.assertEq(id, valid ? lic : 0, "by the license");

        vm.assertTrue(market.isLicenseValid(lic, start), "valid at start");
        vm.assertFalse(market.isLicenseValid(lic, start - 1), "invalid before start");
        if (duration != 0) {
            vm.assertTrue(market.isLicenseValid(lic, start + duration - 1), "valid just before expiry");
            vm.assertFalse(market.isLicenseValid(lic, start + duration), "invalid exactly at expiry");
        } else {
            vm.assertTrue(market.isLicenseValid(lic, type(uint64).max), "perpetual");
        }
    }

    /// Renewals extend from the expiry while the license has not lapsed (renewing exactly at the
    /// expiry leaves no gap); once it has lapsed it cannot be renewed and its window stays.
    function testFuzz_renewExtendsFromExpiryUntilLapsed(uint64 start, uint64 duration, uint64 elapsed, uint8 renewals)
        public
    {
        start = uint64(bound(start, 1, MAX_TIME));
        duration = uint64(bound(duration, 1, market.MAX_DURATION()));
        elapsed = uint64(bound(elapsed, 0, 3 * uint256(duration) + 1000));
        renewals = uint8(bound(renewals, 1, 4));
        vm.warp(start);
        uint256 model = _mintBase(alice);
        uint256 lic = _buy(bob, _publish(_terms(model, LicenseKind.Access, NATIVE, 3, duration)));
        uint64 expiry = start + duration;
        uint64 now_ = start + elapsed;
        vm.warp(now_);
        uint256 paid = 1;
        for (uint256 i; i < renewals; ++i) {
            if (now_ >= expiry) {
                vm.deal(bob, 3);
                vm.prank(bob);
                vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseLapsed.selector, lic, expiry));
                market.renew{value: 3}(lic, 3);
                continue;
            }
            vm.expectEmit(address(market));
            emit LicenseMarket.LicenseRenewed(lic, bob, 3, start, expiry + duration);
            uint64 got = _renew(bob, lic);
            vm.assertEq(got, expiry + duration, "expiry + duration");
            expiry = got;
            ++paid;
        }
        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.expiry, expiry, "stored");
        vm.assertEq(l.start, start, "the start never moves");
        vm.assertEq(elapsed >= duration, paid == 1, "renewed iff not lapsed");
        vm.assertTrue(market.isLicenseValid(lic, start), "valid from its purchase");
        vm.assertFalse(market.isLicenseValid(lic, start - 1), "not before");
        vm.assertTrue(market.isLicenseValid(lic, expiry - 1), "valid until expiry");
        vm.assertFalse(market.isLicenseValid(lic, expiry), "not at expiry");
        vm.assertEq(market.isLicenseValid(lic, now_), elapsed < duration, "valid now iff renewed");
        vm.assertEq(market.credits(alice, NATIVE), 3 * paid, "every payment credited");
    }

    function testFuzz_rightsOfPicksBest(uint64[4] memory durations, uint64[4] memory offsets, uint64 at) public {
        uint256 model = _mintBase(alice);
        uint256[4] memory lics;
        uint64 t = T0;
        for (uint256 i; i < 4; ++i) {
            durations[i] = uint64(bound(durations[i], 0, 1000 * DAY));
            t += uint64(bound(offsets[i], 0, 100 * DAY));
            vm.warp(t);
            lics[i] = _buy(bob, _publish(_terms(model, LicenseKind.FineTune, NATIVE, 0, durations[i])));
        }
        at = uint64(bound(at, T0 - 1, t + 1100 * DAY));

        bool anyValid;
        bool perpetual;
        uint64 best;
        for (uint256 i; i < 4; ++i) {
            (License memory l,) = market.licenseOf(lics[i]);
            if (!(l.start <= at && (l.expiry == 0 || at < l.expiry))) continue;
            anyValid = true;
            if (l.expiry == 0) perpetual = true;
            else if (l.expiry > best) best = l.expiry;
        }
        (bool allowed, uint256 id) = _rightsOf(bob, model, LicenseKind.FineTune, at);
        vm.assertEq(allowed, anyValid, "allowed iff some license is valid");
        _assertGrantsMatchWindows(lics, model, at);
        if (!anyValid) {
            vm.assertEq(id, 0, "no id");
            return;
        }
        (License memory chosen,) = market.licenseOf(id);
        vm.assertEq(chosen.modelId, model, "a license of the model");
        vm.assertEq(market.ownerOf(id), bob, "held by bob");
        vm.assertTrue(market.isLicenseValid(id, at), "chosen one is valid");
        if (perpetual) vm.assertEq(chosen.expiry, 0, "a perpetual one first");
        else vm.assertEq(chosen.expiry, best, "the longest lasting one");
    }

    function _assertGrantsMatchWindows(uint256[4] memory lics, uint256 model, uint64 at) internal view {
        for (uint256 i; i < 4; ++i) {
            (License memory l,) = market.licenseOf(lics[i]);
            bool inWindow = l.start <= at && (l.expiry == 0 || at < l.expiry);
            vm.assertEq(market.grants(lics[i], bob, model, LicenseKind.FineTune, at), inWindow, "grants per license");
        }
    }

    // ------------------------------------------------------------ offerings

    function testFuzz_publishValidation(
        uint8 kind,
        uint16 bps,
        uint16 floor,
        uint64 duration,
        uint64 renewalPeriod,
        uint256 price,
        uint64 supplyCap
    ) public {
        kind = uint8(bound(kind, 0, 2));
        floor = uint16(bound(floor, 0, 10_000));
        bps = uint16(bound(bps, 0, 11_000));
        // Half of each range is out of bounds.
        uint64 max = market.MAX_DURATION();
        duration = uint64(bound(duration, 0, 2 * uint256(max)));
        renewalPeriod = uint64(bound(renewalPeriod, 0, 2 * uint256(max)));
        price = bound(price, 0, 2 * MAX_PRICE);
        supplyCap = uint64(bound(supplyCap, 0, 2 * uint256(type(uint32).max)));
        MintParams memory p = _params(alice);
        p.derivativeRoyaltyBps = floor;
        vm.prank(alice);
        uint256 model = registry.mint(p);
        Terms memory t = _terms(model, LicenseKind(kind), NATIVE, price, duration);
        t.royaltyBps = bps;
        t.renewalPeriod = renewalPeriod;
        t.supplyCap = supplyCap;
        bool fineTune = LicenseKind(kind) == LicenseKind.FineTune;
        if (!fineTune && bps != 0) {
            vm.expectRevert(
                abi.encodeWithSelector(LicenseMarket.RoyaltyOnlyForFineTune.selector, LicenseKind(kind), bps)
            );
        } else if (fineTune && bps > 10_000) {
            vm.expectRevert(abi.encodeWithSelector(LicenseMarket.RoyaltyAboveTotal.selector, bps));
        } else if (fineTune && bps < floor) {
            vm.expectRevert(abi.encodeWithSelector(LicenseMarket.RoyaltyBelowFloor.selector, bps, floor));
        } else if (duration > max) {
            vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DurationTooLong.selector, duration, max));
        } else if (renewalPeriod > max) {
            vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DurationTooLong.selector, renewalPeriod, max));
        } else if (price > MAX_PRICE) {
            vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PriceTooLarge.selector, price));
        } else if (supplyCap > type(uint32).max) {
            vm.expectRevert(abi.encodeWithSelector(LicenseMarket.SupplyCapTooLarge.selector, supplyCap));
        }
        vm.prank(alice);
        market.publishOffering(t);
    }

    // ------------------------------------------------------------ withdrawals

    function testFuzz_withdrawEverything(uint96[3] memory prices) public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintChild(bob, _ids(a), _ids(_fineTuneLicense(bob, a, 1_234)));
        uint256 total;
        for (uint256 i; i < 3; ++i) {
            _buy(carol, _publish(_terms(i == 1 ? a : b, LicenseKind.Access, NATIVE, prices[i], 0)));
            total += prices[i];
        }
        uint256 paid;
        address[2] memory owners = [alice, bob];
        for (uint256 i; i < 2; ++i) {
            if (market.credits(owners[i], NATIVE) == 0) continue;
            vm.prank(owners[i]);
            paid += market.withdraw(NATIVE, owners[i]);
        }
        vm.assertEq(paid, total, "everything paid out");
        vm.assertEq(address(market).balance, 0, "nothing left");
        vm.assertEq(market.credits(alice, NATIVE) + market.credits(bob, NATIVE), 0, "books balance");
    }
}
