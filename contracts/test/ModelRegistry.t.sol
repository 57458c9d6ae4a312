// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Metadata} from "@openzeppelin/contracts/token/ERC721/extensions/IERC721Metadata.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Fixture} from "./utils/Fixture.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {ILicenseMarket, MintParams, Model, ModelHeader, Parent} from "../src/Types.sol";

/// @notice The registry's own functions: binding the market, minting a base model and its input
/// checks, content uniqueness, the views, ERC-165, ERC-2981 and tokenURI. Lineage is in
/// Lineage.t.sol.
contract ModelRegistryTest is Fixture {
    function _noCurrencies() internal pure returns (address[] memory) {
        return new address[](0);
    }

    // ------------------------------------------------------------ bindMarket

    function test_bindMarket_bindsOnceAndEmits() public {
        ModelRegistry r = new ModelRegistry();
        LicenseMarket m = new LicenseMarket(r, _noCurrencies());
        vm.assertEq(r.deployer(), address(this), "deployer");
        vm.assertEq(address(r.market()), address(0), "unbound");
        vm.expectEmit(address(r));
        emit ModelRegistry.MarketBound(address(m));
        r.bindMarket(m);
        vm.assertEq(address(r.market()), address(m), "bound");
    }

    function test_bindMarket_revertsForOtherCaller() public {
        ModelRegistry r = new ModelRegistry();
        LicenseMarket m = new LicenseMarket(r, _noCurrencies());
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NotDeployer.selector, alice));
        r.bindMarket(m);
    }

    function test_bindMarket_revertsWhenAlreadyBound() public {
        LicenseMarket other = new LicenseMarket(registry, _noCurrencies());
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.MarketAlreadyBound.selector, address(market)));
        registry.bindMarket(other);
    }

    function test_bindMarket_revertsForZeroAddress() public {
        ModelRegistry r = new ModelRegistry();
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ZeroAddress.selector));
        r.bindMarket(ILicenseMarket(address(0)));
    }

    // ------------------------------------------------------------ mint: base model

    function test_mint_baseModelStoresHeaderAndEmitsRecord() public {
        vm.warp(T0 + 123);
        vm.roll(42);
        MintParams memory p = _params(bob);
        p.saleRoyaltyBps = 500;
        p.derivativeRoyaltyBps = 1_000;
        Model memory expected = Model({
            weightsCid: p.weightsCid,
            contentRoot: p.contentRoot,
            fingerprint: p.fingerprint,
            metadataUri: p.metadataUri,
            creator: alice,
            mintedAt: T0 + 123,
            depth: 0,
            royaltyNodes: 1,
            derivativeRoyaltyBps: 1_000,
            encrypted: false
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
        // Storage keeps the header; the rest of the record is the event's.
        ModelHeader memory h = registry.headerOf(1);
        ModelHeader memory expectedHeader;
        expectedHeader.mintedBlock = 42;
        expectedHeader.royaltyNodes = 1;
        expectedHeader.derivativeRoyaltyBps = 1_000;
        expectedHeader.saleRoyaltyBps = 500;
        vm.assertEq(keccak256(abi.encode(h)), keccak256(abi.encode(expectedHeader)), "header");
        vm.assertEq(registry.modelByContent(p.contentRoot), 1, "content root registered");
        (address owner, uint256 ownerSince, uint256[] memory parents, uint16[] memory bps) = registry.payees(1);
        vm.assertEq(owner, bob, "payee owner");
        vm.assertEq(ownerSince, 0, "owner since the mint");
        vm.assertEq(parents.length, 0, "no royalty parents");
        vm.assertEq(bps.length, 0, "no royalty bps");
    }

    function test_mint_recordIsInTheEvent() public {
        MintParams memory p = _params(carol);
        p.derivativeRoyaltyBps = 250;
        (uint256 id, Model memory m, Parent[] memory parents) = _mintRecorded(carol, p);
        vm.assertEq(id, 1, "id");
        vm.assertEq(m.weightsCid, p.weightsCid, "cid");
        vm.assertEq(m.contentRoot, p.contentRoot, "root");
        vm.assertEq(m.fingerprint, p.fingerprint, "fingerprint");
        vm.assertEq(m.metadataUri, p.metadataUri, "metadata");
        vm.assertEq(m.creator, carol, "creator");
        vm.assertEq(m.mintedAt, T0, "minted at");
        vm.assertEq(m.derivativeRoyaltyBps, 250, "floor");
        vm.assertFalse(m.encrypted, "plain weights");
        vm.assertEq(parents.length, 0, "no parents");
    }

    /// The encrypted flag is the minter's, fixed at mint: in the record and in the stored header
    /// (the market reads it there to escrow sales), alongside the rest of the header.
    function test_mint_encryptedFlagInRecordAndHeader() public {
        MintParams memory p = _params(carol);
        p.encrypted = true;
        p.derivativeRoyaltyBps = 300;
        p.saleRoyaltyBps = 200;
        (uint256 id, Model memory m,) = _mintRecorded(carol, p);
        vm.assertTrue(m.encrypted, "record");
        ModelHeader memory h = registry.headerOf(id);
        vm.assertTrue(h.encrypted, "header");
        vm.assertEq(h.derivativeRoyaltyBps, 300, "floor kept beside it");
        vm.assertEq(h.saleRoyaltyBps, 200, "sale royalty kept beside it");
        vm.assertFalse(registry.headerOf(_mintBase(alice)).encrypted, "plain by default");
    }

    // ------------------------------------------------------------ content uniqueness

    function test_mint_revertsForDuplicateContent() public {
        MintParams memory p = _params(alice);
        vm.prank(alice);
        uint256 first = registry.mint(p);

        // The same root is refused whoever mints it, whatever else differs.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DuplicateContent.selector, p.contentRoot, first));
        registry.mint(p);
        p.to = bob;
        p.weightsCid = "bafy-other-cid";
        p.fingerprint = keccak256("other fingerprint");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DuplicateContent.selector, p.contentRoot, first));
        registry.mint(p);

        // Another root with the same fingerprint and CID is another model.
        p.contentRoot = keccak256("other root");
        vm.prank(bob);
        vm.assertEq(registry.mint(p), 2, "distinct content");
        vm.assertEq(registry.modelByContent(keccak256("other root")), 2, "indexed");
        vm.assertEq(registry.modelByContent(keccak256("unknown")), 0, "none");
    }

    function test_mint_failedMintDoesNotReserveTheRoot() public {
        MintParams memory p = _params(alice);
        p.saleRoyaltyBps = 10_001;
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.RoyaltyAboveTotal.selector, 10_001));
        registry.mint(p);
        vm.assertEq(registry.modelByContent(p.contentRoot), 0, "free");
        p.saleRoyaltyBps = 0;
        vm.assertEq(registry.mint(p), 1, "minted");
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
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.RoyaltyAboveTotal.selector, 10_001));
        registry.mint(p);
    }

    function test_mint_revertsForDerivativeRoyaltyAboveTotal() public {
        MintParams memory p = _params(alice);
        p.derivativeRoyaltyBps = 10_001;
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.RoyaltyAboveTotal.selector, 10_001));
        registry.mint(p);
        p.derivativeRoyaltyBps = 10_000;
        vm.assertEq(registry.headerOf(registry.mint(p)).derivativeRoyaltyBps, 10_000, "100% allowed");
    }

    function test_mint_failedMintLeavesNoTrace() public {
        MintParams memory p = _params(alice);
        p.fingerprint = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.EmptyFingerprint.selector));
        registry.mint(p);
        vm.assertEq(registry.totalModels(), 0, "no model");
        vm.assertFalse(registry.exists(1), "id 1 free");
        vm.assertEq(registry.modelByContent(p.contentRoot), 0, "root free");
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
        registry.headerOf(2);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, 0));
        registry.headerOf(0);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 7));
        registry.payees(7);
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

    /// The metadata URI is kept only in `ModelMinted` (a URI costs several slots), so on-chain
    /// readers get an empty string and indexers read the event.
    function test_tokenURI_isEmptyAndTheUriIsInTheEvent() public {
        MintParams memory p = _params(alice);
        p.metadataUri = "ipfs://bafy-model-card";
        (uint256 id, Model memory m,) = _mintRecorded(alice, p);
        vm.assertEq(registry.tokenURI(id), "", "not stored");
        vm.assertEq(m.metadataUri, "ipfs://bafy-model-card", "in the event");
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
        vm.assertEq(receiver, alice, "receiver stays the mint's until it names another");
    }

    function test_royaltyInfo_unknownModelPaysNothing() public view {
        (address receiver, uint256 amount) = registry.royaltyInfo(1, 1 ether);
        vm.assertEq(receiver, address(0), "no receiver");
        vm.assertEq(amount, 0, "no royalty");
    }

    function test_setRoyaltyReceiver_byTheReceiverOnly() public {
        MintParams memory p = _params(alice);
        p.saleRoyaltyBps = 100;
        uint256 id = registry.mint(p);

        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NotRoyaltyReceiver.selector, id, bob));
        registry.setRoyaltyReceiver(id, bob);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ZeroAddress.selector));
        registry.setRoyaltyReceiver(id, address(0));

        vm.expectEmit(address(registry));
        emit ModelRegistry.RoyaltyReceiverChanged(id, carol);
        vm.prank(alice);
        registry.setRoyaltyReceiver(id, carol);
        (address receiver, uint256 amount) = registry.royaltyInfo(id, 1 ether);
        vm.assertEq(receiver, carol, "carol");
        vm.assertEq(amount, 0.01 ether, "1%");
        vm.assertEq(registry.ownerOf(id), alice, "the token did not move");
    }

    function test_setRoyaltyReceiver_revertsWithoutSaleRoyalty() public {
        uint256 id = _mintBase(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.NotRoyaltyReceiver.selector, id, alice));
        registry.setRoyaltyReceiver(id, bob);
    }

    function test_modelTransferRecordsTheBlock() public {
        uint256 id = _mintBase(alice);
        vm.roll(77);
        vm.prank(alice);
        registry.transferFrom(alice, carol, id);
        (address owner, uint256 ownerSince,,) = registry.payees(id);
        vm.assertEq(owner, carol, "owner");
        vm.assertEq(ownerSince, 77, "since the transfer's block");
        vm.assertEq(registry.headerOf(id).ownerSince, 77, "in the header");
        vm.assertEq(registry.headerOf(id).mintedBlock, 1, "mint block unchanged");
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
