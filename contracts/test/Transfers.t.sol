// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {LicenseKind, Terms} from "../src/Types.sol";

/// @notice License tokens: non-transferable ones stay put (ERC-5192 locked), transferable ones
/// move and the rights (`grants`) and balances follow them.
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

        // It cannot be approved; an operator for all of bob's licenses cannot move it either,
        // and the model owner is no operator at all.
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, soulbound));
        market.approve(dave, soulbound);
        vm.prank(bob);
        market.setApprovalForAll(dave, true);
        vm.prank(dave);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, soulbound));
        market.transferFrom(bob, dave, soulbound);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InsufficientApproval.selector, alice, soulbound));
        market.transferFrom(bob, alice, soulbound);

        vm.assertEq(market.ownerOf(soulbound), bob, "still bob's");
        vm.assertTrue(market.grants(soulbound, bob, model, LicenseKind.Access, T0), "bob still granted");
        vm.assertTrue(market.locked(soulbound), "locked");
        vm.assertFalse(market.locked(movable), "the other is not");
    }

    function test_transferable_movesAndIndexFollows() public {
        vm.expectEmit(address(market));
        emit IERC721.Transfer(bob, carol, movable);
        vm.prank(bob);
        market.transferFrom(bob, carol, movable);

        vm.assertEq(market.ownerOf(movable), carol, "carol holds it");
        vm.assertEq(market.balanceOf(bob), 1, "bob keeps the other");
        vm.assertEq(market.balanceOf(carol), 1, "carol");
        vm.assertEq(_licensesHeld(bob, model, LicenseKind.Access), _ids(soulbound), "bob's");
        vm.assertEq(_licensesHeld(carol, model, LicenseKind.Access), _ids(movable), "carol's");
        vm.assertTrue(market.grants(movable, carol, model, LicenseKind.Access, T0 + 1), "carol granted");
        vm.assertFalse(market.grants(movable, bob, model, LicenseKind.Access, T0 + 1), "bob no longer by it");
        (bool allowed, uint256 by) = _rightsOf(carol, model, LicenseKind.Access, T0 + 1);
        vm.assertTrue(allowed, "carol allowed");
        vm.assertEq(by, movable, "by the moved license");
        (, address holder) = market.licenseOf(movable);
        vm.assertEq(holder, carol, "licenseOf holder");
    }

    function test_transferable_previousHolderLosesRights() public {
        // dave holds only the movable license; after giving it away he has no rights.
        vm.prank(bob);
        market.transferFrom(bob, dave, movable);
        (bool allowed, uint256 by) = _rightsOf(dave, model, LicenseKind.Access, T0);
        vm.assertTrue(allowed && by == movable, "dave allowed");
        vm.prank(dave);
        market.safeTransferFrom(dave, carol, movable);
        vm.assertFalse(market.grants(movable, dave, model, LicenseKind.Access, T0), "dave not granted");
        (allowed, by) = _rightsOf(dave, model, LicenseKind.Access, T0);
        vm.assertFalse(allowed, "dave not allowed");
        vm.assertEq(by, 0, "no license");
        vm.assertEq(market.balanceOf(dave), 0, "dave holds nothing");
    }

    function test_transferable_byApprovedOperator() public {
        vm.prank(bob);
        market.setApprovalForAll(dave, true);
        vm.prank(dave);
        market.transferFrom(bob, carol, movable);
        vm.assertEq(market.ownerOf(movable), carol, "moved");
    }

    function test_transferable_byApprovedAccount() public {
        vm.prank(bob);
        market.approve(dave, movable);
        vm.assertEq(market.getApproved(movable), dave, "approved");
        vm.prank(dave);
        market.transferFrom(bob, carol, movable);
        vm.assertEq(market.ownerOf(movable), carol, "moved");
        vm.assertEq(market.getApproved(movable), address(0), "approval cleared");
    }

    function test_transferable_toSelfKeepsBalance() public {
        vm.prank(bob);
        market.transferFrom(bob, bob, movable);
        vm.assertEq(market.balanceOf(bob), 2, "both still held");
        vm.assertTrue(market.grants(movable, bob, model, LicenseKind.Access, T0), "still granted");
    }

    function test_transfer_expiredLicenseStillMovesButGrantsNothing() public {
        vm.warp(T0 + 30 * DAY);
        vm.prank(bob);
        market.transferFrom(bob, carol, movable);
        vm.assertFalse(market.grants(movable, carol, model, LicenseKind.Access, uint64(block.timestamp)), "expired");
        vm.assertTrue(market.grants(movable, carol, model, LicenseKind.Access, T0), "was valid at T0");
    }

    function test_modelTransfer_movesOwnerRights() public {
        vm.assertTrue(market.grants(0, alice, model, LicenseKind.FineTune, 0), "owner allowed");
        vm.prank(alice);
        registry.transferFrom(alice, carol, model);
        vm.assertFalse(market.grants(0, alice, model, LicenseKind.FineTune, T0), "former owner");
        vm.assertTrue(market.grants(0, carol, model, LicenseKind.Output, T0), "new owner");
        (bool allowed, uint256 by) = _rightsOf(carol, model, LicenseKind.Output, T0);
        vm.assertTrue(allowed && by == 0, "as owner");
    }
}
