// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "../utils/Cheats.sol";
import {MockERC20} from "../mocks/MockERC20.sol";
import {Ghost, Handler} from "./Handler.sol";
import {LicenseMarket} from "../../src/LicenseMarket.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {License, LicenseKind, ModelHeader} from "../../src/Types.sol";

/// @notice Invariants of the registry and the market under random sequences of the handler's
/// actions, checked against the handler's reference model (`Ghost`). forge-std's StdInvariant
/// is not available, so `targetContracts` is declared here: forge calls it to learn which
/// contracts to fuzz (only the handler).
///
/// forge runs one campaign per invariant function, all replaying the same seeded sequences, so
/// a single invariant runs every check. After every call it checks the money (all of it), every
/// license and model the call changed, and a rotating quarter of all the others; at the end of
/// every run (`afterInvariant`) it checks everything. (Each check is a fresh transaction that
/// reads every slot cold: checking all of the state after every call takes the campaign from
/// about 17 s to about 42 s on two cores, and a broken entity waits at most three calls.)
///
/// Two plain tests drive the handler on their own: one proves the lineage limits are reached
/// (depth 16, 64 royalty nodes, and both refusals one step beyond), the other is a seeded random
/// walk over every action proving the coverage the campaign relies on (royalty splits in most
/// sales, escrowed purchases delivered and refunded, every adversarial action tried and refused
/// with its named error).
contract InvariantsTest is TestBase {
    /// forge's console, for the run metrics.
    address internal constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;
    /// After each call, entities whose id is the call count modulo STRIDE are checked.
    uint256 internal constant STRIDE = 4;

    ModelRegistry internal registry;
    LicenseMarket internal market;
    MockERC20 internal token;
    Ghost internal ghost;
    Handler internal handler;
    address[4] internal actors;
    uint256 internal maxDepth;
    uint256 internal maxNodes;
    uint256 internal maxParents;

    function setUp() public {
        registry = new ModelRegistry();
        token = new MockERC20("Mock", "MOCK");
        address[] memory currencies = new address[](1);
        currencies[0] = address(token);
        market = new LicenseMarket(registry, currencies);
        registry.bindMarket(market);
        ghost = new Ghost(address(token));
        handler = new Handler(registry, market, token, ghost);
        for (uint256 i; i < 4; ++i) {
            actors[i] = handler.actors(i);
        }
        (maxDepth, maxNodes, maxParents) = (registry.MAX_DEPTH(), registry.MAX_ROYALTY_NODES(), registry.MAX_PARENTS());
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// After every call: no violation seen by the handler; the money; what the call changed;
    /// a rotating quarter of the rest.
    function invariant_referenceModelHolds() public view {
        _assertNoViolations();
        _checkMoney();
        uint64 clock = handler.clock();
        (uint256[] memory licenses, uint256[] memory models) = handler.touched();
        for (uint256 i; i < licenses.length; ++i) {
            _checkLicense(licenses[i], clock);
        }
        for (uint256 i; i < models.length; ++i) {
            _checkModel(models[i]);
        }
        uint256 phase = handler.calls() % STRIDE;
        for (uint256 id = STRIDE - phase; id <= ghost.licenseCount(); id += STRIDE) {
            _checkLicense(id, clock);
        }
        for (uint256 m = STRIDE - phase; m <= ghost.modelCount(); m += STRIDE) {
            _checkModel(m);
        }
    }

    /// Runs after every run: the fuzzer really drove the handler, every check holds for all of
    /// the state, and the run's metrics are logged (-vv shows the last run's).
    function afterInvariant() external view {
        vm.assertGt(handler.calls(), 0, "the handler was called");
        _assertAllInvariants();
        _log("run: calls", handler.calls());
        _log("run: models", ghost.modelCount());
        _log("run: max depth", handler.maxDepth());
        _log("run: max royalty nodes", handler.maxNodes());
        _log("run: LineageTooDeep", handler.tooDeep());
        _log("run: LineageTooLarge", handler.tooLarge());
        _log("run: sales", handler.sales());
        _log("run: sales that split royalties", handler.royaltySales());
        _log("run: escrowed purchases", handler.escrowedSales());
        _log("run: keys delivered", handler.deliveries());
        _log("run: refunds", handler.refunds());
        uint256 caught;
        for (uint256 k; k < handler.ATTACKS(); ++k) {
            caught += handler.attackCaught(k);
        }
        _log("run: attacks refused with their error", caught);
    }

    /// Every check, over all of the state.
    function _assertAllInvariants() internal view {
        _assertNoViolations();
        _checkMoney();
        uint64 clock = handler.clock();
        uint256 n = ghost.licenseCount();
        _eq(market.totalLicenses(), n, "license count");
        for (uint256 id = 1; id <= n; ++id) {
            _checkLicense(id, clock);
        }
        uint256 models = ghost.modelCount();
        _eq(registry.totalModels(), models, "model count");
        for (uint256 m = 1; m <= models; ++m) {
            _checkModel(m);
        }
        _checkHoldings();
    }

    // ------------------------------------------------------------ money

    /// Every actor's credits, per currency, are exactly the reference split of every sale it
    /// took part in (recursive over the lineage, floor rounding, remainders to each node's
    /// owner; an escrowed sale's at its key's delivery) plus its refunds, net of its
    /// withdrawals; nobody else is credited. Per currency, the market is solvent to the wei: it
    /// holds exactly the sum of the credits plus the escrowed prices (those of the licenses
    /// awaiting their keys), which is what was paid in less what was withdrawn.
    function _checkMoney() internal view {
        address[2] memory currencies = [address(0), address(token)];
        for (uint256 c; c < 2; ++c) {
            address currency = currencies[c];
            uint256 credited;
            for (uint256 i; i < 4; ++i) {
                uint256 credit = market.credits(actors[i], currency);
                _eq(credit, ghost.credits(actors[i], currency), "credits == reference split");
                credited += credit;
            }
            _eq(market.credits(address(handler), currency), 0, "the handler is never credited");
            uint256 held = currency == address(0) ? address(market).balance : token.balanceOf(address(market));
            uint256 escrowed = ghost.escrowed(currency);
            _eq(escrowed, ghost.pendingTotal(currency), "escrowed == prices of the licenses awaiting keys");
            uint256 shares = ghost.heldTotal(currency);
            _eq(held, credited + escrowed + shares, "market balance == credits + escrowed prices + held shares");
            _eq(held, ghost.paidIn(currency) - ghost.paidOut(currency), "market balance == paid in - withdrawn");
        }
    }

    // ------------------------------------------------------------ licenses

    /// A license has its offering's terms, its holder (none once consumed or refunded), and
    /// the window the purchase (an escrowed one's key delivery) and renewals say: it starts
    /// then for ever (a renewal only extends it), is valid from its start, never at or after
    /// its expiry. A license awaiting its key has the escrow the ghost booked and is valid
    /// nowhere, and so is a refunded one, for ever. grants agrees: the license grants its
    /// holder, and nobody else, its own model and kind exactly within its window (now, 20 days
    /// ago, at its start, at its expiry), and nothing once consumed, nor while its key is
    /// awaited.
    function _checkLicense(uint256 id, uint64 clock) internal view {
        Ghost.GLicense memory g = ghost.license(id);
        Ghost.GOffering memory o = ghost.offering(g.offeringId);
        (License memory l, address holder) = market.licenseOf(id);
        _eq(holder, g.holder, "holder (zero once consumed or refunded)");
        _eq(l.offeringId, g.offeringId, "offering");
        _eq(l.modelId, o.modelId, "model of the offering");
        _true(l.kind == o.kind, "kind of the offering");
        _eq(l.price, o.price, "price of the offering");
        _eq(l.royaltyBps, o.royaltyBps, "royalty of the offering");
        _eq(l.start, g.start, "start == the purchase (or the key's delivery), for ever");
        _eq(l.expiry, g.expiry, "expiry == start + paid durations");
        _true(l.start <= clock, "start never in the future");
        (address payer, uint64 deadline) = market.pendingDelivery(id);
        _eq(payer, g.payer, "escrow payer");
        _eq(deadline, g.deadline, "escrow deadline");
        bool pending = g.payer != address(0);
        if (pending) _true(o.escrowed, "only escrowed sales await a key");
        if (pending || g.refunded) {
            _true(o.escrowed, "only escrowed sales are refunded");
            _true(!market.isLicenseValid(id, l.start), "awaiting its key or refunded: not valid at start");
            _true(!market.isLicenseValid(id, clock), "awaiting its key or refunded: not valid now");
        } else {
            _checkWindow(id, l, clock);
        }
        if (g.holder == address(0) && !g.refunded) {
            _true(o.kind == LicenseKind.FineTune, "consumed: a fine-tune license");
        }
        _checkGrants(id, g, o, clock);
    }

    function _checkGrants(uint256 id, Ghost.GLicense memory g, Ghost.GOffering memory o, uint64 clock) internal view {
        bool pending = g.payer != address(0);
        address who = g.holder == address(0) ? g.consumedBy : g.holder;
        uint64[4] memory times = [clock, clock - 20 days, g.start, g.expiry == 0 ? clock + 365 days : g.expiry];
        for (uint256 t; t < 4; ++t) {
            uint64 at = times[t];
            bool inWindow = g.start <= at && (g.expiry == 0 || at < g.expiry);
            _true(
                market.grants(id, who, o.modelId, o.kind, at) == (g.holder != address(0) && !pending && inWindow),
                "grants == held, key delivered and within the window (nothing once consumed)"
            );
        }
        address other = actors[id % 4] == who ? actors[(id + 1) % 4] : actors[id % 4];
        _true(!market.grants(id, other, o.modelId, o.kind, g.start), "grants only its holder");
        _true(!market.grants(id, who, o.modelId, LicenseKind((uint8(o.kind) + 1) % 3), g.start), "grants its kind");
        _true(!market.grants(id, who, o.modelId % ghost.modelCount() + 1, o.kind, g.start), "grants its model");
    }

    function _checkWindow(uint256 id, License memory l, uint64 clock) internal view {
        _true(market.isLicenseValid(id, l.start), "valid at start");
        _true(!market.isLicenseValid(id, l.start - 1), "invalid before start");
        if (l.expiry == 0) {
            _true(market.isLicenseValid(id, clock), "perpetual valid now");
        } else {
            _true(!market.isLicenseValid(id, l.expiry), "invalid exactly at expiry");
            _true(market.isLicenseValid(id, l.expiry - 1), "valid just before expiry");
            _true(market.isLicenseValid(id, clock) == (clock < l.expiry), "validity now");
        }
    }

    /// Across all licenses: each actor's balance counts what it holds; each license admitted at
    /// most one derivative; the consumed licenses are exactly those the derivatives name (the
    /// refunded ones are burnt too, but named by none).
    function _checkHoldings() internal view {
        uint256 n = ghost.licenseCount();
        uint256[4] memory held;
        bool[] memory named = new bool[](n + 1);
        uint256 namedCount;
        for (uint256 m = 1; m <= ghost.modelCount(); ++m) {
            (, uint256[] memory licenses,,) = ghost.lineage(m);
            for (uint256 i; i < licenses.length; ++i) {
                if (licenses[i] == 0) continue;
                _true(!named[licenses[i]], "a license admits one derivative");
                named[licenses[i]] = true;
                ++namedCount;
            }
        }
        uint256 consumed;
        for (uint256 id = 1; id <= n; ++id) {
            Ghost.GLicense memory g = ghost.license(id);
            address holder = g.holder;
            bool burntByMint = holder == address(0) && !g.refunded;
            _true(named[id] == burntByMint, "consumed == named by a derivative");
            if (burntByMint) ++consumed;
            for (uint256 i; i < 4; ++i) {
                if (holder == actors[i]) ++held[i];
            }
        }
        _eq(consumed, namedCount, "consumed == licenses named by derivatives");
        _eq(consumed, ghost.consumedCount(), "consumed count");
        for (uint256 i; i < 4; ++i) {
            _eq(market.balanceOf(actors[i]), held[i], "balanceOf == licenses held");
        }
        _true(!market.grants(n + 1, actors[0], 1, LicenseKind.Access, handler.clock()), "no unsold license");
    }

    // ------------------------------------------------------------ lineage

    /// A model's owner, stored header and payees match the ghost, and follow from its parents:
    /// parents older than the child, depth 1 + the deepest parent's, royalty nodes 1 + those of
    /// the parents owed a share, each share the parent's floor (owner path) or the license's
    /// share if higher, shares within 100%, the licenses presented consumed, all within the
    /// limits. The owner holds every right with license 0, nobody else does.
    function _checkModel(uint256 m) internal view {
        Ghost.GModel memory g = ghost.model(m);
        (address owner, uint256 ownerSince, uint256[] memory pp, uint16[] memory pb) = registry.payees(m);
        _eq(owner, g.owner, "owner");
        _eq(ownerSince, g.ownerSince, "ownerSince == block of the last transfer");
        _eq(registry.modelByContent(g.root), m, "content root -> model");
        ModelHeader memory h = registry.headerOf(m);
        _eq(h.depth, g.depth, "header depth");
        _eq(h.royaltyNodes, g.nodes, "header royalty nodes");
        _eq(h.derivativeRoyaltyBps, g.floor, "header floor");
        (,, uint256[] memory ep, uint16[] memory eb) = ghost.lineage(m);
        _eq(h.royaltyParents, ep.length, "header royalty parents");
        _eq(pp.length, ep.length, "payees: one per royalty edge");
        for (uint256 i; i < ep.length; ++i) {
            _eq(pp[i], ep[i], "payees parents == ghost edges");
            _eq(pb[i], eb[i], "payees shares == ghost edges");
        }
        if (ep.length > 0) {
            _eq(h.parent0, ep[0], "header first edge");
            _eq(h.parent0Bps, eb[0], "header first share");
        }
        _checkDerivedFromParents(m, g);
        _eq(market.heldShares(m, address(0)), ghost.held(m, address(0)), "held shares (native)");
        _eq(market.heldShares(m, address(token)), ghost.held(m, address(token)), "held shares (token)");
        LicenseKind kind = LicenseKind(m % 3);
        _true(market.grants(0, owner, m, kind, handler.clock()), "the owner holds every right");
        address other = actors[m % 4] == owner ? actors[(m + 1) % 4] : actors[m % 4];
        _true(!market.grants(0, other, m, kind, handler.clock()), "only the owner, with license 0");
    }

    function _checkDerivedFromParents(uint256 m, Ghost.GModel memory g) internal view {
        (uint256[] memory parents, uint256[] memory licenses, uint256[] memory ep, uint16[] memory eb) =
            ghost.lineage(m);
        _true(parents.length <= maxParents, "parents bounded");
        uint256 depth;
        uint256 nodes = 1;
        uint256 totalBps;
        uint256 k;
        for (uint256 i; i < parents.length; ++i) {
            uint256 p = parents[i];
            _true(p != 0 && p < m, "parent minted before child");
            Ghost.GModel memory pm = ghost.model(p);
            if (uint256(pm.depth) + 1 > depth) depth = uint256(pm.depth) + 1;
            uint16 bps = pm.floor;
            if (licenses[i] != 0) {
                Ghost.GOffering memory o = ghost.offering(ghost.license(licenses[i]).offeringId);
                _eq(o.modelId, p, "license of the parent");
                _true(o.kind == LicenseKind.FineTune, "a fine-tune license");
                (, address holder) = market.licenseOf(licenses[i]);
                _eq(holder, address(0), "the license presented is consumed");
                if (o.royaltyBps > bps) bps = o.royaltyBps;
            }
            if (bps == 0) continue;
            _eq(ep[k], p, "royalty edge in parent order");
            _eq(eb[k], bps, "share == max(floor, license share)");
            nodes += pm.nodes;
            totalBps += bps;
            ++k;
        }
        _eq(k, ep.length, "an edge per parent owed a share");
        _eq(g.depth, depth, "depth == 1 + deepest parent");
        _eq(g.nodes, nodes, "royalty nodes == 1 + parents' nodes");
        _true(depth <= maxDepth, "depth bounded");
        _true(nodes <= maxNodes, "nodes bounded");
        _true(totalBps <= 10_000, "shares bounded");
    }

    // ------------------------------------------------------------ the handler's reach

    /// The depth-seeking actions reach both lineage limits exactly and are refused one step
    /// beyond each (LineageTooDeep, LineageTooLarge), with the invariants holding throughout.
    function test_handlerReachesLineageLimits() public {
        for (uint256 i; i < 24; ++i) {
            uint256 r = uint256(keccak256(abi.encode("limits", i)));
            handler.mintDeep(r, 7, r >> 8, r >> 16);
            handler.mintDiamond(r >> 32, i, r >> 40);
        }
        _assertAllInvariants();
        vm.assertEq(handler.maxDepth(), maxDepth, "depth limit reached");
        vm.assertEq(handler.maxNodes(), maxNodes, "royalty-node limit reached");
        vm.assertGt(handler.tooDeep(), 0, "LineageTooDeep one level beyond");
        vm.assertGt(handler.tooLarge(), 0, "LineageTooLarge one node beyond");
    }

    /// A seeded random walk over every action (eight runs' worth): the invariants hold, most
    /// sales split royalties, and every adversarial action was tried and refused with its error.
    function test_randomWalkCoversEveryAction() public {
        uint256 r = uint256(keccak256("walk"));
        for (uint256 s; s < 512; ++s) {
            r = uint256(keccak256(abi.encode(r)));
            _dispatch(r % 22, uint256(keccak256(abi.encode(r, 1))), uint256(keccak256(abi.encode(r, 2))), r >> 8);
            if (s % 64 == 63) _assertAllInvariants();
        }
        uint256 sales = handler.sales();
        _log("walk: sales", sales);
        _log("walk: sales that split royalties", handler.royaltySales());
        _log("walk: renewals", handler.renewals());
        _log("walk: mints", handler.mints());
        _log("walk: max depth", handler.maxDepth());
        _log("walk: max royalty nodes", handler.maxNodes());
        vm.assertGt(sales, 100, "sales happen");
        vm.assertGt(handler.royaltySales() * 3, sales * 2, "more than 2 sales in 3 split royalties");
        vm.assertGt(handler.renewals(), 10, "renewals happen");
        _log("walk: escrowed purchases", handler.escrowedSales());
        _log("walk: keys delivered", handler.deliveries());
        _log("walk: refunds", handler.refunds());
        vm.assertGt(handler.escrowedSales(), 10, "escrowed purchases happen");
        vm.assertGt(handler.deliveries(), 10, "keys are delivered");
        vm.assertGt(handler.refunds(), 5, "refunds happen");
        _log("walk: held shares released", handler.releases());
        vm.assertGt(handler.releases(), 0, "held shares are released");
        for (uint256 k; k < handler.ATTACKS(); ++k) {
            vm.assertGt(handler.attackTries(k), 0, string.concat("attack tried: ", vm.toString(k)));
            vm.assertEq(handler.attackCaught(k), handler.attackTries(k), "attack refused with its error");
        }
    }

    function _dispatch(uint256 action, uint256 a, uint256 b, uint256 c) internal {
        if (action == 0) handler.mint(a, b, c, a >> 8, b >> 8);
        else if (action == 1) handler.mintDeep(a, b, c, a >> 8);
        else if (action == 2) handler.mintDiamond(a, b, c);
        else if (action == 3) handler.publish(a, b, c);
        else if (action == 4) handler.buy(a, b, c);
        else if (action == 5) handler.renew(a, b, c);
        else if (action == 6) handler.approve(a, b, c);
        else if (action == 7) handler.transferLicense(a, b, c);
        else if (action == 8) handler.transferModel(a, b);
        else if (action == 9) handler.close(a);
        else if (action == 10) handler.withdraw(a, b % 2 == 0);
        else if (action == 11) handler.warp(a);
        else if (action == 12) handler.warpToExpiry(a, b);
        else if (action == 13) handler.attackMint(a, b, c);
        else if (action == 14) handler.attackBuy(a, b, c, a >> 8);
        else if (action == 15) handler.attackOwner(a, b, c, a >> 8);
        else if (action == 16) handler.attackRenew(a, b, c);
        else if (action == 17) handler.deliver(a, b, c);
        else if (action == 18) handler.refund(a, b);
        else if (action == 19) handler.setKeeper(a, b, c % 4 != 0);
        else if (action == 20) handler.releaseHeld(a, b % 2 == 0);
        else handler.attackEscrow(a, b, c);
    }

    // ------------------------------------------------------------ helpers

    function _assertNoViolations() internal view {
        vm.assertEq(handler.violations(), 0, handler.firstViolation());
    }

    // Assertions that reach the cheatcode only when they fail: a cheatcode call per passing
    // assertion would dominate the campaign's time.

    function _eq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) vm.assertEq(a, b, what);
    }

    function _eq(address a, address b, string memory what) internal pure {
        if (a != b) vm.assertEq(a, b, what);
    }

    function _true(bool ok, string memory what) internal pure {
        if (!ok) vm.assertTrue(ok, what);
    }

    function _log(string memory label, uint256 value) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", label, value));
        ok;
    }
}
