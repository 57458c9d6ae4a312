// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {ILicenseMarket, IModelRegistry, License, LicenseKind, Terms} from "./Types.sol";

/// @title LicenseMarket
/// @notice License offerings on registered models, and the licenses sold from them as ERC-721
/// tokens.
///
/// - An offering's terms are immutable once published; its model's owner can only close it for
///   new sales (purchases and renewals). Closing never touches licenses already sold.
/// - `buy` mints a license that snapshots the economic terms it paid for, valid from the
///   purchase until `expiry` (exclusive; 0 = perpetual). `renew` extends a time-bound license by
///   its snapshotted duration from `max(now, expiry)` at its snapshotted price. Nobody, the model
///   owner included, can revoke a license. Non-transferable licenses cannot be transferred.
/// - Buyers pass `maxPrice`, so a sale never charges more than the buyer agreed to.
/// - Every sale's price is split at purchase time: each parent of the model receives its royalty
///   share (snapshotted on the lineage edge at mint), which is split again up the parent's own
///   lineage; the rest goes to the model's owner. Amounts are credited to balances per account
///   and currency, and withdrawn by their owners (pull payments, reentrancy guarded). Rounding
///   remainders stay with the owner of the model whose share was split, so every wei paid is
///   credited. ERC-20s that deliver less than the price (fee-on-transfer) are rejected.
/// - `rightsOf` answers whether an account may use a right of a model at a time, and by which
///   license. A model's owner holds every right of it.
contract LicenseMarket is ERC721, ReentrancyGuard, ILicenseMarket {
    using SafeERC20 for IERC20;
    using EnumerableSet for EnumerableSet.UintSet;

    uint16 internal constant BPS = 10_000;
    /// Longest duration an offering may grant per purchase or renewal.
    uint64 public constant MAX_DURATION = 100 * 365 days;

    struct Offering {
        Terms terms;
        address publisher;
        uint64 sold;
        bool closed;
    }

    IModelRegistry public immutable registry;
    uint256 public totalOfferings;
    uint256 public totalLicenses;

    mapping(uint256 offeringId => Offering) private _offerings;
    mapping(uint256 licenseId => License) private _licenses;
    /// Licenses per (holder, model, kind), kept current on transfer, for `rightsOf`.
    mapping(bytes32 key => EnumerableSet.UintSet) private _held;
    mapping(address account => mapping(address currency => uint256)) public credits;
    /// Totals per currency: every wei received is credited, so the sum of balances always equals
    /// `totalReceived - totalWithdrawn`, which is what the contract holds.
    mapping(address currency => uint256) public totalReceived;
    mapping(address currency => uint256) public totalWithdrawn;

    event OfferingPublished(
        uint256 indexed offeringId, uint256 indexed modelId, address indexed publisher, Terms terms
    );
    event OfferingClosed(uint256 indexed offeringId, uint256 indexed modelId, address indexed by);
    event LicensePurchased(
        uint256 indexed licenseId,
        uint256 indexed offeringId,
        uint256 indexed modelId,
        address payer,
        address holder,
        uint256 price,
        uint64 start,
        uint64 expiry
    );
    /// `start` moves to the renewal time when the license had lapsed, so the unpaid gap is not
    /// covered.
    event LicenseRenewed(uint256 indexed licenseId, address indexed payer, uint256 price, uint64 start, uint64 expiry);
    /// A share of a sale credited to `account`: `modelId` is the model whose owner (or lineage
    /// share) it is, `licenseId` the license sold or renewed.
    event PaymentCredited(
        address indexed account, address indexed currency, uint256 indexed licenseId, uint256 modelId, uint256 amount
    );
    event Withdrawn(address indexed account, address indexed currency, address to, uint256 amount);

    error UnknownModel(uint256 modelId);
    error UnknownOffering(uint256 offeringId);
    error UnknownLicense(uint256 licenseId);
    error NotModelOwner(uint256 modelId, address caller);
    error RoyaltyOnlyForFineTune(LicenseKind kind, uint16 royaltyBps);
    error RoyaltyAboveTotal(uint16 royaltyBps);
    error InvalidCurrency(address currency);
    error DurationTooLong(uint64 duration, uint64 max);
    error OfferingIsClosed(uint256 offeringId);
    error SoldOut(uint256 offeringId, uint64 supplyCap);
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    error WrongPayment(uint256 sent, uint256 price);
    error NativeNotAccepted(uint256 sent);
    error FeeOnTransferToken(address token, uint256 expected, uint256 received);
    error PerpetualLicense(uint256 licenseId);
    error LicenseNotTransferable(uint256 licenseId);
    error NothingToWithdraw(address account, address currency);
    error ZeroAddress();
    error NativeTransferFailed(address to, uint256 amount);

    constructor(IModelRegistry registry_) ERC721("AI Model License", "MLIC") {
        if (address(registry_) == address(0)) revert ZeroAddress();
        registry = registry_;
    }

    // ---------------------------------------------------------------- offerings

    /// @notice Publishes an offering on `terms.modelId`. Only the model's owner may.
    function publishOffering(Terms calldata terms) external returns (uint256 offeringId) {
        _requireModelOwner(terms.modelId);
        if (terms.kind != LicenseKind.FineTune && terms.royaltyBps != 0) {
            revert RoyaltyOnlyForFineTune(terms.kind, terms.royaltyBps);
        }
        if (terms.royaltyBps > BPS) revert RoyaltyAboveTotal(terms.royaltyBps);
        if (terms.currency != address(0) && terms.currency.code.length == 0) revert InvalidCurrency(terms.currency);
        if (terms.duration > MAX_DURATION) revert DurationTooLong(terms.duration, MAX_DURATION);

        offeringId = ++totalOfferings;
        Offering storage o = _offerings[offeringId];
        o.terms = terms;
        o.publisher = msg.sender;
        emit OfferingPublished(offeringId, terms.modelId, msg.sender, terms);
    }

    /// @notice Closes an offering for new sales and renewals. Licenses already sold stay valid.
    function closeOffering(uint256 offeringId) external {
        Offering storage o = _offering(offeringId);
        _requireModelOwner(o.terms.modelId);
        if (o.closed) revert OfferingIsClosed(offeringId);
        o.closed = true;
        emit OfferingClosed(offeringId, o.terms.modelId, msg.sender);
    }

    function offeringOf(uint256 offeringId) external view returns (Offering memory) {
        return _offering(offeringId);
    }

    // ---------------------------------------------------------------- sales

    /// @notice Buys a license from `offeringId` for `holder`, paying at most `maxPrice`. For the
    /// native currency send exactly the price; for an ERC-20 approve it first.
    function buy(uint256 offeringId, address holder, uint256 maxPrice)
        external
        payable
        nonReentrant
        returns (uint256 licenseId)
    {
        Offering storage o = _offering(offeringId);
        if (o.closed) revert OfferingIsClosed(offeringId);
        Terms storage t = o.terms;
        if (t.supplyCap != 0 && o.sold >= t.supplyCap) revert SoldOut(offeringId, t.supplyCap);
        uint256 price = t.price;
        if (price > maxPrice) revert PriceAboveMax(price, maxPrice);
        if (holder == address(0)) revert ZeroAddress();

        ++o.sold;
        licenseId = ++totalLicenses;
        uint64 start = uint64(block.timestamp);
        uint64 expiry = t.duration == 0 ? 0 : start + t.duration;
        _licenses[licenseId] = License({
            offeringId: offeringId,
            modelId: t.modelId,
            kind: t.kind,
            currency: t.currency,
            price: price,
            duration: t.duration,
            transferable: t.transferable,
            commercialUse: t.commercialUse,
            royaltyBps: t.royaltyBps,
            termsHash: t.termsHash,
            start: start,
            expiry: expiry
        });
        _mint(holder, licenseId);
        emit LicensePurchased(licenseId, offeringId, t.modelId, msg.sender, holder, price, start, expiry);

        _collect(t.currency, price);
        _distribute(t.modelId, t.currency, price, licenseId);
    }

    /// @notice Extends a time-bound license by its snapshotted duration from `max(now, expiry)`,
    /// at its snapshotted price (at most `maxPrice`). Anyone may pay for a renewal. A lapsed
    /// license restarts now: it is not valid for the gap between its old expiry and the renewal.
    function renew(uint256 licenseId, uint256 maxPrice) external payable nonReentrant returns (uint64 expiry) {
        License storage l = _license(licenseId);
        if (l.duration == 0) revert PerpetualLicense(licenseId);
        if (_offerings[l.offeringId].closed) revert OfferingIsClosed(l.offeringId);
        uint256 price = l.price;
        if (price > maxPrice) revert PriceAboveMax(price, maxPrice);

        // Licenses are time-bound by design; a validator's few seconds of drift are accepted.
        // forge-lint: disable-next-line(block-timestamp)
        uint64 from = l.expiry > block.timestamp ? l.expiry : uint64(block.timestamp);
        if (from != l.expiry) l.start = from;
        expiry = from + l.duration;
        l.expiry = expiry;
        emit LicenseRenewed(licenseId, msg.sender, price, l.start, expiry);

        _collect(l.currency, price);
        _distribute(l.modelId, l.currency, price, licenseId);
    }

    /// @dev Takes exactly `price` of `currency` from the caller.
    function _collect(address currency, uint256 price) private {
        if (currency == address(0)) {
            if (msg.value != price) revert WrongPayment(msg.value, price);
        } else {
            if (msg.value != 0) revert NativeNotAccepted(msg.value);
            if (price == 0) return;
            IERC20 token = IERC20(currency);
            uint256 before = token.balanceOf(address(this));
            token.safeTransferFrom(msg.sender, address(this), price);
            uint256 received = token.balanceOf(address(this)) - before;
            if (received != price) revert FeeOnTransferToken(currency, price, received);
        }
        totalReceived[currency] += price;
    }

    /// @dev Credits `amount` for a sale of `modelId`: each royalty parent gets its share (split
    /// again up its own lineage), the model's owner the rest. The registry bounds the nodes
    /// visited (MAX_ROYALTY_NODES), so this cannot run out of gas.
    function _distribute(uint256 modelId, address currency, uint256 amount, uint256 licenseId) private {
        if (amount == 0) return;
        (uint256[] memory parents, uint16[] memory bps) = registry.royaltyEdges(modelId);
        uint256 rest = amount;
        for (uint256 i; i < parents.length; ++i) {
            uint256 share = Math.mulDiv(amount, bps[i], BPS);
            if (share == 0) continue;
            rest -= share;
            _distribute(parents[i], currency, share, licenseId);
        }
        if (rest == 0) return;
        address owner = registry.ownerOf(modelId);
        credits[owner][currency] += rest;
        emit PaymentCredited(owner, currency, licenseId, modelId, rest);
    }

    // ---------------------------------------------------------------- withdrawals

    /// @notice Sends the caller's whole balance of `currency` to `to`.
    function withdraw(address currency, address to) external nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert ZeroAddress();
        amount = credits[msg.sender][currency];
        if (amount == 0) revert NothingToWithdraw(msg.sender, currency);
        credits[msg.sender][currency] = 0;
        totalWithdrawn[currency] += amount;
        emit Withdrawn(msg.sender, currency, to, amount);
        if (currency == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(to, amount);
        } else {
            IERC20(currency).safeTransfer(to, amount);
        }
    }

    // ---------------------------------------------------------------- rights

    /// @inheritdoc ILicenseMarket
    function licenseOf(uint256 licenseId) external view returns (License memory license, address holder) {
        license = _license(licenseId);
        holder = _ownerOf(licenseId);
    }

    /// @inheritdoc ILicenseMarket
    function isLicenseValid(uint256 licenseId, uint64 at) public view returns (bool) {
        License storage l = _license(licenseId);
        return _validAt(l, at);
    }

    /// @notice Whether `account` may use right `kind` of `modelId` at time `at`, and by which
    /// license (0 when the account owns the model). Among several valid licenses the one that
    /// lasts longest is named (a perpetual one first). Ownership of licenses and of the model is
    /// the current one; `at` decides validity windows.
    function rightsOf(address account, uint256 modelId, LicenseKind kind, uint64 at)
        external
        view
        returns (bool allowed, uint256 licenseId)
    {
        if (!registry.exists(modelId)) revert UnknownModel(modelId);
        if (registry.ownerOf(modelId) == account) return (true, 0);
        EnumerableSet.UintSet storage held = _held[_key(account, modelId, kind)];
        uint256 n = held.length();
        uint64 best;
        for (uint256 i; i < n; ++i) {
            uint256 id = held.at(i);
            License storage l = _licenses[id];
            if (!_validAt(l, at)) continue;
            if (l.expiry == 0) return (true, id);
            if (l.expiry > best) (best, licenseId) = (l.expiry, id);
        }
        allowed = licenseId != 0;
    }

    /// @notice Whether `licenseId` grants `account` right `kind` of `modelId` at time `at`: O(1),
    /// for on-chain callers that know the license (`rightsOf` scans every license the account
    /// holds for that model and kind, which anyone can make long by sending licenses).
    function grants(uint256 licenseId, address account, uint256 modelId, LicenseKind kind, uint64 at)
        external
        view
        returns (bool)
    {
        if (licenseId == 0 || licenseId > totalLicenses) return false;
        License storage l = _licenses[licenseId];
        return _ownerOf(licenseId) == account && l.modelId == modelId && l.kind == kind && _validAt(l, at);
    }

    /// @notice Licenses `account` holds for right `kind` of `modelId`, valid or not.
    function licensesHeld(address account, uint256 modelId, LicenseKind kind) external view returns (uint256[] memory) {
        return _held[_key(account, modelId, kind)].values();
    }

    function _validAt(License storage l, uint64 at) private view returns (bool) {
        return l.start <= at && (l.expiry == 0 || at < l.expiry);
    }

    // ---------------------------------------------------------------- ERC-721 hooks

    /// @dev Enforces non-transferability and keeps the (holder, model, kind) index current.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        License storage l = _licenses[tokenId];
        from = _ownerOf(tokenId);
        if (from != address(0) && to != address(0) && !l.transferable) revert LicenseNotTransferable(tokenId);
        from = super._update(to, tokenId, auth);
        if (from != address(0)) _held[_key(from, l.modelId, l.kind)].remove(tokenId);
        if (to != address(0)) _held[_key(to, l.modelId, l.kind)].add(tokenId);
    }

    // ---------------------------------------------------------------- helpers

    function _key(address account, uint256 modelId, LicenseKind kind) private pure returns (bytes32) {
        return keccak256(abi.encode(account, modelId, kind));
    }

    function _requireModelOwner(uint256 modelId) private view {
        if (!registry.exists(modelId)) revert UnknownModel(modelId);
        if (registry.ownerOf(modelId) != msg.sender) revert NotModelOwner(modelId, msg.sender);
    }

    function _offering(uint256 offeringId) private view returns (Offering storage o) {
        if (offeringId == 0 || offeringId > totalOfferings) revert UnknownOffering(offeringId);
        return _offerings[offeringId];
    }

    function _license(uint256 licenseId) private view returns (License storage l) {
        if (licenseId == 0 || licenseId > totalLicenses) revert UnknownLicense(licenseId);
        return _licenses[licenseId];
    }
}
