// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Metadata} from "@openzeppelin/contracts/token/ERC721/extensions/IERC721Metadata.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Fixture} from "./utils/Fixture.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {ILicenseMarket, MintParams, Model, Parent} from "../src/Types.sol";

/// @notice The registry's own functions: binding the market, minting a base model and its input
/// checks, the views, ERC-165, ERC-2981 and tokenURI. Lineage is in Lineage.t.sol.
contract ModelRegistryTest is Fixture {
    // ------------------------------------------------------------ bindMarket

    function test_bindMarket_bindsOnceAndEmits() public {
        ModelRegistry r = new ModelRegistry();
        LicenseMarket m = new LicenseMarket(r);
        vm.assertEq(r.deployer(), address(this), "deployer");
        vm.assertEq(address(r.market()), address(0), "unbound");
        vm.expectEmit(address(r));
        emit ModelRegistry.MarketBound(address(m));
        r.bindMarket(m);
        vm.assertEq(address(r.market()), address(m), "bound");
    }

    function test_bindMarket_revertsForOtherCaller() public {
        ModelRegistry r = new ModelRegistry();
        LicenseMarket m = new LicenseMarket(r);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NotDeployer.selector, alice));
        r.bindMarket(m);
    }

    function test_bindMarket_revertsWhenAlreadyBound() public {
        LicenseMarket other = new LicenseMarket(registry);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.MarketAlreadyBound.selector, address(market)));
        registry.bindMarket(other);
    }

    function test_bindMarket_revertsForZeroAddress() public {
        ModelRegistry r = new ModelRegistry();
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ZeroAddress.selector));
        r.bindMarket(ILicenseMarket(address(0)));
    }

    // ------------------------------------------------------------ mint: base model

    function test_mint_baseModelStoresRecordAndEmits() public {
        vm.warp(T0 + 123);
        MintParams memory p = _params(bob);
        p.saleRoyaltyBps = 500;
        Model memory expected = Model({
            weightsCid: p.weightsCid,
            contentRoot: p.contentRoot,
            fingerprint: p.fingerprint,
            metadataUri: p.metadataUri,
            creator: alice,
            mintedAt: T0 + 123,
            depth: 0,
            royaltyNodes: 1
        });
        vm.expectEmit(address(registry));
        emit IERC721.Transfer(address(0), bob, 1);
        vm.expectEmit(address(registry));
        emit ModelRegistry.ModelMinted(1, alice, bob, expected, 500, new Parent[](0));
        vm.prank(alice);
        uint256 id = registry.mint(p);

        vm.assertEq(id, 1, "first id");
        vm.assertEq(registry.totalModels(), 1, "totalModels");
        vm.assertEq(registry.ownerOf(1), bob, "owner is p.to");
        vm.assertEq(registry.balanceOf(bob), 1, "balance");
        vm.assertTrue(registry.exists(1), "exists");
        Model memory m = registry.modelOf(1);
        vm.assertEq(keccak256(abi.encode(m)), keccak256(abi.encode(expected)), "record");
        vm.assertEq(registry.parentsOf(1).length, 0, "no parents");
        (uint256[] memory parents, uint16[] memory bps) = registry.royaltyEdges(1);
        vm.assertEq(parents.length, 0, "no royalty parents");
        vm.assertEq(bps.length, 0, "no royalty bps");
    }

    function test_mint_idsAreSequential() public {
        vm.assertEq(_mintBase(alice), 1, "1");
        vm.assertEq(_mintBase(bob), 2, "2");
        vm.assertEq(_mintBase(alice), 3, "3");
        vm.assertEq(registry.totalModels(), 3, "total");
        vm.assertEq(registry.balanceOf(alice), 2, "alice");
    }

    function test_mint_revertsForZeroReceiver() public {
        MintParams memory p = _params(alice);
        p.to = address(0);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ZeroAddress.selector));
        registry.mint(p);
    }

    function test_mint_revertsForEmptyWeightsCid() public {
        MintParams memory p = _params(alice);
        p.weightsCid = "";
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.EmptyWeightsCid.selector));
        registry.mint(p);
    }

    function test_mint_revertsForEmptyContentRoot() public {
        MintParams memory p = _params(alice);
        p.contentRoot = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.EmptyContentRoot.selector));
        registry.mint(p);
    }

    function test_mint_revertsForEmptyFingerprint() public {
        MintParams memory p = _params(alice);
        p.fingerprint = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.EmptyFingerprint.selector));
        registry.mint(p);
    }

    function test_mint_emptyMetadataUriIsAllowed() public {
        MintParams memory p = _params(alice);
        p.metadataUri = "";
        uint256 id = registry.mint(p);
        vm.assertEq(registry.tokenURI(id), "", "empty uri");
    }

    function test_mint_revertsForParentLicenseCountMismatch() public {
        uint256 base = _mintBase(alice);
        MintParams memory p = _params(alice);
        p.parents = _ids(base);
        p.licenses = _ids();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ParentLicenseCountMismatch.selector, 1, 0));
        registry.mint(p);

        p.parents = _ids();
        p.licenses = _ids(0, 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ParentLicenseCountMismatch.selector, 0, 2));
        registry.mint(p);
    }

    function test_mint_revertsForSaleRoyaltyAboveTotal() public {
        MintParams memory p = _params(alice);
        p.saleRoyaltyBps = 10_001;
        vm.expectRevert(abi.encodeWithSelector(ERC2981.ERC2981InvalidTokenRoyalty.selector, 1, 10_001, 10_000));
        registry.mint(p);
    }

    function test_mint_failedMintLeavesNoTrace() public {
        MintParams memory p = _params(alice);
        p.fingerprint = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.EmptyFingerprint.selector));
        registry.mint(p);
        vm.assertEq(registry.totalModels(), 0, "no model");
        vm.assertFalse(registry.exists(1), "id 1 free");
    }

    // ------------------------------------------------------------ views

    function test_exists() public {
        vm.assertFalse(registry.exists(0), "0");
        vm.assertFalse(registry.exists(1), "1 before");
        _mintBase(alice);
        vm.assertTrue(registry.exists(1), "1 after");
        vm.assertFalse(registry.exists(2), "2");
        vm.assertFalse(registry.exists(type(uint256).max), "max");
    }

    function test_views_revertForUnknownModel() public {
        _mintBase(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, 2));
        registry.modelOf(2);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, 0));
        registry.parentsOf(0);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, 7));
        registry.royaltyEdges(7);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 2));
        registry.ownerOf(2);
    }

    function test_constants() public view {
        vm.assertEq(registry.MAX_PARENTS(), 8, "parents");
        vm.assertEq(registry.MAX_DEPTH(), 16, "depth");
        vm.assertEq(registry.MAX_ROYALTY_NODES(), 64, "nodes");
        vm.assertEq(registry.name(), "AI Model", "name");
        vm.assertEq(registry.symbol(), "MODEL", "symbol");
    }

    // ------------------------------------------------------------ tokenURI

    function test_tokenURI_returnsMetadataUri() public {
        MintParams memory p = _params(alice);
        p.metadataUri = "ipfs://bafy-model-card";
        uint256 id = registry.mint(p);
        vm.assertEq(registry.tokenURI(id), "ipfs://bafy-model-card", "uri");
    }

    function test_tokenURI_revertsForUnknownToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 1));
        registry.tokenURI(1);
    }

    // ------------------------------------------------------------ ERC-165

    function test_supportsInterface() public view {
        vm.assertEq(type(IERC721).interfaceId, bytes4(0x80ac58cd), "721 id");
        vm.assertEq(type(IERC721Metadata).interfaceId, bytes4(0x5b5e139f), "721 metadata id");
        vm.assertEq(type(IERC2981).interfaceId, bytes4(0x2a55205a), "2981 id");
        vm.assertTrue(registry.supportsInterface(0x80ac58cd), "ERC721");
        vm.assertTrue(registry.supportsInterface(0x5b5e139f), "ERC721Metadata");
        vm.assertTrue(registry.supportsInterface(0x2a55205a), "ERC2981");
        vm.assertTrue(registry.supportsInterface(0x01ffc9a7), "ERC165");
        vm.assertFalse(registry.supportsInterface(0xffffffff), "0xffffffff");
        vm.assertFalse(registry.supportsInterface(0x780e9d63), "ERC721Enumerable");
    }

    // ------------------------------------------------------------ ERC-2981

    function test_royaltyInfo_paysToTheMintReceiver() public {
        MintParams memory p = _params(bob);
        p.saleRoyaltyBps = 750;
        vm.prank(alice);
        uint256 id = registry.mint(p);
        (address receiver, uint256 amount) = registry.royaltyInfo(id, 1 ether);
        vm.assertEq(receiver, bob, "receiver is p.to");
        vm.assertEq(amount, 0.075 ether, "7.5%");
        (, amount) = registry.royaltyInfo(id, 9_999);
        vm.assertEq(amount, 749, "rounds down");
    }

    function test_royaltyInfo_zeroWhenNotSet() public {
        uint256 id = _mintBase(alice);
        (address receiver, uint256 amount) = registry.royaltyInfo(id, 1 ether);
        vm.assertEq(receiver, address(0), "no receiver");
        vm.assertEq(amount, 0, "no royalty");
    }

    function test_royaltyInfo_fullRoyaltyAllowed() public {
        MintParams memory p = _params(alice);
        p.saleRoyaltyBps = 10_000;
        uint256 id = registry.mint(p);
        (, uint256 amount) = registry.royaltyInfo(id, 12_345);
        vm.assertEq(amount, 12_345, "100%");
    }

    function test_royaltyInfo_staysWithMintReceiverAfterTransfer() public {
        MintParams memory p = _params(alice);
        p.saleRoyaltyBps = 100;
        vm.prank(alice);
        uint256 id = registry.mint(p);
        vm.prank(alice);
        registry.transferFrom(alice, bob, id);
        vm.assertEq(registry.ownerOf(id), bob, "moved");
        (address receiver,) = registry.royaltyInfo(id, 1 ether);
        vm.assertEq(receiver, alice, "receiver fixed at mint");
    }

    // ------------------------------------------------------------ ERC-721 basics

    function test_modelTokenTransfers() public {
        uint256 id = _mintBase(alice);
        vm.expectEmit(address(registry));
        emit IERC721.Transfer(alice, carol, id);
        vm.prank(alice);
        registry.transferFrom(alice, carol, id);
        vm.assertEq(registry.ownerOf(id), carol, "owner");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InsufficientApproval.selector, alice, id));
        registry.transferFrom(carol, alice, id);
    }

    function test_supportsIERC165Type() public view {
        vm.assertTrue(registry.supportsInterface(type(IERC165).interfaceId), "165");
    }
}
