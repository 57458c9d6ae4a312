// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "../utils/Cheats.sol";
import {MockERC20} from "../mocks/MockERC20.sol";
import {LicenseMarket} from "../../src/LicenseMarket.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {License, LicenseKind, MintParams, Terms} from "../../src/Types.sol";

/// @notice Drives the registry and the market for the invariant tests: four actors mint models
/// (deriving from parents they own or hold a fine-tune license of), publish offerings in the
/// native currency and a mock ERC-20, buy, renew, transfer licenses and models, close offerings,
/// withdraw, and time passes. It keeps ghost books of money and licenses, and counts any
/// outcome that contradicts the contracts' rules in `violations` (reverts are ignored by the
/// fuzzer, so failures cannot be asserted here directly).
contract Handler is TestBase {
    struct LicenseGhost {
        uint256 modelId;
        LicenseKind kind;
        address holder;
        bool transferable;
        /// When the license was bought; never changes.
        uint64 purchasedAt;
        /// Start of the current validity window: the purchase, or the renewal that restarted
        /// the license after it had lapsed.
        uint64 start;
        uint64 expiry;
    }

    struct Triple {
        address actor;
        uint256 modelId;
        LicenseKind kind;
    }

    uint64 public constant T0 = 1_700_000_000;

    ModelRegistry public immutable registry;
    LicenseMarket public immutable market;
    MockERC20 public immutable token;

    address[] public actors;
    /// The ghost clock: every action warps to it first, the invariants query at it.
    uint64 public clock;

    uint256 public calls;
    uint256 public successes;
    mapping(bytes32 action => uint256) public callsOf;
    uint256 public violations;
    string public lastViolation;

    mapping(address currency => uint256) public ghostReceived;
    mapping(address currency => uint256) public ghostWithdrawn;

    LicenseGhost[] internal _licenses; // index licenseId - 1
    mapping(uint256 modelId => mapping(LicenseKind => uint256[])) internal _byModelKind;
    Triple[] internal _triples;
    mapping(bytes32 => bool) internal _tracked;

    constructor(ModelRegistry registry_, LicenseMarket market_, MockERC20 token_) {
        registry = registry_;
        market = market_;
        token = token_;
        actors.push(address(0xA1));
        actors.push(address(0xA2));
        actors.push(address(0xA3));
        actors.push(address(0xA4));
        clock = T0;
        vm.warp(clock);
        // A base model for each of the first three actors, each with a fine-tune offering.
        for (uint256 i; i < 3; ++i) {
            vm.prank(actors[i]);
            uint256 id = registry.mint(_params(actors[i], i));
            Terms memory t = _terms(id, LicenseKind.FineTune, i == 1 ? address(token) : address(0), 1e15, 0);
            t.royaltyBps = uint16(500 * (i + 1));
            vm.prank(actors[i]);
            market.publishOffering(t);
        }
    }

    modifier step(string memory action) {
        ++calls;
        ++callsOf[keccak256(bytes(action))];
        vm.warp(clock);
        _;
    }

    // ------------------------------------------------------------ actions

    function mint(uint256 actorSeed, uint256 parentSeed, uint8 count, uint16 saleRoyalty) external step("mint") {
        address actor = _actor(actorSeed);
        uint256 total = registry.totalModels();
        uint256 n = count % 4;
        uint256[] memory parents = new uint256[](n);
        uint256[] memory licenses = new uint256[](n);
        uint256 k;
        for (uint256 i; i < n; ++i) {
            // Bias towards recent models so that lineages grow deep.
            uint256 span = 1 + (parentSeed >> (i * 32)) % total;
            uint256 parentId = total + 1 - (1 + ((parentSeed >> (128 + i * 32)) % span));
            bool dup;
            for (uint256 j; j < k; ++j) {
                if (parents[j] == parentId) dup = true;
            }
            if (dup) continue;
            uint256 lic;
            if (registry.ownerOf(parentId) != actor) {
                lic = _validFineTune(actor, parentId);
                if (lic == 0) continue;
            }
            (parents[k], licenses[k]) = (parentId, lic);
            ++k;
        }
        assembly {
            mstore(parents, k)
            mstore(licenses, k)
        }
        _mintWith(actor, parents, licenses, saleRoyalty);
    }

    function _mintWith(address actor, uint256[] memory parents, uint256[] memory licenses, uint16 saleRoyalty)
        internal
    {
        uint256 total = registry.totalModels();
        MintParams memory p = _params(actor, total);
        p.parents = parents;
        p.licenses = licenses;
        p.saleRoyaltyBps = uint96(saleRoyalty % 1_001);
        vm.prank(actor);
        try registry.mint(p) returns (uint256 id) {
            ++successes;
            if (id != total + 1) _fail("mint: id not sequential");
            if (registry.ownerOf(id) != actor) _fail("mint: owner");
            for (uint256 i; i < licenses.length; ++i) {
                if (licenses[i] == 0) continue;
                LicenseGhost storage g = _licenses[licenses[i] - 1];
                if (g.holder != actor || g.modelId != parents[i] || g.kind != LicenseKind.FineTune) {
                    _fail("mint: derived under a license not held");
                }
                if (!_ghostValid(g, clock)) _fail("mint: derived under a license not valid now");
            }
        } catch (bytes memory reason) {
            bytes4 sel = bytes4(reason);
            if (
                sel != ModelRegistry.LineageTooDeep.selector && sel != ModelRegistry.LineageTooLarge.selector
                    && sel != ModelRegistry.RoyaltySharesExceedTotal.selector
            ) _fail("mint: unexpected revert");
        }
    }

    /// Derives a model from up to three parents the actor holds a valid fine-tune license of
    /// (the royalty-bearing path, which `mint` rarely finds by chance).
    function mintDerivative(uint256 actorSeed, uint256 pick, uint16 saleRoyalty) external step("mintDerivative") {
        address actor = _actor(actorSeed);
        uint256[] memory parents = new uint256[](3);
        uint256[] memory licenses = new uint256[](3);
        uint256 k;
        uint256 n = _licenses.length;
        for (uint256 i; i < n && k < 3; ++i) {
            uint256 id = 1 + (pick % n + i) % n;
            LicenseGhost storage g = _licenses[id - 1];
            if (g.holder != actor || g.kind != LicenseKind.FineTune) continue;
            if (!_ghostValid(g, clock)) continue;
            bool dup;
            for (uint256 j; j < k; ++j) {
                if (parents[j] == g.modelId) dup = true;
            }
            if (dup) continue;
            (parents[k], licenses[k]) = (g.modelId, id);
            ++k;
        }
        if (k == 0) return;
        assembly {
            mstore(parents, k)
            mstore(licenses, k)
        }
        _mintWith(actor, parents, licenses, saleRoyalty);
    }

    function publish(
        uint256 modelSeed,
        uint8 kindSeed,
        bool erc20,
        uint256 price,
        uint64 duration,
        uint8 cap,
        bool transferable,
        uint16 bps
    ) external step("publish") {
        uint256 modelId = 1 + modelSeed % registry.totalModels();
        LicenseKind kind = LicenseKind(kindSeed % 3);
        Terms memory t = _terms(modelId, kind, erc20 ? address(token) : address(0), bound(price, 0, 1e20), 0);
        uint256 d = duration % 4;
        t.duration = d == 0 ? 0 : d == 1 ? 1 days : d == 2 ? 7 days : uint64(bound(duration, 1, 60 days));
        t.supplyCap = cap % 6;
        t.transferable = transferable;
        t.royaltyBps = kind == LicenseKind.FineTune ? uint16(bound(bps, 0, 3_000)) : 0;
        vm.prank(registry.ownerOf(modelId));
        try market.publishOffering(t) {
            ++successes;
        } catch {
            _fail("publish: reverted");
        }
    }

    function buy(uint256 offeringSeed, uint256 payerSeed, uint256 holderSeed) external step("buy") {
        uint256 offeringId = 1 + offeringSeed % market.totalOfferings();
        LicenseMarket.Offering memory o = market.offeringOf(offeringId);
        Terms memory t = o.terms;
        address payer = _actor(payerSeed);
        address holder = _actor(holderSeed);
        uint256 value = _fund(payer, t.currency, t.price);
        bool shouldFail = o.closed || (t.supplyCap != 0 && o.sold >= t.supplyCap);
        vm.prank(payer);
        try market.buy{value: value}(offeringId, holder, t.price) returns (uint256 id) {
            if (shouldFail) _fail("buy: closed or sold out offering sold");
            ++successes;
            if (id != _licenses.length + 1) _fail("buy: license id");
            ghostReceived[t.currency] += t.price;
            uint64 expiry = t.duration == 0 ? 0 : clock + t.duration;
            _licenses.push(LicenseGhost(t.modelId, t.kind, holder, t.transferable, clock, clock, expiry));
            _byModelKind[t.modelId][t.kind].push(id);
            _track(holder, t.modelId, t.kind);
        } catch (bytes memory reason) {
            if (!shouldFail) _fail("buy: reverted");
            bytes memory want = o.closed
                ? abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, offeringId)
                : abi.encodeWithSelector(LicenseMarket.SoldOut.selector, offeringId, t.supplyCap);
            if (keccak256(reason) != keccak256(want)) _fail("buy: wrong error");
            _unfund(payer, t.currency, t.price);
        }
    }

    function renew(uint256 licenseSeed, uint256 payerSeed) external step("renew") {
        if (_licenses.length == 0) return;
        uint256 id = 1 + licenseSeed % _licenses.length;
        (License memory l,) = market.licenseOf(id);
        address payer = _actor(payerSeed);
        bool closed = market.offeringOf(l.offeringId).closed;
        uint256 value = _fund(payer, l.currency, l.price);
        vm.prank(payer);
        try market.renew{value: value}(id, l.price) returns (uint64 expiry) {
            if (l.duration == 0 || closed) _fail("renew: perpetual or closed renewed");
            ++successes;
            LicenseGhost storage g = _licenses[id - 1];
            uint64 from = g.expiry > clock ? g.expiry : clock;
            if (expiry != from + l.duration) _fail("renew: expiry != max(now, expiry) + duration");
            // A license that had lapsed (a gap between its expiry and now) restarts now: the gap
            // is not covered. Renewed while valid, or exactly at its expiry, it keeps its start.
            bool lapsed = g.expiry < clock;
            if (lapsed) g.start = clock;
            g.expiry = from + l.duration;
            (License memory renewed,) = market.licenseOf(id);
            if (renewed.start != g.start) _fail("renew: start != (lapsed ? now : unchanged)");
            if (!market.isLicenseValid(id, clock)) _fail("renew: not valid right after the renewal");
            if (lapsed && market.isLicenseValid(id, clock - 1)) _fail("renew: the unpaid gap is covered");
            ghostReceived[l.currency] += l.price;
        } catch (bytes memory reason) {
            bytes memory want = l.duration == 0
                ? abi.encodeWithSelector(LicenseMarket.PerpetualLicense.selector, id)
                : abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, l.offeringId);
            if (!(l.duration == 0 || closed) || keccak256(reason) != keccak256(want)) _fail("renew: wrong revert");
            _unfund(payer, l.currency, l.price);
        }
    }

    function transferLicense(uint256 licenseSeed, uint256 toSeed) external step("transferLicense") {
        if (_licenses.length == 0) return;
        uint256 id = 1 + licenseSeed % _licenses.length;
        LicenseGhost storage g = _licenses[id - 1];
        address to = _actor(toSeed);
        vm.prank(g.holder);
        try market.transferFrom(g.holder, to, id) {
            if (!g.transferable) _fail("transfer: non-transferable license moved");
            ++successes;
            g.holder = to;
            _track(to, g.modelId, g.kind);
        } catch (bytes memory reason) {
            if (g.transferable) _fail("transfer: transferable license stuck");
            if (
                keccak256(reason)
                    != keccak256(abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, id))
            ) {
                _fail("transfer: wrong error");
            }
        }
    }

    function transferModel(uint256 modelSeed, uint256 toSeed) external step("transferModel") {
        uint256 modelId = 1 + modelSeed % registry.totalModels();
        address from = registry.ownerOf(modelId);
        vm.prank(from);
        registry.transferFrom(from, _actor(toSeed), modelId);
        ++successes;
    }

    function close(uint256 offeringSeed) external step("close") {
        uint256 offeringId = 1 + offeringSeed % market.totalOfferings();
        LicenseMarket.Offering memory o = market.offeringOf(offeringId);
        vm.prank(registry.ownerOf(o.terms.modelId));
        try market.closeOffering(offeringId) {
            if (o.closed) _fail("close: closed twice");
            ++successes;
        } catch {
            if (!o.closed) _fail("close: reverted");
        }
    }

    function withdraw(uint256 actorSeed, bool erc20) external step("withdraw") {
        address actor = _actor(actorSeed);
        address currency = erc20 ? address(token) : address(0);
        uint256 credit = market.credits(actor, currency);
        uint256 before = currency == address(0) ? actor.balance : token.balanceOf(actor);
        vm.prank(actor);
        try market.withdraw(currency, actor) returns (uint256 amount) {
            ++successes;
            if (amount != credit || credit == 0) _fail("withdraw: amount");
            uint256 afterBalance = currency == address(0) ? actor.balance : token.balanceOf(actor);
            if (afterBalance != before + amount) _fail("withdraw: not delivered");
            ghostWithdrawn[currency] += amount;
        } catch {
            if (credit != 0) _fail("withdraw: reverted with a balance");
        }
    }

    function warp(uint256 secs) external step("warp") {
        clock += uint64(bound(secs, 1, 40 days));
        vm.warp(clock);
        ++successes;
    }

    // ------------------------------------------------------------ ghost views

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function licenseCount() external view returns (uint256) {
        return _licenses.length;
    }

    function licenseGhost(uint256 licenseId) external view returns (LicenseGhost memory) {
        return _licenses[licenseId - 1];
    }

    function licensesOf(uint256 modelId, LicenseKind kind) external view returns (uint256[] memory) {
        return _byModelKind[modelId][kind];
    }

    function tripleCount() external view returns (uint256) {
        return _triples.length;
    }

    function triple(uint256 i) external view returns (Triple memory) {
        return _triples[i];
    }

    // ------------------------------------------------------------ helpers

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    function _fail(string memory why) internal {
        ++violations;
        lastViolation = why;
    }

    function _track(address actor, uint256 modelId, LicenseKind kind) internal {
        bytes32 key = keccak256(abi.encode(actor, modelId, kind));
        if (_tracked[key]) return;
        _tracked[key] = true;
        _triples.push(Triple(actor, modelId, kind));
    }

    /// The ghost's view of validity: within [start, expiry), expiry 0 = perpetual.
    function _ghostValid(LicenseGhost storage g, uint64 at) internal view returns (bool) {
        return g.start <= at && (g.expiry == 0 || at < g.expiry);
    }

    /// A fine-tune license of `modelId` that `actor` holds and that is valid now, or 0.
    function _validFineTune(address actor, uint256 modelId) internal view returns (uint256) {
        uint256[] memory held = market.licensesHeld(actor, modelId, LicenseKind.FineTune);
        for (uint256 i; i < held.length; ++i) {
            if (market.isLicenseValid(held[i], clock)) return held[i];
        }
        return 0;
    }

    /// Gives `payer` the price and returns the value to send.
    function _fund(address payer, address currency, uint256 price) internal returns (uint256) {
        if (currency == address(0)) {
            vm.deal(payer, payer.balance + price);
            return price;
        }
        token.mint(payer, price);
        vm.prank(payer);
        token.approve(address(market), price);
        return 0;
    }

    /// Takes back what `_fund` gave when the purchase failed, so balances stay meaningful.
    function _unfund(address payer, address currency, uint256 price) internal {
        if (currency == address(0)) {
            vm.deal(payer, payer.balance - price);
        } else {
            vm.prank(payer);
            token.transfer(address(0xdead), price);
        }
    }

    function _params(address to, uint256 salt) internal pure returns (MintParams memory p) {
        p.to = to;
        p.weightsCid = "bafy-weights";
        p.contentRoot = keccak256(abi.encode("root", salt));
        p.fingerprint = keccak256(abi.encode("fingerprint", salt));
        p.metadataUri = "ipfs://metadata";
    }

    function _terms(uint256 modelId, LicenseKind kind, address currency, uint256 price, uint64 duration)
        internal
        pure
        returns (Terms memory t)
    {
        t.modelId = modelId;
        t.kind = kind;
        t.currency = currency;
        t.price = price;
        t.duration = duration;
        t.transferable = true;
        t.termsUri = "ipfs://terms";
        t.termsHash = keccak256("terms");
    }
}
