// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {MockERC20} from "./mocks/MockERC20.sol";
import {IModelRegistry, LicenseKind, MintParams, Offering, Terms} from "../src/Types.sol";

/// @notice Publishing and closing offerings, and the market's constructor and constants.
contract OfferingsTest is Fixture {
    uint256 internal model;

    function setUp() public override {
        super.setUp();
        model = _mintBase(alice);
    }

    function test_constructor_revertsForZeroRegistry() public {
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.ZeroAddress.selector));
        new LicenseMarket(IModelRegistry(address(0)), new address[](0));
    }

    function test_constructor_acceptsTheListedCurrenciesOnly() public {
        MockERC20 usd = new MockERC20("Dollar", "USD");
        address[] memory currencies = new address[](2);
        (currencies[0], currencies[1]) = (address(token), address(usd));
        vm.expectEmit();
        emit LicenseMarket.CurrencyAccepted(address(token));
        vm.expectEmit();
        emit LicenseMarket.CurrencyAccepted(address(usd));
        LicenseMarket m = new LicenseMarket(registry, currencies);
        vm.assertTrue(m.acceptsCurrency(address(token)), "token");
        vm.assertTrue(m.acceptsCurrency(address(usd)), "usd");
        vm.assertFalse(m.acceptsCurrency(NATIVE), "the native currency needs no listing");
        vm.assertFalse(m.acceptsCurrency(bob), "others");
    }

    function test_constructor_revertsForInvalidCurrency() public {
        address[] memory currencies = new address[](2);
        currencies[0] = address(token);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.InvalidCurrency.selector, address(0)));
        new LicenseMarket(registry, currencies);
        currencies[1] = bob;
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.InvalidCurrency.selector, bob));
        new LicenseMarket(registry, currencies);
    }

    function test_constants() public view {
        vm.assertEq(address(market.registry()), address(registry), "registry");
        vm.assertEq(market.MAX_DURATION(), 100 * 365 days, "max duration");
        vm.assertEq(market.name(), "AI Model License", "name");
        vm.assertEq(market.symbol(), "MLIC", "symbol");
        vm.assertTrue(market.supportsInterface(0x80ac58cd), "ERC721");
        vm.assertTrue(market.supportsInterface(0x5b5e139f), "ERC721Metadata");
        vm.assertTrue(market.supportsInterface(0x01ffc9a7), "ERC165");
        vm.assertTrue(market.supportsInterface(0xb45a3c0e), "ERC5192");
        vm.assertFalse(market.supportsInterface(0x2a55205a), "no ERC2981");
    }

    // ------------------------------------------------------------ publishOffering

    function test_publish_storesTermsAndEmits() public {
        Terms memory t = _terms(model, LicenseKind.FineTune, address(token), 5 ether, 30 * DAY);
        t.supplyCap = 10;
        t.transferable = false;
        t.commercialUse = false;
        t.royaltyBps = 2_500;
        t.renewalPeriod = 7 * DAY;
        vm.expectEmit(address(market));
        emit LicenseMarket.OfferingPublished(1, model, alice, t);
        vm.prank(alice);
        uint256 id = market.publishOffering(t);

        vm.assertEq(id, 1, "id");
        vm.assertEq(market.totalOfferings(), 1, "total");
        // Stored packed, without the URI and hash (in the event only).
        Offering memory expected = Offering({
            // forge-lint: disable-next-line(unsafe-typecast)
            modelId: uint64(model),
            duration: 30 * DAY,
            sold: 0,
            supplyCap: 10,
            kind: LicenseKind.FineTune,
            royaltyBps: 2_500,
            transferable: false,
            commercialUse: false,
            closed: false,
            escrowed: false,
            currency: address(token),
            price: 5 ether,
            publisher: alice,
            closedAt: 0,
            // forge-lint: disable-next-line(unsafe-typecast)
            renewalPeriod: uint32(7 * DAY),
            deliveryPeriod: 0
        });
        vm.assertEq(keccak256(abi.encode(market.offeringOf(id))), keccak256(abi.encode(expected)), "offering");
    }

    function test_publish_idsAreSequentialAcrossModels() public {
        uint256 other = _mintBase(bob);
        vm.assertEq(_publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0)), 1, "1");
        vm.assertEq(_publish(_terms(other, LicenseKind.Output, NATIVE, 1, 0)), 2, "2");
        vm.assertEq(_publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0)), 3, "3");
    }

    function test_publish_revertsForUnknownModel() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownModel.selector, 2));
        market.publishOffering(_terms(2, LicenseKind.Access, NATIVE, 1, 0));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownModel.selector, 0));
        market.publishOffering(_terms(0, LicenseKind.Access, NATIVE, 1, 0));
    }

    function test_publish_revertsForNonOwner() public {
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotModelOwner.selector, model, bob));
        market.publishOffering(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
    }

    function test_publish_followsModelOwnership() public {
        vm.prank(alice);
        registry.transferFrom(alice, bob, model);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotModelOwner.selector, model, alice));
        market.publishOffering(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.prank(bob);
        market.publishOffering(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
    }

    function test_publish_revertsForRoyaltyOnNonFineTune() public {
        Terms memory t = _terms(model, LicenseKind.Access, NATIVE, 1, 0);
        t.royaltyBps = 1;
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(LicenseMarket.RoyaltyOnlyForFineTune.selector, LicenseKind.Access, uint16(1))
        );
        market.publishOffering(t);

        t.kind = LicenseKind.Output;
        t.royaltyBps = 10_000;
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(LicenseMarket.RoyaltyOnlyForFineTune.selector, LicenseKind.Output, uint16(10_000))
        );
        market.publishOffering(t);
    }

    function test_publish_revertsForRoyaltyAboveTotal() public {
        Terms memory t = _terms(model, LicenseKind.FineTune, NATIVE, 1, 0);
        t.royaltyBps = 10_001;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.RoyaltyAboveTotal.selector, uint16(10_001)));
        market.publishOffering(t);

        t.royaltyBps = 10_000;
        vm.prank(alice);
        market.publishOffering(t);
    }

    function test_publish_fineTuneRoyaltyAtLeastTheFloor() public {
        MintParams memory p = _params(alice);
        p.derivativeRoyaltyBps = 1_500;
        vm.prank(alice);
        uint256 floored = registry.mint(p);
        Terms memory t = _terms(floored, LicenseKind.FineTune, NATIVE, 1, 0);
        t.royaltyBps = 1_499;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.RoyaltyBelowFloor.selector, uint16(1_499), uint16(1_500)));
        market.publishOffering(t);

        t.royaltyBps = 1_500;
        vm.prank(alice);
        market.publishOffering(t);
        t.royaltyBps = 10_000;
        vm.prank(alice);
        market.publishOffering(t);
        // Other kinds carry no royalty, floor or not.
        vm.prank(alice);
        market.publishOffering(_terms(floored, LicenseKind.Access, NATIVE, 1, 0));
    }

    function test_publish_revertsForCurrencyNotAccepted() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.CurrencyNotAccepted.selector, bob));
        market.publishOffering(_terms(model, LicenseKind.Access, bob, 1, 0));
        MockERC20 other = new MockERC20("Other", "OTH");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.CurrencyNotAccepted.selector, address(other)));
        market.publishOffering(_terms(model, LicenseKind.Access, address(other), 1, 0));
    }

    function test_publish_revertsForPriceTooLarge() public {
        uint256 max = type(uint96).max;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PriceTooLarge.selector, max + 1));
        market.publishOffering(_terms(model, LicenseKind.Access, NATIVE, max + 1, 0));
        uint256 id = _publish(_terms(model, LicenseKind.Access, address(token), max, 0));
        vm.assertEq(market.offeringOf(id).price, max, "largest price");
    }

    function test_publish_revertsForSupplyCapTooLarge() public {
        Terms memory t = _terms(model, LicenseKind.Access, NATIVE, 1, 0);
        t.supplyCap = uint64(type(uint32).max) + 1;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.SupplyCapTooLarge.selector, t.supplyCap));
        market.publishOffering(t);
        t.supplyCap = type(uint32).max;
        vm.assertEq(market.offeringOf(_publish(t)).supplyCap, type(uint32).max, "largest cap");
    }

    function test_publish_revertsForRenewalPeriodTooLong() public {
        uint64 max = market.MAX_DURATION();
        Terms memory t = _terms(model, LicenseKind.Access, NATIVE, 1, DAY);
        t.renewalPeriod = max + 1;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DurationTooLong.selector, max + 1, max));
        market.publishOffering(t);
        t.renewalPeriod = max;
        vm.assertEq(market.offeringOf(_publish(t)).renewalPeriod, max, "longest period");
    }

    function test_publish_revertsForDurationTooLong() public {
        uint64 max = market.MAX_DURATION();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DurationTooLong.selector, max + 1, max));
        market.publishOffering(_terms(model, LicenseKind.Access, NATIVE, 1, max + 1));

        vm.prank(alice);
        market.publishOffering(_terms(model, LicenseKind.Access, NATIVE, 1, max));
    }

    function test_publish_freeAndPerpetualAllowed() public {
        uint256 id = _publish(_terms(model, LicenseKind.Output, address(token), 0, 0));
        vm.assertEq(market.offeringOf(id).price, 0, "free");
    }

    function test_offeringOf_revertsForUnknownOffering() public {
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownOffering.selector, 0));
        market.offeringOf(0);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownOffering.selector, 1));
        market.offeringOf(1);
    }

    // ------------------------------------------------------------ closeOffering

    function test_close_closesAndEmits() public {
        uint256 id = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.expectEmit(address(market));
        emit LicenseMarket.OfferingClosed(id, model, alice);
        vm.warp(T0 + 5 * DAY);
        vm.prank(alice);
        market.closeOffering(id);
        vm.assertTrue(market.offeringOf(id).closed, "closed");
        vm.assertEq(market.offeringOf(id).closedAt, T0 + 5 * DAY, "closed at");
    }

    function test_close_revertsForUnknownOffering() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownOffering.selector, 3));
        market.closeOffering(3);
    }

    function test_close_revertsForNonOwner() public {
        uint256 id = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotModelOwner.selector, model, bob));
        market.closeOffering(id);
    }

    function test_close_revertsWhenAlreadyClosed() public {
        uint256 id = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.prank(alice);
        market.closeOffering(id);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, id));
        market.closeOffering(id);
    }

    /// An offering sells only while its publisher owns the model: a new owner publishes its own.
    function test_offering_sellsOnlyWhileThePublisherOwnsTheModel() public {
        uint256 id = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.prank(alice);
        registry.transferFrom(alice, carol, model);
        vm.roll(block.number + 1);
        vm.deal(bob, 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PublisherNotOwner.selector, id, alice, carol));
        market.buy{value: 1}(id, bob, 1, bytes32(0));

        // Back with alice, it sells again (from the block after the transfer).
        vm.prank(carol);
        registry.transferFrom(carol, alice, model);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, model));
        market.buy{value: 1}(id, bob, 1, bytes32(0));
        vm.roll(block.number + 1);
        _buy(bob, id);
        vm.assertEq(market.credits(alice, NATIVE), 1, "alice");
    }

    function test_close_byNewModelOwner() public {
        uint256 id = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.prank(alice);
        registry.transferFrom(alice, carol, model);
        vm.roll(block.number + 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotModelOwner.selector, model, alice));
        market.closeOffering(id);
        vm.expectEmit(address(market));
        emit LicenseMarket.OfferingClosed(id, model, carol);
        vm.prank(carol);
        market.closeOffering(id);
        vm.assertEq(market.offeringOf(id).publisher, alice, "publisher unchanged");
    }

    function test_close_keepsSoldLicensesValid() public {
        uint256 id = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 30 * DAY));
        uint256 lic = _buy(bob, id);
        vm.prank(alice);
        market.closeOffering(id);
        vm.assertTrue(market.isLicenseValid(lic, T0 + 30 * DAY - 1), "still valid");
        vm.assertTrue(market.grants(lic, bob, model, LicenseKind.Access, T0), "granted");
        (bool allowed, uint256 by) = _rightsOf(bob, model, LicenseKind.Access, T0);
        vm.assertTrue(allowed, "allowed");
        vm.assertEq(by, lic, "by license");
        vm.assertEq(market.ownerOf(lic), bob, "not revoked");
    }

    function test_close_otherOfferingsUnaffected() public {
        uint256 a = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        uint256 b = _publish(_terms(model, LicenseKind.Access, NATIVE, 1, 0));
        vm.prank(alice);
        market.closeOffering(a);
        vm.expectEmit(address(market));
        emit IERC721.Transfer(address(0), bob, 1);
        _buy(bob, b);
    }
}
