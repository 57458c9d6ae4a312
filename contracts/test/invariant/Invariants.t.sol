// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "../utils/Cheats.sol";
import {MockERC20} from "../mocks/MockERC20.sol";
import {Handler} from "./Handler.sol";
import {LicenseMarket} from "../../src/LicenseMarket.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {License, LicenseKind, Model, Parent} from "../../src/Types.sol";

/// @notice Invariants of the registry and the market under random sequences of the handler's
/// actions. forge-std's StdInvariant is not available, so `targetContracts` is declared here:
/// forge calls it to learn which contracts to fuzz (only the handler).
contract InvariantsTest is TestBase {
    ModelRegistry internal registry;
    LicenseMarket internal market;
    MockERC20 internal token;
    Handler internal handler;

    function setUp() public {
        registry = new ModelRegistry();
        market = new LicenseMarket(registry);
        registry.bindMarket(market);
        token = new MockERC20("Mock", "MOCK");
        handler = new Handler(registry, market, token);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// Runs after every run: the fuzzer really drove the handler (forge's metrics table shows the
    /// calls per action too), and nothing the handler saw contradicted the rules.
    function afterInvariant() external view {
        vm.assertGt(handler.calls(), 0, "the handler was called");
        _assertNoViolations();
    }

    // ------------------------------------------------------------ money

    /// Per currency: credited balances + withdrawn == received, and the market holds exactly
    /// received - withdrawn.
    function invariant_everyWeiIsAccountedFor() public view {
        _assertNoViolations();
        address[2] memory currencies = [address(0), address(token)];
        for (uint256 c; c < 2; ++c) {
            address currency = currencies[c];
            uint256 credited;
            for (uint256 i; i < handler.actorCount(); ++i) {
                credited += market.credits(handler.actors(i), currency);
            }
            uint256 received = market.totalReceived(currency);
            uint256 withdrawn = market.totalWithdrawn(currency);
            vm.assertEq(credited + withdrawn, received, "credits + withdrawn == received");
            uint256 held = currency == address(0) ? address(market).balance : token.balanceOf(address(market));
            vm.assertEq(held, received - withdrawn, "held == received - withdrawn");
            vm.assertEq(received, handler.ghostReceived(currency), "received == ghost");
            vm.assertEq(withdrawn, handler.ghostWithdrawn(currency), "withdrawn == ghost");
        }
    }

    // ------------------------------------------------------------ licenses

    /// No license is valid at or after its expiry, each start and expiry is what the purchases
    /// and renewals say it must be (a renewal after a lapse restarts the license), and neither
    /// rightsOf nor grants honours a license past its expiry.
    function invariant_noLicenseValidAtOrAfterExpiry() public view {
        _assertNoViolations();
        uint256 n = handler.licenseCount();
        vm.assertEq(market.totalLicenses(), n, "license count");
        uint64 clock = handler.clock();
        for (uint256 id = 1; id <= n; ++id) {
            Handler.LicenseGhost memory g = handler.licenseGhost(id);
            (License memory l, address holder) = market.licenseOf(id);
            vm.assertEq(holder, g.holder, "holder");
            vm.assertEq(l.start, g.start, "start");
            vm.assertEq(l.expiry, g.expiry, "expiry == snapshot");
            vm.assertLe(g.purchasedAt, l.start, "start never before the purchase");
            vm.assertLe(l.start, clock, "start never in the future");
            vm.assertTrue(market.isLicenseValid(id, l.start), "valid at start");
            if (l.start > 0) vm.assertFalse(market.isLicenseValid(id, l.start - 1), "invalid before start");
            if (l.expiry == 0) {
                vm.assertTrue(market.isLicenseValid(id, clock), "perpetual valid now");
                continue;
            }
            vm.assertFalse(market.isLicenseValid(id, l.expiry), "invalid exactly at expiry");
            vm.assertFalse(market.isLicenseValid(id, l.expiry + 1 days), "invalid after expiry");
            vm.assertTrue(market.isLicenseValid(id, l.expiry - 1), "valid just before expiry");
            vm.assertEq(market.isLicenseValid(id, clock), clock < l.expiry, "validity now");
            (, uint256 by) = market.rightsOf(holder, l.modelId, l.kind, l.expiry);
            vm.assertNotEq(by, id, "rightsOf never names an expired license");
            vm.assertFalse(market.grants(id, holder, l.modelId, l.kind, l.expiry), "grants nothing at expiry");
        }
    }

    /// For every (actor, model, kind) that ever held a license: rightsOf, and grants for each
    /// license of the model and kind, agree with the ghost holders and validity windows, now and
    /// 20 days ago, and the index lists exactly the held licenses.
    function invariant_rightsOfAgreesWithLicenses() public view {
        _assertNoViolations();
        uint64 clock = handler.clock();
        for (uint256 i; i < handler.tripleCount(); ++i) {
            Handler.Triple memory t = handler.triple(i);
            uint256[] memory ids = handler.licensesOf(t.modelId, t.kind);
            _assertRights(t, ids, clock);
            _assertRights(t, ids, clock - 20 days);

            uint256 held;
            for (uint256 j; j < ids.length; ++j) {
                if (handler.licenseGhost(ids[j]).holder == t.actor) ++held;
            }
            uint256[] memory listed = market.licensesHeld(t.actor, t.modelId, t.kind);
            vm.assertEq(listed.length, held, "index size");
            for (uint256 j; j < listed.length; ++j) {
                Handler.LicenseGhost memory g = handler.licenseGhost(listed[j]);
                vm.assertEq(g.holder, t.actor, "listed license held by the actor");
                vm.assertEq(g.modelId, t.modelId, "listed license of the model");
                vm.assertTrue(g.kind == t.kind, "listed license of the kind");
            }
        }
    }

    /// grants, for each license of the triple's model and kind, is true iff the ghost says the
    /// actor holds it and it is valid at `at`.
    function _assertGrants(Handler.Triple memory t, uint256[] memory ids, uint64 at) internal view {
        LicenseKind otherKind = LicenseKind((uint8(t.kind) + 1) % 3);
        for (uint256 j; j < ids.length; ++j) {
            Handler.LicenseGhost memory g = handler.licenseGhost(ids[j]);
            bool valid = g.holder == t.actor && g.start <= at && (g.expiry == 0 || at < g.expiry);
            vm.assertEq(market.grants(ids[j], t.actor, t.modelId, t.kind, at), valid, "grants agrees with the ghost");
            vm.assertFalse(market.grants(ids[j], t.actor, t.modelId, otherKind, at), "grants only its kind");
            vm.assertFalse(market.grants(ids[j], t.actor, t.modelId + 1, t.kind, at), "grants only its model");
        }
    }

    function _assertRights(Handler.Triple memory t, uint256[] memory ids, uint64 at) internal view {
        _assertGrants(t, ids, at);
        (bool allowed, uint256 by) = market.rightsOf(t.actor, t.modelId, t.kind, at);
        if (registry.ownerOf(t.modelId) == t.actor) {
            vm.assertTrue(allowed, "owner allowed");
            vm.assertEq(by, 0, "owner needs no license");
            return;
        }
        bool anyValid;
        bool perpetual;
        uint64 best;
        for (uint256 j; j < ids.length; ++j) {
            Handler.LicenseGhost memory g = handler.licenseGhost(ids[j]);
            if (g.holder != t.actor || g.start > at || (g.expiry != 0 && at >= g.expiry)) continue;
            anyValid = true;
            if (g.expiry == 0) perpetual = true;
            else if (g.expiry > best) best = g.expiry;
        }
        vm.assertEq(allowed, anyValid, "allowed iff a held license is valid");
        if (!anyValid) {
            vm.assertEq(by, 0, "no license named");
            return;
        }
        Handler.LicenseGhost memory chosen = handler.licenseGhost(by);
        vm.assertEq(chosen.holder, t.actor, "named license held");
        vm.assertEq(chosen.modelId, t.modelId, "named license of the model");
        vm.assertTrue(chosen.kind == t.kind, "named license of the kind");
        vm.assertEq(chosen.expiry, perpetual ? 0 : best, "perpetual first, else longest lasting");
        _assertNamedGrants(t, by, at);
    }

    function _assertNamedGrants(Handler.Triple memory t, uint256 by, uint64 at) internal view {
        vm.assertTrue(market.grants(by, t.actor, t.modelId, t.kind, at), "the named license grants");
    }

    // ------------------------------------------------------------ lineage

    /// Lineage is a DAG with parents older than children, and each model's recorded depth,
    /// royalty nodes and shares follow from its parents within the limits.
    function invariant_lineageIsAcyclicAndConsistent() public view {
        _assertNoViolations();
        uint256 n = registry.totalModels();
        for (uint256 id = 1; id <= n; ++id) {
            Model memory m = registry.modelOf(id);
            Parent[] memory parents = registry.parentsOf(id);
            uint256 depth;
            uint256 nodes = 1;
            uint256 totalBps;
            for (uint256 i; i < parents.length; ++i) {
                uint256 p = parents[i].modelId;
                vm.assertTrue(p != 0 && p < id, "parent minted before child");
                for (uint256 j; j < i; ++j) {
                    vm.assertNotEq(parents[j].modelId, p, "no duplicate parent");
                }
                Model memory pm = registry.modelOf(p);
                if (pm.depth + 1 > depth) depth = pm.depth + 1;
                if (parents[i].royaltyBps > 0) {
                    nodes += pm.royaltyNodes;
                    totalBps += parents[i].royaltyBps;
                    vm.assertNotEq(parents[i].licenseId, 0, "royalty only through a license");
                }
                if (parents[i].licenseId != 0) {
                    (License memory l,) = market.licenseOf(parents[i].licenseId);
                    vm.assertEq(l.modelId, p, "license of the parent");
                    vm.assertTrue(l.kind == LicenseKind.FineTune, "fine-tune license");
                    vm.assertEq(l.royaltyBps, parents[i].royaltyBps, "share snapshotted from the license");
                    // A renewal after a lapse may have moved the license's start past the mint;
                    // its purchase cannot be. (The handler checks it was valid at the mint.)
                    Handler.LicenseGhost memory g = handler.licenseGhost(parents[i].licenseId);
                    vm.assertLe(g.purchasedAt, m.mintedAt, "license bought before the mint");
                    vm.assertLe(g.purchasedAt, l.start, "start never before the purchase");
                }
            }
            vm.assertEq(m.depth, depth, "depth == 1 + deepest parent");
            vm.assertEq(m.royaltyNodes, nodes, "royalty nodes");
            vm.assertLe(depth, registry.MAX_DEPTH(), "depth bounded");
            vm.assertLe(nodes, registry.MAX_ROYALTY_NODES(), "nodes bounded");
            vm.assertLe(totalBps, 10_000, "shares bounded");
            vm.assertLe(parents.length, registry.MAX_PARENTS(), "parents bounded");
        }
    }

    function _assertNoViolations() internal view {
        vm.assertEq(handler.violations(), 0, handler.lastViolation());
    }
}
