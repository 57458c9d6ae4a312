// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice The three rights a license can grant over a model.
/// Access: use and download the weights. FineTune: make derivative models (which then owe
/// royalties to this model). Output: commercial use of what the model generates.
enum LicenseKind {
    Access,
    FineTune,
    Output
}

/// @notice A model as the registry records it at mint time. Immutable after mint.
struct Model {
    /// Where the weights live (an IPFS CID, as text).
    string weightsCid;
    /// Exact identity of the weights: the fingerprint crate's content root.
    bytes32 contentRoot;
    /// Hash of the canonical fingerprint encoding stored next to the weights.
    bytes32 fingerprint;
    /// Token metadata (ERC-721 tokenURI).
    string metadataUri;
    /// The account that minted the model.
    address creator;
    /// Block timestamp of the mint.
    uint64 mintedAt;
    /// 0 for a base model, else 1 + the deepest parent's depth.
    uint16 depth;
    /// Number of nodes the royalty split of a sale visits (1 + the nodes of every parent with a
    /// non-zero royalty share). Bounded so that no purchase can run out of gas.
    uint16 royaltyNodes;
}

/// @notice One lineage edge: the child model was derived from `modelId` under `licenseId`.
struct Parent {
    uint256 modelId;
    /// The fine-tune license the minter presented, or 0 when the minter owned the parent.
    uint256 licenseId;
    /// Share of every sale of the child owed to this parent, snapshotted from the license.
    uint16 royaltyBps;
}

/// @notice What the minter of a model supplies.
struct MintParams {
    /// Receiver of the model token.
    address to;
    string weightsCid;
    bytes32 contentRoot;
    bytes32 fingerprint;
    string metadataUri;
    /// ERC-2981 royalty on sales of the model token itself, paid to `to`. 0 for none.
    uint96 saleRoyaltyBps;
    /// Parent model ids, and for each the fine-tune license the minter holds (0 = the minter
    /// owns the parent).
    uint256[] parents;
    uint256[] licenses;
}

/// @notice The terms of a license offering. Immutable once published; a license snapshots the
/// economic terms at purchase.
struct Terms {
    uint256 modelId;
    LicenseKind kind;
    /// address(0) for the native currency, else an ERC-20.
    address currency;
    uint256 price;
    /// Seconds a purchase (or renewal) lasts; 0 = perpetual.
    uint64 duration;
    /// Maximum number of licenses sold; 0 = unlimited.
    uint64 supplyCap;
    bool transferable;
    bool commercialUse;
    /// Fine-tune only: the share of every sale of a derivative owed to this model.
    uint16 royaltyBps;
    string termsUri;
    bytes32 termsHash;
}

/// @notice A sold license: the terms it paid for and its validity window.
struct License {
    uint256 offeringId;
    uint256 modelId;
    LicenseKind kind;
    address currency;
    uint256 price;
    uint64 duration;
    bool transferable;
    bool commercialUse;
    uint16 royaltyBps;
    bytes32 termsHash;
    /// Valid from `start` (the purchase) ...
    uint64 start;
    /// ... until `expiry`, exclusive; 0 = perpetual.
    uint64 expiry;
}

/// @notice What the registry needs from the market when a derivative is minted.
interface ILicenseMarket {
    /// The license with its current holder. Reverts for an unknown license.
    function licenseOf(uint256 licenseId) external view returns (License memory license, address holder);

    /// Whether the license is valid at time `at` (start <= at < expiry, or perpetual).
    function isLicenseValid(uint256 licenseId, uint64 at) external view returns (bool);
}

/// @notice What the market needs from the registry.
interface IModelRegistry {
    function exists(uint256 modelId) external view returns (bool);

    function ownerOf(uint256 modelId) external view returns (address);

    /// The parents that are owed royalties, with their shares in basis points.
    function royaltyEdges(uint256 modelId) external view returns (uint256[] memory parents, uint16[] memory bps);
}
