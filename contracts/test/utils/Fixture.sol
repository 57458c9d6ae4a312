// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "./Cheats.sol";
import {MockERC20} from "../mocks/MockERC20.sol";
import {LicenseMarket} from "../../src/LicenseMarket.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {License, LicenseKind, MintParams, Terms} from "../../src/Types.sol";

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
        market = new LicenseMarket(registry);
        registry.bindMarket(market);
        token = new MockERC20("Mock", "MOCK");
        vm.label(address(registry), "registry");
        vm.label(address(market), "market");
        vm.label(address(token), "token");
        vm.label(alice, "alice");
        vm.label(bob, "bob");
        vm.label(carol, "carol");
        vm.label(dave, "dave");
    }

    // ------------------------------------------------------------ models

    function _params(address to) internal pure returns (MintParams memory p) {
        p.to = to;
        p.weightsCid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        p.contentRoot = keccak256(abi.encode("root", to));
        p.fingerprint = keccak256(abi.encode("fingerprint", to));
        p.metadataUri = "ipfs://metadata";
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

    // ------------------------------------------------------------ offerings and licenses

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
        t.termsUri = "ipfs://terms";
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

    /// @dev Buys from a native offering for `buyer` (who also pays), funding the buyer first.
    function _buy(address buyer, uint256 offeringId) internal returns (uint256) {
        Terms memory t = market.offeringOf(offeringId).terms;
        if (t.currency == NATIVE) {
            vm.deal(buyer, buyer.balance + t.price);
            vm.prank(buyer);
            return market.buy{value: t.price}(offeringId, buyer, t.price);
        }
        MockERC20(t.currency).mint(buyer, t.price);
        vm.prank(buyer);
        MockERC20(t.currency).approve(address(market), t.price);
        vm.prank(buyer);
        return market.buy(offeringId, buyer, t.price);
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
