// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {LicenseKind, MintParams, Terms} from "../src/Types.sol";

/// @notice Gas of the main calls, measured around just the call (snapshots/GasTest.json).
/// Everything the calls need is prepared in setUp, so storage the measured call touches is cold,
/// as in a real transaction. The scenario is a realistic one: real-length CIDs and URIs (the
/// fixture's), base models with a derivative royalty floor, and derivatives admitted by fine-tune
/// licenses bought at a price.
///
/// - mintBase: a base model with no sale royalty (the common case).
/// - mintBaseWithSaleRoyalty: the same with an ERC-2981 sale royalty (one more slot: the
///   receiver).
/// - mintOneParent / mintThreeParents: derivatives under fine-tune licenses (consumed by the
///   mint) with royalty shares above the parents' floors.
/// - buy: a 30-day native-currency license of a model with one royalty parent (two credits, to
///   sellers already credited before).
/// - buyEscrowed: the same license of an encrypted model with one royalty parent: the price is
///   held (the escrow slot and `KeyRequested`) instead of split.
/// - deliverKey: its owner delivering the key of such a purchase (a real-length CID), naming
///   the purchase (its model, holder and recipient, checked against the escrow's tag): the
///   window restarts and the price is split (two credits, to sellers already credited before).
/// - renew: renewal of such a license by its holder while it is still valid.
/// - withdraw: a model owner's native balance.
/// - commitOutputs / commitOutputsWithUri: an output license's holder committing a batch's root,
///   with an empty uri and with an `ipfs://` uri of a 59-character CIDv1 (66 characters). Each
///   also checks the whole transaction (intrinsic gas and calldata added) against its budget of
///   60,000.
contract GasTest is Fixture {
    uint256 internal p1;
    uint256 internal p2;
    uint256 internal p3;
    uint256 internal l1;
    uint256 internal l2;
    uint256 internal l3;
    uint256 internal offering;
    uint256 internal renewable;
    uint256 internal encrypted;
    uint256 internal escrowed;
    uint256 internal pending;
    uint256 internal outputLicense;
    bytes32 internal constant RECIPIENT = keccak256("age1 recipient");
    string internal constant KEY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    bytes32 internal constant OUTPUT_ROOT = keccak256("outputs root");
    string internal constant OUTPUT_URI = "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    /// What one commit of outputs may cost in a transaction, all included.
    uint256 internal constant COMMIT_BUDGET = 60_000;

    function _base(address owner, uint16 floor) internal returns (uint256) {
        MintParams memory p = _params(owner);
        p.derivativeRoyaltyBps = floor;
        vm.prank(owner);
        return registry.mint(p);
    }

    function setUp() public override {
        super.setUp();
        p1 = _base(alice, 500);
        p2 = _base(alice, 500);
        p3 = _base(alice, 500);
        l1 = _buy(bob, _publishFineTune(p1, 0.1 ether, 0, 1_000));
        l2 = _buy(bob, _publishFineTune(p2, 0.1 ether, 0, 1_000));
        l3 = _buy(bob, _publishFineTune(p3, 0.1 ether, 0, 1_000));
        uint256 derived = _mintChild(dave, _ids(p1), _ids(_buy(dave, _publishFineTune(p1, 0.1 ether, 0, 1_000))));
        offering = _publish(_terms(derived, LicenseKind.Access, NATIVE, 1 ether, 30 * DAY));
        renewable = _buy(carol, offering);
        MintParams memory p = _params(dave);
        p.encrypted = true;
        (p.parents, p.licenses) = (_ids(p1), _ids(_buy(dave, _publishFineTune(p1, 0.1 ether, 0, 1_000))));
        vm.prank(dave);
        encrypted = registry.mint(p);
        Terms memory t = _terms(encrypted, LicenseKind.Access, NATIVE, 1 ether, 30 * DAY);
        t.deliveryPeriod = 14 * DAY;
        escrowed = _publish(t);
        pending = _buy(carol, escrowed);
        outputLicense = _buy(carol, _publish(_terms(derived, LicenseKind.Output, NATIVE, 1 ether, 30 * DAY)));
        vm.deal(carol, 10 ether);
        vm.warp(T0 + 10 * DAY);
        vm.roll(block.number + 100);
    }

    function _withParents(uint256 n) internal view returns (MintParams memory p) {
        p = _params(bob);
        if (n == 1) (p.parents, p.licenses) = (_ids(p1), _ids(l1));
        if (n == 3) (p.parents, p.licenses) = (_ids(p1, p2, p3), _ids(l1, l2, l3));
    }

    function test_gas_mintBase() public {
        MintParams memory p = _withParents(0);
        vm.startPrank(bob);
        vm.startSnapshotGas("mintBase");
        registry.mint(p);
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_mintBaseWithSaleRoyalty() public {
        MintParams memory p = _withParents(0);
        p.saleRoyaltyBps = 500;
        vm.startPrank(bob);
        vm.startSnapshotGas("mintBaseWithSaleRoyalty");
        registry.mint(p);
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_mintOneParent() public {
        MintParams memory p = _withParents(1);
        vm.startPrank(bob);
        vm.startSnapshotGas("mintOneParent");
        registry.mint(p);
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_mintThreeParents() public {
        MintParams memory p = _withParents(3);
        vm.startPrank(bob);
        vm.startSnapshotGas("mintThreeParents");
        registry.mint(p);
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_buy() public {
        vm.startPrank(carol);
        vm.startSnapshotGas("buy");
        market.buy{value: 1 ether}(offering, carol, 1 ether, bytes32(0));
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_buyEscrowed() public {
        vm.startPrank(carol);
        vm.startSnapshotGas("buyEscrowed");
        market.buy{value: 1 ether}(escrowed, carol, 1 ether, RECIPIENT);
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_deliverKey() public {
        // The model is read before the measure, like the recipient, so that the figure differs
        // from the one before deliveries named their model only by the call's own cost.
        (uint256 modelId, bytes32 recipient) = (encrypted, _recipient(carol));
        vm.startPrank(dave);
        vm.startSnapshotGas("deliverKey");
        market.deliverKey(pending, modelId, carol, recipient, KEY_CID);
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_renew() public {
        vm.startPrank(carol);
        vm.startSnapshotGas("renew");
        market.renew{value: 1 ether}(renewable, 1 ether);
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_withdraw() public {
        vm.startPrank(alice);
        vm.startSnapshotGas("withdraw");
        market.withdraw(NATIVE, alice);
        vm.stopSnapshotGas();
        vm.stopPrank();
    }

    function test_gas_commitOutputs() public {
        _measureCommit("commitOutputs", "");
    }

    function test_gas_commitOutputsWithUri() public {
        _measureCommit("commitOutputsWithUri", OUTPUT_URI);
    }

    /// @dev Measures carol's commit of `OUTPUT_ROOT` with `uri` as `name`, and checks it against
    /// its budget. The market and the license are read before the measure and the market's
    /// account is warmed: a transaction's base pays for its target's account, so the measure
    /// counts what the commit costs the market (and the test's call, a few hundred gas).
    function _measureCommit(string memory name, string memory uri) internal {
        (LicenseMarket m, uint256 licenseId) = (market, outputLicense);
        vm.assertGt(address(m).code.length, 0, "market deployed");
        vm.startPrank(carol);
        vm.startSnapshotGas(name);
        m.commitOutputs(licenseId, OUTPUT_ROOT, 1_000, uri);
        uint256 used = vm.stopSnapshotGas();
        vm.stopPrank();
        _assertFitsCommitBudget(used, abi.encodeCall(m.commitOutputs, (licenseId, OUTPUT_ROOT, 1_000, uri)));
    }

    /// @dev Checks a commit measured at `used` against `COMMIT_BUDGET` as a transaction sending
    /// `data`: the 21,000 base, the calldata (4 gas a zero byte, 16 another; at least EIP-7623's
    /// floor of 10 a token, a zero byte one token and another four) and the call. `used` counts
    /// the test's call into the market too (a warm call and its arguments' encoding): the sum is
    /// an upper bound.
    function _assertFitsCommitBudget(uint256 used, bytes memory data) internal pure {
        uint256 zeros;
        for (uint256 i; i < data.length; ++i) {
            if (data[i] == 0) ++zeros;
        }
        uint256 tokens = zeros + 4 * (data.length - zeros);
        uint256 standard = 21_000 + 4 * tokens + used;
        uint256 floor = 21_000 + 10 * tokens;
        vm.assertLe(standard > floor ? standard : floor, COMMIT_BUDGET, "commit over budget");
    }
}
