// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {ILicenseMarket, IModelRegistry, License, LicenseKind, MintParams, Model, Parent} from "./Types.sol";

/// @title ModelRegistry
/// @notice AI models as ERC-721 tokens. Each token records where the weights live (IPFS CID),
/// the exact content root of the weights, the commitment to their behavioural fingerprint, a
/// metadata URI and the parent models it was derived from.
///
/// Lineage rules, so that lineage is a DAG and no call can run out of gas:
/// - parents must exist before the child, so a model can never be its own ancestor;
/// - at most `MAX_PARENTS` (8) parents per model, no duplicates;
/// - depth (longest path to a base model) at most `MAX_DEPTH` (16);
/// - the royalty split of a sale visits at most `MAX_ROYALTY_NODES` (64) nodes (paths through
///   parents with a non-zero royalty share, the model itself included);
/// - the royalty shares of a model's parents add up to at most 100%.
/// For each parent the minter either owns the parent or holds a fine-tune license of it that is
/// valid at mint time; the license's royalty share is snapshotted on the lineage edge.
contract ModelRegistry is ERC721, ERC2981, IModelRegistry {
    uint256 public constant MAX_PARENTS = 8;
    uint256 public constant MAX_DEPTH = 16;
    uint256 public constant MAX_ROYALTY_NODES = 64;
    uint16 internal constant BPS = 10_000;

    /// The account allowed to bind the market once.
    address public immutable deployer;
    /// The license market whose fine-tune licenses admit derivatives.
    ILicenseMarket public market;
    /// Number of models minted; ids run from 1 to `totalModels`.
    uint256 public totalModels;

    mapping(uint256 modelId => Model) private _models;
    mapping(uint256 modelId => Parent[]) private _parents;

    event MarketBound(address indexed market);
    event ModelMinted(
        uint256 indexed modelId,
        address indexed minter,
        address indexed owner,
        Model model,
        uint96 saleRoyaltyBps,
        Parent[] parents
    );

    error NotDeployer(address caller);
    error MarketAlreadyBound(address market);
    error MarketNotBound();
    error ZeroAddress();
    error EmptyWeightsCid();
    error EmptyContentRoot();
    error EmptyFingerprint();
    error UnknownModel(uint256 modelId);
    error ParentLicenseCountMismatch(uint256 parents, uint256 licenses);
    error TooManyParents(uint256 count, uint256 max);
    error DuplicateParent(uint256 modelId);
    error NotParentOwner(uint256 parentId, address caller);
    error LicenseForOtherModel(uint256 licenseId, uint256 licensedModel, uint256 parentId);
    error NotFineTuneLicense(uint256 licenseId, LicenseKind kind);
    error NotLicenseHolder(uint256 licenseId, address holder, address caller);
    error LicenseNotValid(uint256 licenseId, uint64 start, uint64 expiry, uint64 at);
    error LineageTooDeep(uint256 depth, uint256 max);
    error LineageTooLarge(uint256 royaltyNodes, uint256 max);
    error RoyaltySharesExceedTotal(uint256 totalBps);

    constructor() ERC721("AI Model", "MODEL") {
        deployer = msg.sender;
    }

    /// @notice Binds the license market, once. The market is deployed after the registry since
    /// it needs the registry's address.
    function bindMarket(ILicenseMarket market_) external {
        if (msg.sender != deployer) revert NotDeployer(msg.sender);
        if (address(market) != address(0)) revert MarketAlreadyBound(address(market));
        if (address(market_) == address(0)) revert ZeroAddress();
        market = market_;
        emit MarketBound(address(market_));
    }

    /// @notice Mints a model to `p.to`. See the contract docs for the lineage rules.
    function mint(MintParams calldata p) external returns (uint256 modelId) {
        if (p.to == address(0)) revert ZeroAddress();
        if (bytes(p.weightsCid).length == 0) revert EmptyWeightsCid();
        if (p.contentRoot == bytes32(0)) revert EmptyContentRoot();
        if (p.fingerprint == bytes32(0)) revert EmptyFingerprint();
        uint256 n = p.parents.length;
        if (n != p.licenses.length) revert ParentLicenseCountMismatch(n, p.licenses.length);
        if (n > MAX_PARENTS) revert TooManyParents(n, MAX_PARENTS);

        modelId = ++totalModels;
        uint256 depth;
        uint256 nodes = 1;
        uint256 totalBps;
        Parent[] storage edges = _parents[modelId];
        for (uint256 i; i < n; ++i) {
            uint256 parentId = p.parents[i];
            // Parents must exist before the child: `exists` would already admit `modelId` itself.
            if (parentId == 0 || parentId >= modelId) revert UnknownModel(parentId);
            for (uint256 j; j < i; ++j) {
                if (p.parents[j] == parentId) revert DuplicateParent(parentId);
            }
            uint16 bps = _admitParent(parentId, p.licenses[i]);
            Model storage parent = _models[parentId];
            if (parent.depth + 1 > depth) depth = parent.depth + 1;
            if (bps > 0) {
                nodes += parent.royaltyNodes;
                totalBps += bps;
            }
            edges.push(Parent({modelId: parentId, licenseId: p.licenses[i], royaltyBps: bps}));
        }
        if (depth > MAX_DEPTH) revert LineageTooDeep(depth, MAX_DEPTH);
        if (nodes > MAX_ROYALTY_NODES) revert LineageTooLarge(nodes, MAX_ROYALTY_NODES);
        if (totalBps > BPS) revert RoyaltySharesExceedTotal(totalBps);

        Model storage m = _models[modelId];
        m.weightsCid = p.weightsCid;
        m.contentRoot = p.contentRoot;
        m.fingerprint = p.fingerprint;
        m.metadataUri = p.metadataUri;
        m.creator = msg.sender;
        m.mintedAt = uint64(block.timestamp);
        // Both were checked against MAX_DEPTH and MAX_ROYALTY_NODES, far below 2**16.
        // forge-lint: disable-next-line(unsafe-typecast)
        m.depth = uint16(depth);
        // forge-lint: disable-next-line(unsafe-typecast)
        m.royaltyNodes = uint16(nodes);

        if (p.saleRoyaltyBps > 0) _setTokenRoyalty(modelId, p.to, p.saleRoyaltyBps);
        _mint(p.to, modelId);
        emit ModelMinted(modelId, msg.sender, p.to, m, p.saleRoyaltyBps, edges);
    }

    /// @dev Checks the caller's right to derive from `parentId` and returns the royalty share
    /// owed to it.
    function _admitParent(uint256 parentId, uint256 licenseId) private view returns (uint16) {
        if (licenseId == 0) {
            if (_ownerOf(parentId) != msg.sender) revert NotParentOwner(parentId, msg.sender);
            return 0;
        }
        ILicenseMarket m = market;
        if (address(m) == address(0)) revert MarketNotBound();
        (License memory l, address holder) = m.licenseOf(licenseId);
        if (l.modelId != parentId) revert LicenseForOtherModel(licenseId, l.modelId, parentId);
        if (l.kind != LicenseKind.FineTune) revert NotFineTuneLicense(licenseId, l.kind);
        if (holder != msg.sender) revert NotLicenseHolder(licenseId, holder, msg.sender);
        if (!m.isLicenseValid(licenseId, uint64(block.timestamp))) {
            revert LicenseNotValid(licenseId, l.start, l.expiry, uint64(block.timestamp));
        }
        return l.royaltyBps;
    }

    /// @notice Whether `modelId` has been minted.
    function exists(uint256 modelId) public view returns (bool) {
        return modelId != 0 && modelId <= totalModels;
    }

    /// @notice The model's record. Reverts for an unknown model.
    function modelOf(uint256 modelId) external view returns (Model memory) {
        _requireModel(modelId);
        return _models[modelId];
    }

    /// @notice The model's parents with the licenses and royalty shares of each edge.
    function parentsOf(uint256 modelId) external view returns (Parent[] memory) {
        _requireModel(modelId);
        return _parents[modelId];
    }

    /// @inheritdoc IModelRegistry
    function royaltyEdges(uint256 modelId) external view returns (uint256[] memory parents, uint16[] memory bps) {
        _requireModel(modelId);
        Parent[] storage edges = _parents[modelId];
        uint256 count;
        for (uint256 i; i < edges.length; ++i) {
            if (edges[i].royaltyBps > 0) ++count;
        }
        parents = new uint256[](count);
        bps = new uint16[](count);
        uint256 k;
        for (uint256 i; i < edges.length; ++i) {
            if (edges[i].royaltyBps > 0) {
                parents[k] = edges[i].modelId;
                bps[k] = edges[i].royaltyBps;
                ++k;
            }
        }
    }

    /// @notice Token metadata: the URI given at mint.
    function tokenURI(uint256 modelId) public view override returns (string memory) {
        _requireOwned(modelId);
        return _models[modelId].metadataUri;
    }

    function ownerOf(uint256 modelId) public view override(ERC721, IModelRegistry) returns (address) {
        return super.ownerOf(modelId);
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, ERC2981) returns (bool) {
        return super.supportsInterface(interfaceId);
    }

    function _requireModel(uint256 modelId) private view {
        if (!exists(modelId)) revert UnknownModel(modelId);
    }
}
