// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {LicenseKind, Terms} from "../src/Types.sol";

/// @notice License tokens: non-transferable ones stay put, transferable ones move and the
/// (holder, model, kind) index used by rightsOf follows them.
contract TransfersTest is Fixture {
    uint256 internal model;
    uint256 internal soulbound;
    uint256 internal movable;

    function setUp() public override {
        super.setUp();
        model = _mintBase(alice);
        Terms memory t = _terms(model, LicenseKind.Access, NATIVE, 1, 30 * DAY);
        t.transferable = false;
        soulbound = _buy(bob, _publish(t));
        t.transferable = true;
        movable = _buy(bob, _publish(t));
    }

    function test_nonTransferable_revertsOnEveryTransferPath() public {
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, soulbound));
        market.transferFrom(bob, carol, soulbound);

        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, soulbound));
        market.safeTransferFrom(bob, carol, soulbound);

        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, soulbound));
        market.safeTransferFrom(bob, carol, soulbound, "");

        // An approved operator cannot move it either, nor can the model owner.
        vm.prank(bob);
        market.approve(dave, soulbound);
        vm.prank(dave);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, soulbound));
        market.transferFrom(bob, dave, soulbound);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, soulbound));
        market.transferFrom(bob, alice, soulbound);

        vm.assertEq(market.ownerOf(soulbound), bob, "still bob's");
        (bool allowed, uint256 by) = market.rightsOf(bob, model, LicenseKind.Access, T0);
        vm.assertTrue(allowed, "bob still allowed");
        vm.assertTrue(by == soulbound || by == movable, "by one of his licenses");
    }

    function test_transferable_movesAndIndexFollows() public {
        vm.expectEmit(address(market));
        emit IERC721.Transfer(bob, carol, movable);
        vm.prank(bob);
        market.transferFrom(bob, carol, movable);

        vm.assertEq(market.ownerOf(movable), carol, "carol holds it");
        vm.assertEq(market.licensesHeld(bob, model, LicenseKind.Access), _ids(soulbound), "bob keeps the other");
        vm.assertEq(market.licensesHeld(carol, model, LicenseKind.Access), _ids(movable), "carol");
        (bool allowed, uint256 by) = market.rightsOf(carol, model, LicenseKind.Access, T0 + 1);
        vm.assertTrue(allowed, "carol allowed");
        vm.assertEq(by, movable, "by the moved license");
        (, address holder) = market.licenseOf(movable);
        vm.assertEq(holder, carol, "licenseOf holder");
    }

    function test_transferable_previousHolderLosesRights() public {
        // dave holds only the movable license; after giving it away he has no rights.
        vm.prank(bob);
        market.transferFrom(bob, dave, movable);
        (bool allowed, uint256 by) = market.rightsOf(dave, model, LicenseKind.Access, T0);
        vm.assertTrue(allowed && by == movable, "dave allowed");
        vm.prank(dave);
        market.safeTransferFrom(dave, carol, movable);
        (allowed, by) = market.rightsOf(dave, model, LicenseKind.Access, T0);
        vm.assertFalse(allowed, "dave not allowed");
        vm.assertEq(by, 0, "no license");
        vm.assertEq(market.licensesHeld(dave, model, LicenseKind.Access).length, 0, "index emptied");
    }

    function test_transferable_byApprovedOperator() public {
        vm.prank(bob);
        market.setApprovalForAll(dave, true);
        vm.prank(dave);
        market.transferFrom(bob, carol, movable);
        vm.assertEq(market.ownerOf(movable), carol, "moved");
    }

    function test_transferable_toSelfKeepsIndex() public {
        vm.prank(bob);
        market.transferFrom(bob, bob, movable);
        vm.assertEq(market.licensesHeld(bob, model, LicenseKind.Access).length, 2, "both still indexed");
    }

    function test_transfer_expiredLicenseStillMovesButGrantsNothing() public {
        vm.warp(T0 + 30 * DAY);
        vm.prank(bob);
        market.transferFrom(bob, carol, movable);
        (bool allowed,) = market.rightsOf(carol, model, LicenseKind.Access, uint64(block.timestamp));
        vm.assertFalse(allowed, "expired");
        (allowed,) = market.rightsOf(carol, model, LicenseKind.Access, T0);
        vm.assertTrue(allowed, "was valid at T0");
    }

    function test_modelTransfer_movesOwnerRights() public {
        (bool allowed, uint256 by) = market.rightsOf(alice, model, LicenseKind.FineTune, 0);
        vm.assertTrue(allowed, "owner allowed");
        vm.assertEq(by, 0, "as owner");
        vm.prank(alice);
        registry.transferFrom(alice, carol, model);
        (allowed,) = market.rightsOf(alice, model, LicenseKind.FineTune, T0);
        vm.assertFalse(allowed, "former owner");
        (allowed, by) = market.rightsOf(carol, model, LicenseKind.Output, T0);
        vm.assertTrue(allowed && by == 0, "new owner");
    }
}
