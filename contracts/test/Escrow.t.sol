// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Cheats.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {License, LicenseKind, MintParams, Offering, Terms} from "../src/Types.sol";

/// @notice A model owner (a contract) whose `receive`, while the market pays out its
/// withdrawal, tries to deliver a key and to refund a license: both must meet the guard.
contract ReentrantKeyOwner {
    LicenseMarket public immutable market;
    uint256 public deliverId;
    uint256 public deliverModel;
    address public deliverHolder;
    bytes32 public deliverRecipient;
    uint256 public refundId;
    bytes public deliverRevert;
    bytes public refundRevert;

    constructor(LicenseMarket market_) {
        market = market_;
    }

    function mintModel(ModelRegistry registry, MintParams calldata p) external returns (uint256) {
        return registry.mint(p);
    }

    function publish(Terms calldata t) external returns (uint256) {
        return market.publishOffering(t);
    }

    function deliver(uint256 licenseId, uint256 modelId, address holder, bytes32 recipient) external {
        market.deliverKey(licenseId, modelId, holder, recipient, "bafkrei-wrapped-key");
    }

    function arm(uint256 deliverId_, uint256 modelId, address holder, bytes32 recipient, uint256 refundId_) external {
        (deliverId, deliverModel, deliverHolder, deliverRecipient, refundId) =
        (deliverId_, modelId, holder, recipient, refundId_);
    }

    function withdrawNative() external returns (uint256) {
        return market.withdraw(address(0), address(this));
    }

    receive() external payable {
        if (deliverId == 0) return;
        try market.deliverKey(deliverId, deliverModel, deliverHolder, deliverRecipient, "bafkrei-wrapped-key") {}
        catch (bytes memory reason) {
            deliverRevert = reason;
        }
        try market.refund(refundId) {}
        catch (bytes memory reason) {
            refundRevert = reason;
        }
        deliverId = 0;
    }
}

/// @notice Escrowed sales of encrypted models: the price is held until the model's owner (or a
/// keeper it approved) delivers the model key wrapped to the buyer's age recipient, then split
/// up the lineage like any sale; undelivered by the deadline, the buyer is refunded. Until
/// delivery the license grants nothing and cannot move, be renewed or admit a derivative.
contract EscrowTest is Fixture {
    uint64 internal constant PERIOD = 3 days;
    string internal constant KEY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    /// An encrypted base model of alice with a 5% derivative floor.
    uint256 internal model;

    function setUp() public override {
        super.setUp();
        model = _mintEncrypted(alice, 500);
    }

    // ------------------------------------------------------------ helpers

    function _mintEncrypted(address owner, uint16 floor) internal returns (uint256) {
        MintParams memory p = _params(owner);
        p.encrypted = true;
        p.derivativeRoyaltyBps = floor;
        vm.prank(owner);
        return registry.mint(p);
    }

    /// Escrow-ready terms: a delivery period set (access and fine-tune offerings of an encrypted
    /// model need one).
    function _escrowTerms(uint256 modelId, LicenseKind kind, address currency, uint256 price, uint64 duration)
        internal
        pure
        returns (Terms memory t)
    {
        t = _terms(modelId, kind, currency, price, duration);
        t.deliveryPeriod = PERIOD;
    }

    function _publishEscrowed(uint256 modelId, uint256 price, uint64 duration) internal returns (uint256) {
        return _publish(_escrowTerms(modelId, LicenseKind.Access, NATIVE, price, duration));
    }

    /// A free fine-tune license of encrypted `modelId` for `who`, its key delivered by the owner.
    function _deliveredFineTune(address who, uint256 modelId, uint16 bps) internal returns (uint256 lic) {
        Terms memory t = _escrowTerms(modelId, LicenseKind.FineTune, NATIVE, 0, 0);
        t.royaltyBps = bps;
        lic = _buy(who, _publish(t));
        _deliver(registry.ownerOf(modelId), lic);
    }

    /// Delivers the key of `licenseId` as `by`, for the purchase `_buy` made: of the license's
    /// model, by the buyer, who holds the license (a pending one cannot move), for his own
    /// recipient.
    function _deliver(address by, uint256 licenseId) internal {
        (License memory l, address holder) = market.licenseOf(licenseId);
        vm.prank(by);
        market.deliverKey(licenseId, l.modelId, holder, _recipient(holder), KEY_CID);
    }

    function _credits(address a) internal view returns (uint256) {
        return market.credits(a, NATIVE);
    }

    function _keyNotDelivered(uint256 licenseId) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(LicenseMarket.KeyNotDelivered.selector, licenseId);
    }

    function _notPending(uint256 licenseId) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(LicenseMarket.NotPendingDelivery.selector, licenseId);
    }

    // ------------------------------------------------------------ publishing

    function test_publish_escrowedForAccessAndFineTuneOfAnEncryptedModel() public {
        uint256 access = _publishEscrowed(model, 1 ether, 0);
        Terms memory ft = _escrowTerms(model, LicenseKind.FineTune, NATIVE, 1 ether, 0);
        ft.royaltyBps = 500;
        uint256 fineTune = _publish(ft);
        Offering memory o = market.offeringOf(access);
        vm.assertTrue(o.escrowed, "access escrowed");
        vm.assertEq(o.deliveryPeriod, PERIOD, "delivery period stored");
        vm.assertTrue(market.offeringOf(fineTune).escrowed, "fine-tune escrowed");

        uint256 plain = _mintBase(alice);
        Offering memory p = market.offeringOf(_publish(_terms(plain, LicenseKind.Access, NATIVE, 1 ether, 0)));
        vm.assertFalse(p.escrowed, "a plain model's offering is not");
        vm.assertEq(p.deliveryPeriod, 0, "no delivery period");
    }

    function test_publish_deliveryPeriodBounds() public {
        uint64 max = market.MAX_DELIVERY_PERIOD();
        vm.assertEq(max, 90 days, "90 days");
        Terms memory t = _escrowTerms(model, LicenseKind.Access, NATIVE, 1, 0);
        t.deliveryPeriod = 0;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DeliveryPeriodOutOfRange.selector, 0, max));
        market.publishOffering(t);
        t.deliveryPeriod = max + 1;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DeliveryPeriodOutOfRange.selector, max + 1, max));
        market.publishOffering(t);

        t.deliveryPeriod = 1;
        vm.assertEq(market.offeringOf(_publish(t)).deliveryPeriod, 1, "one second");
        t.deliveryPeriod = max;
        vm.assertEq(market.offeringOf(_publish(t)).deliveryPeriod, max, "longest");
    }

    /// A delivery period means nothing where no key is sold: a plain model's offerings and
    /// output licenses of an encrypted one refuse it.
    function test_publish_deliveryPeriodRefusedWhereNotEscrowed() public {
        uint256 plain = _mintBase(alice);
        Terms memory t = _escrowTerms(plain, LicenseKind.Access, NATIVE, 1, 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DeliveryPeriodNotApplicable.selector));
        market.publishOffering(t);
        t = _escrowTerms(model, LicenseKind.Output, NATIVE, 1, 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DeliveryPeriodNotApplicable.selector));
        market.publishOffering(t);
    }

    /// Output rights on an encrypted model need no key: sold and paid at once, as ever.
    function test_outputOfferingOfEncryptedModelIsNotEscrowed() public {
        uint256 offering = _publish(_terms(model, LicenseKind.Output, NATIVE, 1 ether, 0));
        vm.assertFalse(market.offeringOf(offering).escrowed, "not escrowed");
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        uint256 lic = market.buy{value: 1 ether}(offering, bob, 1 ether, bytes32(0));
        vm.assertEq(_credits(alice), 1 ether, "paid at once");
        (address payer, uint64 deadline) = market.pendingDelivery(lic);
        vm.assertEq(payer, address(0), "no escrow");
        vm.assertEq(deadline, 0, "no deadline");
        vm.assertTrue(market.grants(lic, bob, model, LicenseKind.Output, T0), "granted at once");
    }

    // ------------------------------------------------------------ buying

    function test_buy_escrowedHoldsThePriceAndCreditsNobody() public {
        uint256 offering = _publishEscrowed(model, 1 ether, 30 * DAY);
        bytes32 recipient = _recipient(carol);
        vm.deal(bob, 1 ether);
        vm.expectEmit(address(market));
        emit IERC721.Transfer(address(0), carol, 1);
        vm.expectEmit(address(market));
        emit LicenseMarket.LicensePurchased(1, offering, model, bob, carol, 1 ether, T0, T0 + 30 * DAY);
        vm.expectEmit(address(market));
        emit LicenseMarket.KeyRequested(1, model, carol, recipient, T0 + PERIOD);
        vm.recordLogs();
        vm.prank(bob);
        uint256 lic = market.buy{value: 1 ether}(offering, carol, 1 ether, recipient);

        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            vm.assertTrue(logs[i].topics[0] != LicenseMarket.PaymentCredited.selector, "nothing credited");
        }
        vm.assertEq(_credits(alice), 0, "owner not paid yet");
        vm.assertEq(_credits(bob), 0, "payer not credited");
        vm.assertEq(address(market).balance, 1 ether, "price held");
        (address payer, uint64 deadline) = market.pendingDelivery(lic);
        vm.assertEq(payer, bob, "payer");
        vm.assertEq(deadline, T0 + PERIOD, "deadline");
        vm.assertEq(market.ownerOf(lic), carol, "held by carol");
        vm.assertEq(market.offeringOf(offering).sold, 1, "sold");
    }

    function test_buy_escrowedRequiresARecipient() public {
        uint256 offering = _publishEscrowed(model, 1 ether, 0);
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.RecipientRequired.selector, offering));
        market.buy{value: 1 ether}(offering, bob, 1 ether, bytes32(0));
    }

    /// A recipient passed to an offering that sells no key is ignored: no escrow, no request.
    function test_buy_recipientIgnoredWhenNotEscrowed() public {
        uint256 plain = _mintBase(alice);
        uint256 offering = _publish(_terms(plain, LicenseKind.Access, NATIVE, 1 ether, 0));
        vm.deal(bob, 1 ether);
        vm.recordLogs();
        vm.prank(bob);
        uint256 lic = market.buy{value: 1 ether}(offering, bob, 1 ether, _recipient(bob));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            vm.assertTrue(logs[i].topics[0] != LicenseMarket.KeyRequested.selector, "no key requested");
        }
        (address payer,) = market.pendingDelivery(lic);
        vm.assertEq(payer, address(0), "no escrow");
        vm.assertEq(_credits(alice), 1 ether, "paid at once");
    }

    /// An escrowed purchase passes every check of a purchase: the publisher must own the model,
    /// and not since this block.
    function test_buy_escrowedKeepsTheSellerChecks() public {
        uint256 offering = _publishEscrowed(model, 1 ether, 0);
        vm.roll(block.number + 1);
        // Away and back in one block: alice owns it, but only since this block.
        vm.prank(alice);
        registry.transferFrom(alice, dave, model);
        vm.prank(dave);
        registry.transferFrom(dave, alice, model);
        vm.deal(bob, 2 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, model));
        market.buy{value: 1 ether}(offering, bob, 1 ether, _recipient(bob));
        vm.roll(block.number + 1);
        vm.prank(alice);
        registry.transferFrom(alice, dave, model);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.PublisherNotOwner.selector, offering, alice, dave));
        market.buy{value: 1 ether}(offering, bob, 1 ether, _recipient(bob));
    }

    // ------------------------------------------------------------ delivery

    function test_deliver_byOwnerCreditsThePriceAndGrants() public {
        uint256 offering = _publishEscrowed(model, 1 ether, 0);
        uint256 lic = _buy(bob, offering);
        vm.warp(T0 + 1 days);
        vm.expectEmit(address(market));
        emit LicenseMarket.KeyDelivered(lic, model, alice, KEY_CID, T0 + 1 days, 0);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(alice, NATIVE, lic, model, 1 ether);
        _deliver(alice, lic);

        vm.assertEq(_credits(alice), 1 ether, "owner paid");
        (address payer, uint64 deadline) = market.pendingDelivery(lic);
        vm.assertEq(payer, address(0), "escrow gone");
        vm.assertEq(deadline, 0, "deadline gone");
        vm.assertTrue(market.grants(lic, bob, model, LicenseKind.Access, T0 + 1 days), "granted from delivery");
        vm.assertTrue(market.isLicenseValid(lic, type(uint64).max), "perpetual");
        vm.assertEq(address(market).balance, 1 ether, "held as the owner's credit");
        vm.prank(alice);
        market.withdraw(NATIVE, alice);
        vm.assertEq(alice.balance, 1 ether, "withdrawn");
    }

    /// An encrypted derivative's escrowed sale, once delivered, pays its lineage exactly as a
    /// plain sale of the same model at the same price does (here an output license, which is
    /// never escrowed).
    function test_deliver_creditsLineageExactlyLikeASale() public {
        uint256 grand = _mintEncrypted(alice, 500);
        MintParams memory p = _params(bob);
        p.encrypted = true;
        p.derivativeRoyaltyBps = 700;
        (p.parents, p.licenses) = (_ids(grand), _ids(_deliveredFineTune(bob, grand, 1_500)));
        vm.prank(bob);
        uint256 parent = registry.mint(p);
        p = _params(carol);
        p.encrypted = true;
        (p.parents, p.licenses) = (_ids(parent), _ids(_deliveredFineTune(carol, parent, 2_000)));
        vm.prank(carol);
        uint256 child = registry.mint(p);
        uint256 price = 1 ether + 7;
        uint256 escrowed = _publishEscrowed(child, price, 0);
        uint256 plain = _publish(_terms(child, LicenseKind.Output, NATIVE, price, 0));
        vm.roll(block.number + 1);

        uint256[3] memory before = [_credits(alice), _credits(bob), _credits(carol)];
        _buy(dave, plain);
        uint256[3] memory sale = [_credits(alice) - before[0], _credits(bob) - before[1], _credits(carol) - before[2]];
        vm.assertGt(sale[0], 0, "the grandparent is paid");
        vm.assertGt(sale[1], 0, "the parent is paid");
        vm.assertEq(sale[0] + sale[1] + sale[2], price, "every wei credited");

        before = [_credits(alice), _credits(bob), _credits(carol)];
        uint256 lic = _buy(dave, escrowed);
        vm.assertEq(_credits(alice) + _credits(bob) + _credits(carol), before[0] + before[1] + before[2], "held");
        // The parent's share, split again up to the grandparent, as in a sale.
        uint256 parentShare = price * 2_000 / 10_000;
        vm.expectEmit(address(market));
        emit LicenseMarket.KeyDelivered(lic, child, carol, KEY_CID, T0, 0);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(alice, NATIVE, lic, grand, parentShare * 1_500 / 10_000);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(bob, NATIVE, lic, parent, parentShare - parentShare * 1_500 / 10_000);
        vm.expectEmit(address(market));
        emit LicenseMarket.PaymentCredited(carol, NATIVE, lic, child, price - parentShare);
        _deliver(carol, lic);
        vm.assertEq(_credits(alice) - before[0], sale[0], "grandparent: as a sale");
        vm.assertEq(_credits(bob) - before[1], sale[1], "parent: as a sale");
        vm.assertEq(_credits(carol) - before[2], sale[2], "owner: as a sale");
    }

    function test_deliver_byApprovedKeeperForEveryModelOfTheOwner() public {
        uint256 other = _mintEncrypted(alice, 0);
        uint256 a = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        uint256 b = _buy(carol, _publishEscrowed(other, 2 ether, 0));
        vm.expectEmit(address(market));
        emit LicenseMarket.KeeperSet(alice, dave, true);
        vm.prank(alice);
        market.setKeeper(dave, true);
        vm.assertTrue(market.isKeeper(alice, dave), "approved");

        vm.expectEmit(address(market));
        emit LicenseMarket.KeyDelivered(a, model, dave, KEY_CID, T0, 0);
        _deliver(dave, a);
        _deliver(dave, b);
        vm.assertEq(_credits(alice), 3 ether, "the owner is paid, for both models");
        vm.assertEq(_credits(dave), 0, "the keeper is not");
    }

    function test_deliver_refusedForUnapprovedAndRevokedKeepers() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotKeeper.selector, model, carol));
        market.deliverKey(lic, model, bob, _recipient(bob), KEY_CID);
        // Nor the buyer, nor a keeper of someone else.
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotKeeper.selector, model, bob));
        market.deliverKey(lic, model, bob, _recipient(bob), KEY_CID);
        vm.prank(bob);
        market.setKeeper(carol, true);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotKeeper.selector, model, carol));
        market.deliverKey(lic, model, bob, _recipient(bob), KEY_CID);

        vm.prank(alice);
        market.setKeeper(dave, true);
        vm.expectEmit(address(market));
        emit LicenseMarket.KeeperSet(alice, dave, false);
        vm.prank(alice);
        market.setKeeper(dave, false);
        vm.prank(dave);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotKeeper.selector, model, dave));
        market.deliverKey(lic, model, bob, _recipient(bob), KEY_CID);
        (address payer,) = market.pendingDelivery(lic);
        vm.assertEq(payer, bob, "still pending");
    }

    function test_setKeeper_revertsForZeroAddress() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.ZeroAddress.selector));
        market.setKeeper(address(0), true);
    }

    /// Keys are delivered by whoever owns the model at delivery: the previous owner and its
    /// keeper are refused after a transfer, and the new owner is paid.
    function test_deliver_afterTransferOnlyByTheNewOwner() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.prank(alice);
        market.setKeeper(dave, true);
        vm.roll(block.number + 1);
        vm.prank(alice);
        registry.transferFrom(alice, carol, model);
        vm.roll(block.number + 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotKeeper.selector, model, alice));
        market.deliverKey(lic, model, bob, _recipient(bob), KEY_CID);
        vm.prank(dave);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotKeeper.selector, model, dave));
        market.deliverKey(lic, model, bob, _recipient(bob), KEY_CID);

        _deliver(carol, lic);
        vm.assertEq(_credits(carol), 1 ether, "the owner at delivery is paid");
        vm.assertEq(_credits(alice), 0, "the seller of the model is not");
    }

    /// A model borrowed for a block cannot release escrowed prices to its borrower, nor can an
    /// ancestor owner of this block take its share (it is held).
    function test_deliver_refusedInTheBlockTheModelOrAnAncestorChangedHands() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.roll(block.number + 1);
        vm.prank(alice);
        registry.transferFrom(alice, dave, model);
        vm.prank(dave);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, model));
        market.deliverKey(lic, model, bob, _recipient(bob), KEY_CID);
        vm.roll(block.number + 1);
        _deliver(dave, lic);
        vm.assertEq(_credits(dave), 1 ether, "delivered the next block");

        MintParams memory p = _params(carol);
        p.encrypted = true;
        (p.parents, p.licenses) = (_ids(model), _ids(_deliveredFineTune(carol, model, 1_000)));
        vm.prank(carol);
        uint256 child = registry.mint(p);
        uint256 childLic = _buy(bob, _publishEscrowed(child, 1 ether, 0));
        vm.roll(block.number + 1);
        vm.prank(dave);
        registry.transferFrom(dave, carol, model);
        // The ancestor's share is held for its owner of a later block, the delivery goes on.
        vm.prank(carol);
        market.deliverKey(childLic, child, bob, _recipient(bob), KEY_CID);
        vm.assertEq(market.heldShares(model, NATIVE), 0.1 ether, "the ancestor's share held");
        vm.assertEq(_credits(carol), 0.9 ether, "the child's owner paid");
        vm.roll(block.number + 1);
        market.releaseHeld(model, NATIVE);
        vm.assertEq(_credits(carol), 1 ether, "the share to the ancestor's owner of now");
    }

    function test_deliver_secondDeliveryRefused() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.prank(alice);
        market.setKeeper(dave, true);
        _deliver(dave, lic);
        vm.prank(alice);
        vm.expectRevert(_notPending(lic));
        market.deliverKey(lic, model, bob, _recipient(bob), "bafkrei-another-key");
        vm.assertEq(_credits(alice), 1 ether, "paid once");
    }

    function test_deliver_refusedForUnknownOrPlainLicenseAndEmptyCid() public {
        vm.prank(alice);
        vm.expectRevert(_notPending(7));
        market.deliverKey(7, model, bob, _recipient(bob), KEY_CID);
        uint256 plain = _buy(bob, _publish(_terms(model, LicenseKind.Output, NATIVE, 1, 0)));
        vm.prank(alice);
        vm.expectRevert(_notPending(plain));
        market.deliverKey(plain, model, bob, _recipient(bob), KEY_CID);

        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.EmptyKeyCid.selector));
        market.deliverKey(lic, model, bob, _recipient(bob), "");
    }

    /// Delivery closes at the deadline, the first instant a refund opens.
    function test_deliver_refusedFromTheDeadline() public {
        uint256 offering = _publishEscrowed(model, 1 ether, 0);
        uint256 onTime = _buy(bob, offering);
        uint256 late = _buy(carol, offering);
        vm.warp(T0 + PERIOD - 1);
        _deliver(alice, onTime);
        vm.warp(T0 + PERIOD);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DeliveryDeadlinePassed.selector, late, T0 + PERIOD));
        market.deliverKey(late, model, carol, _recipient(carol), KEY_CID);
        vm.assertEq(_credits(alice), 1 ether, "the one on time is paid");
        (address payer,) = market.pendingDelivery(late);
        vm.assertEq(payer, carol, "the late one awaits its refund");
    }

    /// The license's window starts when its holder can use it: at delivery.
    function test_deliver_restartsTheWindow() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 30 * DAY));
        uint64 delivered = T0 + 2 days;
        vm.warp(delivered);
        vm.expectEmit(address(market));
        emit LicenseMarket.KeyDelivered(lic, model, alice, KEY_CID, delivered, delivered + 30 * DAY);
        _deliver(alice, lic);
        (License memory l,) = market.licenseOf(lic);
        vm.assertEq(l.start, delivered, "start at delivery");
        vm.assertEq(l.expiry, delivered + 30 * DAY, "expiry: delivery + duration");
        vm.assertFalse(market.isLicenseValid(lic, T0 + 1 days), "not before delivery");
        vm.assertTrue(market.isLicenseValid(lic, delivered + 30 * DAY - 1), "valid to the end");
        vm.assertFalse(market.isLicenseValid(lic, delivered + 30 * DAY), "lapses at expiry");
        // And renews from there.
        vm.assertEq(_renew(bob, lic), delivered + 60 * DAY, "renewed from the restarted expiry");
    }

    // ------------------------------------------------------------ binding to the purchase

    function _anotherPurchase(uint256 licenseId) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(LicenseMarket.DeliveryForAnotherPurchase.selector, licenseId);
    }

    /// A key wrapped to another recipient than the purchase's is refused, whoever delivers it,
    /// and the escrow is left as it was.
    function test_deliver_refusedForAnotherRecipient() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.prank(alice);
        vm.expectRevert(_anotherPurchase(lic));
        market.deliverKey(lic, model, bob, _recipient(carol), KEY_CID);
        vm.prank(alice);
        vm.expectRevert(_anotherPurchase(lic));
        market.deliverKey(lic, model, bob, bytes32(0), KEY_CID);
        vm.prank(alice);
        market.setKeeper(dave, true);
        vm.prank(dave);
        vm.expectRevert(_anotherPurchase(lic));
        market.deliverKey(lic, model, bob, _recipient(carol), KEY_CID);

        (address payer, uint64 deadline) = market.pendingDelivery(lic);
        vm.assertEq(payer, bob, "still pending");
        vm.assertEq(deadline, T0 + PERIOD, "deadline kept");
        vm.assertEq(_credits(alice), 0, "nobody paid");
        _deliver(dave, lic);
        vm.assertEq(_credits(alice), 1 ether, "the purchase's own delivery is accepted");
    }

    /// The holder bound is the license's (as `KeyRequested` names it), not the payer: a
    /// delivery naming the payer, or anyone else, for the holder's recipient is refused.
    function test_deliver_refusedForAnotherHolder() public {
        uint256 offering = _publishEscrowed(model, 1 ether, 0);
        bytes32 recipient = _recipient(carol);
        vm.deal(bob, 1 ether);
        vm.expectEmit(address(market));
        emit LicenseMarket.KeyRequested(1, model, carol, recipient, T0 + PERIOD);
        vm.prank(bob);
        uint256 lic = market.buy{value: 1 ether}(offering, carol, 1 ether, recipient);
        vm.prank(alice);
        vm.expectRevert(_anotherPurchase(lic));
        market.deliverKey(lic, model, bob, recipient, KEY_CID);
        vm.prank(alice);
        vm.expectRevert(_anotherPurchase(lic));
        market.deliverKey(lic, model, dave, recipient, KEY_CID);
        vm.prank(alice);
        vm.expectRevert(_anotherPurchase(lic));
        market.deliverKey(lic, model, address(0), recipient, KEY_CID);

        vm.expectEmit(address(market));
        emit LicenseMarket.KeyDelivered(lic, model, alice, KEY_CID, T0, 0);
        vm.prank(alice);
        market.deliverKey(lic, model, carol, recipient, KEY_CID);
        vm.assertTrue(market.grants(lic, carol, model, LicenseKind.Access, T0), "delivered to the holder");
    }

    /// A delivery naming another model than the purchase's is refused, for the purchase's
    /// holder and recipient, whoever delivers it: another model of the same owner (whose key the
    /// owner has), a model of another owner, or none. The escrow is left as it was.
    function test_deliver_refusedForAnotherModel() public {
        uint256 other = _mintEncrypted(alice, 0);
        uint256 foreign = _mintEncrypted(carol, 0);
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.prank(alice);
        market.setKeeper(dave, true);
        uint256[3] memory wrong = [other, foreign, 0];
        for (uint256 i; i < wrong.length; ++i) {
            vm.prank(alice);
            vm.expectRevert(_anotherPurchase(lic));
            market.deliverKey(lic, wrong[i], bob, _recipient(bob), KEY_CID);
            vm.prank(dave);
            vm.expectRevert(_anotherPurchase(lic));
            market.deliverKey(lic, wrong[i], bob, _recipient(bob), KEY_CID);
        }

        (address payer, uint64 deadline) = market.pendingDelivery(lic);
        vm.assertEq(payer, bob, "still pending");
        vm.assertEq(deadline, T0 + PERIOD, "deadline kept");
        vm.assertEq(_credits(alice), 0, "nobody paid");
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.Access, T0), "nothing granted");
        vm.prank(dave);
        market.deliverKey(lic, model, bob, _recipient(bob), KEY_CID);
        vm.assertEq(_credits(alice), 1 ether, "the purchase's own delivery is accepted");
    }

    /// Whatever else a delivery names, it is refused unless it names the purchase's model,
    /// holder and recipient: `keep` (0 to 6, its bits the model, holder and recipient kept) picks
    /// which of the three are the purchase's and which are another's, never all three. Another
    /// model is a fuzzed id, or (`ownersOther`) another model of the same owner.
    function testFuzz_deliver_refusedUnlessForThePurchase(
        uint256 modelId,
        address holder,
        bytes32 recipient,
        uint8 keep,
        bool ownersOther
    ) public {
        uint256 other = _mintEncrypted(alice, 0);
        keep %= 7;
        if (keep & 1 != 0) modelId = model;
        else if (ownersOther) modelId = other;
        if (keep & 2 != 0) holder = bob;
        if (keep & 4 != 0) recipient = _recipient(bob);
        vm.assume(modelId != model || holder != bob || recipient != _recipient(bob));
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.prank(alice);
        vm.expectRevert(_anotherPurchase(lic));
        market.deliverKey(lic, modelId, holder, recipient, KEY_CID);
        (address payer,) = market.pendingDelivery(lic);
        vm.assertEq(payer, bob, "still pending");
    }

    /// A reorganisation reassigns license ids, and the deliveries a keeper prepared for the ids
    /// it saw are refused, the escrows kept, and the deliveries for the purchases as they now
    /// stand go through. Two cases, from the same state (two encrypted models A and B of alice,
    /// dave her keeper):
    /// - the keeper saw bob's purchase of A as license 1, but in the chain that stays carol's
    ///   purchase of B came first and is license 1 (another holder and recipient);
    /// - the keeper saw bob's purchases of A then of B, both for his one recipient, as licenses 1
    ///   and 2, but in the chain that stays they came in the other order (only the model tells
    ///   them apart: a key of A would release the escrow of the purchase of B).
    function test_deliver_reorgReassigningTheIdIsRefused() public {
        uint256 other = _mintEncrypted(alice, 0);
        uint256 offeringA = _publishEscrowed(model, 1 ether, 0);
        uint256 offeringB = _publishEscrowed(other, 2 ether, 0);
        vm.prank(alice);
        market.setKeeper(dave, true);
        uint256 fork = vm.snapshotState();

        // The chain the keeper saw: license 1 is bob's purchase of model A.
        vm.expectEmit(address(market));
        emit LicenseMarket.KeyRequested(1, model, bob, _recipient(bob), T0 + PERIOD);
        vm.assertEq(_buy(bob, offeringA), 1, "bob's purchase is license 1");
        // The delivery the keeper prepares for it, from its KeyRequested.
        (uint256 seenId, uint256 seenModel, address seenHolder, bytes32 seenRecipient) =
            (1, model, bob, _recipient(bob));

        // The chain that stays: carol's purchase of model B is license 1, bob's is license 2.
        vm.assertTrue(vm.revertToState(fork), "reorganised");
        vm.assertEq(_buy(carol, offeringB), 1, "carol's purchase is license 1");
        vm.assertEq(_buy(bob, offeringA), 2, "bob's purchase is license 2");

        vm.prank(dave);
        vm.expectRevert(_anotherPurchase(seenId));
        market.deliverKey(seenId, seenModel, seenHolder, seenRecipient, KEY_CID);
        (address payer,) = market.pendingDelivery(1);
        vm.assertEq(payer, carol, "carol's escrow is held");
        vm.assertEq(_credits(alice), 0, "nothing released");
        vm.assertFalse(market.grants(1, carol, other, LicenseKind.Access, T0), "nothing granted");

        // Re-read, each purchase gets its own key.
        vm.prank(dave);
        market.deliverKey(2, model, bob, _recipient(bob), KEY_CID);
        vm.prank(dave);
        market.deliverKey(1, other, carol, _recipient(carol), "bafkrei-model-b-key-for-carol");
        vm.assertEq(_credits(alice), 3 ether, "both released");
        vm.assertTrue(market.grants(2, bob, model, LicenseKind.Access, T0), "bob's license of A");
        vm.assertTrue(market.grants(1, carol, other, LicenseKind.Access, T0), "carol's license of B");

        // The second case. The chain the keeper saw: bob's purchases of A then B, licenses 1 and
        // 2, both for his recipient.
        vm.assertTrue(vm.revertToState(fork), "back to before the purchases");
        vm.expectEmit(address(market));
        emit LicenseMarket.KeyRequested(1, model, bob, _recipient(bob), T0 + PERIOD);
        vm.assertEq(_buy(bob, offeringA), 1, "bob's purchase of A is license 1");
        vm.expectEmit(address(market));
        emit LicenseMarket.KeyRequested(2, other, bob, _recipient(bob), T0 + PERIOD);
        vm.assertEq(_buy(bob, offeringB), 2, "bob's purchase of B is license 2");
        // The deliveries the keeper prepares: a key of A for license 1, of B for license 2.

        // The chain that stays: bob's purchase of B is license 1, of A license 2.
        vm.assertTrue(vm.revertToState(fork), "reorganised again");
        vm.assertEq(_buy(bob, offeringB), 1, "bob's purchase of B is license 1");
        vm.assertEq(_buy(bob, offeringA), 2, "bob's purchase of A is license 2");

        vm.prank(dave);
        vm.expectRevert(_anotherPurchase(1));
        market.deliverKey(1, model, bob, _recipient(bob), "bafkrei-model-a-key-for-bob");
        vm.prank(dave);
        vm.expectRevert(_anotherPurchase(2));
        market.deliverKey(2, other, bob, _recipient(bob), "bafkrei-model-b-key-for-bob");
        (payer,) = market.pendingDelivery(1);
        vm.assertEq(payer, bob, "the escrow of B is held");
        (payer,) = market.pendingDelivery(2);
        vm.assertEq(payer, bob, "the escrow of A is held");
        vm.assertEq(_credits(alice), 0, "nothing released");
        vm.assertFalse(market.grants(1, bob, other, LicenseKind.Access, T0), "no license of B granted");
        vm.assertFalse(market.grants(2, bob, model, LicenseKind.Access, T0), "no license of A granted");

        // Re-read, each purchase gets the key of its own model.
        vm.prank(dave);
        market.deliverKey(1, other, bob, _recipient(bob), "bafkrei-model-b-key-for-bob");
        vm.prank(dave);
        market.deliverKey(2, model, bob, _recipient(bob), "bafkrei-model-a-key-for-bob");
        vm.assertEq(_credits(alice), 3 ether, "both released");
        vm.assertTrue(market.grants(1, bob, other, LicenseKind.Access, T0), "bob's license of B");
        vm.assertTrue(market.grants(2, bob, model, LicenseKind.Access, T0), "bob's license of A");
    }

    // ------------------------------------------------------------ pending licenses

    function test_pending_grantsNothing() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 30 * DAY));
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.Access, T0), "not at purchase");
        vm.assertFalse(market.grants(lic, bob, model, LicenseKind.Access, T0 + 1 days), "not later");
        vm.assertFalse(market.isLicenseValid(lic, T0), "not valid");
        (bool allowed,) = _rightsOf(bob, model, LicenseKind.Access, T0);
        vm.assertFalse(allowed, "no right");
        _deliver(alice, lic);
        vm.assertTrue(market.grants(lic, bob, model, LicenseKind.Access, T0), "granted once delivered");
    }

    function test_pending_notTransferable() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.prank(bob);
        vm.expectRevert(_keyNotDelivered(lic));
        market.transferFrom(bob, carol, lic);
        vm.prank(bob);
        vm.expectRevert(_keyNotDelivered(lic));
        market.safeTransferFrom(bob, carol, lic);
        vm.prank(bob);
        market.approve(dave, lic);
        vm.prank(dave);
        vm.expectRevert(_keyNotDelivered(lic));
        market.transferFrom(bob, dave, lic);

        _deliver(alice, lic);
        vm.prank(bob);
        market.transferFrom(bob, carol, lic);
        vm.assertEq(market.ownerOf(lic), carol, "moves once delivered");
    }

    function test_pending_notRenewable() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 30 * DAY));
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        vm.expectRevert(_keyNotDelivered(lic));
        market.renew{value: 1 ether}(lic, 1 ether);
    }

    function test_pending_fineTuneLicenseAdmitsNoDerivative() public {
        Terms memory t = _escrowTerms(model, LicenseKind.FineTune, NATIVE, 1 ether, 0);
        t.royaltyBps = 1_000;
        uint256 lic = _buy(bob, _publish(t));
        MintParams memory p = _params(bob);
        (p.parents, p.licenses) = (_ids(model), _ids(lic));
        vm.prank(bob);
        vm.expectRevert(_keyNotDelivered(lic));
        registry.mint(p);

        _deliver(alice, lic);
        vm.prank(bob);
        uint256 child = registry.mint(p);
        (, uint16[] memory bps) = _royaltyEdges(child);
        vm.assertEq(bps[0], 1_000, "the license's share once delivered");
    }

    // ------------------------------------------------------------ refunds

    function test_refund_refusedBeforeTheDeadline() public {
        uint256 lic = _buy(bob, _publishEscrowed(model, 1 ether, 0));
        vm.warp(T0 + PERIOD - 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.DeliveryNotOverdue.selector, lic, T0 + PERIOD));
        market.refund(lic);
    }

    function test_refund_afterDeadlineCreditsPayerAndBurns() public {
        uint256 offering = _publishEscrowed(model, 1 ether, 30 * DAY);
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        uint256 lic = market.buy{value: 1 ether}(offering, carol, 1 ether, _recipient(carol));
        vm.warp(T0 + PERIOD);
        vm.expectEmit(address(market));
        emit IERC721.Transfer(carol, address(0), lic);
        vm.expectEmit(address(market));
        emit LicenseMarket.LicenseRefunded(lic, bob, NATIVE, 1 ether);
        // Anyone may call it; the payer is credited.
        vm.prank(dave);
        market.refund(lic);

        vm.assertEq(_credits(bob), 1 ether, "payer credited");
        vm.assertEq(_credits(carol), 0, "not the holder");
        vm.assertEq(_credits(alice), 0, "not the owner");
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, lic));
        market.ownerOf(lic);
        vm.assertEq(market.balanceOf(carol), 0, "burnt");
        (, address holder) = market.licenseOf(lic);
        vm.assertEq(holder, address(0), "no holder");
        vm.assertEq(market.offeringOf(offering).sold, 0, "the sale undone");
        (address payer, uint64 deadline) = market.pendingDelivery(lic);
        vm.assertEq(payer, address(0), "no escrow");
        vm.assertEq(deadline, 0, "no deadline");
        // Never valid: its provisional window does not come back.
        vm.assertFalse(market.isLicenseValid(lic, T0 + 1 days), "never valid");
        vm.prank(bob);
        market.withdraw(NATIVE, bob);
        vm.assertEq(bob.balance, 1 ether, "refunded");
        vm.assertEq(address(market).balance, 0, "nothing held");
    }

    function test_refund_freesTheSupplySlot() public {
        Terms memory t = _escrowTerms(model, LicenseKind.Access, NATIVE, 1 ether, 0);
        t.supplyCap = 1;
        uint256 offering = _publish(t);
        uint256 lic = _buy(bob, offering);
        vm.deal(carol, 1 ether);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.SoldOut.selector, offering, 1));
        market.buy{value: 1 ether}(offering, carol, 1 ether, _recipient(carol));
        vm.warp(T0 + PERIOD);
        market.refund(lic);
        uint256 again = _buy(carol, offering);
        vm.assertEq(market.ownerOf(again), carol, "sold again");
        vm.assertEq(market.offeringOf(offering).sold, 1, "one sold");
    }

    function test_refund_onlyOnce_andNeverAfterDelivery() public {
        uint256 offering = _publishEscrowed(model, 1 ether, 0);
        uint256 refunded = _buy(bob, offering);
        uint256 delivered = _buy(carol, offering);
        _deliver(alice, delivered);
        vm.warp(T0 + PERIOD);
        market.refund(refunded);
        vm.expectRevert(_notPending(refunded));
        market.refund(refunded);
        vm.expectRevert(_notPending(delivered));
        market.refund(delivered);
        vm.prank(alice);
        vm.expectRevert(_notPending(refunded));
        market.deliverKey(refunded, model, bob, _recipient(bob), KEY_CID);
        vm.assertEq(_credits(bob), 1 ether, "refunded once");
        vm.assertEq(_credits(alice), 1 ether, "delivered one paid");
    }

    function test_erc20_escrowDeliveryAndRefund() public {
        uint256 offering = _publish(_escrowTerms(model, LicenseKind.Access, address(token), 250e18, 0));
        uint256 delivered = _buy(bob, offering);
        uint256 refunded = _buy(carol, offering);
        vm.assertEq(token.balanceOf(address(market)), 500e18, "both prices held");
        vm.assertEq(market.credits(alice, address(token)), 0, "nobody credited");

        _deliver(alice, delivered);
        vm.assertEq(market.credits(alice, address(token)), 250e18, "owner paid in the token");
        vm.warp(T0 + PERIOD);
        vm.expectEmit(address(market));
        emit LicenseMarket.LicenseRefunded(refunded, carol, address(token), 250e18);
        market.refund(refunded);
        vm.assertEq(market.credits(carol, address(token)), 250e18, "payer refunded in the token");
        vm.prank(carol);
        market.withdraw(address(token), carol);
        vm.assertEq(token.balanceOf(carol), 250e18, "withdrawn");
        vm.assertEq(token.balanceOf(address(market)), 250e18, "the owner's credit remains");
    }

    /// deliverKey and refund share the market's guard: a model owner paid out by `withdraw`
    /// cannot deliver or refund from inside the payment.
    function test_deliverAndRefundAreReentrancyGuarded() public {
        ReentrantKeyOwner owner = new ReentrantKeyOwner(market);
        MintParams memory p = _params(address(owner));
        p.encrypted = true;
        uint256 m = owner.mintModel(registry, p);
        uint256 offering = owner.publish(_escrowTerms(m, LicenseKind.Access, NATIVE, 1 ether, 0));
        owner.deliver(_buy(bob, offering), m, bob, _recipient(bob));
        uint256 overdue = _buy(carol, offering);
        vm.warp(T0 + PERIOD);
        uint256 deliverable = _buy(dave, offering);
        // Either call would succeed here but for the guard.
        owner.arm(deliverable, m, dave, _recipient(dave), overdue);
        vm.assertEq(owner.withdrawNative(), 1 ether, "withdrew");
        bytes memory guard = abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        vm.assertEq(owner.deliverRevert(), guard, "reentrant deliverKey blocked");
        vm.assertEq(owner.refundRevert(), guard, "reentrant refund blocked");
        (address payer,) = market.pendingDelivery(deliverable);
        vm.assertEq(payer, dave, "still pending");
        (payer,) = market.pendingDelivery(overdue);
        vm.assertEq(payer, carol, "not refunded");
    }
}
