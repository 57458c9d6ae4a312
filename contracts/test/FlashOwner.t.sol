// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {LicenseKind, MintParams, Terms} from "../src/Types.sol";

/// @notice Whoever holds a model for one block (an NFT flash loan, an AMM pool bought from and
/// sold back to, an escrow called through) acts as its owner for nothing: each test was a
/// passing proof of concept against the first v2 contracts (review of v2, R1 to R4a) and now
/// meets `OwnerChangedThisBlock`. "Flash" moves the model to Mallory and back in one block.
contract FlashOwnerTest is Fixture {
    address internal mallory = address(0xBAD);

    function _flashIn(uint256 model) internal {
        address owner = registry.ownerOf(model);
        vm.prank(owner);
        registry.transferFrom(owner, mallory, model);
    }

    function _flashOut(uint256 model, address back) internal {
        vm.prank(mallory);
        registry.transferFrom(mallory, back, model);
    }

    function _changed(uint256 model) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, model);
    }

    /// R1: renewals paid to a flash owner would come back to her: she could extend her own
    /// license for ever at no cost.
    function test_flashOwnerCannotRenewHerOwnLicense() public {
        uint256 a = _mintBase(alice);
        uint256 lic = _buy(mallory, _publish(_terms(a, LicenseKind.Access, NATIVE, 1 ether, 30 days)));
        vm.roll(block.number + 10);
        vm.deal(mallory, 1 ether);
        _flashIn(a);
        vm.prank(mallory);
        vm.expectRevert(_changed(a));
        market.renew{value: 1 ether}(lic, 1 ether);
        _flashOut(a, alice);
        // The next block, the renewal pays Alice.
        vm.roll(block.number + 1);
        vm.prank(mallory);
        market.renew{value: 1 ether}(lic, 1 ether);
        vm.assertEq(market.credits(alice, NATIVE), 2 ether, "both months paid to Alice");
    }

    /// R2: the owner path of a mint under a flash owner would skip the fine-tune offering's price,
    /// cap and royalty (and with a zero floor, owe nothing).
    function test_flashOwnerCannotDeriveByTheOwnerPath() public {
        uint256 a = _mintBase(alice);
        Terms memory t = _terms(a, LicenseKind.FineTune, NATIVE, 5 ether, 0);
        t.royaltyBps = 2_000;
        t.supplyCap = 1;
        _publish(t);
        vm.roll(block.number + 10);
        MintParams memory p = _params(mallory);
        (p.parents, p.licenses) = (_ids(a), _zeros(1));
        _flashIn(a);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.OwnerChangedThisBlock.selector, a));
        registry.mint(p);
        _flashOut(a, alice);
    }

    /// R3: a flash owner would close every offering, ending its licenses' renewals for good.
    function test_flashOwnerCannotCloseOfferings() public {
        uint256 a = _mintBase(alice);
        uint256 off = _publish(_terms(a, LicenseKind.Access, NATIVE, 1 ether, 30 days));
        uint256 lic = _buy(carol, off);
        vm.roll(block.number + 10);
        _flashIn(a);
        vm.prank(mallory);
        vm.expectRevert(_changed(a));
        market.closeOffering(off);
        _flashOut(a, alice);
        vm.roll(block.number + 1);
        vm.warp(T0 + 29 days);
        vm.assertEq(_renew(carol, lic), T0 + 60 days, "still renewable");
    }

    /// R4a: a flash owner of an ancestor would take the ancestor's royalty share of his own
    /// purchase of a derivative's license (half price with a 50% share). The share is held, and
    /// goes to whoever owns the ancestor in a later block.
    function test_flashOwnerOfAnAncestorTakesNoShare() public {
        uint256 a = _mintBase(alice);
        uint256 d = _mintChild(bob, _ids(a), _ids(_fineTuneLicense(bob, a, 5_000)));
        uint256 off = _publish(_terms(d, LicenseKind.Access, NATIVE, 10 ether, 0));
        vm.roll(block.number + 10);
        vm.deal(mallory, 10 ether);
        _flashIn(a);
        vm.prank(mallory);
        market.buy{value: 10 ether}(off, mallory, 10 ether, bytes32(0));
        vm.assertEq(market.credits(mallory, NATIVE), 0, "nothing to the flash owner");
        vm.assertEq(market.heldShares(a, NATIVE), 5 ether, "the ancestor's share held");
        vm.assertEq(market.credits(bob, NATIVE), 5 ether, "the seller's part paid");
        vm.expectRevert(_changed(a));
        market.releaseHeld(a, NATIVE);
        _flashOut(a, alice);
        vm.roll(block.number + 1);
        vm.prank(mallory);
        market.releaseHeld(a, NATIVE);
        vm.assertEq(market.credits(alice, NATIVE), 5 ether, "the ancestor's share to its owner");
        vm.assertEq(market.heldShares(a, NATIVE), 0, "released once");
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NothingHeld.selector, a, NATIVE));
        market.releaseHeld(a, NATIVE);
    }

    /// An ancestor's owner moving it (to himself) in every block cannot block sales or key
    /// deliveries of its descendants: a buyer owning an ancestor of an escrowed model made the
    /// delivery revert until its deadline passed, and took the refund with the key published
    /// in the reverted delivery.
    function test_movingAnAncestorBlocksNoSaleAndNoDelivery() public {
        uint256 a = _mintBase(bob);
        MintParams memory p = _params(alice);
        p.encrypted = true;
        (p.parents, p.licenses) = (_ids(a), _ids(_fineTuneLicense(alice, a, 1_000)));
        vm.prank(alice);
        uint256 d = registry.mint(p);
        Terms memory t = _terms(d, LicenseKind.Access, NATIVE, 1 ether, 0);
        t.deliveryPeriod = 1 days;
        uint256 off = _publish(t);
        vm.roll(block.number + 1);
        vm.prank(bob);
        registry.transferFrom(bob, bob, a);
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        uint256 lic = market.buy{value: 1 ether}(off, bob, 1 ether, bytes32(uint256(1)));
        vm.roll(block.number + 1);
        vm.prank(bob);
        registry.transferFrom(bob, bob, a);
        vm.prank(alice);
        market.deliverKey(lic, d, bob, bytes32(uint256(1)), "bafkreikey");
        vm.assertEq(market.credits(alice, NATIVE), 0.9 ether, "the seller is paid");
        vm.assertEq(market.heldShares(a, NATIVE), 0.1 ether, "the moved ancestor's share held");
        vm.roll(block.number + 1);
        market.releaseHeld(a, NATIVE);
        vm.assertEq(market.credits(bob, NATIVE), 0.1 ether, "and its owner's the next block");
    }

    /// A license is valid on [start, expiry): at its expiry second it has lapsed, so renewing it
    /// then would turn "not valid at expiry" into "valid" after the fact.
    function test_renewAtTheExpirySecondIsALapse() public {
        uint256 a = _mintBase(alice);
        uint256 lic = _buy(carol, _publish(_terms(a, LicenseKind.Output, NATIVE, 1 ether, 30 days)));
        vm.warp(T0 + 30 days);
        vm.deal(carol, 1 ether);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseLapsed.selector, lic, T0 + 30 days));
        market.renew{value: 1 ether}(lic, 1 ether);
    }

    /// Binding a market of another registry would make every licensed mint fail for ever.
    function test_bindMarketRefusesAMarketOfAnotherRegistry() public {
        ModelRegistry fresh = new ModelRegistry();
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.MarketOfAnotherRegistry.selector, address(market)));
        fresh.bindMarket(market);
    }
}
