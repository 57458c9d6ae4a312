// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase, Vm} from "./Cheats.sol";
import {MockERC20} from "../mocks/MockERC20.sol";
import {LicenseMarket} from "../../src/LicenseMarket.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {License, LicenseKind, MintParams, Model, Offering, Parent, Terms} from "../../src/Types.sol";

/// @notice A bound registry and market, a mock ERC-20, a few accounts and helpers to mint
/// models, publish offerings and buy licenses.
abstract contract Fixture is TestBase {
    uint64 internal constant T0 = 1_700_000_000;
    uint64 internal constant DAY = 1 days;
    address internal constant NATIVE = address(0);

    ModelRegistry internal registry;
    LicenseMarket internal market;
    MockERC20 internal token;

    address internal alice = address(0xA11CE);
    address internal bob = address(0xB0B);
    address internal carol = address(0xCA201);
    address internal dave = address(0xDA7E);

    function setUp() public virtual {
        vm.warp(T0);
        registry = new ModelRegistry();
        token = new MockERC20("Mock", "MOCK");
        address[] memory currencies = new address[](1);
        currencies[0] = address(token);
        market = new LicenseMarket(registry, currencies);
        registry.bindMarket(market);
        vm.label(address(registry), "registry");
        vm.label(address(market), "market");
        vm.label(address(token), "token");
        vm.label(alice, "alice");
        vm.label(bob, "bob");
        vm.label(carol, "carol");
        vm.label(dave, "dave");
    }

    // ------------------------------------------------------------ models

    /// @dev Mint parameters with real-length URIs and a content root of their own (the next
    /// model id's), so every model built by a test is distinct content.
    function _params(address to) internal view returns (MintParams memory p) {
        p.to = to;
        p.weightsCid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        p.contentRoot = keccak256(abi.encode("root", to, registry.totalModels() + 1));
        p.fingerprint = keccak256(abi.encode("fingerprint", to));
        p.metadataUri = "ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        p.parents = new uint256[](0);
        p.licenses = new uint256[](0);
    }

    function _mintBase(address owner) internal returns (uint256) {
        vm.prank(owner);
        return registry.mint(_params(owner));
    }

    function _mintChild(address minter, uint256[] memory parents, uint256[] memory licenses)
        internal
        returns (uint256)
    {
        MintParams memory p = _params(minter);
        p.parents = parents;
        p.licenses = licenses;
        vm.prank(minter);
        return registry.mint(p);
    }

    /// @dev Mints `p` as `minter` and returns the new id with the record and the lineage edges
    /// as `ModelMinted` carries them (the only place they are kept).
    function _mintRecorded(address minter, MintParams memory p)
        internal
        returns (uint256 modelId, Model memory model, Parent[] memory parents)
    {
        vm.recordLogs();
        vm.prank(minter);
        modelId = registry.mint(p);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(registry) || logs[i].topics[0] != ModelRegistry.ModelMinted.selector) {
                continue;
            }
            (model,, parents) = abi.decode(logs[i].data, (Model, uint96, Parent[]));
            return (modelId, model, parents);
        }
        revert("no ModelMinted");
    }

    /// @dev The royalty edges a sale of `modelId` pays (the registry's `payees`, without the owner).
    function _royaltyEdges(uint256 modelId) internal view returns (uint256[] memory parents, uint16[] memory bps) {
        (,, parents, bps) = registry.payees(modelId);
    }

    // ------------------------------------------------------------ offerings and licenses

    /// @dev A market on the fixture's registry that accepts `currency` (besides the native one),
    /// for tests of unusual ERC-20s the fixture's market does not accept.
    function _marketAccepting(address currency) internal returns (LicenseMarket m) {
        address[] memory currencies = new address[](1);
        currencies[0] = currency;
        m = new LicenseMarket(registry, currencies);
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
        t.commercialUse = true;
        t.termsUri = "ipfs://bafkreiem4twkqzsq2aj4shbycd4yvoj2cx72vezicletlhi7dijjciqpui";
        t.termsHash = keccak256("terms");
    }

    function _publish(Terms memory t) internal returns (uint256) {
        vm.prank(registry.ownerOf(t.modelId));
        return market.publishOffering(t);
    }

    function _publishFineTune(uint256 modelId, uint256 price, uint64 duration, uint16 bps) internal returns (uint256) {
        Terms memory t = _terms(modelId, LicenseKind.FineTune, NATIVE, price, duration);
        t.royaltyBps = bps;
        return _publish(t);
    }

    /// @dev Buys from an offering for `buyer` (who also pays), funding the buyer first; an
    /// escrowed offering gets the buyer's age recipient (`_recipient`).
    function _buy(address buyer, uint256 offeringId) internal returns (uint256) {
        Offering memory o = market.offeringOf(offeringId);
        bytes32 recipient = o.escrowed ? _recipient(buyer) : bytes32(0);
        if (o.currency == NATIVE) {
            vm.deal(buyer, buyer.balance + o.price);
            vm.prank(buyer);
            return market.buy{value: o.price}(offeringId, buyer, o.price, recipient);
        }
        MockERC20(o.currency).mint(buyer, o.price);
        vm.prank(buyer);
        MockERC20(o.currency).approve(address(market), o.price);
        vm.prank(buyer);
        return market.buy(offeringId, buyer, o.price, recipient);
    }

    /// @dev A stand-in for the X25519 public key of `who`'s age recipient.
    function _recipient(address who) internal pure returns (bytes32) {
        return keccak256(abi.encode("age recipient", who));
    }

    function _renew(address payer, uint256 licenseId) internal returns (uint64) {
        (License memory l,) = market.licenseOf(licenseId);
        if (l.currency == NATIVE) {
            vm.deal(payer, payer.balance + l.price);
            vm.prank(payer);
            return market.renew{value: l.price}(licenseId, l.price);
        }
        MockERC20(l.currency).mint(payer, l.price);
        vm.prank(payer);
        MockERC20(l.currency).approve(address(market), l.price);
        vm.prank(payer);
        return market.renew(licenseId, l.price);
    }

    /// @dev A free, perpetual fine-tune license of `modelId` with royalty `bps`, held by `who`.
    function _fineTuneLicense(address who, uint256 modelId, uint16 bps) internal returns (uint256) {
        return _buy(who, _publishFineTune(modelId, 0, 0, bps));
    }

    // ------------------------------------------------------------ rights

    /// @dev What the removed `rightsOf` answered, rebuilt on the on-chain view `grants`: the
    /// model's current owner holds every right (id 0); else the licenses granting the right at
    /// `at`, a perpetual one first, else the one lasting longest (the first of equals). The scan
    /// over every license is the indexer's job off-chain; tests can afford it.
    function _rightsOf(address account, uint256 modelId, LicenseKind kind, uint64 at)
        internal
        view
        returns (bool allowed, uint256 licenseId)
    {
        if (market.grants(0, account, modelId, kind, at)) return (true, 0);
        uint64 best;
        uint256 n = market.totalLicenses();
        for (uint256 id = 1; id <= n; ++id) {
            if (!market.grants(id, account, modelId, kind, at)) continue;
            (License memory l,) = market.licenseOf(id);
            if (l.expiry == 0) return (true, id);
            if (l.expiry > best) (best, licenseId) = (l.expiry, id);
        }
        allowed = licenseId != 0;
    }

    /// @dev The licenses `account` holds of `modelId` and `kind`, valid or not, in id order (the
    /// removed `licensesHeld`; an indexer's query off-chain).
    function _licensesHeld(address account, uint256 modelId, LicenseKind kind)
        internal
        view
        returns (uint256[] memory ids)
    {
        uint256 n = market.totalLicenses();
        ids = new uint256[](n);
        uint256 k;
        for (uint256 id = 1; id <= n; ++id) {
            (License memory l, address holder) = market.licenseOf(id);
            if (holder == account && l.modelId == modelId && l.kind == kind) ids[k++] = id;
        }
        assembly ("memory-safe") {
            mstore(ids, k)
        }
    }

    // ------------------------------------------------------------ arrays

    function _ids() internal pure returns (uint256[] memory a) {
        a = new uint256[](0);
    }

    function _ids(uint256 x) internal pure returns (uint256[] memory a) {
        a = new uint256[](1);
        a[0] = x;
    }

    function _ids(uint256 x, uint256 y) internal pure returns (uint256[] memory a) {
        a = new uint256[](2);
        (a[0], a[1]) = (x, y);
    }

    function _ids(uint256 x, uint256 y, uint256 z) internal pure returns (uint256[] memory a) {
        a = new uint256[](3);
        (a[0], a[1], a[2]) = (x, y, z);
    }

    function _zeros(uint256 n) internal pure returns (uint256[] memory a) {
        a = new uint256[](n);
    }
}
