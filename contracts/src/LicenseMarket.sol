// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {OutputLedger} from "./OutputLedger.sol";
import {ILicenseMarket, IModelRegistry, License, LicenseKind, ModelHeader, Offering, Terms} from "./Types.sol";

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
/// - `buy` mints a license valid from the purchase (from the key's delivery when escrowed, see
///   below) until `expiry` (exclusive; 0 = perpetual); its terms are its offering's. `renew` (by
///   the holder or an approved operator) extends a time-bound license by one more duration
///   before it lapses (at its expiry second it has lapsed: windows are half-open); a lapsed
///   license is not renewed (buy a new one), so a license's window only ever grows and answers
///   about past times never change. Nobody, the model owner included, can revoke a license.
/// - A fine-tune license admits one derivative: the registry consumes (burns) it at mint.
/// - An output license lets its holder, while it is valid, commit batches of generated outputs
///   (`OutputLedger.commitOutputs`).
/// - Non-transferable licenses are ERC-5192 locked: no transfer, no approval.
/// - Buyers pass `maxPrice`, so a sale never charges more than the buyer agreed to.
/// - Every sale's price is split at purchase time (an escrowed one's at delivery): each royalty
///   parent of the model receives its share, split again up the parent's own lineage; the rest
///   goes to the model's owner.
///   Amounts are credited per account and currency and withdrawn by their owners (pull
///   payments, reentrancy guarded). Rounding remainders stay with the owner of the model whose
///   share was split, so every wei paid is credited.
/// - Prices are in the native currency or in one of the ERC-20s fixed at deployment, so a
///   derivative's owner cannot pay its parents in a token of his own. ERC-20s that deliver less
///   than the price (fee-on-transfer) are rejected; rebasing tokens are not supported.
/// - `grants` is the on-chain rights view; lists of licenses per holder are the indexer's.
///
/// Escrow (encrypted models). A model minted `encrypted` keeps its weights only encrypted (age
/// format), so an access or fine-tune license is worth nothing until its buyer has the model
/// key. Such offerings are `escrowed`:
/// - `buy` takes the price (the same checks as any purchase) but credits nobody: it holds the
///   price in escrow and emits `KeyRequested` with the buyer's age recipient (its X25519 public
///   key, kept only in the event) and the delivery deadline (`deliveryPeriod` after the
///   purchase).
/// - `deliverKey`, by the model's current owner or a keeper that owner approved (`setKeeper`:
///   a keeper delivers for every model its owner holds, and follows no model to a new owner),
///   publishes the CID of the model key wrapped to the recipient before the deadline. It names
///   the purchase it answers, by the model, holder and recipient of its `KeyRequested`, and is
///   refused for any other (`DeliveryForAnotherPurchase`): license ids follow transaction order,
///   so after a chain reorganisation an id may belong to another purchase than the deliverer saw.
///   The escrowed price is then split up the lineage exactly as a sale's, to the owners at
///   delivery (so, as for any sale, not in a block in which the model or a paid ancestor changed
///   hands), and the license's window restarts at delivery: a time-bound license runs from when
///   its holder could first use it. The first delivery wins.
/// - Until delivery the license grants nothing, and cannot be transferred, renewed or consumed
///   by a derivative (`KeyNotDelivered`). At or after the deadline anyone may `refund` it: the
///   license is burnt, its offering's supply slot freed, and the price credited to the payer
///   (withdrawn with `withdraw`, like every credit).
/// - What the market cannot guarantee: it cannot check that the delivered CID holds a working
///   key for that recipient, nor a key of the licensed model (a delivery names the purchase's
///   model, but what its CID holds is the deliverer's word), so a buyer handed a bad key has no
///   on-chain recourse once delivery is made (only the owner's reputation, which the public
///   `KeyDelivered` record feeds). A keeper is trusted by the owner who approved it: it can release escrowed prices to that
///   owner by delivering anything. The market cannot check either that the weights really are
///   encrypted.
contract LicenseMarket is ERC721, ReentrancyGuardTransient, ILicenseMarket, OutputLedger {
    using SafeERC20 for IERC20;

    uint16 internal constant BPS = 10_000;
    /// Longest duration an offering may grant per purchase or renewal, and longest renewal
    /// period after closing.
    uint64 public constant MAX_DURATION = 100 * 365 days;
    /// Longest time an escrowed offering may give its model's owner to deliver a key.
    uint64 public constant MAX_DELIVERY_PERIOD = 90 days;
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

    /// The price of an escrowed sale awaiting its key, in one slot: who paid it (and is
    /// refunded), when the delivery period ends, and which purchase it is (`purchaseTag`: the
    /// low 56 bits of `keccak256(abi.encode(licenseId, modelId, holder, recipient))` of the
    /// purchase; see `deliverKey`). The price and currency are the offering's.
    struct Escrow {
        address payer;
        uint40 deadline;
        uint56 purchaseTag;
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
    /// Escrowed sales: awaiting the key while `payer` is set. Delivery deletes the entry; a
    /// refund clears only `payer`, and the `deadline` left marks the license as never valid.
    mapping(uint256 licenseId => Escrow) private _escrows;
    /// Accounts a model owner lets deliver keys for every model it owns.
    mapping(address owner => mapping(address keeper => bool)) public isKeeper;
    /// Royalty shares of ancestors that changed hands in the block of the sale, by ancestor and
    /// currency, until `releaseHeld` credits them to the ancestor's owner of a later block.
    mapping(uint256 modelId => mapping(address currency => uint256)) public heldShares;

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
    /// The share of ancestor `modelId` in the sale of license `licenseId` is held: the ancestor
    /// changed hands in this block (see `heldShares`).
    event ShareHeld(uint256 indexed modelId, address indexed currency, uint256 indexed licenseId, uint256 amount);
    /// Held shares of `modelId` were credited up its lineage (as `PaymentCredited` with
    /// license 0).
    event HeldSharesReleased(uint256 indexed modelId, address indexed currency, uint256 amount);
    /// An escrowed sale: the model's owner (or a keeper) must deliver the model key wrapped to
    /// `recipient` (the X25519 public key of the buyer's age recipient) before `deadline`.
    event KeyRequested(
        uint256 indexed licenseId, uint256 indexed modelId, address indexed holder, bytes32 recipient, uint64 deadline
    );
    /// The model key of an escrowed sale was delivered at `wrappedKeyCid`; the license is valid
    /// from `start` (the delivery) until `expiry` (0 = perpetual).
    event KeyDelivered(
        uint256 indexed licenseId,
        uint256 indexed modelId,
        address indexed keeper,
        string wrappedKeyCid,
        uint64 start,
        uint64 expiry
    );
    /// An escrowed sale whose key came too late: the license is burnt and `amount` credited to
    /// its payer.
    event LicenseRefunded(uint256 indexed licenseId, address indexed payer, address currency, uint256 amount);
    event KeeperSet(address indexed owner, address indexed keeper, bool approved);
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
    error NothingHeld(uint256 modelId, address currency);
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
    /// An escrowed offering's delivery period outside [1, max].
    error DeliveryPeriodOutOfRange(uint64 deliveryPeriod, uint64 max);
    /// A delivery period on an offering that is not escrowed (it sells no key).
    error DeliveryPeriodNotApplicable();
    error RecipientRequired(uint256 offeringId);
    error NotPendingDelivery(uint256 licenseId);
    error EmptyKeyCid();
    error DeliveryDeadlinePassed(uint256 licenseId, uint64 deadline);
    error DeliveryNotOverdue(uint256 licenseId, uint64 deadline);
    error NotKeeper(uint256 modelId, address caller);
    error KeyNotDelivered(uint256 licenseId);
    /// A delivery naming a model, holder or recipient other than those of license `licenseId`'s
    /// purchase: it answers another purchase (typically one a reorganisation moved to another
    /// id), so its key is of another model or wrapped to someone else.
    error DeliveryForAnotherPurchase(uint256 licenseId);

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

    /// @notice Publishes an offering on `terms.modelId`. Only the model's owner may. Access and
    /// fine-tune offerings of an encrypted model are escrowed and need a delivery period; every
    /// other offering must leave it 0.
    function publishOffering(Terms calldata terms) external returns (uint256 offeringId) {
        uint256 modelId = terms.modelId;
        if (!registry.exists(modelId)) revert UnknownModel(modelId);
        if (registry.ownerOf(modelId) != msg.sender) revert NotModelOwner(modelId, msg.sender);
        ModelHeader memory header = registry.headerOf(modelId);
        if (terms.kind == LicenseKind.FineTune) {
            if (terms.royaltyBps > BPS) revert RoyaltyAboveTotal(terms.royaltyBps);
            uint16 floor = header.derivativeRoyaltyBps;
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
        // An output license needs no key: what the model generates is not encrypted.
        bool escrowed = header.encrypted && terms.kind != LicenseKind.Output;
        if (escrowed) {
            if (terms.deliveryPeriod == 0 || terms.deliveryPeriod > MAX_DELIVERY_PERIOD) {
                revert DeliveryPeriodOutOfRange(terms.deliveryPeriod, MAX_DELIVERY_PERIOD);
            }
        } else if (terms.deliveryPeriod != 0) {
            revert DeliveryPeriodNotApplicable();
        }

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
            escrowed: escrowed,
            currency: terms.currency,
            price: uint96(terms.price),
            publisher: msg.sender,
            closedAt: 0,
            renewalPeriod: uint32(terms.renewalPeriod),
            deliveryPeriod: uint24(terms.deliveryPeriod)
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
    /// native currency send exactly the price; for an ERC-20 approve it first. For an escrowed
    /// offering `recipient` is the X25519 public key of the buyer's age recipient (the 32 bytes
    /// an `age1...` recipient encodes), to which the model key is to be wrapped; the price is
    /// held until the key is delivered (see the contract docs). Ignored for other offerings.
    function buy(uint256 offeringId, address holder, uint256 maxPrice, bytes32 recipient)
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
        bool escrowed = o.escrowed;
        if (escrowed && recipient == bytes32(0)) revert RecipientRequired(offeringId);
        o.sold = sold + 1;
        licenseId = _issue(o, offeringId, holder);
        if (escrowed) _hold(o, offeringId, licenseId, holder, recipient);
        else _sell(o, offeringId, licenseId, true);
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
    /// renewed. Only the holder or an operator it approved may renew, and only once the key of
    /// an escrowed sale was delivered (the window is not fixed before).
    function renew(uint256 licenseId, uint256 maxPrice) external payable nonReentrant returns (uint64 expiry) {
        Token storage t = _token(licenseId);
        address holder = t.holder;
        if (holder == address(0)) revert LicenseAlreadyUsed(licenseId);
        if (!_isAuthorized(holder, msg.sender, licenseId)) revert NotLicenseHolder(licenseId, holder, msg.sender);
        uint256 offeringId = t.offeringId;
        Offering storage o = _offerings[offeringId];
        if (o.escrowed && _pending(licenseId)) revert KeyNotDelivered(licenseId);
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

    /// @dev Takes the price of a purchase from escrowed offering `o` under the checks of any
    /// purchase, and holds it until the key is delivered (`deliverKey`) or the deadline passes
    /// (`refund`). The lineage is paid at delivery, so its owners are checked then.
    function _hold(Offering storage o, uint256 offeringId, uint256 licenseId, address holder, bytes32 recipient)
        private
    {
        uint256 modelId = o.modelId;
        (address owner, uint256 ownerSince,,) = registry.payees(modelId);
        if (owner != o.publisher) revert PublisherNotOwner(offeringId, o.publisher, owner);
        if (ownerSince == block.number) revert OwnerChangedThisBlock(modelId);
        // Timestamps fit 40 bits for millennia; the period is at most 90 days.
        // forge-lint: disable-next-line(unsafe-typecast)
        uint40 deadline = uint40(block.timestamp) + o.deliveryPeriod;
        _escrows[licenseId] = Escrow(msg.sender, deadline, _purchaseTag(licenseId, modelId, holder, recipient));
        emit KeyRequested(licenseId, modelId, holder, recipient, deadline);
        _collect(o.currency, o.price);
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
    /// ancestor's owner at the sale, never to one of this block, who could have borrowed the
    /// ancestor to take its share of his own purchase: such a share is held for the owner of a
    /// later block (`releaseHeld`). Held, not refused: a refusal let whoever can move an
    /// ancestor (its owner, to himself) block every sale, renewal and key delivery down its
    /// lineage, and a buyer owning one take a delivered key and then the refund.
    function _splitUp(uint256 modelId, address currency, uint256 share, uint256 licenseId) private {
        (address owner, uint256 since, uint256[] memory parents, uint16[] memory bps) = registry.payees(modelId);
        if (since == block.number) {
            heldShares[modelId][currency] += share;
            emit ShareHeld(modelId, currency, licenseId, share);
            return;
        }
        _split(owner, parents, bps, modelId, currency, share, licenseId);
    }

    /// @notice Credits the shares held for `modelId` in `currency` (see `heldShares`) as a sale
    /// of it would: to its owner and up its lineage, as they are now. Anyone may call it, in any
    /// block but one in which the model changed hands.
    function releaseHeld(uint256 modelId, address currency) external nonReentrant {
        uint256 amount = heldShares[modelId][currency];
        if (amount == 0) revert NothingHeld(modelId, currency);
        (address owner, uint256 since, uint256[] memory parents, uint16[] memory bps) = registry.payees(modelId);
        if (since == block.number) revert OwnerChangedThisBlock(modelId);
        delete heldShares[modelId][currency];
        emit HeldSharesReleased(modelId, currency, amount);
        _split(owner, parents, bps, modelId, currency, amount, 0);
    }

    // ---------------------------------------------------------------- key delivery

    /// @notice Lets `keeper` deliver keys (`deliverKey`) for every model the caller owns, or
    /// stops it. The approval stays with the caller: a keeper does not follow a model to a new
    /// owner.
    function setKeeper(address keeper, bool approved) external {
        if (keeper == address(0)) revert ZeroAddress();
        isKeeper[msg.sender][keeper] = approved;
        emit KeeperSet(msg.sender, keeper, approved);
    }

    /// @notice Delivers the model key of escrowed license `licenseId`: `wrappedKeyCid` holds the
    /// key of model `modelId` wrapped to `recipient`, for `holder`: the three as the purchase's
    /// `KeyRequested` names them. Only the model's current owner or a keeper it approved may,
    /// before the deadline, and not in the block the model changed hands. The license's window
    /// restarts now, and the escrowed price is credited up the lineage as a sale's, to the owners
    /// of now. The market cannot check the key: see the contract docs.
    /// @dev The delivery is bound to the purchase it answers: `modelId`, `holder` and `recipient`
    /// must be the purchase's, else `DeliveryForAnotherPurchase`. License ids follow transaction
    /// order, so after a chain reorganisation `licenseId` may belong to another purchase (another
    /// buyer or recipient, or another model of the same owner) than the one the deliverer saw;
    /// unbound, a key wrapped to the old recipient would release the new buyer's escrow for a key
    /// he cannot open, and a key of the old model would release the escrow of a purchase of
    /// another (two purchases by one holder for one recipient, of two models of one owner, that
    /// the reorganisation swapped). The check compares 56-bit tags (`_purchaseTag`).
    function deliverKey(
        uint256 licenseId,
        uint256 modelId,
        address holder,
        bytes32 recipient,
        string calldata wrappedKeyCid
    ) external nonReentrant {
        Escrow memory e = _escrows[licenseId];
        if (e.payer == address(0)) revert NotPendingDelivery(licenseId);
        if (e.purchaseTag != _purchaseTag(licenseId, modelId, holder, recipient)) {
            revert DeliveryForAnotherPurchase(licenseId);
        }
        if (bytes(wrappedKeyCid).length == 0) revert EmptyKeyCid();
        // Delivery periods are days long; a validator's few seconds of drift are accepted.
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp >= e.deadline) revert DeliveryDeadlinePassed(licenseId, e.deadline);
        _release(licenseId, wrappedKeyCid);
    }

    /// @dev The rest of `deliverKey` (a function of its own for the stack) once the escrow's
    /// checks passed: the caller's, then the escrow deleted, the window restarted, the price
    /// split.
    function _release(uint256 licenseId, string calldata wrappedKeyCid) private {
        Token storage t = _tokens[licenseId];
        Offering storage o = _offerings[t.offeringId];
        uint256 modelId = o.modelId;
        (address owner, uint256[] memory parents, uint16[] memory bps) = _delivererPayees(modelId);
        delete _escrows[licenseId];
        _restart(licenseId, t, o, wrappedKeyCid);
        _split(owner, parents, bps, modelId, o.currency, o.price, licenseId);
    }

    /// @dev The tag binding escrowed license `licenseId` to its purchase of model `modelId` by
    /// `holder` for age recipient `recipient`: the low 56 bits of their hash, so that the escrow
    /// keeps one slot. 56 bits suffice for what the tag is for, a reorganisation handing the id
    /// to another purchase: a stale delivery then passes with probability 2^-56. They are no
    /// commitment against a chosen collision. Holders and recipients are free (any 32 bytes pass
    /// as a recipient), so about 2^56 hashes find a holder and recipient whose tag at a given id
    /// equals another purchase's (of the same model or another); with a reorganisation that puts
    /// the two purchases at that id in the two histories, a delivery for one is accepted for the
    /// other. That is a griefing costing a purchase, 2^56 hashes and a reorganisation, and
    /// gaining nothing: the grinder's own purchase is delivered again at its new id, and the
    /// other buyer gets a key he cannot open, as he would from an owner delivering a bad key
    /// (see the contract docs).
    function _purchaseTag(uint256 licenseId, uint256 modelId, address holder, bytes32 recipient)
        private
        pure
        returns (uint56)
    {
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint56(uint256(keccak256(abi.encode(licenseId, modelId, holder, recipient))));
    }

    /// @dev The payees of a delivery of a key of `modelId` (as `registry.payees`), once the
    /// caller is checked: the model's owner or a keeper it approved, and not an owner of this
    /// block (a borrowed model would release the escrowed price to its borrower).
    function _delivererPayees(uint256 modelId)
        private
        view
        returns (address owner, uint256[] memory parents, uint16[] memory bps)
    {
        uint256 ownerSince;
        (owner, ownerSince, parents, bps) = registry.payees(modelId);
        if (msg.sender != owner && !isKeeper[owner][msg.sender]) revert NotKeeper(modelId, msg.sender);
        if (ownerSince == block.number) revert OwnerChangedThisBlock(modelId);
    }

    /// @dev Starts the window of delivered license `licenseId` now and emits `KeyDelivered`.
    /// It was not renewed while pending, so it runs one duration (or for ever).
    function _restart(uint256 licenseId, Token storage t, Offering storage o, string calldata wrappedKeyCid) private {
        uint64 start = uint64(block.timestamp);
        // Timestamps fit 40 bits for millennia.
        // forge-lint: disable-next-line(unsafe-typecast)
        t.start = uint40(start);
        emit KeyDelivered(licenseId, o.modelId, msg.sender, wrappedKeyCid, start, _expiry(t, o));
    }

    /// @notice Refunds escrowed license `licenseId` whose key was not delivered by its deadline:
    /// the license is burnt, its offering's supply slot freed, and the price credited to the
    /// payer (withdrawn with `withdraw`). Anyone may call it.
    function refund(uint256 licenseId) external nonReentrant {
        Escrow memory e = _escrows[licenseId];
        if (e.payer == address(0)) revert NotPendingDelivery(licenseId);
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp < e.deadline) revert DeliveryNotOverdue(licenseId, e.deadline);
        // The deadline stays: it marks the burnt license as never valid (`_validAt`), where its
        // provisional window would otherwise start answering true about the past.
        _escrows[licenseId].payer = address(0);
        Offering storage o = _offerings[_tokens[licenseId].offeringId];
        // The offering sold this license, so `sold` is at least 1.
        unchecked {
            --o.sold;
        }
        _update(address(0), licenseId, address(0));
        address currency = o.currency;
        uint256 amount = o.price;
        credits[e.payer][currency] += amount;
        emit LicenseRefunded(licenseId, e.payer, currency, amount);
    }

    /// @notice The escrow of a license whose key is awaited: who paid (and is refunded after
    /// `deadline`), and the deadline. Zeros when none is awaited (never escrowed, delivered or
    /// refunded).
    function pendingDelivery(uint256 licenseId) external view returns (address payer, uint64 deadline) {
        Escrow memory e = _escrows[licenseId];
        if (e.payer == address(0)) return (address(0), 0);
        return (e.payer, e.deadline);
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
        if (o.escrowed && _pending(licenseId)) revert KeyNotDelivered(licenseId);
        _requireValidNow(licenseId, t, o);
        _update(address(0), licenseId, address(0));
        return o.royaltyBps;
    }

    // ---------------------------------------------------------------- outputs

    /// @dev See `OutputLedger`. `caller` (the sender) is never address zero, so the empty slot
    /// of a license that does not exist fails the holder check: only then is it told apart
    /// (`_token`), which spares every commit the read of `totalLicenses`. Output licenses are
    /// never escrowed (their offerings sell no key) nor consumed; the validity check is the
    /// rights view's all the same.
    function _outputLicense(uint256 licenseId, address caller) internal view override returns (uint256 modelId) {
        Token storage t = _tokens[licenseId];
        address holder = t.holder;
        if (holder != caller) {
            _token(licenseId);
            revert NotLicenseHolder(licenseId, holder, caller);
        }
        Offering storage o = _offerings[t.offeringId];
        if (o.kind != LicenseKind.Output) revert NotOutputLicense(licenseId, o.kind);
        _requireValidNow(licenseId, t, o);
        return o.modelId;
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
    /// a derivative consumed it or it was refunded). While the key of an escrowed sale is
    /// awaited (`pendingDelivery`) the window shown runs from the purchase, but nothing is valid
    /// yet: delivery restarts it.
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
    /// perpetual), whoever holds it. Never while the key of an escrowed sale is awaited.
    function isLicenseValid(uint256 licenseId, uint64 at) external view returns (bool) {
        Token storage t = _token(licenseId);
        return _validAt(licenseId, t, _offerings[t.offeringId], at);
    }

    /// @notice The on-chain rights view: whether `account` may use right `kind` of `modelId` at
    /// time `at` by license `licenseId` (held now, of that model and kind, its window covering
    /// `at`; an escrowed sale's key delivered), or, with `licenseId` 0, as the model's current
    /// owner (who holds every right).
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
        return account != address(0) && t.holder == account && o.modelId == modelId && o.kind == kind
            && _validAt(licenseId, t, o, at);
    }

    /// @notice ERC-5192: whether the license can never be transferred. Reverts for a license
    /// that does not exist or was consumed.
    function locked(uint256 licenseId) external view returns (bool) {
        _requireOwned(licenseId);
        return !_offerings[_tokens[licenseId].offeringId].transferable;
    }

    /// @dev A license awaiting its key, or refunded, is valid nowhere: its window starts at
    /// delivery, and answering for the provisional one would change answers about the past
    /// once delivered (or refunded). Both keep a deadline in `_escrows`; delivery deletes it.
    function _validAt(uint256 licenseId, Token storage t, Offering storage o, uint64 at) private view returns (bool) {
        if (o.escrowed && _escrows[licenseId].deadline != 0) return false;
        uint64 expiry = _expiry(t, o);
        return t.start <= at && (expiry == 0 || at < expiry);
    }

    /// @dev Reverts with `LicenseNotValid` unless the license's window covers now (`_validAt`):
    /// what a license must be to be used on-chain (consumed, or committing outputs).
    function _requireValidNow(uint256 licenseId, Token storage t, Offering storage o) private view {
        uint64 now_ = uint64(block.timestamp);
        if (!_validAt(licenseId, t, o, now_)) revert LicenseNotValid(licenseId, t.start, _expiry(t, o), now_);
    }

    /// @dev Whether license `licenseId` (of an escrowed offering) still awaits its key.
    function _pending(uint256 licenseId) private view returns (bool) {
        return _escrows[licenseId].payer != address(0);
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
    /// licenses refused, as are licenses awaiting their key (a buyer could otherwise sell on a
    /// license that may yet be refunded to him). Purchases write the slot directly (`buy`); this
    /// moves and burns (consumed or refunded).
    function _update(address to, uint256 licenseId, address auth) internal override returns (address from) {
        Token storage t = _tokens[licenseId];
        from = t.holder;
        if (auth != address(0)) _checkAuthorized(from, auth, licenseId);
        if (from != address(0) && to != address(0)) {
            Offering storage o = _offerings[t.offeringId];
            if (!o.transferable) revert LicenseNotTransferable(licenseId);
            if (o.escrowed && _pending(licenseId)) revert KeyNotDelivered(licenseId);
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
