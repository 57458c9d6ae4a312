// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ILicenseMarket, IModelRegistry, License, LicenseKind, Offering, Terms} from "./Types.sol";

/// @title LicenseMarket
/// @notice License offerings on registered models, and the licenses sold from them as ERC-721
/// tokens.
///
/// - An offering's terms are immutable once published; its model's owner can close it for new
///   sales. Its licenses stay renewable for the offering's `renewalPeriod` after closing.
/// - An offering sells only while its publisher owns the model. A model that changed hands in
///   this block acts for nothing: no sale or renewal of its licenses, no closing of its
///   offerings, and no royalty share credited to it, so a model held for one transaction (a
///   flash loan, an AMM pool bought from and sold back to) gives its holder nothing.
/// - `buy` mints a license valid from the purchase until `expiry` (exclusive; 0 = perpetual);
///   its terms are its offering's. `renew` (by the holder or an approved operator) extends a
///   time-bound license by one more duration before it lapses (at its expiry second it has
///   lapsed: windows are half-open); a lapsed license is not renewed
///   (buy a new one), so a license's window only ever grows and answers about past times never
///   change. Nobody, the model owner included, can revoke a license.
/// - A fine-tune license admits one derivative: the registry consumes (burns) it at mint.
/// - Non-transferable licenses are ERC-5192 locked: no transfer, no approval.
/// - Buyers pass `maxPrice`, so a sale never charges more than the buyer agreed to.
/// - Every sale's price is split at purchase time: each royalty parent of the model receives its
///   share, split again up the parent's own lineage; the rest goes to the model's owner.
///   Amounts are credited per account and currency and withdrawn by their owners (pull
///   payments, reentrancy guarded). Rounding remainders stay with the owner of the model whose
///   share was split, so every wei paid is credited.
/// - Prices are in the native currency or in one of the ERC-20s fixed at deployment, so a
///   derivative's owner cannot pay its parents in a token of his own. ERC-20s that deliver less
///   than the price (fee-on-transfer) are rejected; rebasing tokens are not supported.
/// - `grants` is the on-chain rights view; lists of licenses per holder are the indexer's.
contract LicenseMarket is ERC721, ReentrancyGuardTransient, ILicenseMarket {
    using SafeERC20 for IERC20;

    uint16 internal constant BPS = 10_000;
    /// Longest duration an offering may grant per purchase or renewal, and longest renewal
    /// period after closing.
    uint64 public constant MAX_DURATION = 100 * 365 days;
    /// ERC-5192 interface id.
    bytes4 internal constant IERC5192_ID = 0xb45a3c0e;

    /// A license in one slot: its holder, its offering, its start, and how many durations it
    /// runs (0 for a perpetual license). `expiry = start + periods * duration`.
    struct Token {
        address holder;
        uint32 offeringId;
        uint40 start;
        uint24 periods;
    }

    IModelRegistry public immutable registry;
    uint256 public totalOfferings;
    uint256 public totalLicenses;
    /// ERC-20s offerings may be priced in, fixed at deployment (the native currency always).
    mapping(address currency => bool) public acceptsCurrency;
    mapping(address account => mapping(address currency => uint256)) public credits;

    mapping(uint256 offeringId => Offering) private _offerings;
    mapping(uint256 licenseId => Token) private _tokens;
    /// Licenses held per account (ERC-721 `balanceOf`).
    mapping(address holder => uint256) private _held;

    event CurrencyAccepted(address indexed currency);
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
    event LicenseRenewed(uint256 indexed licenseId, address indexed payer, uint256 price, uint64 start, uint64 expiry);
    /// A share of a sale credited to `account`: `modelId` is the model whose owner (or lineage
    /// share) it is, `licenseId` the license sold or renewed.
    event PaymentCredited(
        address indexed account, address indexed currency, uint256 indexed licenseId, uint256 modelId, uint256 amount
    );
    event Withdrawn(address indexed account, address indexed currency, address to, uint256 amount);
    /// ERC-5192: the license can never be transferred.
    event Locked(uint256 tokenId);

    error UnknownModel(uint256 modelId);
    error UnknownOffering(uint256 offeringId);
    error UnknownLicense(uint256 licenseId);
    error NotModelOwner(uint256 modelId, address caller);
    error RoyaltyOnlyForFineTune(LicenseKind kind, uint16 royaltyBps);
    error RoyaltyAboveTotal(uint16 royaltyBps);
    error RoyaltyBelowFloor(uint16 royaltyBps, uint16 floor);
    error InvalidCurrency(address currency);
    error CurrencyNotAccepted(address currency);
    error DurationTooLong(uint64 duration, uint64 max);
    error PriceTooLarge(uint256 price);
    error SupplyCapTooLarge(uint64 supplyCap);
    error TooManyOfferings();
    error OfferingIsClosed(uint256 offeringId);
    error SoldOut(uint256 offeringId, uint64 supplyCap);
    error PublisherNotOwner(uint256 offeringId, address publisher, address owner);
    error OwnerChangedThisBlock(uint256 modelId);
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    error WrongPayment(uint256 sent, uint256 price);
    error NativeNotAccepted(uint256 sent);
    error FeeOnTransferToken(address token, uint256 expected, uint256 received);
    error PerpetualLicense(uint256 licenseId);
    error LicenseLapsed(uint256 licenseId, uint64 expiry);
    error NotLicenseHolder(uint256 licenseId, address holder, address caller);
    error LicenseNotTransferable(uint256 licenseId);
    error LicenseAlreadyUsed(uint256 licenseId);
    error LicenseForOtherModel(uint256 licenseId, uint256 licensedModel, uint256 parentId);
    error NotFineTuneLicense(uint256 licenseId, LicenseKind kind);
    error LicenseNotValid(uint256 licenseId, uint64 start, uint64 expiry, uint64 at);
    error NotRegistry(address caller);
    error NothingToWithdraw(address account, address currency);
    error ZeroAddress();
    error NativeTransferFailed(address to, uint256 amount);

    constructor(IModelRegistry registry_, address[] memory currencies) ERC721("AI Model License", "MLIC") {
        if (address(registry_) == address(0)) revert ZeroAddress();
        registry = registry_;
        for (uint256 i; i < currencies.length; ++i) {
            address c = currencies[i];
            if (c == address(0) || c.code.length == 0) revert InvalidCurrency(c);
            acceptsCurrency[c] = true;
            emit CurrencyAccepted(c);
        }
    }

    // ---------------------------------------------------------------- offerings

    /// @notice Publishes an offering on `terms.modelId`. Only the model's owner may.
    function publishOffering(Terms calldata terms) external returns (uint256 offeringId) {
        uint256 modelId = terms.modelId;
        if (!registry.exists(modelId)) revert UnknownModel(modelId);
        if (registry.ownerOf(modelId) != msg.sender) revert NotModelOwner(modelId, msg.sender);
        if (terms.kind == LicenseKind.FineTune) {
            if (terms.royaltyBps > BPS) revert RoyaltyAboveTotal(terms.royaltyBps);
            uint16 floor = registry.headerOf(modelId).derivativeRoyaltyBps;
            if (terms.royaltyBps < floor) revert RoyaltyBelowFloor(terms.royaltyBps, floor);
        } else if (terms.royaltyBps != 0) {
            revert RoyaltyOnlyForFineTune(terms.kind, terms.royaltyBps);
        }
        if (terms.currency != address(0) && !acceptsCurrency[terms.currency]) {
            revert CurrencyNotAccepted(terms.currency);
        }
        if (terms.duration > MAX_DURATION) revert DurationTooLong(terms.duration, MAX_DURATION);
        if (terms.renewalPeriod > MAX_DURATION) revert DurationTooLong(terms.renewalPeriod, MAX_DURATION);
        if (terms.price > type(uint96).max) revert PriceTooLarge(terms.price);
        if (terms.supplyCap > type(uint32).max) revert SupplyCapTooLarge(terms.supplyCap);

        offeringId = ++totalOfferings;
        // A license names its offering in 32 bits.
        if (offeringId > type(uint32).max) revert TooManyOfferings();
        // Every cast below was range-checked above; ids fit 32 and 64 bits for ever.
        // forge-lint: disable-start(unsafe-typecast)
        _offerings[offeringId] = Offering({
            modelId: uint64(modelId),
            duration: terms.duration,
            sold: 0,
            supplyCap: uint32(terms.supplyCap),
            kind: terms.kind,
            royaltyBps: terms.royaltyBps,
            transferable: terms.transferable,
            commercialUse: terms.commercialUse,
            closed: false,
            currency: terms.currency,
            price: uint96(terms.price),
            publisher: msg.sender,
            closedAt: 0,
            renewalPeriod: uint48(terms.renewalPeriod)
        });
        // forge-lint: disable-end(unsafe-typecast)
        emit OfferingPublished(offeringId, modelId, msg.sender, terms);
    }

    /// @notice Closes an offering for new sales. Its licenses stay valid, and renewable for the
    /// offering's renewal period.
    function closeOffering(uint256 offeringId) external {
        Offering storage o = _offering(offeringId);
        (address owner, uint256 ownerSince,,) = registry.payees(o.modelId);
        if (owner != msg.sender) revert NotModelOwner(o.modelId, msg.sender);
        if (ownerSince == block.number) revert OwnerChangedThisBlock(o.modelId);
        if (o.closed) revert OfferingIsClosed(offeringId);
        o.closed = true;
        // forge-lint: disable-next-line(unsafe-typecast)
        o.closedAt = uint40(block.timestamp);
        emit OfferingClosed(offeringId, o.modelId, msg.sender);
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
        uint32 sold = o.sold;
        if (o.supplyCap != 0 && sold >= o.supplyCap) revert SoldOut(offeringId, o.supplyCap);
        if (o.price > maxPrice) revert PriceAboveMax(o.price, maxPrice);
        if (holder == address(0)) revert ZeroAddress();
        o.sold = sold + 1;
        licenseId = _issue(o, offeringId, holder);
        _sell(o, offeringId, licenseId, true);
    }

    /// @dev Writes a new license of `o` to `holder` (one slot) and emits its events.
    function _issue(Offering storage o, uint256 offeringId, address holder) private returns (uint256 licenseId) {
        licenseId = ++totalLicenses;
        uint64 duration = o.duration;
        uint64 start = uint64(block.timestamp);
        // Offering ids fit 32 bits (4 billion offerings), timestamps 40 bits.
        // forge-lint: disable-next-line(unsafe-typecast)
        _tokens[licenseId] = Token(holder, uint32(offeringId), uint40(start), duration == 0 ? 0 : 1);
        unchecked {
            ++_held[holder];
        }
        emit Transfer(address(0), holder, licenseId);
        if (!o.transferable) emit Locked(licenseId);
        emit LicensePurchased(
            licenseId, offeringId, o.modelId, msg.sender, holder, o.price, start, duration == 0 ? 0 : start + duration
        );
    }

    /// @notice Extends a time-bound license by its duration, at its offering's price (at most
    /// `maxPrice`), from its expiry: renewals never leave a gap, and a lapsed license cannot be
    /// renewed. Only the holder or an operator it approved may renew.
    function renew(uint256 licenseId, uint256 maxPrice) external payable nonReentrant returns (uint64 expiry) {
        Token storage t = _token(licenseId);
        address holder = t.holder;
        if (holder == address(0)) revert LicenseAlreadyUsed(licenseId);
        if (!_isAuthorized(holder, msg.sender, licenseId)) revert NotLicenseHolder(licenseId, holder, msg.sender);
        uint256 offeringId = t.offeringId;
        Offering storage o = _offerings[offeringId];
        uint64 duration = o.duration;
        if (duration == 0) revert PerpetualLicense(licenseId);
        // Licenses are time-bound by design; a validator's few seconds of drift are accepted.
        // forge-lint: disable-next-line(block-timestamp)
        if (o.closed && block.timestamp >= uint256(o.closedAt) + o.renewalPeriod) revert OfferingIsClosed(offeringId);
        if (o.price > maxPrice) revert PriceAboveMax(o.price, maxPrice);
        uint64 start = t.start;
        uint24 periods = t.periods;
        uint64 end = start + uint64(periods) * duration;
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp >= end) revert LicenseLapsed(licenseId, end);
        t.periods = periods + 1;
        expiry = end + duration;
        emit LicenseRenewed(licenseId, msg.sender, o.price, start, expiry);
        _sell(o, offeringId, licenseId, false);
    }

    /// @dev Takes the price of a sale of `o` and credits it up the lineage. A purchase (`fresh`)
    /// also needs the offering's publisher to own the model, and not since this block.
    function _sell(Offering storage o, uint256 offeringId, uint256 licenseId, bool fresh) private {
        uint256 modelId = o.modelId;
        (address owner, uint256 ownerSince, uint256[] memory parents, uint16[] memory bps) = registry.payees(modelId);
        if (fresh && owner != o.publisher) revert PublisherNotOwner(offeringId, o.publisher, owner);
        if (ownerSince == block.number) revert OwnerChangedThisBlock(modelId);
        address currency = o.currency;
        uint256 price = o.price;
        _collect(currency, price);
        _split(owner, parents, bps, modelId, currency, price, licenseId);
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
    }

    /// @dev Credits `amount` for a sale of `modelId` owned by `owner` with royalty edges
    /// (`parents`, `bps`): each parent gets its share (split again up its own lineage), the
    /// owner the rest. The registry bounds the nodes visited (MAX_ROYALTY_NODES), so this cannot
    /// run out of gas.
    function _split(
        address owner,
        uint256[] memory parents,
        uint16[] memory bps,
        uint256 modelId,
        address currency,
        uint256 amount,
        uint256 licenseId
    ) private {
        if (amount == 0) return;
        uint256 rest = amount;
        for (uint256 i; i < parents.length; ++i) {
            uint256 share = Math.mulDiv(amount, bps[i], BPS);
            if (share == 0) continue;
            // The registry caps the shares at 100% in total, so this never underflows.
            unchecked {
                rest -= share;
            }
            _splitUp(parents[i], currency, share, licenseId);
        }
        if (rest == 0) return;
        credits[owner][currency] += rest;
        emit PaymentCredited(owner, currency, licenseId, modelId, rest);
    }

    /// @dev Credits `share` to ancestor `modelId` and up its own lineage. The share goes to the
    /// ancestor's owner at the sale: never to one of this block, who could have borrowed the
    /// ancestor to take its share of his own purchase.
    function _splitUp(uint256 modelId, address currency, uint256 share, uint256 licenseId) private {
        (address owner, uint256 since, uint256[] memory parents, uint16[] memory bps) = registry.payees(modelId);
        if (since == block.number) revert OwnerChangedThisBlock(modelId);
        _split(owner, parents, bps, modelId, currency, share, licenseId);
    }

    // ---------------------------------------------------------------- derivatives

    /// @inheritdoc ILicenseMarket
    function consume(uint256 licenseId, address holder, uint256 parentId) external returns (uint16 royaltyBps) {
        if (msg.sender != address(registry)) revert NotRegistry(msg.sender);
        Token storage t = _token(licenseId);
        address current = t.holder;
        if (current == address(0)) revert LicenseAlreadyUsed(licenseId);
        Offering storage o = _offerings[t.offeringId];
        if (o.modelId != parentId) revert LicenseForOtherModel(licenseId, o.modelId, parentId);
        if (o.kind != LicenseKind.FineTune) revert NotFineTuneLicense(licenseId, o.kind);
        if (current != holder) revert NotLicenseHolder(licenseId, current, holder);
        uint64 now_ = uint64(block.timestamp);
        if (!_validAt(t, o, now_)) revert LicenseNotValid(licenseId, t.start, _expiry(t, o), now_);
        _update(address(0), licenseId, address(0));
        return o.royaltyBps;
    }

    // ---------------------------------------------------------------- withdrawals

    /// @notice Sends the caller's whole balance of `currency` to `to`.
    function withdraw(address currency, address to) external nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert ZeroAddress();
        amount = credits[msg.sender][currency];
        if (amount == 0) revert NothingToWithdraw(msg.sender, currency);
        credits[msg.sender][currency] = 0;
        emit Withdrawn(msg.sender, currency, to, amount);
        if (currency == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(to, amount);
        } else {
            IERC20(currency).safeTransfer(to, amount);
        }
    }

    // ---------------------------------------------------------------- rights

    /// @notice The license with its offering's terms, and its current holder (address zero once
    /// a derivative consumed it).
    function licenseOf(uint256 licenseId) external view returns (License memory license, address holder) {
        Token storage t = _token(licenseId);
        Offering storage o = _offerings[t.offeringId];
        license = License({
            offeringId: t.offeringId,
            modelId: o.modelId,
            kind: o.kind,
            currency: o.currency,
            price: o.price,
            duration: o.duration,
            transferable: o.transferable,
            commercialUse: o.commercialUse,
            royaltyBps: o.royaltyBps,
            start: t.start,
            expiry: _expiry(t, o)
        });
        holder = t.holder;
    }

    /// @notice Whether the license's window covers time `at` (start <= at < expiry, or
    /// perpetual), whoever holds it.
    function isLicenseValid(uint256 licenseId, uint64 at) external view returns (bool) {
        Token storage t = _token(licenseId);
        return _validAt(t, _offerings[t.offeringId], at);
    }

    /// @notice The on-chain rights view: whether `account` may use right `kind` of `modelId` at
    /// time `at` by license `licenseId` (held now, of that model and kind, its window covering
    /// `at`), or, with `licenseId` 0, as the model's current owner (who holds every right).
    /// O(1) whatever the account holds: the licenses an account holds are the indexer's to list.
    function grants(uint256 licenseId, address account, uint256 modelId, LicenseKind kind, uint64 at)
        external
        view
        returns (bool)
    {
        if (licenseId == 0) return registry.exists(modelId) && registry.ownerOf(modelId) == account;
        if (licenseId > totalLicenses) return false;
        Token storage t = _tokens[licenseId];
        Offering storage o = _offerings[t.offeringId];
        // A consumed license is held by address zero, which grants nothing.
        return
            account != address(0) && t.holder == account && o.modelId == modelId && o.kind == kind && _validAt(t, o, at);
    }

    /// @notice ERC-5192: whether the license can never be transferred. Reverts for a license
    /// that does not exist or was consumed.
    function locked(uint256 licenseId) external view returns (bool) {
        _requireOwned(licenseId);
        return !_offerings[_tokens[licenseId].offeringId].transferable;
    }

    function _validAt(Token storage t, Offering storage o, uint64 at) private view returns (bool) {
        uint64 expiry = _expiry(t, o);
        return t.start <= at && (expiry == 0 || at < expiry);
    }

    function _expiry(Token storage t, Offering storage o) private view returns (uint64) {
        return t.periods == 0 ? 0 : t.start + uint64(t.periods) * o.duration;
    }

    // ---------------------------------------------------------------- ERC-721

    function balanceOf(address holder) public view override returns (uint256) {
        if (holder == address(0)) revert ERC721InvalidOwner(address(0));
        return _held[holder];
    }

    /// @dev Locked (non-transferable) licenses cannot be approved: a listing could never settle.
    function approve(address to, uint256 licenseId) public override {
        Token storage t = _token(licenseId);
        if (!_offerings[t.offeringId].transferable) revert LicenseNotTransferable(licenseId);
        super.approve(to, licenseId);
    }

    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == IERC5192_ID || super.supportsInterface(interfaceId);
    }

    function _ownerOf(uint256 licenseId) internal view override returns (address) {
        return _tokens[licenseId].holder;
    }

    /// @dev OZ's `_update` with the holder kept in the license's own slot, and non-transferable
    /// licenses refused. Purchases write the slot directly (`buy`); this moves and burns.
    function _update(address to, uint256 licenseId, address auth) internal override returns (address from) {
        Token storage t = _tokens[licenseId];
        from = t.holder;
        if (auth != address(0)) _checkAuthorized(from, auth, licenseId);
        if (from != address(0) && to != address(0) && !_offerings[t.offeringId].transferable) {
            revert LicenseNotTransferable(licenseId);
        }
        if (from != address(0)) {
            _approve(address(0), licenseId, address(0), false);
            unchecked {
                --_held[from];
            }
        }
        if (to != address(0)) {
            unchecked {
                ++_held[to];
            }
        }
        t.holder = to;
        emit Transfer(from, to, licenseId);
    }

    function _increaseBalance(address, uint128) internal pure override {
        revert("LicenseMarket: batch minting is not supported");
    }

    // ---------------------------------------------------------------- helpers

    function _offering(uint256 offeringId) private view returns (Offering storage o) {
        if (offeringId == 0 || offeringId > totalOfferings) revert UnknownOffering(offeringId);
        return _offerings[offeringId];
    }

    function _token(uint256 licenseId) private view returns (Token storage t) {
        if (licenseId == 0 || licenseId > totalLicenses) revert UnknownLicense(licenseId);
        return _tokens[licenseId];
    }
}
