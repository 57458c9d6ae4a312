// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {LicenseKind, MintParams, Model, ModelHeader, Parent, Terms} from "../src/Types.sol";

/// @notice Minting derivatives: admission of each parent (ownership, owing the parent's floor, or
/// a valid fine-tune license, which the mint consumes) and every lineage limit. The lineage is
/// read from `ModelMinted` (the fixture's `_mintRecorded`) and the royalty edges from `payees`.
contract LineageTest is Fixture {
    uint16 internal constant EDGE_BPS = 100;

    function _header(uint256 id) internal view returns (ModelHeader memory) {
        return registry.headerOf(id);
    }

    function _recorded(address minter, uint256[] memory parents, uint256[] memory licenses)
        internal
        returns (uint256 id, Parent[] memory edges)
    {
        MintParams memory p = _params(minter);
        p.parents = parents;
        p.licenses = licenses;
        (id,, edges) = _mintRecorded(minter, p);
    }

    function _baseWithFloor(address owner, uint16 floor) internal returns (uint256) {
        MintParams memory p = _params(owner);
        p.derivativeRoyaltyBps = floor;
        vm.prank(owner);
        return registry.mint(p);
    }

    // ------------------------------------------------------------ admission

    function test_mint_withParentViaFineTuneLicense() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _fineTuneLicense(bob, base, 1_500);

        MintParams memory p = _params(bob);
        p.parents = _ids(base);
        p.licenses = _ids(lic);
        Parent[] memory edges = new Parent[](1);
        edges[0] = Parent({modelId: base, licenseId: lic, royaltyBps: 1_500});
        Model memory expected = Model({
            weightsCid: p.weightsCid,
            contentRoot: p.contentRoot,
            fingerprint: p.fingerprint,
            metadataUri: p.metadataUri,
            creator: bob,
            mintedAt: T0,
            depth: 1,
            royaltyNodes: 2,
            derivativeRoyaltyBps: 0,
            encrypted: false
        });
        // The license is burnt (consumed) before the child is minted.
        vm.expectEmit(address(market));
        emit IERC721.Transfer(bob, address(0), lic);
        vm.expectEmit(address(registry));
        emit ModelRegistry.ModelMinted(2, bob, bob, expected, 0, edges);
        vm.prank(bob);
        uint256 child = registry.mint(p);

        vm.assertEq(child, 2, "id");
        ModelHeader memory h = _header(child);
        vm.assertEq(h.depth, 1, "depth");
        vm.assertEq(h.royaltyNodes, 2, "nodes");
        vm.assertEq(h.royaltyParents, 1, "one royalty parent");
        vm.assertEq(h.parent0, base, "stored in the header");
        vm.assertEq(h.parent0Bps, 1_500, "with its share");
        (uint256[] memory parents, uint16[] memory bps) = _royaltyEdges(child);
        vm.assertEq(parents, _ids(base), "royalty parents");
        vm.assertEq(bps.length, 1, "bps length");
        vm.assertEq(bps[0], 1_500, "bps");
        (, address holder) = market.licenseOf(lic);
        vm.assertEq(holder, address(0), "license consumed");
        vm.assertEq(market.balanceOf(bob), 0, "bob holds no license");
    }

    function test_mint_withParentViaOwnership() public {
        uint256 base = _mintBase(alice);
        (uint256 child, Parent[] memory stored) = _recorded(alice, _ids(base), _ids(0));
        vm.assertEq(stored.length, 1, "one edge");
        vm.assertEq(stored[0].modelId, base, "parent");
        vm.assertEq(stored[0].licenseId, 0, "no license");
        vm.assertEq(stored[0].royaltyBps, 0, "no royalty: the parent's floor is 0");
        ModelHeader memory h = _header(child);
        vm.assertEq(h.depth, 1, "depth");
        vm.assertEq(h.royaltyNodes, 1, "an owned parent without a floor is owed nothing");
        (uint256[] memory parents,) = _royaltyEdges(child);
        vm.assertEq(parents.length, 0, "no royalty edges");
    }

    function test_mint_ownedParentOwesItsFloor() public {
        uint256 base = _baseWithFloor(alice, 700);
        (uint256 child, Parent[] memory stored) = _recorded(alice, _ids(base), _ids(0));
        vm.assertEq(stored[0].licenseId, 0, "no license");
        vm.assertEq(stored[0].royaltyBps, 700, "the floor");
        vm.assertEq(_header(child).royaltyNodes, 2, "a royalty node");
        (uint256[] memory parents, uint16[] memory bps) = _royaltyEdges(child);
        vm.assertEq(parents, _ids(base), "owed");
        vm.assertEq(bps[0], 700, "the floor");
    }

    function test_mint_licenseAboveTheFloorSetsTheEdge() public {
        uint256 base = _baseWithFloor(alice, 700);
        uint256 lic = _fineTuneLicense(bob, base, 2_000);
        (, Parent[] memory stored) = _recorded(bob, _ids(base), _ids(lic));
        vm.assertEq(stored[0].royaltyBps, 2_000, "max(license, floor)");
        lic = _fineTuneLicense(bob, base, 700);
        (, stored) = _recorded(bob, _ids(base), _ids(lic));
        vm.assertEq(stored[0].royaltyBps, 700, "at the floor");
    }

    function test_mint_zeroRoyaltyLicenseAddsNoRoyaltyNode() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _fineTuneLicense(bob, base, 0);
        (uint256 child, Parent[] memory stored) = _recorded(bob, _ids(base), _ids(lic));
        vm.assertEq(_header(child).royaltyNodes, 1, "nodes");
        vm.assertEq(stored[0].licenseId, lic, "license recorded");
        (uint256[] memory parents,) = _royaltyEdges(child);
        vm.assertEq(parents.length, 0, "no royalty edges");
    }

    function test_mint_mixedParentsAndRoyaltyEdgesKeepOrder() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintBase(bob);
        uint256 c = _mintBase(carol);
        uint256 lb = _fineTuneLicense(alice, b, 300);
        uint256 lc = _fineTuneLicense(alice, c, 0);
        (uint256 child, Parent[] memory stored) = _recorded(alice, _ids(c, a, b), _ids(lc, 0, lb));
        (uint256[] memory parents, uint16[] memory bps) = _royaltyEdges(child);
        vm.assertEq(parents, _ids(b), "only b is owed");
        vm.assertEq(bps[0], 300, "bps");
        vm.assertEq(stored[0].modelId, c, "order 0");
        vm.assertEq(stored[1].modelId, a, "order 1");
        vm.assertEq(stored[2].modelId, b, "order 2");
    }

    function test_mint_royaltyEdgesBeyondTheFirstKeepOrder() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintBase(bob);
        uint256 c = _baseWithFloor(carol, 50);
        uint256 d = _mintBase(dave);
        uint256 lb = _fineTuneLicense(alice, b, 300);
        uint256 lc = _fineTuneLicense(alice, c, 400);
        uint256 ld = _fineTuneLicense(alice, d, 500);
        uint256 child = _mintChild(alice, _ids(b, a, c), _ids(lb, 0, lc));
        (uint256[] memory parents, uint16[] memory bps) = _royaltyEdges(child);
        vm.assertEq(parents, _ids(b, c), "b, then c");
        vm.assertEq(uint256(bps[0]) * 10_000 + bps[1], 300 * 10_000 + 400, "bps in order");
        uint256 grand = _mintChild(alice, _ids(d, child), _ids(ld, 0));
        (parents, bps) = _royaltyEdges(grand);
        vm.assertEq(parents, _ids(d), "child is owned and floorless");
        vm.assertEq(_header(grand).royaltyNodes, 2, "d only");
    }

    function test_mint_depthIsOnePlusDeepestParent() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintChild(alice, _ids(a), _ids(0));
        uint256 c = _mintChild(alice, _ids(b), _ids(0));
        uint256 d = _mintChild(alice, _ids(c), _ids(0));
        uint256 e = _mintBase(alice);
        uint256 f = _mintChild(alice, _ids(e, d, a), _zeros(3));
        vm.assertEq(_header(d).depth, 3, "d");
        vm.assertEq(_header(f).depth, 4, "f");
    }

    function test_mint_ownerMayAlsoPresentALicense() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _fineTuneLicense(alice, base, 250);
        (, Parent[] memory stored) = _recorded(alice, _ids(base), _ids(lic));
        vm.assertEq(stored[0].royaltyBps, 250, "license terms apply");
        vm.assertEq(stored[0].licenseId, lic, "and it is consumed");
    }

    function test_mint_transferredLicenseAdmitsNewHolderOnly() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _fineTuneLicense(bob, base, 100);
        vm.prank(bob);
        market.transferFrom(bob, carol, lic);

        MintParams memory p = _params(bob);
        p.parents = _ids(base);
        p.licenses = _ids(lic);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, lic, carol, bob));
        registry.mint(p);

        _mintChild(carol, _ids(base), _ids(lic));
    }

    function test_mint_closedOfferingLicenseStillAdmits() public {
        uint256 base = _mintBase(alice);
        uint256 offering = _publishFineTune(base, 0, 0, 100);
        uint256 lic = _buy(bob, offering);
        vm.prank(alice);
        market.closeOffering(offering);
        _mintChild(bob, _ids(base), _ids(lic));
    }

    // ------------------------------------------------------------ admission failures

    function test_mint_revertsWhenNotParentOwner() public {
        uint256 base = _mintBase(alice);
        MintParams memory p = _params(bob);
        p.parents = _ids(base);
        p.licenses = _ids(0);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NotParentOwner.selector, base, bob));
        registry.mint(p);
    }

    function test_mint_revertsWhenNotLicenseHolder() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _fineTuneLicense(bob, base, 100);
        MintParams memory p = _params(carol);
        p.parents = _ids(base);
        p.licenses = _ids(lic);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, lic, bob, carol));
        registry.mint(p);
    }

    function test_mint_revertsForAUsedLicense() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _fineTuneLicense(bob, base, 100);
        _mintChild(bob, _ids(base), _ids(lic));
        MintParams memory p = _params(bob);
        p.parents = _ids(base);
        p.licenses = _ids(lic);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseAlreadyUsed.selector, lic));
        registry.mint(p);
    }

    function test_consume_onlyByTheRegistry() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _fineTuneLicense(bob, base, 100);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotRegistry.selector, bob));
        market.consume(lic, bob, base);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotRegistry.selector, address(this)));
        market.consume(lic, bob, base);
        vm.assertEq(market.ownerOf(lic), bob, "untouched");
    }

    /// A mint that fails after consuming a license (here on the second parent) consumes nothing.
    function test_mint_failedMintKeepsTheLicense() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintBase(alice);
        uint256 la = _fineTuneLicense(bob, a, 6_000);
        uint256 lb = _fineTuneLicense(bob, b, 4_001);
        MintParams memory p = _params(bob);
        p.parents = _ids(a, b);
        p.licenses = _ids(la, lb);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.RoyaltySharesExceedTotal.selector, 10_001));
        registry.mint(p);
        vm.assertEq(market.ownerOf(la), bob, "la kept");
        vm.assertEq(market.ownerOf(lb), bob, "lb kept");
        _mintChild(bob, _ids(a), _ids(la));
    }

    function test_mint_revertsForNonFineTuneLicense() public {
        uint256 base = _mintBase(alice);
        uint256 access = _buy(bob, _publish(_terms(base, LicenseKind.Access, NATIVE, 0, 0)));
        uint256 output = _buy(bob, _publish(_terms(base, LicenseKind.Output, NATIVE, 0, 0)));
        MintParams memory p = _params(bob);
        p.parents = _ids(base);

        p.licenses = _ids(access);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotFineTuneLicense.selector, access, LicenseKind.Access));
        registry.mint(p);

        p.licenses = _ids(output);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NotFineTuneLicense.selector, output, LicenseKind.Output));
        registry.mint(p);
    }

    function test_mint_revertsForLicenseOfOtherModel() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintBase(alice);
        uint256 licA = _fineTuneLicense(bob, a, 100);
        MintParams memory p = _params(bob);
        p.parents = _ids(b);
        p.licenses = _ids(licA);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.LicenseForOtherModel.selector, licA, a, b));
        registry.mint(p);
    }

    function test_mint_revertsForExpiredLicenseExactlyAtExpiry() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _buy(bob, _publishFineTune(base, 1 ether, 10 * DAY, 100));
        MintParams memory p = _params(bob);
        p.parents = _ids(base);
        p.licenses = _ids(lic);

        vm.warp(T0 + 10 * DAY);
        vm.prank(bob);
        vm.expectRevert(
            abi.encodeWithSelector(LicenseMarket.LicenseNotValid.selector, lic, T0, T0 + 10 * DAY, T0 + 10 * DAY)
        );
        registry.mint(p);

        vm.warp(T0 + 50 * DAY);
        vm.prank(bob);
        vm.expectRevert(
            abi.encodeWithSelector(LicenseMarket.LicenseNotValid.selector, lic, T0, T0 + 10 * DAY, T0 + 50 * DAY)
        );
        registry.mint(p);
    }

    function test_mint_acceptsLicenseOneSecondBeforeExpiry() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _buy(bob, _publishFineTune(base, 1 ether, 10 * DAY, 100));
        vm.warp(T0 + 10 * DAY - 1);
        _mintChild(bob, _ids(base), _ids(lic));
    }

    /// A license renewed before it lapsed admits after its first expiry.
    function test_mint_renewedLicenseAdmitsPastItsFirstExpiry() public {
        uint256 base = _mintBase(alice);
        uint256 lic = _buy(bob, _publishFineTune(base, 1 ether, 10 * DAY, 100));
        vm.warp(T0 + 5 * DAY);
        _renew(bob, lic);
        vm.warp(T0 + 15 * DAY);
        _mintChild(bob, _ids(base), _ids(lic));
    }

    function test_mint_revertsForUnknownLicense() public {
        uint256 base = _mintBase(alice);
        MintParams memory p = _params(bob);
        p.parents = _ids(base);
        p.licenses = _ids(42);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, 42));
        registry.mint(p);
    }

    function test_mint_revertsWhenMarketNotBound() public {
        ModelRegistry r = new ModelRegistry();
        MintParams memory p = _params(alice);
        vm.prank(alice);
        uint256 base = r.mint(p);
        p.parents = _ids(base);
        p.licenses = _ids(1);
        p.contentRoot = keccak256("another root");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.MarketNotBound.selector));
        r.mint(p);
        // An owned parent needs no market.
        p.licenses = _ids(0);
        vm.prank(alice);
        vm.assertEq(r.mint(p), 2, "owned parent");
    }

    // ------------------------------------------------------------ lineage limits

    function test_mint_revertsForUnknownParent() public {
        uint256 base = _mintBase(alice);
        MintParams memory p = _params(alice);
        p.licenses = _ids(0, 0);

        p.parents = _ids(base, 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, 0));
        registry.mint(p);

        p.parents = _ids(base, 5);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, 5));
        registry.mint(p);
    }

    /// The id the mint is about to take does not exist yet: a model cannot be its own parent.
    function test_mint_revertsForSelfAsParent() public {
        uint256 base = _mintBase(alice);
        uint256 next = base + 1;
        uint256 lic = _fineTuneLicense(alice, base, 100);
        MintParams memory p = _params(alice);
        p.parents = _ids(next);

        p.licenses = _ids(0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, next));
        registry.mint(p);

        p.licenses = _ids(lic);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, next));
        registry.mint(p);
    }

    function test_mint_revertsForTooManyParents() public {
        MintParams memory p = _params(alice);
        p.parents = _zeros(9);
        p.licenses = _zeros(9);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.TooManyParents.selector, 9, 8));
        registry.mint(p);
    }

    function test_mint_acceptsEightParents() public {
        uint256[] memory parents = new uint256[](8);
        for (uint256 i; i < 8; ++i) {
            parents[i] = _mintBase(alice);
        }
        (uint256 child, Parent[] memory stored) = _recorded(alice, parents, _zeros(8));
        vm.assertEq(stored.length, 8, "8 edges");
        vm.assertEq(_header(child).depth, 1, "depth");
    }

    function test_mint_revertsForDuplicateParent() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintBase(alice);
        MintParams memory p = _params(alice);
        p.parents = _ids(a, b, a);
        p.licenses = _zeros(3);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DuplicateParent.selector, a));
        registry.mint(p);

        // The same parent under two different licenses is still a duplicate.
        uint256 l1 = _fineTuneLicense(bob, a, 100);
        uint256 l2 = _fineTuneLicense(bob, a, 100);
        p = _params(bob);
        p.parents = _ids(a, a);
        p.licenses = _ids(l1, l2);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DuplicateParent.selector, a));
        registry.mint(p);
    }

    function test_mint_chainOf17IsTheDeepestAllowed() public {
        uint256 id = _mintBase(alice);
        for (uint256 d = 1; d <= 16; ++d) {
            id = _mintChild(alice, _ids(id), _ids(0));
            vm.assertEq(_header(id).depth, d, "depth");
        }
        vm.assertEq(registry.totalModels(), 17, "a chain of 17 models");
        MintParams memory p = _params(alice);
        p.parents = _ids(id);
        p.licenses = _ids(0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.LineageTooDeep.selector, 17, 16));
        registry.mint(p);

        // A second, shallow parent does not help.
        uint256 base = _mintBase(alice);
        p = _params(alice);
        p.parents = _ids(base, id);
        p.licenses = _zeros(2);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.LineageTooDeep.selector, 17, 16));
        registry.mint(p);
    }

    /// @dev alice derives a model from `parents`, each under a fresh fine-tune license with
    /// EDGE_BPS royalty (or 0 where `zeroBps` is set for that index).
    function _derive(uint256[] memory parents, uint256 zeroIndex) internal returns (uint256) {
        uint256[] memory licenses = new uint256[](parents.length);
        for (uint256 i; i < parents.length; ++i) {
            licenses[i] = _fineTuneLicense(alice, parents[i], i + 1 == zeroIndex ? 0 : EDGE_BPS);
        }
        return _mintChild(alice, parents, licenses);
    }

    /// Doubling diamonds: every level has two models deriving from both models of the level
    /// below, so the royalty nodes are 1, 2, 5, 11, 23.
    function _diamonds() internal returns (uint256 a, uint256 b1, uint256 c1, uint256 d1, uint256 e1, uint256 e2) {
        a = _mintBase(alice);
        b1 = _derive(_ids(a), 0);
        uint256 b2 = _derive(_ids(a), 0);
        c1 = _derive(_ids(b1, b2), 0);
        uint256 c2 = _derive(_ids(b1, b2), 0);
        d1 = _derive(_ids(c1, c2), 0);
        uint256 d2 = _derive(_ids(c1, c2), 0);
        e1 = _derive(_ids(d1, d2), 0);
        e2 = _derive(_ids(d1, d2), 0);
        vm.assertEq(_header(b1).royaltyNodes, 2, "b");
        vm.assertEq(_header(c1).royaltyNodes, 5, "c");
        vm.assertEq(_header(d1).royaltyNodes, 11, "d");
        vm.assertEq(_header(e2).royaltyNodes, 23, "e");
    }

    function test_mint_royaltyNodesUpTo64() public {
        (uint256 a,, uint256 c1, uint256 d1, uint256 e1, uint256 e2) = _diamonds();
        uint256[] memory parents = new uint256[](5);
        (parents[0], parents[1], parents[2], parents[3], parents[4]) = (e1, e2, d1, c1, a);
        uint256 g = _derive(parents, 0);
        vm.assertEq(_header(g).royaltyNodes, 64, "1 + 23 + 23 + 11 + 5 + 1");

        // A sale of the largest lineage still splits to the wei.
        uint256 offering = _publish(_terms(g, LicenseKind.Access, NATIVE, 1 ether + 7, 0));
        _buy(bob, offering);
        vm.assertEq(market.credits(alice, NATIVE), 1 ether + 7, "all of it to alice, who owns every node");
    }

    function test_mint_revertsForLineageTooLarge() public {
        (, uint256 b1, uint256 c1, uint256 d1, uint256 e1, uint256 e2) = _diamonds();
        uint256[] memory parents = new uint256[](5);
        (parents[0], parents[1], parents[2], parents[3], parents[4]) = (e1, e2, d1, c1, b1);
        uint256[] memory licenses = new uint256[](5);
        for (uint256 i; i < 5; ++i) {
            licenses[i] = _fineTuneLicense(alice, parents[i], EDGE_BPS);
        }
        MintParams memory p = _params(alice);
        p.parents = parents;
        p.licenses = licenses;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.LineageTooLarge.selector, 65, 64));
        registry.mint(p);

        // The same parents fit when one edge is owed nothing, or is admitted by ownership (b1's
        // floor is 0). The failed mint consumed none of the licenses, so the first four serve.
        uint256 g = _derive(parents, 5);
        vm.assertEq(_header(g).royaltyNodes, 63, "b1 edge carries no royalty");
        licenses[4] = 0;
        p = _params(alice);
        p.parents = parents;
        p.licenses = licenses;
        vm.prank(alice);
        vm.assertEq(_header(registry.mint(p)).royaltyNodes, 63, "owned b1 owes nothing");
    }

    function test_mint_royaltySharesUpToTotal() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintBase(bob);
        uint256 la = _fineTuneLicense(carol, a, 6_000);
        uint256 lb = _fineTuneLicense(carol, b, 4_000);
        uint256 child = _mintChild(carol, _ids(a, b), _ids(la, lb));
        (, uint16[] memory bps) = _royaltyEdges(child);
        vm.assertEq(uint256(bps[0]) + bps[1], 10_000, "100%");
    }

    /// Floors owed by the owner path count towards the 100% too.
    function test_mint_revertsWhenFloorsAndSharesExceedTotal() public {
        uint256 a = _baseWithFloor(carol, 6_000);
        uint256 b = _mintBase(bob);
        uint256 lb = _fineTuneLicense(carol, b, 4_001);
        MintParams memory p = _params(carol);
        p.parents = _ids(a, b);
        p.licenses = _ids(0, lb);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.RoyaltySharesExceedTotal.selector, 10_001));
        registry.mint(p);
    }

    function test_mint_revertsWhenRoyaltySharesExceedTotal() public {
        uint256 a = _mintBase(alice);
        uint256 b = _mintBase(bob);
        uint256 la = _fineTuneLicense(carol, a, 6_000);
        uint256 lb = _fineTuneLicense(carol, b, 4_001);
        MintParams memory p = _params(carol);
        p.parents = _ids(a, b);
        p.licenses = _ids(la, lb);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.RoyaltySharesExceedTotal.selector, 10_001));
        registry.mint(p);
    }

    function test_mint_fullRoyaltyToASingleParent() public {
        uint256 a = _mintBase(alice);
        uint256 la = _fineTuneLicense(bob, a, 10_000);
        uint256 child = _mintChild(bob, _ids(a), _ids(la));
        _buy(carol, _publish(_terms(child, LicenseKind.Access, NATIVE, 999, 0)));
        vm.assertEq(market.credits(alice, NATIVE), 999, "everything to the parent");
        vm.assertEq(market.credits(bob, NATIVE), 0, "nothing left");
    }

    function test_offeringTermsOfParentAreSnapshottedOnTheEdge() public {
        uint256 a = _mintBase(alice);
        Terms memory t = _terms(a, LicenseKind.FineTune, NATIVE, 0, 30 * DAY);
        t.royaltyBps = 1_234;
        uint256 lic = _buy(bob, _publish(t));
        uint256 child = _mintChild(bob, _ids(a), _ids(lic));
        // Expiry of the license later does not change the edge.
        vm.warp(T0 + 31 * DAY);
        vm.assertFalse(market.isLicenseValid(lic, uint64(block.timestamp)), "expired");
        (, uint16[] memory bps) = _royaltyEdges(child);
        vm.assertEq(bps[0], 1_234, "edge keeps its share");
    }
}
