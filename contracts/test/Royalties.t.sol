// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {LicenseKind, MintParams} from "../src/Types.sol";

/// @notice The split of every sale up the lineage, to the wei.
///
/// Lineage: A (alice) <- B (bob, 7.77% to A) <- C (carol, 33.33% to B), and
/// D (dave) derives from B (20%) and directly from A (5%).
contract RoyaltiesTest is Fixture {
    uint256 internal a;
    uint256 internal b;
    uint256 internal c;
    uint256 internal d;

    function setUp() public override {
        super.setUp();
        a = _mintBase(alice);
        b = _mintChild(bob, _ids(a), _ids(_fineTuneLicense(bob, a, 777)));
        c = _mintChild(carol, _ids(b), _ids(_fineTuneLicense(carol, b, 3_333)));
        uint256 lb = _fineTuneLicense(dave, b, 2_000);
        uint256 la = _fineTuneLicense(dave, a, 500);
        d = _mintChild(dave, _ids(b, a), _ids(lb, la));
    }

    function _sell(uint256 modelId, address currency, uint256 price) internal returns (uint256) {
        return _buy(makeBuyer(), _publish(_terms(modelId, LicenseKind.Access, currency, price, 0)));
    }

    function makeBuyer() internal pure returns (address) {
        return address(0xBEEF);
    }

    function _creditsSum(address currency) internal view returns (uint256) {
        return market.credits(alice, currency) + market.credits(bob, currency) + market.credits(carol, currency)
            + market.credits(dave, currency);
    }

    function test_split_threeLevelsExact() public {
        uint256 offering = _publish(_terms(c, LicenseKind.Access, NATIVE, 999_999, 0));
        vm.deal(makeBuyer(), 999_999);
        // Depth first: A's share of B's share, B's remainder, then C's remainder.
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(alice, NATIVE, 5, a, 25_897);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(bob, NATIVE, 5, b, 307_402);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(carol, NATIVE, 5, c, 666_700);
        vm.prank(makeBuyer());
        market.buy{value: 999_999}(offering, makeBuyer(), 999_999, bytes32(0));

        // 999_999 * 33.33% = 333_299.67 -> 333_299 to B, the 0.67 stays with C's owner.
        vm.assertEq(market.credits(carol, NATIVE), 666_700, "C owner: 999_999 - 333_299");
        // 333_299 * 7.77% = 25_897.33 -> 25_897 to A, the rest with B's owner.
        vm.assertEq(market.credits(bob, NATIVE), 307_402, "B owner: 333_299 - 25_897");
        vm.assertEq(market.credits(alice, NATIVE), 25_897, "A owner");
        vm.assertEq(_creditsSum(NATIVE), 999_999, "every wei credited");
        vm.assertEq(address(market).balance, 999_999, "received");
    }

    function test_split_diamondPaysBothPaths() public {
        _sell(d, address(token), 1_000_001);
        // Via B: 200_000 to B, of which 15_540 to A. Directly: 50_000 to A.
        vm.assertEq(market.credits(alice, address(token)), 15_540 + 50_000, "A via both paths");
        vm.assertEq(market.credits(bob, address(token)), 184_460, "B");
        vm.assertEq(market.credits(dave, address(token)), 750_001, "D keeps the remainders");
        vm.assertEq(market.credits(carol, address(token)), 0, "C is not an ancestor of D");
        vm.assertEq(_creditsSum(address(token)), 1_000_001, "every unit credited");
        vm.assertEq(token.balanceOf(address(market)), 1_000_001, "held");
    }

    function test_split_renewalSplitsAgain() public {
        uint256 lic = _buy(makeBuyer(), _publish(_terms(c, LicenseKind.Access, NATIVE, 999_999, DAY)));
        _renew(makeBuyer(), lic);
        vm.assertEq(market.credits(alice, NATIVE), 2 * 25_897, "A twice");
        vm.assertEq(market.credits(bob, NATIVE), 2 * 307_402, "B twice");
        vm.assertEq(market.credits(carol, NATIVE), 2 * 666_700, "C twice");
    }

    function test_split_dustSharesAreSkipped() public {
        _sell(b, NATIVE, 12); // 12 * 7.77% = 0.93 -> nothing to A
        vm.assertEq(market.credits(bob, NATIVE), 12, "all to B");
        vm.assertEq(market.credits(alice, NATIVE), 0, "no dust to A");
    }

    function test_split_fullShareLeavesOwnerNothing() public {
        uint256 e = _mintChild(alice, _ids(c), _ids(_fineTuneLicense(alice, c, 10_000)));
        vm.prank(alice);
        registry.transferFrom(alice, address(0xE), e);
        vm.roll(block.number + 1);
        _sell(e, NATIVE, 1_000);
        vm.assertEq(market.credits(address(0xE), NATIVE), 0, "E owner gets nothing");
        // 1_000 to C: 333 to B (33.3 of which 25 to A).
        vm.assertEq(market.credits(carol, NATIVE), 667, "C");
        vm.assertEq(market.credits(bob, NATIVE), 308, "B");
        vm.assertEq(market.credits(alice, NATIVE), 25, "A");
    }

    function test_split_followsCurrentOwners() public {
        vm.prank(bob);
        registry.transferFrom(bob, address(0xB2), b);
        vm.roll(block.number + 1);
        _sell(c, NATIVE, 999_999);
        vm.assertEq(market.credits(address(0xB2), NATIVE), 307_402, "B's new owner");
        vm.assertEq(market.credits(bob, NATIVE), 0, "B's old owner");
    }

    function test_split_ownedParentWithoutFloorOwesNothing() public {
        uint256 e = _mintChild(alice, _ids(a), _ids(0));
        _sell(e, NATIVE, 1 ether);
        vm.assertEq(market.credits(alice, NATIVE), 1 ether, "one owner");
    }

    /// The owner path owes the parent's floor like any other: to whoever owns the parent at the
    /// sale.
    function test_split_ownedParentEdgeOwesTheFloor() public {
        MintParams memory p = _params(alice);
        p.derivativeRoyaltyBps = 1_000;
        vm.prank(alice);
        uint256 f = registry.mint(p);
        uint256 e = _mintChild(alice, _ids(f), _ids(0));
        vm.prank(alice);
        registry.transferFrom(alice, carol, f);
        vm.roll(block.number + 1);
        _sell(e, NATIVE, 1 ether);
        vm.assertEq(market.credits(carol, NATIVE), 0.1 ether, "F's owner: the 10% floor");
        vm.assertEq(market.credits(alice, NATIVE), 0.9 ether, "E's owner: the rest");
    }

    function test_split_sameOwnerOfSeveralNodesSums() public {
        uint256 e = _mintChild(carol, _ids(c), _ids(_fineTuneLicense(carol, c, 5_000)));
        _sell(e, NATIVE, 999_999);
        // 499_999 to C (of which 166_649 to B, of which 12_948 to A), 500_000 stays with E.
        vm.assertEq(market.credits(alice, NATIVE), 12_948, "A");
        vm.assertEq(market.credits(bob, NATIVE), 166_649 - 12_948, "B");
        vm.assertEq(market.credits(carol, NATIVE), 500_000 + 499_999 - 166_649, "C and E, both carol's");
        vm.assertEq(_creditsSum(NATIVE), 999_999, "sum");
    }

    function test_split_maxPriceDoesNotOverflow() public {
        // Prices are at most 2**96 - 1 (larger ones revert PriceTooLarge at publish); the largest
        // splits exactly.
        uint256 price = type(uint96).max;
        uint256 offering = _publish(_terms(c, LicenseKind.Access, NATIVE, price, 0));
        vm.deal(makeBuyer(), price);
        vm.prank(makeBuyer());
        market.buy{value: price}(offering, makeBuyer(), price, bytes32(0));
        vm.assertEq(_creditsSum(NATIVE), price, "every wei credited");
        vm.assertEq(market.credits(carol, NATIVE), price - price * 3_333 / 10_000, "C owner keeps the rest");
    }
}
