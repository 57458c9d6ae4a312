// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {TestBase} from "../utils/Cheats.sol";
import {MockERC20} from "../mocks/MockERC20.sol";
import {LicenseMarket} from "../../src/LicenseMarket.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {License, LicenseKind, MintParams, Terms} from "../../src/Types.sol";

/// @notice The invariant suite's reference model of the registry and the market: its own books
/// of models (owner, lineage, floor), offerings, licenses and credits, kept from what the handler
/// did and never read back from the contracts. From them it tells what every call must do: the
/// exact revert data the contracts' rules give (checked in the contracts' order), or, for a
/// sale, who is credited what (a reference of `LicenseMarket._split`).
contract Ghost {
    uint256 internal constant BPS = 10_000;
    uint256 internal constant MAX_DEPTH = 16;
    uint256 internal constant MAX_NODES = 64;
    uint256 internal constant MAX_PARENTS = 8;
    uint64 internal constant MAX_DURATION = 100 * 365 days;
    uint64 internal constant MAX_DELIVERY_PERIOD = 90 days;

    struct GModel {
        address owner;
        /// Block of the latest transfer of the model token; 0 while the minter holds it.
        uint64 ownerSince;
        uint16 floor;
        uint8 depth;
        uint8 nodes;
        bytes32 root;
        /// Weights stored encrypted: access and fine-tune offerings are escrowed.
        bool encrypted;
    }

    struct GOffering {
        uint256 modelId;
        LicenseKind kind;
        address currency;
        uint256 price;
        uint64 duration;
        uint32 supplyCap;
        uint32 sold;
        bool transferable;
        uint16 royaltyBps;
        uint64 renewalPeriod;
        address publisher;
        bool closed;
        uint64 closedAt;
        bool escrowed;
        uint64 deliveryPeriod;
    }

    struct GLicense {
        uint256 offeringId;
        /// Address zero once a derivative consumed the license, or once refunded.
        address holder;
        /// The purchase (an escrowed one's key delivery): never moves after.
        uint64 start;
        /// 0 = perpetual.
        uint64 expiry;
        /// The single-license approval (ERC-721 `getApproved`).
        address approved;
        /// The holder when the license was consumed.
        address consumedBy;
        /// An escrowed sale awaiting its key: who paid, and until when the key may come.
        address payer;
        uint64 deadline;
        /// The age recipient of an escrowed purchase (its `KeyRequested`'s): a delivery must
        /// name it, with the model and the holder (who cannot change while the key is awaited).
        bytes32 recipient;
        /// Burnt by a refund (its key never came): valid nowhere, ever.
        bool refunded;
    }

    /// What a mint must record, when it succeeds.
    struct MintResult {
        uint256 depth;
        uint256 nodes;
        uint256 totalBps;
        uint256[] edgeParents;
        uint16[] edgeBps;
    }

    /// Selects licenses. holderRule: 0 any, 1 held by `holder`, 2 held by someone else.
    /// modelId 0: any model. kindRule: 0 any, 1 fine-tune, 2 not fine-tune. timeRule: 0 any,
    /// 1 time-bound, 2 time-bound and not valid at `at` (expiry <= at), 3 time-bound and
    /// expiring after `at`, 4 renewable at `at` (not lapsed: at < expiry; offering open or
    /// within its renewal period), 5 lapsed at `at` (expiry <= at: a license is valid on
    /// [start, expiry), so at its expiry it has lapsed) while its offering is still renewable,
    /// 6 valid at `at`. Licenses awaiting their keys have no window yet: only timeRule 0
    /// selects them.
    struct LicenseQuery {
        bool consumed;
        uint8 holderRule;
        address holder;
        uint256 modelId;
        uint8 kindRule;
        uint8 timeRule;
        uint64 at;
    }

    /// Selects offerings. kindRule as in `LicenseQuery`; modelId 0 = any model. sellRule 0: can
    /// sell in block `blk` (open, not sold out, publisher owns the model, not since `blk`, and
    /// no ancestor its price pays a share changed hands in `blk`); 1: open, not sold out, but
    /// its publisher no longer owns the model.
    struct OfferingQuery {
        uint256 modelId;
        uint8 kindRule;
        bool royalty;
        bool priced;
        bool timeBound;
        uint8 sellRule;
        uint256 blk;
    }

    address public immutable token;

    GModel[] internal _models; // index modelId - 1
    mapping(uint256 modelId => uint256[]) internal _edgeParents;
    mapping(uint256 modelId => uint16[]) internal _edgeBps;
    mapping(uint256 modelId => uint256[]) internal _parents;
    mapping(uint256 modelId => uint256[]) internal _parentLicenses;
    mapping(bytes32 root => uint256 modelId) public modelByRoot;
    GOffering[] internal _offerings; // index offeringId - 1
    GLicense[] internal _licenses; // index licenseId - 1
    mapping(address holder => mapping(address operator => bool)) public isOperator;
    mapping(address account => mapping(address currency => uint256)) public credits;
    /// Shares held for ancestors that changed hands in the block of a sale (`heldShares`).
    mapping(uint256 modelId => mapping(address currency => uint256)) public held;
    mapping(address currency => uint256) public heldTotal;
    mapping(address currency => uint256) public paidIn;
    mapping(address currency => uint256) public paidOut;
    /// Prices held for keys not delivered yet.
    mapping(address currency => uint256) public escrowed;
    mapping(address owner => mapping(address keeper => bool)) public isKeeper;
    uint256 public consumedCount;

    constructor(address token_) {
        token = token_;
    }

    // ------------------------------------------------------------ books

    function addModel(
        GModel calldata m,
        uint256[] calldata parents,
        uint256[] calldata licenses,
        uint256[] calldata edgeParents,
        uint16[] calldata edgeBps
    ) external returns (uint256 id) {
        _models.push(m);
        id = _models.length;
        modelByRoot[m.root] = id;
        _parents[id] = parents;
        _parentLicenses[id] = licenses;
        _edgeParents[id] = edgeParents;
        _edgeBps[id] = edgeBps;
        for (uint256 i; i < licenses.length; ++i) {
            if (licenses[i] == 0) continue;
            GLicense storage l = _licenses[licenses[i] - 1];
            l.consumedBy = l.holder;
            l.holder = address(0);
            l.approved = address(0);
            ++consumedCount;
        }
    }

    function setOwner(uint256 modelId, address owner, uint64 blk) external {
        _models[modelId - 1].owner = owner;
        _models[modelId - 1].ownerSince = blk;
    }

    function addOffering(GOffering calldata o) external returns (uint256) {
        _offerings.push(o);
        return _offerings.length;
    }

    function setOffering(uint256 offeringId, GOffering calldata o) external {
        _offerings[offeringId - 1] = o;
    }

    function addLicense(GLicense calldata l) external returns (uint256) {
        _licenses.push(l);
        return _licenses.length;
    }

    function setLicense(uint256 licenseId, GLicense calldata l) external {
        _licenses[licenseId - 1] = l;
    }

    function setOperator(address holder, address operator, bool approved) external {
        isOperator[holder][operator] = approved;
    }

    /// Books a sale of `modelId` for `amount` and credits the reference split; true when a
    /// parent received a non-zero share.
    function sale(uint256 modelId, address currency, uint256 amount) external returns (bool royalty) {
        paidIn[currency] += amount;
        return _split(modelId, currency, amount);
    }

    /// Books an escrowed purchase: paid in, credited to nobody.
    function hold(address currency, uint256 amount) external {
        paidIn[currency] += amount;
        escrowed[currency] += amount;
    }

    /// Books a key delivery: the escrowed price split as a sale's, to the owners of now.
    function release(uint256 modelId, address currency, uint256 amount) external returns (bool royalty) {
        escrowed[currency] -= amount;
        return _split(modelId, currency, amount);
    }

    /// Books a refund: the escrowed price credited back to its payer.
    function refund(address payer, address currency, uint256 amount) external {
        escrowed[currency] -= amount;
        credits[payer][currency] += amount;
    }

    function setKeeper(address owner, address keeper, bool approved) external {
        isKeeper[owner][keeper] = approved;
    }

    /// The reference split: each royalty edge's share is floor(amount * bps / 10_000), split
    /// again up the parent's own lineage (held for the parent instead when it changed hands in
    /// this block); what is left goes to the node's current owner.
    function _split(uint256 modelId, address currency, uint256 amount) internal returns (bool royalty) {
        if (amount == 0) return false;
        uint256 rest = amount;
        uint256[] storage parents = _edgeParents[modelId];
        uint16[] storage bps = _edgeBps[modelId];
        for (uint256 i; i < parents.length; ++i) {
            uint256 share = Math.mulDiv(amount, bps[i], BPS);
            if (share == 0) continue;
            rest -= share;
            royalty = true;
            if (_models[parents[i] - 1].ownerSince == block.number) {
                held[parents[i]][currency] += share;
                heldTotal[currency] += share;
            } else {
                _split(parents[i], currency, share);
            }
        }
        if (rest > 0) credits[_models[modelId - 1].owner][currency] += rest;
    }

    /// Books `releaseHeld`: the shares held for `modelId` split as a sale's, now.
    function releaseHeld(uint256 modelId, address currency) external {
        uint256 amount = held[modelId][currency];
        held[modelId][currency] = 0;
        heldTotal[currency] -= amount;
        _split(modelId, currency, amount);
    }

    /// A model holding shares in `currency`, from `seed` on; else the model `seed` names.
    function findHeld(uint256 seed, address currency) external view returns (uint256) {
        uint256 n = _models.length;
        for (uint256 i; i < n; ++i) {
            uint256 m = 1 + (seed + i) % n;
            if (held[m][currency] > 0) return m;
        }
        return 1 + seed % n;
    }

    function releaseError(uint256 modelId, address currency, uint256 blk) external view returns (bytes memory) {
        if (held[modelId][currency] == 0) {
            return abi.encodeWithSelector(LicenseMarket.NothingHeld.selector, modelId, currency);
        }
        if (_models[modelId - 1].ownerSince == blk) {
            return abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, modelId);
        }
        return "";
    }

    function withdrawn(address account, address currency) external returns (uint256 amount) {
        amount = credits[account][currency];
        credits[account][currency] = 0;
        paidOut[currency] += amount;
    }

    // ------------------------------------------------------------ reads

    function modelCount() external view returns (uint256) {
        return _models.length;
    }

    function model(uint256 modelId) external view returns (GModel memory) {
        return _models[modelId - 1];
    }

    function offeringCount() external view returns (uint256) {
        return _offerings.length;
    }

    function offering(uint256 offeringId) external view returns (GOffering memory) {
        return _offerings[offeringId - 1];
    }

    function licenseCount() external view returns (uint256) {
        return _licenses.length;
    }

    function license(uint256 licenseId) external view returns (GLicense memory) {
        return _licenses[licenseId - 1];
    }

    /// A model's parents with the licenses presented, and its royalty edges with shares.
    function lineage(uint256 modelId)
        external
        view
        returns (uint256[] memory, uint256[] memory, uint256[] memory, uint16[] memory)
    {
        return (_parents[modelId], _parentLicenses[modelId], _edgeParents[modelId], _edgeBps[modelId]);
    }

    /// Whether the license's window covers `at`: never while its key is awaited or once it
    /// was refunded.
    function valid(uint256 licenseId, uint64 at) public view returns (bool) {
        GLicense storage l = _licenses[licenseId - 1];
        if (l.payer != address(0) || l.refunded) return false;
        return l.start <= at && (l.expiry == 0 || at < l.expiry);
    }

    function pending(uint256 licenseId) public view returns (bool) {
        return _licenses[licenseId - 1].payer != address(0);
    }

    /// Whether license `licenseId`'s offering renews at time `at`: open, or closed less than its
    /// renewal period before.
    function renewsAt(uint256 licenseId, uint64 at) public view returns (bool) {
        GOffering storage o = _offerings[_licenses[licenseId - 1].offeringId - 1];
        return !o.closed || at < uint256(o.closedAt) + o.renewalPeriod;
    }

    /// Whether `spender` may renew or move license `licenseId` (ERC-721 `_isAuthorized`).
    function authorized(uint256 licenseId, address spender) public view returns (bool) {
        GLicense storage l = _licenses[licenseId - 1];
        return spender != address(0) && (l.holder == spender || isOperator[l.holder][spender] || l.approved == spender);
    }

    // ------------------------------------------------------------ expected outcomes

    /// The revert data `registry.mint` must give (empty: it must succeed), and what it records.
    function mintOutcome(
        address minter,
        uint256[] calldata parents,
        uint256[] calldata licenses,
        bytes32 root,
        uint64 at,
        uint256 blk
    ) external view returns (bytes memory err, MintResult memory r) {
        {
            uint256 existing = modelByRoot[root];
            if (existing != 0) {
                return (abi.encodeWithSelector(ModelRegistry.DuplicateContent.selector, root, existing), r);
            }
        }
        uint256 n = parents.length;
        if (n != licenses.length) {
            return (abi.encodeWithSelector(ModelRegistry.ParentLicenseCountMismatch.selector, n, licenses.length), r);
        }
        if (n > MAX_PARENTS) return (abi.encodeWithSelector(ModelRegistry.TooManyParents.selector, n, MAX_PARENTS), r);
        r.edgeParents = new uint256[](n);
        r.edgeBps = new uint16[](n);
        r.nodes = 1;
        uint256 k;
        for (uint256 i; i < n; ++i) {
            uint16 bps;
            (err, bps) = _admit(minter, parents, licenses, i, at, blk);
            if (err.length != 0) return (err, r);
            GModel storage pm = _models[parents[i] - 1];
            if (uint256(pm.depth) + 1 > r.depth) r.depth = uint256(pm.depth) + 1;
            if (bps > 0) {
                r.nodes += pm.nodes;
                r.totalBps += bps;
                (r.edgeParents[k], r.edgeBps[k]) = (parents[i], bps);
                ++k;
            }
        }
        uint256[] memory ep = r.edgeParents;
        uint16[] memory eb = r.edgeBps;
        assembly ("memory-safe") {
            mstore(ep, k)
            mstore(eb, k)
        }
        if (r.depth > MAX_DEPTH) {
            return (abi.encodeWithSelector(ModelRegistry.LineageTooDeep.selector, r.depth, MAX_DEPTH), r);
        }
        if (r.nodes > MAX_NODES) {
            return (abi.encodeWithSelector(ModelRegistry.LineageTooLarge.selector, r.nodes, MAX_NODES), r);
        }
        if (r.totalBps > BPS) {
            return (abi.encodeWithSelector(ModelRegistry.RoyaltySharesExceedTotal.selector, r.totalBps), r);
        }
    }

    /// Parent `i` of a mint in block `blk`: the revert its admission must give, or the share
    /// owed to it (the floor on the owner path, where the parent must not have changed hands in
    /// `blk`; else the license's share if higher).
    function _admit(
        address minter,
        uint256[] calldata parents,
        uint256[] calldata licenses,
        uint256 i,
        uint64 at,
        uint256 blk
    ) internal view returns (bytes memory err, uint16 bps) {
        uint256 p = parents[i];
        if (p == 0 || p > _models.length) return (abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, p), 0);
        for (uint256 j; j < i; ++j) {
            if (parents[j] == p) return (abi.encodeWithSelector(ModelRegistry.DuplicateParent.selector, p), 0);
        }
        GModel storage pm = _models[p - 1];
        bps = pm.floor;
        if (licenses[i] == 0) {
            if (pm.owner != minter) {
                err = abi.encodeWithSelector(ModelRegistry.NotParentOwner.selector, p, minter);
            } else if (pm.ownerSince == blk) {
                err = abi.encodeWithSelector(ModelRegistry.OwnerChangedThisBlock.selector, p);
            }
            return (err, bps);
        }
        err = consumeError(licenses[i], minter, p, at);
        if (err.length != 0) return (err, bps);
        uint16 licensed = _offerings[_licenses[licenses[i] - 1].offeringId - 1].royaltyBps;
        if (licensed > bps) bps = licensed;
    }

    /// The revert data `market.consume` must give for a derivative of `parentId` minted by
    /// `minter` under license `licenseId` at time `at`.
    function consumeError(uint256 licenseId, address minter, uint256 parentId, uint64 at)
        public
        view
        returns (bytes memory)
    {
        if (licenseId == 0 || licenseId > _licenses.length) {
            return abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, licenseId);
        }
        GLicense storage l = _licenses[licenseId - 1];
        if (l.holder == address(0)) {
            return abi.encodeWithSelector(LicenseMarket.LicenseAlreadyUsed.selector, licenseId);
        }
        GOffering storage o = _offerings[l.offeringId - 1];
        if (o.modelId != parentId) {
            return abi.encodeWithSelector(LicenseMarket.LicenseForOtherModel.selector, licenseId, o.modelId, parentId);
        }
        if (o.kind != LicenseKind.FineTune) {
            return abi.encodeWithSelector(LicenseMarket.NotFineTuneLicense.selector, licenseId, o.kind);
        }
        if (l.holder != minter) {
            return abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, licenseId, l.holder, minter);
        }
        if (l.payer != address(0)) return abi.encodeWithSelector(LicenseMarket.KeyNotDelivered.selector, licenseId);
        if (!valid(licenseId, at)) {
            return abi.encodeWithSelector(LicenseMarket.LicenseNotValid.selector, licenseId, l.start, l.expiry, at);
        }
        return "";
    }

    /// An escrowed purchase needs a recipient and is paid nobody yet: its lineage's owners are
    /// checked at delivery, not here.
    function buyError(
        uint256 offeringId,
        address holder,
        uint256 maxPrice,
        uint256 value,
        bytes32 recipient,
        uint256 blk
    ) external view returns (bytes memory) {
        if (offeringId == 0 || offeringId > _offerings.length) {
            return abi.encodeWithSelector(LicenseMarket.UnknownOffering.selector, offeringId);
        }
        GOffering storage o = _offerings[offeringId - 1];
        if (o.closed) return abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, offeringId);
        if (o.supplyCap != 0 && o.sold >= o.supplyCap) {
            return abi.encodeWithSelector(LicenseMarket.SoldOut.selector, offeringId, uint64(o.supplyCap));
        }
        if (o.price > maxPrice) return abi.encodeWithSelector(LicenseMarket.PriceAboveMax.selector, o.price, maxPrice);
        if (holder == address(0)) return abi.encodeWithSelector(LicenseMarket.ZeroAddress.selector);
        if (o.escrowed && recipient == bytes32(0)) {
            return abi.encodeWithSelector(LicenseMarket.RecipientRequired.selector, offeringId);
        }
        GModel storage m = _models[o.modelId - 1];
        if (m.owner != o.publisher) {
            return abi.encodeWithSelector(LicenseMarket.PublisherNotOwner.selector, offeringId, o.publisher, m.owner);
        }
        if (m.ownerSince == blk) {
            return abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, o.modelId);
        }
        if (o.escrowed) return _collectError(o.currency, o.price, value);
        return _payError(o, value, blk);
    }

    /// Renewals in block `blk` at time `at`: a license is valid on [start, expiry), so at its
    /// expiry it has lapsed; the model must not have changed hands in `blk` (no publisher check:
    /// a renewal sells under the offering whoever owns the model now).
    function renewError(uint256 licenseId, address caller, uint256 maxPrice, uint256 value, uint64 at, uint256 blk)
        external
        view
        returns (bytes memory)
    {
        GLicense storage l = _licenses[licenseId - 1];
        if (l.holder == address(0)) {
            return abi.encodeWithSelector(LicenseMarket.LicenseAlreadyUsed.selector, licenseId);
        }
        if (!authorized(licenseId, caller)) {
            return abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, licenseId, l.holder, caller);
        }
        if (l.payer != address(0)) return abi.encodeWithSelector(LicenseMarket.KeyNotDelivered.selector, licenseId);
        GOffering storage o = _offerings[l.offeringId - 1];
        if (o.duration == 0) return abi.encodeWithSelector(LicenseMarket.PerpetualLicense.selector, licenseId);
        if (o.closed && at >= uint256(o.closedAt) + o.renewalPeriod) {
            return abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, l.offeringId);
        }
        if (o.price > maxPrice) return abi.encodeWithSelector(LicenseMarket.PriceAboveMax.selector, o.price, maxPrice);
        if (at >= l.expiry) return abi.encodeWithSelector(LicenseMarket.LicenseLapsed.selector, licenseId, l.expiry);
        if (_models[o.modelId - 1].ownerSince == blk) {
            return abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, o.modelId);
        }
        return _payError(o, value, blk);
    }

    /// A sale of `o` whose model may sell: the payment's error (an ancestor that changed hands
    /// in this block has its share held, it refuses nothing).
    function _payError(GOffering storage o, uint256 value, uint256) internal view returns (bytes memory err) {
        err = _collectError(o.currency, o.price, value);
    }

    /// The ancestors a sale of `modelId` for `amount` pays a share, in the split's order (an
    /// ancestor reached twice, as in a diamond, is listed twice).
    function paidAncestors(uint256 modelId, uint256 amount) external view returns (uint256[] memory list) {
        list = new uint256[](MAX_NODES);
        uint256 n = _paidAncestors(modelId, amount, list, 0);
        assembly ("memory-safe") {
            mstore(list, n)
        }
    }

    function _paidAncestors(uint256 modelId, uint256 amount, uint256[] memory list, uint256 n)
        internal
        view
        returns (uint256)
    {
        if (amount == 0) return n;
        uint256[] storage parents = _edgeParents[modelId];
        uint16[] storage bps = _edgeBps[modelId];
        for (uint256 i; i < parents.length; ++i) {
            uint256 share = Math.mulDiv(amount, bps[i], BPS);
            if (share == 0) continue;
            list[n++] = parents[i];
            n = _paidAncestors(parents[i], share, list, n);
        }
        return n;
    }

    function _collectError(address currency, uint256 price, uint256 value) internal pure returns (bytes memory) {
        if (currency == address(0)) {
            if (value != price) return abi.encodeWithSelector(LicenseMarket.WrongPayment.selector, value, price);
        } else if (value != 0) {
            return abi.encodeWithSelector(LicenseMarket.NativeNotAccepted.selector, value);
        }
        return "";
    }

    function publishError(address caller, Terms calldata t) external view returns (bytes memory) {
        if (t.modelId == 0 || t.modelId > _models.length) {
            return abi.encodeWithSelector(LicenseMarket.UnknownModel.selector, t.modelId);
        }
        GModel storage m = _models[t.modelId - 1];
        if (m.owner != caller) return abi.encodeWithSelector(LicenseMarket.NotModelOwner.selector, t.modelId, caller);
        if (t.kind == LicenseKind.FineTune) {
            if (t.royaltyBps > BPS) {
                return abi.encodeWithSelector(LicenseMarket.RoyaltyAboveTotal.selector, t.royaltyBps);
            }
            if (t.royaltyBps < m.floor) {
                return abi.encodeWithSelector(LicenseMarket.RoyaltyBelowFloor.selector, t.royaltyBps, m.floor);
            }
        } else if (t.royaltyBps != 0) {
            return abi.encodeWithSelector(LicenseMarket.RoyaltyOnlyForFineTune.selector, t.kind, t.royaltyBps);
        }
        if (t.currency != address(0) && t.currency != token) {
            return abi.encodeWithSelector(LicenseMarket.CurrencyNotAccepted.selector, t.currency);
        }
        if (t.duration > MAX_DURATION) {
            return abi.encodeWithSelector(LicenseMarket.DurationTooLong.selector, t.duration, MAX_DURATION);
        }
        if (t.renewalPeriod > MAX_DURATION) {
            return abi.encodeWithSelector(LicenseMarket.DurationTooLong.selector, t.renewalPeriod, MAX_DURATION);
        }
        if (t.price > type(uint96).max) return abi.encodeWithSelector(LicenseMarket.PriceTooLarge.selector, t.price);
        if (t.supplyCap > type(uint32).max) {
            return abi.encodeWithSelector(LicenseMarket.SupplyCapTooLarge.selector, t.supplyCap);
        }
        if (escrows(t.modelId, t.kind)) {
            if (t.deliveryPeriod == 0 || t.deliveryPeriod > MAX_DELIVERY_PERIOD) {
                return abi.encodeWithSelector(
                    LicenseMarket.DeliveryPeriodOutOfRange.selector, t.deliveryPeriod, MAX_DELIVERY_PERIOD
                );
            }
        } else if (t.deliveryPeriod != 0) {
            return abi.encodeWithSelector(LicenseMarket.DeliveryPeriodNotApplicable.selector);
        }
        return "";
    }

    /// Whether offerings of `kind` on `modelId` sell in escrow: access and fine-tune rights of
    /// an encrypted model.
    function escrows(uint256 modelId, LicenseKind kind) public view returns (bool) {
        return _models[modelId - 1].encrypted && kind != LicenseKind.Output;
    }

    /// The revert `deliverKey` must give for license `licenseId` delivered by `caller` at `at`
    /// in block `blk`, naming the purchase of model `modelId` by `holder` for `recipient`:
    /// pending, for that purchase, a CID, before the deadline, by the owner or its keeper, not in
    /// a block the model or an ancestor the price pays changed hands.
    function deliverError(
        uint256 licenseId,
        address caller,
        uint256 modelId,
        address holder,
        bytes32 recipient,
        bool emptyCid,
        uint64 at,
        uint256 blk
    ) external view returns (bytes memory) {
        GLicense storage l = _licenses[licenseId - 1];
        if (l.payer == address(0)) return abi.encodeWithSelector(LicenseMarket.NotPendingDelivery.selector, licenseId);
        GOffering storage o = _offerings[l.offeringId - 1];
        // The market compares 56-bit tags of the three; a chance collision is ignored here.
        if (modelId != o.modelId || holder != l.holder || recipient != l.recipient) {
            return abi.encodeWithSelector(LicenseMarket.DeliveryForAnotherPurchase.selector, licenseId);
        }
        if (emptyCid) return abi.encodeWithSelector(LicenseMarket.EmptyKeyCid.selector);
        if (at >= l.deadline) {
            return abi.encodeWithSelector(LicenseMarket.DeliveryDeadlinePassed.selector, licenseId, l.deadline);
        }
        GModel storage m = _models[o.modelId - 1];
        if (caller != m.owner && !isKeeper[m.owner][caller]) {
            return abi.encodeWithSelector(LicenseMarket.NotKeeper.selector, o.modelId, caller);
        }
        if (m.ownerSince == blk) {
            return abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, o.modelId);
        }
        return "";
    }

    function refundError(uint256 licenseId, uint64 at) external view returns (bytes memory) {
        GLicense storage l = _licenses[licenseId - 1];
        if (l.payer == address(0)) return abi.encodeWithSelector(LicenseMarket.NotPendingDelivery.selector, licenseId);
        if (at < l.deadline) {
            return abi.encodeWithSelector(LicenseMarket.DeliveryNotOverdue.selector, licenseId, l.deadline);
        }
        return "";
    }

    /// The first license from `seed` on (cyclically) awaiting its key, deliverable at `at`
    /// (before its deadline) or overdue, as asked; 0 if none.
    function findPending(uint256 seed, bool overdue, uint64 at) external view returns (uint256) {
        uint256 n = _licenses.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = 1 + (seed % n + i) % n;
            GLicense storage l = _licenses[id - 1];
            if (l.payer != address(0) && (at >= l.deadline) == overdue) return id;
        }
        return 0;
    }

    /// The prices of the licenses awaiting their keys, per currency (what `escrowed` books).
    function pendingTotal(address currency) external view returns (uint256 total) {
        for (uint256 i; i < _licenses.length; ++i) {
            if (_licenses[i].payer == address(0)) continue;
            GOffering storage o = _offerings[_licenses[i].offeringId - 1];
            if (o.currency == currency) total += o.price;
        }
    }

    function closeError(address caller, uint256 offeringId, uint256 blk) external view returns (bytes memory) {
        GOffering storage o = _offerings[offeringId - 1];
        GModel storage m = _models[o.modelId - 1];
        if (m.owner != caller) return abi.encodeWithSelector(LicenseMarket.NotModelOwner.selector, o.modelId, caller);
        if (m.ownerSince == blk) {
            return abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, o.modelId);
        }
        if (o.closed) return abi.encodeWithSelector(LicenseMarket.OfferingIsClosed.selector, offeringId);
        return "";
    }

    // ------------------------------------------------------------ searches

    /// The first license from `seed` on (cyclically) that `q` selects, or 0.
    function findLicense(uint256 seed, LicenseQuery calldata q) external view returns (uint256) {
        uint256 n = _licenses.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = 1 + (seed % n + i) % n;
            if (_selects(id, q)) return id;
        }
        return 0;
    }

    function _selects(uint256 id, LicenseQuery calldata q) internal view returns (bool) {
        GLicense storage l = _licenses[id - 1];
        if (q.consumed != (l.holder == address(0))) return false;
        if (q.holderRule == 1 && l.holder != q.holder) return false;
        if (q.holderRule == 2 && l.holder == q.holder) return false;
        GOffering storage o = _offerings[l.offeringId - 1];
        if (q.modelId != 0 && o.modelId != q.modelId) return false;
        bool fineTune = o.kind == LicenseKind.FineTune;
        if ((q.kindRule == 1 && !fineTune) || (q.kindRule == 2 && fineTune)) return false;
        if (q.timeRule == 0) return true;
        // A license awaiting its key has no window yet: no time rule selects it.
        if (l.payer != address(0)) return false;
        if (q.timeRule == 6) return valid(id, q.at);
        if (l.expiry == 0) return false;
        if (q.timeRule == 1) return true;
        if (q.timeRule == 2) return l.expiry <= q.at;
        if (q.timeRule == 3) return l.expiry > q.at;
        bool renewable = renewsAt(id, q.at);
        if (q.timeRule == 4) return renewable && q.at < l.expiry;
        return renewable && l.expiry <= q.at;
    }

    /// The first offering from `seed` on (cyclically) that `q` selects, or 0.
    function findOffering(uint256 seed, OfferingQuery calldata q) external view returns (uint256) {
        uint256 n = _offerings.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = 1 + (seed % n + i) % n;
            if (_selects(id, q)) return id;
        }
        return 0;
    }

    function _selects(uint256 id, OfferingQuery calldata q) internal view returns (bool) {
        GOffering storage o = _offerings[id - 1];
        if (q.modelId != 0 && o.modelId != q.modelId) return false;
        bool fineTune = o.kind == LicenseKind.FineTune;
        if ((q.kindRule == 1 && !fineTune) || (q.kindRule == 2 && fineTune)) return false;
        if (q.royalty && _edgeParents[o.modelId].length == 0) return false;
        if (q.priced && o.price == 0) return false;
        if (q.timeBound && o.duration == 0) return false;
        if (o.closed || (o.supplyCap != 0 && o.sold >= o.supplyCap)) return false;
        GModel storage m = _models[o.modelId - 1];
        if (q.sellRule == 1) return m.owner != o.publisher;
        return m.owner == o.publisher && m.ownerSince != q.blk;
    }

    /// The first model from `seed` on with royalty edges (a derivative that pays its lineage),
    /// or 0.
    function findDerivative(uint256 seed) external view returns (uint256) {
        uint256 n = _models.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = 1 + (seed % n + i) % n;
            if (_edgeParents[id].length != 0) return id;
        }
        return 0;
    }

    /// The first model from `seed` on whose weights are encrypted, or 0.
    function findEncrypted(uint256 seed) external view returns (uint256) {
        uint256 n = _models.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = 1 + (seed % n + i) % n;
            if (_models[id - 1].encrypted) return id;
        }
        return 0;
    }

    /// The first model from `seed` on with a non-zero derivative royalty floor, or 0.
    function findFloored(uint256 seed) external view returns (uint256) {
        uint256 n = _models.length;
        for (uint256 i; i < n; ++i) {
            uint256 id = 1 + (seed % n + i) % n;
            if (_models[id - 1].floor != 0) return id;
        }
        return 0;
    }

    /// The deepest model whose royalty nodes leave room for one more (fewest nodes first among
    /// equals): the tip a chain grows from.
    function deepest() external view returns (uint256 best) {
        uint256 n = _models.length;
        for (uint256 id = 1; id <= n; ++id) {
            GModel storage m = _models[id - 1];
            if (m.nodes >= MAX_NODES) continue;
            if (best == 0) {
                best = id;
                continue;
            }
            GModel storage b = _models[best - 1];
            if (m.depth > b.depth || (m.depth == b.depth && m.nodes < b.nodes)) best = id;
        }
        if (best == 0) best = 1;
    }

    /// The model with the most royalty nodes that a diamond over it (two children, merged)
    /// keeps within the limits.
    function diamondBase() external view returns (uint256 best) {
        uint256 n = _models.length;
        uint256 bestNodes;
        for (uint256 id = 1; id <= n; ++id) {
            GModel storage m = _models[id - 1];
            if (m.depth + 2 > MAX_DEPTH || 2 * uint256(m.nodes) + 3 > MAX_NODES) continue;
            if (m.nodes > bestNodes) (best, bestNodes) = (id, m.nodes);
        }
        if (best == 0) best = 1;
    }

    /// Parents (largest first, at most eight, shares within 100%) whose royalty nodes add up to
    /// `target`, or as close below as greedy choice gets: a merge of them has 1 + target nodes.
    /// `viaLicense[i]` is false where `minter` owns the parent and owes its non-zero floor.
    function fillPlan(address minter, uint256 target)
        external
        view
        returns (uint256[] memory parents, bool[] memory viaLicense, uint16[] memory bps)
    {
        parents = new uint256[](MAX_PARENTS);
        viaLicense = new bool[](MAX_PARENTS);
        bps = new uint16[](MAX_PARENTS);
        uint256 remaining = target;
        uint256 bpsLeft = BPS;
        uint256 k;
        while (k < MAX_PARENTS && remaining > 0) {
            uint256 best;
            uint256 bestNodes;
            uint16 bestBps;
            for (uint256 id = 1; id <= _models.length; ++id) {
                GModel storage m = _models[id - 1];
                if (m.depth >= MAX_DEPTH || m.nodes > remaining || m.nodes <= bestNodes) continue;
                uint16 need = m.floor == 0 ? 1 : m.floor;
                if (need > bpsLeft || _contains(parents, k, id)) continue;
                (best, bestNodes, bestBps) = (id, m.nodes, need);
            }
            if (best == 0) break;
            GModel storage chosen = _models[best - 1];
            (parents[k], bps[k]) = (best, bestBps);
            viaLicense[k] = !(chosen.owner == minter && chosen.floor > 0);
            remaining -= bestNodes;
            bpsLeft -= bestBps;
            ++k;
        }
        assembly ("memory-safe") {
            mstore(parents, k)
            mstore(viaLicense, k)
            mstore(bps, k)
        }
    }

    function _contains(uint256[] memory a, uint256 n, uint256 x) internal pure returns (bool) {
        for (uint256 i; i < n; ++i) {
            if (a[i] == x) return true;
        }
        return false;
    }
}

/// @notice Drives the registry and the market for the invariant tests. Four actors mint models
/// (at random, down the deepest lineage, and as diamonds and merges that fill the royalty-node
/// budget exactly; one in three encrypted), publish offerings in the native currency and a mock
/// ERC-20, buy (mostly priced licenses of royalty-paying derivatives; escrowed ones of encrypted
/// models), deliver keys (as owners and keepers) and refund overdue purchases, renew (as holders
/// and approved operators), approve, transfer licenses and models, close offerings, withdraw,
/// and time passes. Where a usable license is needed (a derivative's, a renewal's) an escrowed
/// purchase has its key delivered at once.
/// Adversarial actions build their precondition and then break one rule, which must revert with
/// its named error (among them, acting as the owner of a model, or being paid as an ancestor's
/// owner, in the block the model changed hands: OwnerChangedThisBlock). Every call's outcome is checked against the `Ghost` reference model: the
/// exact revert data, or the effects (after every sale, each actor's credits per currency equal
/// the reference split). The handler makes every call itself and catches its revert (forge
/// would ignore a reverting handler call: fail_on_revert is false), so any contradiction is
/// counted in `violations`, the first one described in `firstViolation`, which the invariant
/// asserts is zero.
contract Handler is TestBase {
    enum Attack {
        ForeignLicense,
        ExpiredLicense,
        UnheldLicense,
        ConsumedLicense,
        NotFineTuneLicense,
        DuplicateContent,
        DeriveInTransferBlock,
        WrongPayment,
        MaxPriceBelowPrice,
        BuyInTransferBlock,
        PublisherNotOwner,
        PayeeInTransferBlock,
        NonOwnerPublish,
        NonOwnerClose,
        RoyaltyBelowFloor,
        CloseInTransferBlock,
        RenewByNonHolder,
        RenewAfterLapse,
        RenewInTransferBlock,
        DeliverByNonKeeper,
        DeliverAfterDeadline,
        RefundBeforeDeadline,
        DeliverInTransferBlock,
        DeliverForAnotherPurchase
    }

    uint256 public constant ATTACKS = 24;
    string internal constant KEY_CID = "bafkrei-wrapped-key";
    uint64 public constant T0 = 1_700_000_000;
    uint256 public constant MAX_PRICE = 1e20;

    ModelRegistry public immutable registry;
    LicenseMarket public immutable market;
    MockERC20 public immutable token;
    Ghost public immutable ghost;

    address[] public actors;
    /// The ghost clock and block: every action warps and rolls to them first.
    uint64 public clock;
    uint256 public blockNumber;

    uint256 public calls;
    uint256 public violations;
    string public firstViolation;

    // Metrics (the dedicated tests assert them; afterInvariant logs them).
    uint256 public mints;
    uint256 public maxDepth;
    uint256 public maxNodes;
    uint256 public tooDeep;
    uint256 public tooLarge;
    uint256 public sharesExceeded;
    uint256 public sales;
    uint256 public royaltySales;
    uint256 public renewals;
    uint256 public escrowedSales;
    /// Held shares released.
    uint256 public releases;
    uint256 public deliveries;
    uint256 public refunds;
    mapping(uint256 attack => uint256) public attackTries;
    mapping(uint256 attack => uint256) public attackCaught;
    /// Licenses and models the current call changed (the invariant checks them at once).
    uint256[] internal _touchedLicenses;
    uint256[] internal _touchedModels;

    /// One call to check: `named` (with `attack` 1 + its kind) is the error an adversarial
    /// action provoked, which must also be what the ghost expects.
    struct Expect {
        string label;
        bytes named;
        uint256 attack;
    }

    /// An escrowed purchase as a delivery names it (its `KeyRequested`'s model, holder and
    /// recipient).
    struct Purchase {
        uint256 modelId;
        address holder;
        bytes32 recipient;
    }

    constructor(ModelRegistry registry_, LicenseMarket market_, MockERC20 token_, Ghost ghost_) {
        registry = registry_;
        market = market_;
        token = token_;
        ghost = ghost_;
        for (uint256 i; i < 4; ++i) {
            actors.push(address(uint160(uint256(keccak256(abi.encode("invariant actor", i))))));
        }
        clock = T0;
        blockNumber = 1;
        vm.warp(clock);
        vm.roll(blockNumber);
        _seed();
    }

    modifier step() {
        delete _touchedLicenses;
        delete _touchedModels;
        ++calls;
        ++blockNumber;
        vm.roll(blockNumber);
        vm.warp(clock);
        _;
    }

    /// Three base models with floors, a two-parent derivative under licenses and a
    /// three-level lineage, with priced offerings on the derivatives, so every run starts with
    /// royalty-paying sales available.
    function _seed() internal {
        Expect memory e;
        for (uint256 i; i < 3; ++i) {
            e.label = "seed: mint";
            _tryMint(actors[i], new uint256[](0), new uint256[](0), uint16(500 * (i + 1)), e);
        }
        _publishFor(1, LicenseKind.FineTune, 0, 800, 1e15 + 1);
        _publishFor(2, LicenseKind.FineTune, 30 days, 1_000, 3e15 + 6);
        _publishFor(3, LicenseKind.FineTune, 7 days, 2_000, 7e14 + 4);
        uint256[] memory parents = new uint256[](2);
        uint256[] memory licenses = new uint256[](2);
        (parents[0], parents[1]) = (1, 2);
        (licenses[0], licenses[1]) = (_obtainLicense(actors[3], 1, 1), _obtainLicense(actors[3], 2, 2));
        e.label = "seed: derivative";
        uint256 d = _tryMint(actors[3], parents, licenses, 700, e);
        uint256[] memory one = new uint256[](1);
        uint256[] memory none = new uint256[](1);
        one[0] = d;
        none[0] = _obtainLicense(actors[0], d, uint256(keccak256("seed")));
        uint256 dd = _tryMint(actors[0], one, none, 300, e);
        _publishFor(d, LicenseKind.Access, 30 days, 0, 1e16 + 9);
        _publishFor(dd, LicenseKind.Output, 0, 0, 5e15 + 3);
    }

    /// What the latest call changed: licenses bought, renewed, approved, moved or consumed,
    /// and models minted or transferred.
    function touched() external view returns (uint256[] memory licenses, uint256[] memory models) {
        return (_touchedLicenses, _touchedModels);
    }

    // ------------------------------------------------------------ models

    /// A model from up to three parents, biased to recent ones: as the parent's owner, or under
    /// a fine-tune license the actor holds or (bit per parent of `buyBits`) buys.
    function mint(uint256 actorSeed, uint256 parentSeed, uint256 count, uint256 floorSeed, uint256 buyBits)
        external
        step
    {
        (actorSeed, parentSeed, count, floorSeed, buyBits) =
        (_mix(actorSeed, 0), _mix(parentSeed, 1), _mix(count, 2), _mix(floorSeed, 3), _mix(buyBits, 4));
        address actor = _actor(actorSeed);
        uint256 total = ghost.modelCount();
        uint256 n = count % 4;
        uint256[] memory parents = new uint256[](n);
        uint256[] memory licenses = new uint256[](n);
        uint256 k;
        for (uint256 i; i < n; ++i) {
            uint256 back = (parentSeed >> (i * 16)) % (total < 8 ? total : 8);
            uint256 p =
                (parentSeed >> (128 + i * 16)) % 4 == 0 ? 1 + (parentSeed >> (64 + i * 16)) % total : total - back;
            if (_contains(parents, k, p)) continue;
            uint256 lic;
            if (ghost.model(p).owner != actor) {
                lic = ghost.findLicense(parentSeed, Ghost.LicenseQuery(false, 1, actor, p, 1, 6, clock));
                if (lic == 0 && (buyBits >> i) & 1 == 1) lic = _obtainLicense(actor, p, floorSeed >> (i * 8));
                if (lic == 0) continue;
            }
            (parents[k], licenses[k]) = (p, lic);
            ++k;
        }
        _truncate(parents, k);
        _truncate(licenses, k);
        Expect memory e;
        e.label = "mint";
        _tryMint(actor, parents, licenses, _floor(floorSeed), e);
    }

    /// Grows a chain of 1 to 8 models from the deepest model, each level as the owner or under
    /// a bought fine-tune license (`pathBits`): depth reaches MAX_DEPTH, then LineageTooDeep.
    function mintDeep(uint256 actorSeed, uint256 levels, uint256 pathBits, uint256 floorSeed) external step {
        (actorSeed, levels, pathBits, floorSeed) =
        (_mix(actorSeed, 0), _mix(levels, 1), _mix(pathBits, 2), _mix(floorSeed, 3));
        uint256 parent = ghost.deepest();
        uint256 n = 1 + levels % 8;
        Expect memory e;
        e.label = "mintDeep";
        for (uint256 i; i < n; ++i) {
            address owner = ghost.model(parent).owner;
            address minter = owner;
            uint256[] memory licenses = new uint256[](1);
            if ((pathBits >> i) & 1 == 1) {
                minter = _otherActor(owner, actorSeed % 4 + i);
                licenses[0] = _obtainLicense(minter, parent, floorSeed >> (i * 8));
                if (licenses[0] == 0) return;
            }
            uint256[] memory parents = new uint256[](1);
            parents[0] = parent;
            uint256 id = _tryMint(minter, parents, licenses, _floor(floorSeed >> (i * 16)), e);
            if (id == 0) return;
            parent = id;
        }
    }

    /// mode 0: a diamond (two children of the largest model that fits, then their merge), which
    /// doubles the royalty nodes; mode 1: a merge whose parents' nodes fill the budget exactly
    /// (MAX_ROYALTY_NODES); mode 2: one node more, which must revert with LineageTooLarge.
    function mintDiamond(uint256 actorSeed, uint256 mode, uint256 seed) external step {
        (actorSeed, mode, seed) = (_mix(actorSeed, 0), _mix(mode, 1), _mix(seed, 2));
        address actor = _actor(actorSeed);
        Expect memory e;
        e.label = "mintDiamond";
        if (mode % 3 == 0) {
            uint256 x = ghost.diamondBase();
            uint256[] memory parents = new uint256[](2);
            parents[0] = _derive(actor, x, seed);
            if (parents[0] == 0) return;
            parents[1] = _derive(actor, x, seed >> 64);
            if (parents[1] == 0) return;
            _tryMint(actor, parents, new uint256[](2), _floor(seed >> 128), e);
            return;
        }
        (uint256[] memory ps, bool[] memory viaLicense, uint16[] memory bps) =
            ghost.fillPlan(actor, mode % 3 == 1 ? registry.MAX_ROYALTY_NODES() - 1 : registry.MAX_ROYALTY_NODES());
        if (ps.length == 0) return;
        uint256[] memory licenses = new uint256[](ps.length);
        for (uint256 i; i < ps.length; ++i) {
            if (!viaLicense[i]) continue;
            uint256 o = _publishFor(ps[i], LicenseKind.FineTune, 0, bps[i], 1 + (seed >> (i * 8)) % MAX_PRICE);
            if (o == 0) return;
            licenses[i] = _buyKeyed(actor, o);
            if (licenses[i] == 0) return;
        }
        e.label = mode % 3 == 1 ? "mintDiamond: fill" : "mintDiamond: overflow";
        _tryMint(actor, ps, licenses, _floor(seed >> 128), e);
    }

    /// A child of `parent` minted by `actor` with a non-zero floor (so its merge pays it): as
    /// the owner when the parent's floor is due, else under a bought fine-tune license.
    function _derive(address actor, uint256 parent, uint256 seed) internal returns (uint256) {
        Ghost.GModel memory m = ghost.model(parent);
        uint256[] memory parents = new uint256[](1);
        uint256[] memory licenses = new uint256[](1);
        parents[0] = parent;
        if (m.owner != actor || m.floor == 0) {
            licenses[0] = _obtainLicense(actor, parent, seed);
            if (licenses[0] == 0) return 0;
        }
        Expect memory e;
        e.label = "mintDiamond: child";
        // forge-lint: disable-next-line(unsafe-typecast)
        return _tryMint(actor, parents, licenses, uint16(1 + seed % 2_500), e);
    }

    function transferModel(uint256 modelSeed, uint256 toSeed) external step {
        (modelSeed, toSeed) = (_mix(modelSeed, 0), _mix(toSeed, 1));
        _transferModel(_model(modelSeed), _actor(toSeed));
    }

    // ------------------------------------------------------------ offerings

    /// Valid terms, mostly on royalty-paying derivatives and priced.
    function publish(uint256 modelSeed, uint256 termsSeed, uint256 price) external step {
        (modelSeed, termsSeed, price) = (_mix(modelSeed, 0), _mix(termsSeed, 1), _mix(price, 2));
        uint256 modelId = termsSeed % 4 == 0 ? 0 : ghost.findDerivative(modelSeed);
        if (modelId == 0) modelId = _model(modelSeed);
        Ghost.GModel memory m = ghost.model(modelId);
        LicenseKind kind = LicenseKind((termsSeed >> 2) % 3);
        Terms memory t = _terms(modelId, kind, (termsSeed >> 4) & 1 == 1 ? address(token) : address(0), 0, 0);
        t.price = (termsSeed >> 5) % 8 == 0 ? 0 : 1 + price % MAX_PRICE;
        uint256 d = (termsSeed >> 8) % 4;
        t.duration = d == 0 ? 0 : d == 1 ? 1 days : d == 2 ? 7 days : uint64(1 + (termsSeed >> 16) % 60 days);
        uint256 cap = (termsSeed >> 48) % 8;
        // forge-lint: disable-next-line(unsafe-typecast)
        t.supplyCap = cap < 3 ? 0 : uint64(cap - 2);
        t.transferable = (termsSeed >> 56) & 1 == 1;
        t.commercialUse = (termsSeed >> 57) & 1 == 1;
        if (kind == LicenseKind.FineTune) {
            uint256 extra = (termsSeed >> 64) % 8 == 0 ? 0 : (termsSeed >> 72) % 2_000;
            t.royaltyBps = uint16(Math.min(uint256(m.floor) + extra, 10_000));
        }
        uint256 r = (termsSeed >> 96) % 3;
        t.renewalPeriod = r == 0 ? 0 : r == 1 ? 1 days : 30 days;
        bool escrowed = ghost.escrows(modelId, kind);
        // forge-lint: disable-next-line(unsafe-typecast)
        if (escrowed) t.deliveryPeriod = uint64(1 + (termsSeed >> 104) % 20 days);
        // One time in sixteen a delivery period the offering cannot have (the ghost names it).
        if ((termsSeed >> 136) % 16 == 0) {
            t.deliveryPeriod = !escrowed ? 1 : (termsSeed >> 140) & 1 == 0 ? 0 : market.MAX_DELIVERY_PERIOD() + 1;
        }
        Expect memory e;
        e.label = "publish";
        _tryPublish(m.owner, t, e);
    }

    function close(uint256 offeringSeed) external step {
        offeringSeed = _mix(offeringSeed, 0);
        uint256 n = ghost.offeringCount();
        uint256 offeringId = 1 + offeringSeed % n;
        Ghost.GOffering memory o = ghost.offering(offeringId);
        address caller = ghost.model(o.modelId).owner;
        Expect memory e;
        e.label = "close";
        _tryClose(caller, offeringId, e);
    }

    // ------------------------------------------------------------ licenses

    /// Mostly (7 in 8) a priced license of a royalty-paying derivative, published if none is
    /// for sale; else any offering, whatever it must answer.
    function buy(uint256 offeringSeed, uint256 payerSeed, uint256 mode) external step {
        (offeringSeed, payerSeed, mode) = (_mix(offeringSeed, 0), _mix(payerSeed, 1), _mix(mode, 2));
        uint256 offeringId;
        if (mode % 8 != 0) {
            offeringId = ghost.findOffering(offeringSeed, Ghost.OfferingQuery(0, 0, true, true, false, 0, blockNumber));
            if (offeringId == 0) {
                uint256 d = ghost.findDerivative(offeringSeed);
                if (d != 0) {
                    offeringId = _publishFor(
                        d,
                        LicenseKind((mode >> 3) % 3),
                        (mode >> 8) & 1 == 1 ? 30 days : 0,
                        ghost.model(d).floor,
                        1 + (offeringSeed >> 8) % MAX_PRICE
                    );
                }
            }
        }
        if (offeringId == 0) offeringId = 1 + offeringSeed % ghost.offeringCount();
        Ghost.GOffering memory o = ghost.offering(offeringId);
        uint256 maxPrice = (mode >> 16) & 1 == 1 ? type(uint256).max : o.price;
        address holder = _actor(payerSeed >> 8);
        // One time in sixteen no recipient: an escrowed offering must refuse the purchase.
        bytes32 recipient = (mode >> 20) % 16 == 0 ? bytes32(0) : _recipientOf(holder);
        Expect memory e;
        e.label = "buy";
        _tryBuy(_actor(payerSeed), holder, offeringId, maxPrice, _value(o), recipient, e);
    }

    /// Mostly (7 in 8) a renewable license renewed by its holder or an operator it approved;
    /// else any license by any actor, whatever it must answer.
    function renew(uint256 licenseSeed, uint256 callerSeed, uint256 mode) external step {
        (licenseSeed, callerSeed, mode) = (_mix(licenseSeed, 0), _mix(callerSeed, 1), _mix(mode, 2));
        uint256 n = ghost.licenseCount();
        if (n == 0) return;
        uint256 id;
        if (mode % 8 != 0) {
            id = ghost.findLicense(licenseSeed, Ghost.LicenseQuery(false, 0, address(0), 0, 0, 4, clock));
            // None renewable: a time-bound license of a derivative, bought now.
            if (id == 0) id = _timeBoundLicense(_actor(callerSeed), licenseSeed);
        }
        if (id == 0) id = 1 + licenseSeed % n;
        Ghost.GLicense memory l = ghost.license(id);
        address caller = l.holder;
        if (mode % 8 == 0 || caller == address(0)) caller = _actor(callerSeed);
        else if ((mode >> 3) & 1 == 1) caller = _authorizedOther(id, callerSeed, caller);
        Ghost.GOffering memory o = ghost.offering(l.offeringId);
        Expect memory e;
        e.label = "renew";
        _tryRenew(caller, id, o.price, _value(o), e);
    }

    /// The holder approves an operator for one license (refused for locked licenses), or sets
    /// or revokes an operator for all its licenses.
    function approve(uint256 licenseSeed, uint256 operatorSeed, uint256 mode) external step {
        (licenseSeed, operatorSeed, mode) = (_mix(licenseSeed, 0), _mix(operatorSeed, 1), _mix(mode, 2));
        address operator = _actor(operatorSeed);
        Expect memory e;
        if (mode % 2 == 0) {
            address holder = _actor(licenseSeed);
            bool approved = (mode >> 1) % 4 != 0;
            vm.prank(holder);
            market.setApprovalForAll(operator, approved);
            ghost.setOperator(holder, operator, approved);
            return;
        }
        uint256 id = ghost.findLicense(licenseSeed, Ghost.LicenseQuery(false, 0, address(0), 0, 0, 0, clock));
        if (id == 0) return;
        Ghost.GLicense memory l = ghost.license(id);
        bool transferable = ghost.offering(l.offeringId).transferable;
        e.label = "approve";
        (bool ok, bytes memory ret) =
            _call(l.holder, address(market), 0, abi.encodeCall(market.approve, (operator, id)));
        if (!_settle(ok, ret, transferable ? bytes("") : _notTransferable(id), e)) return;
        l.approved = operator;
        ghost.setLicense(id, l);
        _touchedLicenses.push(id);
    }

    /// A held license moved by its holder or an authorized operator (locked ones must refuse).
    function transferLicense(uint256 licenseSeed, uint256 toSeed, uint256 mode) external step {
        (licenseSeed, toSeed, mode) = (_mix(licenseSeed, 0), _mix(toSeed, 1), _mix(mode, 2));
        uint256 id = ghost.findLicense(licenseSeed, Ghost.LicenseQuery(false, 0, address(0), 0, 0, 0, clock));
        if (id == 0) return;
        Ghost.GLicense memory l = ghost.license(id);
        address caller = mode & 1 == 1 ? _authorizedOther(id, toSeed >> 8, l.holder) : l.holder;
        address to = _actor(toSeed);
        bytes memory expected = !ghost.offering(l.offeringId).transferable
            ? _notTransferable(id)
            : ghost.pending(id) ? abi.encodeWithSelector(LicenseMarket.KeyNotDelivered.selector, id) : bytes("");
        Expect memory e;
        e.label = "transferLicense";
        (bool ok, bytes memory ret) =
            _call(caller, address(market), 0, abi.encodeCall(market.transferFrom, (l.holder, to, id)));
        if (!_settle(ok, ret, expected, e)) return;
        l.holder = to;
        l.approved = address(0);
        ghost.setLicense(id, l);
        _touchedLicenses.push(id);
    }

    // ------------------------------------------------------------ escrow

    /// A key delivered for a license awaiting it (an escrowed purchase made now if none is):
    /// mostly by the model's owner or a keeper it approves for the occasion; one time in four by
    /// any actor, whatever it must answer (the ghost says).
    function deliver(uint256 licenseSeed, uint256 callerSeed, uint256 mode) external step {
        (licenseSeed, callerSeed, mode) = (_mix(licenseSeed, 0), _mix(callerSeed, 1), _mix(mode, 2));
        uint256 id = ghost.findPending(licenseSeed, false, clock);
        if (id == 0) id = _escrowedLicense(licenseSeed);
        if (id == 0) return;
        // Half the time some while after the purchase, still before the deadline: the window
        // must start at the delivery, not at the purchase.
        uint64 left = ghost.license(id).deadline - clock;
        if ((mode >> 8) & 1 == 1 && left > 1) _warp(clock + 1 + uint64((mode >> 9) % (left - 1)));
        address owner = ghost.model(ghost.offering(ghost.license(id).offeringId).modelId).owner;
        address caller = owner;
        if (mode % 4 == 1) {
            caller = _otherActor(owner, callerSeed);
            _setKeeper(owner, caller, true);
        } else if (mode % 4 == 2) {
            caller = _actor(callerSeed);
        }
        Expect memory e;
        e.label = "deliver";
        // One time in sixteen with an empty CID, which must be refused.
        _tryDeliver(caller, id, _purchaseOf(id), (mode >> 2) % 16 == 0, e);
    }

    /// A refund of an overdue license (warping to or past the deadline of one awaiting its key
    /// when none is overdue).
    function refund(uint256 licenseSeed, uint256 offset) external step {
        (licenseSeed, offset) = (_mix(licenseSeed, 0), _mix(offset, 1));
        uint256 id = ghost.findPending(licenseSeed, true, clock);
        if (id == 0) {
            id = ghost.findPending(licenseSeed, false, clock);
            if (id == 0) id = _escrowedLicense(licenseSeed);
            if (id == 0) return;
            // Exactly at the deadline half the time: the first instant a refund opens.
            // forge-lint: disable-next-line(unsafe-typecast)
            _warp(ghost.license(id).deadline + (offset % 2 == 0 ? 0 : uint64(offset % 1 days)));
        }
        Expect memory e;
        e.label = "refund";
        _tryRefund(id, e);
    }

    /// An owner approves or revokes a keeper.
    function setKeeper(uint256 ownerSeed, uint256 keeperSeed, bool approved) external step {
        (ownerSeed, keeperSeed) = (_mix(ownerSeed, 0), _mix(keeperSeed, 1));
        _setKeeper(_actor(ownerSeed), _actor(keeperSeed), approved);
    }

    /// A key delivered by someone neither the owner nor its keeper, after the deadline (warping
    /// to or past it), by an owner of this block (who would release the price to himself), or
    /// for another purchase than the license's (another model, recipient or holder: what a
    /// delivery prepared before a reorganisation reassigned the id names); a refund before the
    /// deadline.
    function attackEscrow(uint256 which, uint256 seed, uint256 actorSeed) external step {
        (which, seed, actorSeed) = (_mix(which, 0), _mix(seed, 1), _mix(actorSeed, 2));
        uint256 kind = uint256(Attack.DeliverByNonKeeper) + which % 5;
        uint256 id = ghost.findPending(seed, false, clock);
        if (id == 0) id = _escrowedLicense(seed);
        if (id == 0) return;
        Ghost.GLicense memory l = ghost.license(id);
        uint256 modelId = ghost.offering(l.offeringId).modelId;
        address owner = ghost.model(modelId).owner;
        Expect memory e;
        e.attack = 1 + kind;
        if (kind == uint256(Attack.RefundBeforeDeadline)) {
            e.label = "attack: refund before the deadline";
            e.named = abi.encodeWithSelector(LicenseMarket.DeliveryNotOverdue.selector, id, l.deadline);
            _tryRefund(id, e);
            return;
        }
        address caller = owner;
        Purchase memory p = _purchaseOf(id);
        if (kind == uint256(Attack.DeliverForAnotherPurchase)) {
            // By the owner, on time, naming another purchase.
            p = _anotherPurchase(p, actorSeed);
            e.label = "attack: deliver for another purchase";
            e.named = abi.encodeWithSelector(LicenseMarket.DeliveryForAnotherPurchase.selector, id);
        } else if (kind == uint256(Attack.DeliverInTransferBlock)) {
            caller = _actor(actorSeed);
            _handTo(modelId, caller, actorSeed >> 64);
            e.label = "attack: deliver in the block the model changed hands";
            e.named = abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, modelId);
        } else if (kind == uint256(Attack.DeliverByNonKeeper)) {
            caller = address(0xBAD);
            for (uint256 i; i < actors.length; ++i) {
                address a = actors[(actorSeed + i) % actors.length];
                if (a != owner && !ghost.isKeeper(owner, a)) {
                    caller = a;
                    break;
                }
            }
            e.label = "attack: deliver by neither the owner nor its keeper";
            e.named = abi.encodeWithSelector(LicenseMarket.NotKeeper.selector, modelId, caller);
        } else {
            _warp(l.deadline + uint64(actorSeed % 2 == 0 ? 0 : actorSeed % 1 days));
            e.label = "attack: deliver after the deadline";
            e.named = abi.encodeWithSelector(LicenseMarket.DeliveryDeadlinePassed.selector, id, l.deadline);
        }
        _tryDeliver(caller, id, p, false, e);
    }

    /// The model, holder and recipient of escrowed license `id`'s purchase, as its
    /// `KeyRequested` names them (what a keeper delivering for it names).
    function _purchaseOf(uint256 id) internal view returns (Purchase memory) {
        Ghost.GLicense memory l = ghost.license(id);
        return Purchase(ghost.offering(l.offeringId).modelId, l.holder, l.recipient);
    }

    /// A purchase other than `p` (a holder's for his own recipient, `_recipientOf`, as every
    /// purchase here names): another model for the same holder and recipient (what a
    /// reorganisation swapping one holder's purchases of two models of one owner makes of a
    /// prepared delivery), another actor's recipient for the holder, the holder's recipient for
    /// another actor, or another actor's purchase for his own.
    function _anotherPurchase(Purchase memory p, uint256 seed) internal view returns (Purchase memory) {
        address other = _otherActor(p.holder, seed);
        uint256 variant = (seed >> 64) % 4;
        if (variant == 0) return Purchase(_anotherModel(p.modelId, seed >> 128), p.holder, p.recipient);
        if (variant == 1) return Purchase(p.modelId, p.holder, _recipientOf(other));
        if (variant == 2) return Purchase(p.modelId, other, _recipientOf(p.holder));
        return Purchase(p.modelId, other, _recipientOf(other));
    }

    /// A model other than `modelId`: one of the same owner when there is one (whose key the
    /// owner's keeper has), else any other, else one not minted yet.
    function _anotherModel(uint256 modelId, uint256 seed) internal view returns (uint256 other) {
        uint256 n = ghost.modelCount();
        address owner = ghost.model(modelId).owner;
        for (uint256 i; i < n; ++i) {
            uint256 m = 1 + (seed % n + i) % n;
            if (m == modelId) continue;
            if (ghost.model(m).owner == owner) return m;
            if (other == 0) other = m;
        }
        if (other == 0) other = n + 1;
    }

    /// A license awaiting its key, bought now by an actor other than the owner from an access
    /// offering of an encrypted model published for it; 0 when there is none or it fails.
    function _escrowedLicense(uint256 seed) internal returns (uint256) {
        uint256 m = ghost.findEncrypted(seed);
        if (m == 0) return 0;
        uint256 o =
            _publishFor(m, LicenseKind.Access, (seed >> 8) & 1 == 1 ? 30 days : 0, 0, 1 + (seed >> 16) % MAX_PRICE);
        if (o == 0) return 0;
        return _buyFrom(_otherActor(ghost.model(m).owner, seed >> 32), o);
    }

    function _setKeeper(address owner, address keeper, bool approved) internal {
        vm.prank(owner);
        market.setKeeper(keeper, approved);
        ghost.setKeeper(owner, keeper, approved);
    }

    // ------------------------------------------------------------ money and time

    function withdraw(uint256 actorSeed, bool erc20) external step {
        actorSeed = _mix(actorSeed, 0);
        address actor = _actor(actorSeed);
        address currency = erc20 ? address(token) : address(0);
        uint256 credit = ghost.credits(actor, currency);
        uint256 before = _balance(actor, currency);
        bytes memory expected =
            credit == 0 ? abi.encodeWithSelector(LicenseMarket.NothingToWithdraw.selector, actor, currency) : bytes("");
        Expect memory e;
        e.label = "withdraw";
        (bool ok, bytes memory ret) =
            _call(actor, address(market), 0, abi.encodeCall(market.withdraw, (currency, actor)));
        if (!_settle(ok, ret, expected, e)) return;
        if (abi.decode(ret, (uint256)) != credit) _fail("withdraw: amount != the credit");
        if (_balance(actor, currency) != before + credit) _fail("withdraw: not delivered");
        ghost.withdrawn(actor, currency);
    }

    /// Releases the shares held for a model (one holding some, when there is one): credited up
    /// its lineage as a sale's, to the owners of now.
    function releaseHeld(uint256 modelSeed, bool erc20) external step {
        modelSeed = _mix(modelSeed, 0);
        address currency = erc20 ? address(token) : address(0);
        uint256 modelId = ghost.findHeld(modelSeed, currency);
        bytes memory expected = ghost.releaseError(modelId, currency, blockNumber);
        Expect memory e;
        e.label = "releaseHeld";
        (bool ok, bytes memory ret) =
            _call(_actor(modelSeed >> 8), address(market), 0, abi.encodeCall(market.releaseHeld, (modelId, currency)));
        if (!_settle(ok, ret, expected, e)) return;
        ghost.releaseHeld(modelId, currency);
        ++releases;
        _touchedModels.push(modelId);
    }

    function warp(uint256 secs) external step {
        secs = _mix(secs, 0);
        _warp(clock + uint64(bound(secs, 1, 40 days)));
    }

    /// To just before, at or just after the expiry of a license that has not expired yet.
    function warpToExpiry(uint256 licenseSeed, uint256 offset) external step {
        (licenseSeed, offset) = (_mix(licenseSeed, 0), _mix(offset, 1));
        uint256 id = ghost.findLicense(licenseSeed, Ghost.LicenseQuery(false, 0, address(0), 0, 0, 3, clock));
        if (id == 0) return;
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 target = ghost.license(id).expiry - 1 + uint64(offset % 3);
        if (target > clock) _warp(target);
    }

    // ------------------------------------------------------------ adversarial actions

    /// A derivative minted under a license that cannot admit it: of another model, expired
    /// (warping to its expiry when needed), held by someone else, already consumed, or not a
    /// fine-tune license; a model whose content root is registered already; or a derivative
    /// minted as the owner of a parent received in the same block.
    function attackMint(uint256 which, uint256 actorSeed, uint256 seed) external step {
        (which, actorSeed, seed) = (_mix(which, 0), _mix(actorSeed, 1), _mix(seed, 2));
        address actor = _actor(actorSeed);
        uint256 kind = which % 7;
        Expect memory e;
        e.attack = 1 + kind;
        uint256[] memory parents = new uint256[](1);
        uint256[] memory licenses = new uint256[](1);
        if (kind == uint256(Attack.DuplicateContent)) {
            uint256 m = _model(seed);
            bytes32 root = ghost.model(m).root;
            e.label = "attack: mint duplicate content";
            e.named = abi.encodeWithSelector(ModelRegistry.DuplicateContent.selector, root, m);
            _tryMintRoot(actor, new uint256[](0), new uint256[](0), 0, root, e);
            return;
        }
        if (kind == uint256(Attack.DeriveInTransferBlock)) {
            // The owner path under a borrowed parent would skip its fine-tune offerings.
            parents[0] = _model(seed);
            _handTo(parents[0], actor, seed >> 64);
            e.label = "attack: derive as the owner of a parent received this block";
            e.named = abi.encodeWithSelector(ModelRegistry.OwnerChangedThisBlock.selector, parents[0]);
            _tryMint(actor, parents, licenses, _floor(seed), e);
            return;
        }
        uint256 lic = _attackLicense(kind, actor, seed);
        if (lic == 0) return;
        Ghost.GLicense memory l = ghost.license(lic);
        Ghost.GOffering memory o = ghost.offering(l.offeringId);
        (parents[0], licenses[0]) = (o.modelId, lic);
        if (kind == uint256(Attack.ForeignLicense)) {
            parents[0] = o.modelId % ghost.modelCount() + 1;
            e.label = "attack: mint with another model's license";
            e.named = abi.encodeWithSelector(LicenseMarket.LicenseForOtherModel.selector, lic, o.modelId, parents[0]);
        } else if (kind == uint256(Attack.ExpiredLicense)) {
            e.label = "attack: mint with an expired license";
            e.named = abi.encodeWithSelector(LicenseMarket.LicenseNotValid.selector, lic, l.start, l.expiry, clock);
        } else if (kind == uint256(Attack.UnheldLicense)) {
            e.label = "attack: mint with a license held by another";
            e.named = abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, lic, l.holder, actor);
        } else if (kind == uint256(Attack.ConsumedLicense)) {
            e.label = "attack: mint with a consumed license";
            e.named = abi.encodeWithSelector(LicenseMarket.LicenseAlreadyUsed.selector, lic);
        } else {
            e.label = "attack: mint with a license that is not fine-tune";
            e.named = abi.encodeWithSelector(LicenseMarket.NotFineTuneLicense.selector, lic, o.kind);
        }
        _tryMint(actor, parents, licenses, _floor(seed), e);
    }

    /// The license an `attackMint` of `kind` presents, built when none fits.
    function _attackLicense(uint256 kind, address actor, uint256 seed) internal returns (uint256 lic) {
        if (kind == uint256(Attack.ForeignLicense)) {
            lic = ghost.findLicense(seed, Ghost.LicenseQuery(false, 1, actor, 0, 0, 0, clock));
            if (lic == 0) lic = _obtainLicense(actor, _model(seed), seed);
        } else if (kind == uint256(Attack.ExpiredLicense)) {
            lic = ghost.findLicense(seed, Ghost.LicenseQuery(false, 1, actor, 0, 1, 2, clock));
            if (lic != 0) return lic;
            lic = ghost.findLicense(seed, Ghost.LicenseQuery(false, 1, actor, 0, 1, 1, clock));
            if (lic == 0) {
                uint256 m = _model(seed);
                // forge-lint: disable-next-line(unsafe-typecast)
                uint256 o = _publishFor(m, LicenseKind.FineTune, uint64(1 + seed % 30 days), ghost.model(m).floor, 1e12);
                if (o == 0) return 0;
                lic = _buyKeyed(actor, o);
                if (lic == 0) return 0;
            }
            // Exactly at the expiry: the first instant the license is no longer valid.
            _warp(ghost.license(lic).expiry);
        } else if (kind == uint256(Attack.UnheldLicense)) {
            lic = ghost.findLicense(seed, Ghost.LicenseQuery(false, 2, actor, 0, 1, 0, clock));
            if (lic == 0) lic = _obtainLicense(_otherActor(actor, seed), _model(seed), seed);
        } else if (kind == uint256(Attack.ConsumedLicense)) {
            lic = ghost.findLicense(seed, Ghost.LicenseQuery(true, 0, address(0), 0, 0, 0, clock));
            if (lic != 0) return lic;
            uint256[] memory parents = new uint256[](1);
            uint256[] memory licenses = new uint256[](1);
            parents[0] = _model(seed);
            licenses[0] = _obtainLicense(actor, parents[0], seed);
            if (licenses[0] == 0) return 0;
            Expect memory e;
            e.label = "attack: derivative to consume a license";
            if (_tryMint(actor, parents, licenses, _floor(seed), e) == 0) return 0;
            lic = licenses[0];
        } else {
            lic = ghost.findLicense(seed, Ghost.LicenseQuery(false, 0, address(0), 0, 2, 0, clock));
            if (lic == 0) {
                uint256 m = _model(seed);
                uint256 o = _publishFor(m, LicenseKind(seed % 2 == 0 ? 0 : 2), 0, 0, 1e12);
                if (o == 0) return 0;
                lic = _buyFrom(actor, o);
            }
        }
    }

    /// A purchase that breaks one rule: wrong payment, maxPrice below the price, in the block
    /// the model changed hands, from an offering whose publisher no longer owns the model, or
    /// paying a share to an ancestor the payer took over in the same block.
    function attackBuy(uint256 which, uint256 seed, uint256 actorSeed, uint256 amount) external step {
        (which, seed, actorSeed, amount) = (_mix(which, 0), _mix(seed, 1), _mix(actorSeed, 2), _mix(amount, 3));
        uint256 kind = uint256(Attack.WrongPayment) + which % 5;
        address payer = _actor(actorSeed);
        Expect memory e;
        e.attack = 1 + kind;
        uint256 offeringId;
        if (kind == uint256(Attack.PayeeInTransferBlock)) {
            // The payer borrows an ancestor its purchase pays, to take that share back.
            offeringId = ghost.findOffering(seed, Ghost.OfferingQuery(0, 0, true, true, false, 0, blockNumber));
            if (offeringId == 0) {
                uint256 d = ghost.findDerivative(seed);
                if (d == 0) return;
                offeringId = _publishFor(d, LicenseKind.Access, 0, 0, 1e15 + seed % MAX_PRICE);
                if (offeringId == 0) return;
            }
            Ghost.GOffering memory g = ghost.offering(offeringId);
            if (g.escrowed) {
                // An escrowed purchase pays nobody (its delivery does): sell output rights.
                offeringId = _publishFor(g.modelId, LicenseKind.Output, 0, 0, g.price);
                if (offeringId == 0) return;
                g = ghost.offering(offeringId);
            }
            uint256[] memory paid = ghost.paidAncestors(g.modelId, g.price);
            if (paid.length == 0) return;
            uint256 ancestor = paid[amount % paid.length];
            _handTo(ancestor, payer, amount >> 64);
            // Sold: the ancestor's share is held for its owner of a later block (the ghost's
            // split, checked against the credits), not paid to the payer who holds it now.
            e.label = "attack: buy paying an ancestor that changed hands this block";
            _tryBuy(payer, payer, offeringId, g.price, _value(g), _recipientOf(payer), e);
            return;
        }
        if (kind == uint256(Attack.PublisherNotOwner)) {
            offeringId = ghost.findOffering(seed, Ghost.OfferingQuery(0, 0, false, false, false, 1, blockNumber));
            if (offeringId != 0) {
                Ghost.GOffering memory g = ghost.offering(offeringId);
                e.label = "attack: buy from a publisher who no longer owns the model";
                e.named = abi.encodeWithSelector(
                    LicenseMarket.PublisherNotOwner.selector, offeringId, g.publisher, ghost.model(g.modelId).owner
                );
                _tryBuy(payer, payer, offeringId, g.price, _value(g), _recipientOf(payer), e);
                return;
            }
        }
        offeringId = _sellable(seed, kind == uint256(Attack.MaxPriceBelowPrice));
        if (offeringId == 0) return;
        Ghost.GOffering memory o = ghost.offering(offeringId);
        uint256 maxPrice = o.price;
        uint256 value = _value(o);
        if (kind == uint256(Attack.WrongPayment)) {
            e.label = "attack: buy with a wrong payment";
            if (o.currency == address(0)) {
                value = amount % 2 == 0 && o.price > 0 ? amount % o.price : o.price + 1 + amount % 1e18;
                e.named = abi.encodeWithSelector(LicenseMarket.WrongPayment.selector, value, o.price);
            } else {
                value = 1 + amount % 1e18;
                e.named = abi.encodeWithSelector(LicenseMarket.NativeNotAccepted.selector, value);
            }
        } else if (kind == uint256(Attack.MaxPriceBelowPrice)) {
            maxPrice = amount % o.price;
            e.label = "attack: buy with maxPrice below the price";
            e.named = abi.encodeWithSelector(LicenseMarket.PriceAboveMax.selector, o.price, maxPrice);
        } else {
            address owner = o.publisher;
            address other = _otherActor(owner, amount);
            _transferModel(o.modelId, other);
            if (kind == uint256(Attack.PublisherNotOwner)) {
                e.label = "attack: buy from a publisher who no longer owns the model";
                e.named = abi.encodeWithSelector(LicenseMarket.PublisherNotOwner.selector, offeringId, owner, other);
            } else {
                e.label = "attack: buy in the block the model changed hands";
                e.named = abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, o.modelId);
                if (amount % 2 == 0) {
                    // Handed back: the publisher owns it again, but only since this block.
                    _transferModel(o.modelId, owner);
                } else {
                    // The new owner publishes its own offering and sells in the same block.
                    offeringId = _publishFor(o.modelId, o.kind, o.duration, o.royaltyBps, o.price);
                    if (offeringId == 0) return;
                }
            }
        }
        _tryBuy(payer, payer, offeringId, maxPrice, value, _recipientOf(payer), e);
    }

    /// A model's rules broken: publish or close by a non-owner, a fine-tune offering below the
    /// model's derivative royalty floor, or a close by an owner of this block.
    function attackOwner(uint256 which, uint256 actorSeed, uint256 seed, uint256 bps) external step {
        (which, actorSeed, seed, bps) = (_mix(which, 0), _mix(actorSeed, 1), _mix(seed, 2), _mix(bps, 3));
        uint256 kind = uint256(Attack.NonOwnerPublish) + which % 4;
        Expect memory e;
        e.attack = 1 + kind;
        if (kind == uint256(Attack.CloseInTransferBlock)) {
            // A borrowed model would end its offerings' sales and, after the renewal period,
            // their licenses' renewals.
            uint256 offeringId = 1 + seed % ghost.offeringCount();
            uint256 modelId = ghost.offering(offeringId).modelId;
            address taker = _actor(actorSeed);
            _handTo(modelId, taker, actorSeed >> 64);
            e.label = "attack: close in the block the model changed hands";
            e.named = abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, modelId);
            _tryClose(taker, offeringId, e);
            return;
        }
        if (kind == uint256(Attack.NonOwnerClose)) {
            uint256 offeringId = 1 + seed % ghost.offeringCount();
            uint256 modelId = ghost.offering(offeringId).modelId;
            address intruder = _otherActor(ghost.model(modelId).owner, actorSeed);
            e.label = "attack: close by a non-owner";
            e.named = abi.encodeWithSelector(LicenseMarket.NotModelOwner.selector, modelId, intruder);
            _tryClose(intruder, offeringId, e);
            return;
        }
        uint256 m = kind == uint256(Attack.RoyaltyBelowFloor) ? ghost.findFloored(seed) : _model(seed);
        if (m == 0) return;
        Ghost.GModel memory g = ghost.model(m);
        Terms memory t = _terms(m, LicenseKind.FineTune, address(0), 1 + bps % MAX_PRICE, 0);
        address caller = g.owner;
        if (kind == uint256(Attack.NonOwnerPublish)) {
            t.royaltyBps = g.floor;
            caller = _otherActor(g.owner, actorSeed);
            e.label = "attack: publish by a non-owner";
            e.named = abi.encodeWithSelector(LicenseMarket.NotModelOwner.selector, m, caller);
        } else {
            // forge-lint: disable-next-line(unsafe-typecast)
            t.royaltyBps = uint16(bps % g.floor);
            e.label = "attack: fine-tune offering below the floor";
            e.named = abi.encodeWithSelector(LicenseMarket.RoyaltyBelowFloor.selector, t.royaltyBps, g.floor);
        }
        _tryPublish(caller, t, e);
    }

    /// A renewal by someone neither holder nor approved, of a license that lapsed (warping to
    /// or past the expiry of a fresh one when none has), or by a holder who took over the model
    /// or an ancestor the renewal pays in the same block (its price would come back to him).
    function attackRenew(uint256 which, uint256 actorSeed, uint256 seed) external step {
        (which, actorSeed, seed) = (_mix(which, 0), _mix(actorSeed, 1), _mix(seed, 2));
        uint256 kind = uint256(Attack.RenewByNonHolder) + which % 3;
        Expect memory e;
        e.attack = 1 + kind;
        uint256 id;
        address caller;
        if (kind == uint256(Attack.RenewByNonHolder)) {
            id = ghost.findLicense(seed, Ghost.LicenseQuery(false, 0, address(0), 0, 0, 0, clock));
            if (id == 0) return;
            caller = _unauthorized(id, actorSeed);
            e.label = "attack: renew by a non-holder";
            e.named =
                abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, id, ghost.license(id).holder, caller);
        } else if (kind == uint256(Attack.RenewAfterLapse)) {
            // Half the time exactly at the expiry of a license renewable until then (the first
            // instant it has lapsed), else a lapsed license; else past the expiry of a fresh one.
            bool atExpiry = (seed >> 64) & 1 == 0;
            id = ghost.findLicense(seed, Ghost.LicenseQuery(false, 0, address(0), 0, 0, atExpiry ? 4 : 5, clock));
            if (id != 0 && atExpiry && !ghost.renewsAt(id, ghost.license(id).expiry)) id = 0;
            bool warpToExpiry = id == 0 || atExpiry;
            if (id == 0) id = _timeBoundLicense(_actor(actorSeed), seed);
            if (id == 0) return;
            if (warpToExpiry) _warp(ghost.license(id).expiry + (atExpiry ? 0 : 1 + uint64((seed >> 65) % 1 days)));
            Ghost.GLicense memory l = ghost.license(id);
            caller = l.holder;
            e.label = "attack: renew after the license lapsed";
            e.named = abi.encodeWithSelector(LicenseMarket.LicenseLapsed.selector, id, l.expiry);
        } else {
            id = ghost.findLicense(seed, Ghost.LicenseQuery(false, 0, address(0), 0, 0, 4, clock));
            if (id == 0) id = _timeBoundLicense(_actor(actorSeed), seed);
            if (id == 0) return;
            Ghost.GLicense memory l = ghost.license(id);
            caller = l.holder;
            Ghost.GOffering memory o = ghost.offering(l.offeringId);
            uint256 changed = o.modelId;
            uint256[] memory paid = ghost.paidAncestors(o.modelId, o.price);
            if ((seed >> 64) & 1 == 1 && paid.length != 0) changed = paid[(seed >> 72) % paid.length];
            _handTo(changed, caller, seed >> 128);
            e.label = changed == o.modelId
                ? "attack: renew in the block the model changed hands"
                : "attack: renew paying an ancestor that changed hands this block";
            // An ancestor's share is held (renewed, the holder gains nothing); the model itself
            // refuses.
            if (changed == o.modelId) {
                e.named = abi.encodeWithSelector(LicenseMarket.OwnerChangedThisBlock.selector, changed);
            }
        }
        Ghost.GOffering memory g = ghost.offering(ghost.license(id).offeringId);
        _tryRenew(caller, id, g.price, _value(g), e);
    }

    // ------------------------------------------------------------ checked calls

    function _tryMint(address actor, uint256[] memory parents, uint256[] memory licenses, uint16 floor, Expect memory e)
        internal
        returns (uint256)
    {
        return _tryMintRoot(actor, parents, licenses, floor, _root(ghost.modelCount() + 1), e);
    }

    /// Mints and checks the outcome against the ghost: the exact revert, or a model recorded
    /// with its lineage and the presented licenses consumed (holder zero).
    function _tryMintRoot(
        address actor,
        uint256[] memory parents,
        uint256[] memory licenses,
        uint16 floor,
        bytes32 root,
        Expect memory e
    ) internal returns (uint256 id) {
        (bytes memory expected, Ghost.MintResult memory r) =
            ghost.mintOutcome(actor, parents, licenses, root, clock, blockNumber);
        MintParams memory p;
        p.to = actor;
        p.weightsCid = "bafy-weights";
        p.contentRoot = root;
        p.fingerprint = keccak256(abi.encode("fingerprint", root));
        p.metadataUri = "ipfs://metadata";
        p.saleRoyaltyBps = uint96(uint256(root) % 1_001);
        p.derivativeRoyaltyBps = floor;
        // One model in three keeps its weights encrypted: its access and fine-tune sales escrow.
        p.encrypted = (uint256(root) >> 128) % 3 == 0;
        p.parents = parents;
        p.licenses = licenses;
        (bool ok, bytes memory ret) = _call(actor, address(registry), 0, abi.encodeCall(registry.mint, (p)));
        if (!ok && keccak256(ret) == keccak256(expected)) {
            // forge-lint: disable-next-line(unsafe-typecast)
            bytes4 sel = bytes4(ret);
            if (sel == ModelRegistry.LineageTooDeep.selector) ++tooDeep;
            if (sel == ModelRegistry.LineageTooLarge.selector) ++tooLarge;
            if (sel == ModelRegistry.RoyaltySharesExceedTotal.selector) ++sharesExceeded;
        }
        if (!_settle(ok, ret, expected, e)) return 0;
        id = abi.decode(ret, (uint256));
        if (id != ghost.modelCount() + 1) _fail(string.concat(e.label, ": model id not sequential"));
        ghost.addModel(
            Ghost.GModel(actor, 0, floor, uint8(r.depth), uint8(r.nodes), root, p.encrypted),
            parents,
            licenses,
            r.edgeParents,
            r.edgeBps
        );
        _touchedModels.push(id);
        for (uint256 i; i < licenses.length; ++i) {
            if (licenses[i] == 0) continue;
            _touchedLicenses.push(licenses[i]);
            (, address holder) = market.licenseOf(licenses[i]);
            if (holder != address(0)) _fail(string.concat(e.label, ": license not consumed by the mint"));
        }
        ++mints;
        if (r.depth > maxDepth) maxDepth = r.depth;
        if (r.nodes > maxNodes) maxNodes = r.nodes;
    }

    function _tryPublish(address caller, Terms memory t, Expect memory e) internal returns (uint256 id) {
        bytes memory expected = ghost.publishError(caller, t);
        (bool ok, bytes memory ret) = _call(caller, address(market), 0, abi.encodeCall(market.publishOffering, (t)));
        if (!_settle(ok, ret, expected, e)) return 0;
        id = abi.decode(ret, (uint256));
        if (id != ghost.offeringCount() + 1) _fail(string.concat(e.label, ": offering id not sequential"));
        ghost.addOffering(
            Ghost.GOffering({
                modelId: t.modelId,
                kind: t.kind,
                currency: t.currency,
                price: t.price,
                duration: t.duration,
                supplyCap: uint32(t.supplyCap),
                sold: 0,
                transferable: t.transferable,
                royaltyBps: t.royaltyBps,
                renewalPeriod: t.renewalPeriod,
                publisher: caller,
                closed: false,
                closedAt: 0,
                escrowed: ghost.escrows(t.modelId, t.kind),
                deliveryPeriod: t.deliveryPeriod
            })
        );
    }

    function _tryClose(address caller, uint256 offeringId, Expect memory e) internal {
        bytes memory expected = ghost.closeError(caller, offeringId, blockNumber);
        (bool ok, bytes memory ret) =
            _call(caller, address(market), 0, abi.encodeCall(market.closeOffering, (offeringId)));
        if (!_settle(ok, ret, expected, e)) return;
        Ghost.GOffering memory o = ghost.offering(offeringId);
        o.closed = true;
        o.closedAt = clock;
        ghost.setOffering(offeringId, o);
    }

    /// Buys (funding the payer) and checks the outcome: the exact revert, or the license's
    /// window and the credits of every actor against the reference split.
    function _tryBuy(
        address payer,
        address holder,
        uint256 offeringId,
        uint256 maxPrice,
        uint256 value,
        bytes32 recipient,
        Expect memory e
    ) internal returns (uint256 id) {
        bytes memory expected = ghost.buyError(offeringId, holder, maxPrice, value, recipient, blockNumber);
        (bool ok, bytes memory ret) = _buyCall(payer, holder, offeringId, maxPrice, value, recipient);
        if (!_settle(ok, ret, expected, e)) return 0;
        id = abi.decode(ret, (uint256));
        _bought(id, payer, holder, offeringId, recipient, e.label);
    }

    function _buyCall(
        address payer,
        address holder,
        uint256 offeringId,
        uint256 maxPrice,
        uint256 value,
        bytes32 recipient
    ) internal returns (bool, bytes memory) {
        Ghost.GOffering memory o = ghost.offering(offeringId);
        _fund(payer, o.currency, o.price, value);
        return
            _call(payer, address(market), value, abi.encodeCall(market.buy, (offeringId, holder, maxPrice, recipient)));
    }

    /// Books a purchase: the license with its window from now, the offering's sale, the split;
    /// an escrowed one awaits its key (wrapped to `recipient`) until the deadline, its price held
    /// and credited to nobody.
    function _bought(
        uint256 id,
        address payer,
        address holder,
        uint256 offeringId,
        bytes32 recipient,
        string memory label
    ) internal {
        if (id != ghost.licenseCount() + 1) {
            _fail(string.concat(label, ": license id not sequential"));
        }
        _touchedLicenses.push(id);
        Ghost.GOffering memory o = ghost.offering(offeringId);
        ++o.sold;
        ghost.setOffering(offeringId, o);
        Ghost.GLicense memory l;
        (l.offeringId, l.holder, l.start, l.expiry) =
        (offeringId, holder, clock, o.duration == 0 ? 0 : clock + o.duration);
        if (!o.escrowed) {
            ghost.addLicense(l);
            _sale(label, o, false);
            return;
        }
        (l.payer, l.deadline, l.recipient) = (payer, clock + o.deliveryPeriod, recipient);
        ghost.addLicense(l);
        ghost.hold(o.currency, o.price);
        ++escrowedSales;
        _checkCredits(label, o.modelId);
        (address p, uint64 deadline) = market.pendingDelivery(id);
        if (p != payer || deadline != l.deadline) _fail(string.concat(label, ": escrow not recorded"));
    }

    /// A license of offering `offeringId` bought by `holder`, its key delivered at once by the
    /// model's owner when escrowed (0 when either fails, as the ghost says).
    function _buyKeyed(address holder, uint256 offeringId) internal returns (uint256 id) {
        id = _buyFrom(holder, offeringId);
        if (id == 0 || !ghost.pending(id)) return id;
        Expect memory e;
        e.label = "deliver after buy";
        address owner = ghost.model(ghost.offering(offeringId).modelId).owner;
        if (!_tryDeliver(owner, id, _purchaseOf(id), false, e)) return 0;
    }

    /// Delivers the key of `id` as `caller` for purchase `p` (an empty CID when asked) and
    /// checks the outcome: the exact revert, or the window restarted now and the price split as
    /// a sale's.
    function _tryDeliver(address caller, uint256 id, Purchase memory p, bool emptyCid, Expect memory e)
        internal
        returns (bool)
    {
        bytes memory expected =
            ghost.deliverError(id, caller, p.modelId, p.holder, p.recipient, emptyCid, clock, blockNumber);
        (bool ok, bytes memory ret) = _call(
            caller,
            address(market),
            0,
            abi.encodeCall(market.deliverKey, (id, p.modelId, p.holder, p.recipient, emptyCid ? "" : KEY_CID))
        );
        if (!_settle(ok, ret, expected, e)) return false;
        Ghost.GLicense memory l = ghost.license(id);
        Ghost.GOffering memory o = ghost.offering(l.offeringId);
        (l.start, l.expiry, l.payer, l.deadline) = (clock, o.duration == 0 ? 0 : clock + o.duration, address(0), 0);
        ghost.setLicense(id, l);
        (License memory got,) = market.licenseOf(id);
        if (got.start != clock || got.expiry != l.expiry) _fail(string.concat(e.label, ": window not restarted"));
        _touchedLicenses.push(id);
        ++deliveries;
        _sale(e.label, o, true);
        return true;
    }

    /// Refunds `id` (as a stranger: anyone may) and checks the outcome: the exact revert, or the
    /// license burnt, its supply slot freed and the price credited to its payer.
    function _tryRefund(uint256 id, Expect memory e) internal {
        bytes memory expected = ghost.refundError(id, clock);
        (bool ok, bytes memory ret) = _call(address(0xBEEF), address(market), 0, abi.encodeCall(market.refund, (id)));
        if (!_settle(ok, ret, expected, e)) return;
        Ghost.GLicense memory l = ghost.license(id);
        Ghost.GOffering memory o = ghost.offering(l.offeringId);
        --o.sold;
        ghost.setOffering(l.offeringId, o);
        ghost.refund(l.payer, o.currency, o.price);
        if (market.offeringOf(l.offeringId).sold != o.sold) _fail(string.concat(e.label, ": supply slot not freed"));
        (l.holder, l.approved, l.payer, l.deadline, l.refunded) = (address(0), address(0), address(0), 0, true);
        ghost.setLicense(id, l);
        _touchedLicenses.push(id);
        ++refunds;
        _checkCredits(e.label, o.modelId);
    }

    function _tryRenew(address caller, uint256 id, uint256 maxPrice, uint256 value, Expect memory e) internal {
        bytes memory expected = ghost.renewError(id, caller, maxPrice, value, clock, blockNumber);
        Ghost.GLicense memory l = ghost.license(id);
        Ghost.GOffering memory o = ghost.offering(l.offeringId);
        _fund(caller, o.currency, o.price, value);
        (bool ok, bytes memory ret) =
            _call(caller, address(market), value, abi.encodeCall(market.renew, (id, maxPrice)));
        if (!_settle(ok, ret, expected, e)) return;
        uint64 expiry = abi.decode(ret, (uint64));
        if (expiry != l.expiry + o.duration) _fail(string.concat(e.label, ": expiry != previous expiry + duration"));
        l.expiry += o.duration;
        ghost.setLicense(id, l);
        _touchedLicenses.push(id);
        ++renewals;
        _sale(e.label, o, false);
    }

    /// Books a sale in the ghost (paid now, or `released` from escrow by a key delivery) and
    /// checks at once that every actor's credits, in both currencies, equal the reference
    /// split's.
    function _sale(string memory label, Ghost.GOffering memory o, bool released) internal {
        ++sales;
        bool royalty =
            released ? ghost.release(o.modelId, o.currency, o.price) : ghost.sale(o.modelId, o.currency, o.price);
        if (royalty) ++royaltySales;
        _checkCredits(label, o.modelId);
    }

    function _checkCredits(string memory label, uint256 modelId) internal {
        address[2] memory currencies = [address(0), address(token)];
        for (uint256 i; i < actors.length; ++i) {
            for (uint256 c; c < 2; ++c) {
                uint256 got = market.credits(actors[i], currencies[c]);
                uint256 want = ghost.credits(actors[i], currencies[c]);
                if (got != want) {
                    _fail(
                        string.concat(
                            label,
                            ": credits of actor ",
                            vm.toString(i),
                            c == 0 ? " (native) " : " (token) ",
                            vm.toString(got),
                            " != reference split ",
                            vm.toString(want),
                            " after a sale of model ",
                            vm.toString(modelId)
                        )
                    );
                    return;
                }
            }
        }
    }

    /// Compares a call's outcome with the expected revert data (empty: success expected) and
    /// counts a violation when they differ. True when the call succeeded as expected.
    function _settle(bool ok, bytes memory ret, bytes memory expected, Expect memory e) internal returns (bool) {
        if (e.attack != 0) {
            ++attackTries[e.attack - 1];
            if (keccak256(e.named) != keccak256(expected)) {
                _fail(
                    string.concat(
                        e.label, ": handler bug: the ghost expects ", _describe(expected), ", not ", _describe(e.named)
                    )
                );
            }
            expected = e.named;
        }
        if (ok) {
            if (expected.length == 0) {
                // An attack whose call goes through gains nothing the ghost does not book (a
                // held share): the checks after the call compare every balance.
                if (e.attack != 0) ++attackCaught[e.attack - 1];
                return true;
            }
            _fail(string.concat(e.label, ": succeeded; expected the revert ", _describe(expected)));
            return false;
        }
        if (keccak256(ret) != keccak256(expected)) {
            _fail(string.concat(e.label, ": reverted ", _describe(ret), "; expected ", _describe(expected)));
        } else if (e.attack != 0) {
            ++attackCaught[e.attack - 1];
        }
        return false;
    }

    // ------------------------------------------------------------ helpers

    function _call(address from, address target, uint256 value, bytes memory data)
        internal
        returns (bool ok, bytes memory ret)
    {
        vm.prank(from);
        (ok, ret) = target.call{value: value}(data);
    }

    /// A license of `modelId` for `holder`: fine-tune, bought from an offering for sale or one
    /// the owner publishes (royalty: the floor plus up to 10%, priced, time-bound one time in
    /// four). 0 when the purchase cannot happen (the ghost says why).
    function _obtainLicense(address holder, uint256 modelId, uint256 seed) internal returns (uint256) {
        uint256 o = ghost.findOffering(seed, Ghost.OfferingQuery(modelId, 1, false, false, false, 0, blockNumber));
        if (o == 0) {
            uint16 floor = ghost.model(modelId).floor;
            o = _publishFor(
                modelId,
                LicenseKind.FineTune,
                seed % 4 == 0 ? uint64(1 days + (seed >> 2) % 30 days) : 0,
                uint16(Math.min(uint256(floor) + (seed >> 40) % 1_000, 10_000)),
                1 + (seed >> 64) % MAX_PRICE
            );
            if (o == 0) return 0;
        }
        return _buyKeyed(holder, o);
    }

    /// An offering of `modelId` published by its owner.
    function _publishFor(uint256 modelId, LicenseKind kind, uint64 duration, uint16 bps, uint256 price)
        internal
        returns (uint256)
    {
        Terms memory t = _terms(modelId, kind, price % 3 == 0 ? address(token) : address(0), price, duration);
        t.royaltyBps = kind == LicenseKind.FineTune ? bps : 0;
        t.renewalPeriod = duration == 0 ? 0 : 1 days;
        // forge-lint: disable-next-line(unsafe-typecast)
        if (ghost.escrows(modelId, kind)) t.deliveryPeriod = uint64(1 hours + price % 10 days);
        Expect memory e;
        e.label = "publish";
        return _tryPublish(ghost.model(modelId).owner, t, e);
    }

    function _buyFrom(address holder, uint256 offeringId) internal returns (uint256) {
        Ghost.GOffering memory o = ghost.offering(offeringId);
        Expect memory e;
        e.label = "buy";
        return _tryBuy(holder, holder, offeringId, o.price, _value(o), _recipientOf(holder), e);
    }

    /// A license bought now by `holder` from a time-bound offering of a derivative (published
    /// if none sells).
    function _timeBoundLicense(address holder, uint256 seed) internal returns (uint256) {
        uint256 o = ghost.findOffering(seed, Ghost.OfferingQuery(0, 0, true, true, true, 0, blockNumber));
        if (o == 0) {
            uint256 m = ghost.findDerivative(seed);
            if (m == 0) m = _model(seed);
            // forge-lint: disable-next-line(unsafe-typecast)
            o = _publishFor(m, LicenseKind.Output, uint64(1 days + seed % 30 days), 0, 1 + (seed >> 8) % MAX_PRICE);
            if (o == 0) return 0;
        }
        return _buyKeyed(holder, o);
    }

    /// An offering that sells now (priced when asked), published on a derivative if none does.
    function _sellable(uint256 seed, bool priced) internal returns (uint256 offeringId) {
        offeringId = ghost.findOffering(seed, Ghost.OfferingQuery(0, 0, false, priced, false, 0, blockNumber));
        if (offeringId != 0) return offeringId;
        uint256 m = ghost.findDerivative(seed);
        if (m == 0) m = _model(seed);
        return _publishFor(m, LicenseKind.Access, 0, 0, 1 + seed % MAX_PRICE);
    }

    function _transferModel(uint256 modelId, address to) internal {
        address from = ghost.model(modelId).owner;
        Expect memory e;
        e.label = "transferModel";
        (bool ok, bytes memory ret) =
            _call(from, address(registry), 0, abi.encodeCall(registry.transferFrom, (from, to, modelId)));
        if (!_settle(ok, ret, "", e)) return;
        // forge-lint: disable-next-line(unsafe-typecast)
        ghost.setOwner(modelId, to, uint64(blockNumber));
        _touchedModels.push(modelId);
    }

    /// Hands model `modelId` to `to` in this block (away and back when `to` holds it already):
    /// `to` owns it, but only since this block.
    function _handTo(uint256 modelId, address to, uint256 seed) internal {
        if (ghost.model(modelId).owner == to) _transferModel(modelId, _otherActor(to, seed));
        _transferModel(modelId, to);
    }

    function _warp(uint64 to) internal {
        clock = to;
        vm.warp(clock);
    }

    function _fund(address payer, address currency, uint256 price, uint256 value) internal {
        if (value != 0) vm.deal(payer, payer.balance + value);
        if (currency != address(0)) {
            token.mint(payer, price);
            vm.prank(payer);
            token.approve(address(market), price);
        }
    }

    /// A stand-in for the X25519 public key of `who`'s age recipient.
    function _recipientOf(address who) internal pure returns (bytes32) {
        return keccak256(abi.encode("age recipient", who));
    }

    function _value(Ghost.GOffering memory o) internal pure returns (uint256) {
        return o.currency == address(0) ? o.price : 0;
    }

    function _balance(address account, address currency) internal view returns (uint256) {
        return currency == address(0) ? account.balance : token.balanceOf(account);
    }

    /// Spreads a fuzzed argument over its range: the fuzzer favours edge and dictionary values
    /// (0, 1, max, addresses), which would skew every choice taken from the low bits.
    function _mix(uint256 x, uint256 position) internal view returns (uint256) {
        return uint256(keccak256(abi.encode(x, position, calls)));
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    function _otherActor(address a, uint256 seed) internal view returns (address b) {
        for (uint256 i; i < actors.length; ++i) {
            b = actors[(seed % actors.length + i) % actors.length];
            if (b != a) return b;
        }
    }

    /// An actor other than the holder allowed to act on the license, else `fallback_`.
    function _authorizedOther(uint256 id, uint256 seed, address fallback_) internal view returns (address) {
        address holder = ghost.license(id).holder;
        for (uint256 i; i < actors.length; ++i) {
            address a = actors[(seed % actors.length + i) % actors.length];
            if (a != holder && ghost.authorized(id, a)) return a;
        }
        return fallback_;
    }

    /// An actor not allowed to act on the license (a stranger if all are).
    function _unauthorized(uint256 id, uint256 seed) internal view returns (address) {
        for (uint256 i; i < actors.length; ++i) {
            address a = actors[(seed % actors.length + i) % actors.length];
            if (!ghost.authorized(id, a)) return a;
        }
        return address(0xBAD);
    }

    function _model(uint256 seed) internal view returns (uint256) {
        return 1 + seed % ghost.modelCount();
    }

    /// A derivative royalty floor: none one time in eight, else up to 25%.
    function _floor(uint256 seed) internal pure returns (uint16) {
        return seed % 8 == 0 ? 0 : uint16(1 + (seed >> 3) % 2_500);
    }

    function _root(uint256 salt) internal pure returns (bytes32) {
        return keccak256(abi.encode("root", salt));
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

    function _notTransferable(uint256 id) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(LicenseMarket.LicenseNotTransferable.selector, id);
    }

    function _contains(uint256[] memory a, uint256 n, uint256 x) internal pure returns (bool) {
        for (uint256 i; i < n; ++i) {
            if (a[i] == x) return true;
        }
        return false;
    }

    function _truncate(uint256[] memory a, uint256 n) internal pure {
        assembly ("memory-safe") {
            mstore(a, n)
        }
    }

    /// `err` as the contracts' error name (when it is one) and its data in hex.
    function _describe(bytes memory err) internal pure returns (string memory) {
        if (err.length == 0) return "success";
        bytes4[47] memory selectors = [
            LicenseMarket.UnknownModel.selector,
            LicenseMarket.UnknownOffering.selector,
            LicenseMarket.UnknownLicense.selector,
            LicenseMarket.NotModelOwner.selector,
            LicenseMarket.RoyaltyOnlyForFineTune.selector,
            LicenseMarket.RoyaltyAboveTotal.selector,
            LicenseMarket.RoyaltyBelowFloor.selector,
            LicenseMarket.CurrencyNotAccepted.selector,
            LicenseMarket.DurationTooLong.selector,
            LicenseMarket.PriceTooLarge.selector,
            LicenseMarket.SupplyCapTooLarge.selector,
            LicenseMarket.OfferingIsClosed.selector,
            LicenseMarket.SoldOut.selector,
            LicenseMarket.PublisherNotOwner.selector,
            LicenseMarket.OwnerChangedThisBlock.selector,
            LicenseMarket.PriceAboveMax.selector,
            LicenseMarket.WrongPayment.selector,
            LicenseMarket.NativeNotAccepted.selector,
            LicenseMarket.PerpetualLicense.selector,
            LicenseMarket.LicenseLapsed.selector,
            LicenseMarket.NotLicenseHolder.selector,
            LicenseMarket.LicenseNotTransferable.selector,
            LicenseMarket.LicenseAlreadyUsed.selector,
            LicenseMarket.LicenseForOtherModel.selector,
            LicenseMarket.NotFineTuneLicense.selector,
            LicenseMarket.LicenseNotValid.selector,
            LicenseMarket.NothingToWithdraw.selector,
            LicenseMarket.ZeroAddress.selector,
            ModelRegistry.DuplicateContent.selector,
            ModelRegistry.ParentLicenseCountMismatch.selector,
            ModelRegistry.TooManyParents.selector,
            ModelRegistry.DuplicateParent.selector,
            ModelRegistry.NotParentOwner.selector,
            ModelRegistry.LineageTooDeep.selector,
            ModelRegistry.LineageTooLarge.selector,
            ModelRegistry.RoyaltySharesExceedTotal.selector,
            ModelRegistry.RoyaltyAboveTotal.selector,
            LicenseMarket.KeyNotDelivered.selector,
            LicenseMarket.RecipientRequired.selector,
            LicenseMarket.NotPendingDelivery.selector,
            LicenseMarket.EmptyKeyCid.selector,
            LicenseMarket.DeliveryDeadlinePassed.selector,
            LicenseMarket.DeliveryNotOverdue.selector,
            LicenseMarket.NotKeeper.selector,
            LicenseMarket.DeliveryPeriodOutOfRange.selector,
            LicenseMarket.DeliveryPeriodNotApplicable.selector,
            LicenseMarket.DeliveryForAnotherPurchase.selector
        ];
        string[47] memory names = [
            "UnknownModel",
            "UnknownOffering",
            "UnknownLicense",
            "NotModelOwner",
            "RoyaltyOnlyForFineTune",
            "RoyaltyAboveTotal",
            "RoyaltyBelowFloor",
            "CurrencyNotAccepted",
            "DurationTooLong",
            "PriceTooLarge",
            "SupplyCapTooLarge",
            "OfferingIsClosed",
            "SoldOut",
            "PublisherNotOwner",
            "OwnerChangedThisBlock",
            "PriceAboveMax",
            "WrongPayment",
            "NativeNotAccepted",
            "PerpetualLicense",
            "LicenseLapsed",
            "NotLicenseHolder",
            "LicenseNotTransferable",
            "LicenseAlreadyUsed",
            "LicenseForOtherModel",
            "NotFineTuneLicense",
            "LicenseNotValid",
            "NothingToWithdraw",
            "ZeroAddress",
            "DuplicateContent",
            "ParentLicenseCountMismatch",
            "TooManyParents",
            "DuplicateParent",
            "NotParentOwner",
            "LineageTooDeep",
            "LineageTooLarge",
            "RoyaltySharesExceedTotal",
            "RoyaltyAboveTotal",
            "KeyNotDelivered",
            "RecipientRequired",
            "NotPendingDelivery",
            "EmptyKeyCid",
            "DeliveryDeadlinePassed",
            "DeliveryNotOverdue",
            "NotKeeper",
            "DeliveryPeriodOutOfRange",
            "DeliveryPeriodNotApplicable",
            "DeliveryForAnotherPurchase"
        ];
        for (uint256 i; i < selectors.length && err.length >= 4; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            if (selectors[i] == bytes4(err)) return string.concat(names[i], " ", _hex(err));
        }
        return _hex(err);
    }

    function _hex(bytes memory b) internal pure returns (string memory s) {
        bytes memory digits = "0123456789abcdef";
        bytes memory out = new bytes(2 + 2 * b.length);
        (out[0], out[1]) = ("0", "x");
        for (uint256 i; i < b.length; ++i) {
            out[2 + 2 * i] = digits[uint8(b[i]) >> 4];
            out[3 + 2 * i] = digits[uint8(b[i]) & 15];
        }
        return string(out);
    }

    function _fail(string memory why) internal {
        if (violations == 0) firstViolation = why;
        ++violations;
    }
}
