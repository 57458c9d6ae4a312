// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {ILicenseMarket, IModelRegistry, MintParams, Model, ModelHeader, Parent} from "./Types.sol";

/// @title ModelRegistry
/// @notice AI models as ERC-721 tokens. A mint commits where the weights live (IPFS CID), the
/// exact content root of the weights, the behavioural fingerprint, a metadata URI and the parent
/// models it was derived from. The whole record is in `ModelMinted`; storage keeps only what
/// contracts read: one header slot per model (lineage bounds, royalty floor, the first royalty
/// edge), one slot per further royalty edge, and the content root's owner model.
///
/// Rules:
/// - a content root can be registered once (`DuplicateContent` names the model that has it);
/// - every model has a derivative royalty floor, fixed at mint: each derivative owes it, the
///   owner's own derivatives included, and fine-tune offerings may ask more, never less; the
///   owner path is closed in the block the parent changed hands (a flash owner derives nothing);
/// - a fine-tune license admits one derivative: the mint consumes (burns) it. Its validity is
///   checked at mint only: a time-bound fine-tune license bounds when a derivative can be made,
///   not how long the derivative may be used or sold, and the derivative owes its royalties for
///   ever;
/// - lineage is a DAG: parents must exist before the child; at most `MAX_PARENTS` (8) parents,
///   no duplicates; depth at most `MAX_DEPTH` (16); a sale's royalty split visits at most
///   `MAX_ROYALTY_NODES` (64) nodes; the parents' shares add up to at most 100%.
/// - a model minted `encrypted` has its weights stored only encrypted (age format): the market
///   sells its access and fine-tune licenses in escrow, paid out when the owner delivers the
///   model key wrapped to the buyer (`LicenseMarket.deliverKey`). The flag is fixed at mint; the
///   registry cannot check that the weights really are encrypted.
///
/// Mint is not protected against front-running from a public mempool (no commit-reveal; see the
/// contracts README for why): submit mints through a private transaction relay where that
/// matters.
contract ModelRegistry is ERC721, IERC2981, IModelRegistry {
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
    /// The model registered with a content root (0: none).
    mapping(bytes32 contentRoot => uint256 modelId) public modelByContent;

    mapping(uint256 modelId => ModelHeader) private _headers;
    /// Royalty edges after the first, packed `parentId << 16 | bps`.
    mapping(uint256 modelId => mapping(uint256 index => uint256)) private _edges;
    /// ERC-2981 receiver of models with a sale royalty.
    mapping(uint256 modelId => address) private _royaltyReceivers;

    event MarketBound(address indexed market);
    event ModelMinted(
        uint256 indexed modelId,
        address indexed minter,
        address indexed owner,
        Model model,
        uint96 saleRoyaltyBps,
        Parent[] parents
    );
    event RoyaltyReceiverChanged(uint256 indexed modelId, address indexed receiver);

    error NotDeployer(address caller);
    error MarketAlreadyBound(address market);
    error MarketNotBound();
    error MarketOfAnotherRegistry(address market);
    error ZeroAddress();
    error EmptyWeightsCid();
    error EmptyContentRoot();
    error EmptyFingerprint();
    error DuplicateContent(bytes32 contentRoot, uint256 modelId);
    error RoyaltyAboveTotal(uint256 royaltyBps);
    error UnknownModel(uint256 modelId);
    error ParentLicenseCountMismatch(uint256 parents, uint256 licenses);
    error TooManyParents(uint256 count, uint256 max);
    error DuplicateParent(uint256 modelId);
    error NotParentOwner(uint256 parentId, address caller);
    error LineageTooDeep(uint256 depth, uint256 max);
    error LineageTooLarge(uint256 royaltyNodes, uint256 max);
    error RoyaltySharesExceedTotal(uint256 totalBps);
    error NotRoyaltyReceiver(uint256 modelId, address caller);
    error OwnerChangedThisBlock(uint256 modelId);

    constructor() ERC721("AI Model", "MODEL") {
        deployer = msg.sender;
    }

    /// @notice Binds the license market, once. The market is deployed after the registry since
    /// it needs the registry's address.
    function bindMarket(ILicenseMarket market_) external {
        if (msg.sender != deployer) revert NotDeployer(msg.sender);
        if (address(market) != address(0)) revert MarketAlreadyBound(address(market));
        if (address(market_) == address(0)) revert ZeroAddress();
        // A market of another registry would refuse every `consume`: licensed mints would fail
        // for ever.
        if (address(market_.registry()) != address(this)) revert MarketOfAnotherRegistry(address(market_));
        market = market_;
        emit MarketBound(address(market_));
    }

    /// @notice Mints a model to `p.to`. See the contract docs for the rules.
    function mint(MintParams calldata p) external returns (uint256 modelId) {
        if (p.to == address(0)) revert ZeroAddress();
        if (bytes(p.weightsCid).length == 0) revert EmptyWeightsCid();
        if (p.contentRoot == bytes32(0)) revert EmptyContentRoot();
        if (p.fingerprint == bytes32(0)) revert EmptyFingerprint();
        if (p.saleRoyaltyBps > BPS) revert RoyaltyAboveTotal(p.saleRoyaltyBps);
        if (p.derivativeRoyaltyBps > BPS) revert RoyaltyAboveTotal(p.derivativeRoyaltyBps);
        uint256 existing = modelByContent[p.contentRoot];
        if (existing != 0) revert DuplicateContent(p.contentRoot, existing);
        uint256 n = p.parents.length;
        if (n != p.licenses.length) revert ParentLicenseCountMismatch(n, p.licenses.length);
        if (n > MAX_PARENTS) revert TooManyParents(n, MAX_PARENTS);

        modelId = ++totalModels;
        modelByContent[p.contentRoot] = modelId;
        ModelHeader memory h;
        Parent[] memory edges = new Parent[](n);
        uint256 depth;
        uint256 nodes = 1;
        uint256 totalBps;
        for (uint256 i; i < n; ++i) {
            uint256 parentId = p.parents[i];
            // Parents must exist before the child: `exists` would already admit `modelId` itself.
            if (parentId == 0 || parentId >= modelId) revert UnknownModel(parentId);
            for (uint256 j; j < i; ++j) {
                if (p.parents[j] == parentId) revert DuplicateParent(parentId);
            }
            ModelHeader storage parent = _headers[parentId];
            uint16 bps = _admitParent(parentId, p.licenses[i], parent.derivativeRoyaltyBps);
            if (parent.depth + 1 > depth) depth = parent.depth + 1;
            if (bps > 0) {
                nodes += parent.royaltyNodes;
                totalBps += bps;
                _addRoyaltyEdge(h, modelId, parentId, bps);
            }
            edges[i] = Parent({modelId: parentId, licenseId: p.licenses[i], royaltyBps: bps});
        }
        if (depth > MAX_DEPTH) revert LineageTooDeep(depth, MAX_DEPTH);
        if (nodes > MAX_ROYALTY_NODES) revert LineageTooLarge(nodes, MAX_ROYALTY_NODES);
        if (totalBps > BPS) revert RoyaltySharesExceedTotal(totalBps);

        // Block numbers fit 40 bits for millennia; depth, nodes and bps were bounded above.
        // forge-lint: disable-next-line(unsafe-typecast)
        h.mintedBlock = uint40(block.number);
        // forge-lint: disable-next-line(unsafe-typecast)
        h.depth = uint8(depth);
        // forge-lint: disable-next-line(unsafe-typecast)
        h.royaltyNodes = uint8(nodes);
        h.derivativeRoyaltyBps = p.derivativeRoyaltyBps;
        // forge-lint: disable-next-line(unsafe-typecast)
        h.saleRoyaltyBps = uint16(p.saleRoyaltyBps);
        h.encrypted = p.encrypted;
        _headers[modelId] = h;
        if (p.saleRoyaltyBps > 0) _royaltyReceivers[modelId] = p.to;

        _mint(p.to, modelId);
        emit ModelMinted(
            modelId,
            msg.sender,
            p.to,
            Model({
                weightsCid: p.weightsCid,
                contentRoot: p.contentRoot,
                fingerprint: p.fingerprint,
                metadataUri: p.metadataUri,
                creator: msg.sender,
                mintedAt: uint64(block.timestamp),
                depth: h.depth,
                royaltyNodes: h.royaltyNodes,
                derivativeRoyaltyBps: p.derivativeRoyaltyBps,
                encrypted: p.encrypted
            }),
            p.saleRoyaltyBps,
            edges
        );
    }

    /// @dev Checks the caller's right to derive from `parentId` and returns the royalty share
    /// owed to it: the parent's floor on the owner path, else the consumed license's share
    /// (which the market never sells below the floor).
    function _admitParent(uint256 parentId, uint256 licenseId, uint16 floor) private returns (uint16) {
        if (licenseId == 0) {
            if (_ownerOf(parentId) != msg.sender) revert NotParentOwner(parentId, msg.sender);
            if (_headers[parentId].ownerSince == block.number) revert OwnerChangedThisBlock(parentId);
            return floor;
        }
        ILicenseMarket m = market;
        if (address(m) == address(0)) revert MarketNotBound();
        uint16 bps = m.consume(licenseId, msg.sender, parentId);
        return bps > floor ? bps : floor;
    }

    function _addRoyaltyEdge(ModelHeader memory h, uint256 modelId, uint256 parentId, uint16 bps) private {
        uint8 k = h.royaltyParents++;
        if (k == 0) {
            // Ids below `totalModels` fit 64 bits.
            // forge-lint: disable-next-line(unsafe-typecast)
            h.parent0 = uint64(parentId);
            h.parent0Bps = bps;
        } else {
            _edges[modelId][k] = parentId << 16 | bps;
        }
    }

    /// @notice Whether `modelId` has been minted.
    function exists(uint256 modelId) public view returns (bool) {
        return modelId != 0 && modelId <= totalModels;
    }

    /// @notice The stored part of a model's record. Reverts for an unknown model. The rest
    /// (CID, content root, fingerprint, metadata URI, creator, every parent with its license)
    /// is in the `ModelMinted` event at block `mintedBlock`.
    function headerOf(uint256 modelId) external view returns (ModelHeader memory) {
        _requireModel(modelId);
        return _headers[modelId];
    }

    /// @inheritdoc IModelRegistry
    function payees(uint256 modelId)
        external
        view
        returns (address owner, uint256 ownerSince, uint256[] memory parents, uint16[] memory bps)
    {
        owner = _requireOwned(modelId);
        ModelHeader storage h = _headers[modelId];
        ownerSince = h.ownerSince;
        uint256 n = h.royaltyParents;
        parents = new uint256[](n);
        bps = new uint16[](n);
        if (n == 0) return (owner, ownerSince, parents, bps);
        (parents[0], bps[0]) = (h.parent0, h.parent0Bps);
        for (uint256 k = 1; k < n; ++k) {
            uint256 edge = _edges[modelId][k];
            // The low 16 bits are the share, as packed in `_addRoyaltyEdge`.
            // forge-lint: disable-next-line(unsafe-typecast)
            (parents[k], bps[k]) = (edge >> 16, uint16(edge));
        }
    }

    /// @notice ERC-2981: the sale royalty of the model token. The receiver is the `to` of the
    /// mint until it names another (`setRoyaltyReceiver`).
    function royaltyInfo(uint256 modelId, uint256 salePrice) external view returns (address, uint256) {
        address receiver = _royaltyReceivers[modelId];
        if (receiver == address(0)) return (address(0), 0);
        return (receiver, salePrice * _headers[modelId].saleRoyaltyBps / BPS);
    }

    /// @notice Hands the model token's sale royalty to `receiver`. Only the current receiver may.
    function setRoyaltyReceiver(uint256 modelId, address receiver) external {
        if (_royaltyReceivers[modelId] != msg.sender) revert NotRoyaltyReceiver(modelId, msg.sender);
        if (receiver == address(0)) revert ZeroAddress();
        _royaltyReceivers[modelId] = receiver;
        emit RoyaltyReceiverChanged(modelId, receiver);
    }

    /// @notice Token metadata. Stored only in `ModelMinted` (a URI is several slots of gas), so
    /// on-chain readers get an empty string; indexers and the CLI read the event.
    function tokenURI(uint256 modelId) public view override returns (string memory) {
        _requireOwned(modelId);
        return "";
    }

    function ownerOf(uint256 modelId) public view override(ERC721, IModelRegistry) returns (address) {
        return super.ownerOf(modelId);
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, IERC165) returns (bool) {
        return interfaceId == type(IERC2981).interfaceId || super.supportsInterface(interfaceId);
    }

    /// @dev Records when the token last changed hands, so the market can refuse sales in the
    /// block of a transfer (a model held for one transaction cannot sell its holder licenses).
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        // forge-lint: disable-next-line(unsafe-typecast)
        if (from != address(0) && to != address(0)) _headers[tokenId].ownerSince = uint40(block.number);
    }

    function _requireModel(uint256 modelId) private view {
        if (!exists(modelId)) revert UnknownModel(modelId);
    }
}
