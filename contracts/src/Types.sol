// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice The three rights a license can grant over a model.
/// Access: use and download the weights. FineTune: make one derivative model (which then owes
/// royalties to this model). Output: commercial use of what the model generates.
enum LicenseKind {
    Access,
    FineTune,
    Output
}

/// @notice A model as minted. Only `ModelMinted` carries the whole record (the indexer and the
/// CLI read it from there); storage keeps what contracts read (`ModelHeader`) and the content
/// root's uniqueness.
struct Model {
    /// Where the weights live (an IPFS CID, as text).
    string weightsCid;
    /// Exact identity of the weights: the fingerprint crate's content root. Unique: the same
    /// root cannot be registered twice.
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
    /// Share of every sale of every derivative owed to this model, at least: fixed at mint.
    uint16 derivativeRoyaltyBps;
    /// The weights at `weightsCid` are encrypted (age format): access and fine-tune licenses of
    /// the model are sold in escrow until the owner delivers the model key to the buyer.
    bool encrypted;
}

/// @notice What the registry stores per model: one slot. The first royalty edge lives in it
/// (most derivatives have one parent); further royalty edges take a slot each.
struct ModelHeader {
    /// Block of the mint: `ModelMinted` of this model is in this block.
    uint40 mintedBlock;
    /// Block of the latest transfer of the model token; 0 while the minter's `to` holds it.
    uint40 ownerSince;
    uint8 depth;
    uint8 royaltyNodes;
    /// Parents with a non-zero royalty share (the edges sales pay).
    uint8 royaltyParents;
    uint16 derivativeRoyaltyBps;
    /// ERC-2981 royalty on sales of the model token itself.
    uint16 saleRoyaltyBps;
    uint64 parent0;
    uint16 parent0Bps;
    /// The weights are stored encrypted only: the market escrows access and fine-tune sales
    /// until the model key is delivered to the buyer.
    bool encrypted;
}

/// @notice One lineage edge: the child model was derived from `modelId` under `licenseId`.
struct Parent {
    uint256 modelId;
    /// The fine-tune license the minter presented (consumed by the mint), or 0 when the minter
    /// owned the parent.
    uint256 licenseId;
    /// Share of every sale of the child owed to this parent: the license's share, and never
    /// less than the parent's derivative royalty floor.
    uint16 royaltyBps;
}

/// @notice What the minter of a model supplies.
struct MintParams {
    /// Receiver of the model token (and first receiver of its ERC-2981 royalty).
    address to;
    string weightsCid;
    bytes32 contentRoot;
    bytes32 fingerprint;
    string metadataUri;
    /// ERC-2981 royalty on sales of the model token itself. 0 for none.
    uint96 saleRoyaltyBps;
    /// Share of every sale of a derivative of this model owed to it, at least. Immutable.
    uint16 derivativeRoyaltyBps;
    /// The weights at `weightsCid` are encrypted (age format) and their key is delivered per
    /// buyer (see `LicenseMarket.deliverKey`). Immutable.
    bool encrypted;
    /// Parent model ids, and for each the fine-tune license the minter holds (0 = the minter
    /// owns the parent).
    uint256[] parents;
    uint256[] licenses;
}

/// @notice The terms of a license offering, as published. Immutable once published.
struct Terms {
    uint256 modelId;
    LicenseKind kind;
    /// address(0) for the native currency, else an ERC-20 the market accepts.
    address currency;
    /// At most 2**96 - 1.
    uint256 price;
    /// Seconds a purchase (or renewal) lasts; 0 = perpetual.
    uint64 duration;
    /// Maximum number of licenses sold; 0 = unlimited. At most 2**32 - 1.
    uint64 supplyCap;
    bool transferable;
    bool commercialUse;
    /// Fine-tune only: the share of every sale of the derivative owed to this model; at least
    /// the model's derivative royalty floor.
    uint16 royaltyBps;
    /// Seconds after the offering closes during which its licenses can still be renewed.
    uint64 renewalPeriod;
    /// Escrowed offerings only (access or fine-tune on an encrypted model): seconds the model's
    /// owner (or a keeper) has to deliver the key after a purchase before the buyer may take a
    /// refund; 1 to `MAX_DELIVERY_PERIOD`. Must be 0 for every other offering.
    uint64 deliveryPeriod;
    /// Event only: not stored.
    string termsUri;
    /// Event only: not stored.
    bytes32 termsHash;
}

/// @notice An offering as the market stores it (three slots).
struct Offering {
    uint64 modelId;
    uint64 duration;
    uint32 sold;
    uint32 supplyCap;
    LicenseKind kind;
    uint16 royaltyBps;
    bool transferable;
    bool commercialUse;
    bool closed;
    /// Sales are held in escrow until the model key is delivered (an access or fine-tune
    /// offering of an encrypted model).
    bool escrowed;
    address currency;
    uint96 price;
    address publisher;
    /// Timestamp of the closing; 0 while open.
    uint40 closedAt;
    /// At most MAX_DURATION (100 years, about 3.15e9 s), which fits 32 bits (4.29e9).
    uint32 renewalPeriod;
    /// At most MAX_DELIVERY_PERIOD (90 days, about 7.8e6 s), which fits 24 bits (1.68e7); 0
    /// unless escrowed.
    uint24 deliveryPeriod;
}

/// @notice A sold license with the terms of its offering and its validity window.
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
    /// Valid from `start` (the purchase; for an escrowed sale, the delivery of the key) ...
    uint64 start;
    /// ... until `expiry`, exclusive; 0 = perpetual.
    uint64 expiry;
}

/// @notice A batch of outputs an output license's holder committed (`OutputLedger`), in one
/// slot, keyed by its Merkle root. Append-only: never changed or removed once written.
struct OutputBatch {
    /// The output license that committed it (license ids start at 1, so 0 = not committed).
    uint96 licenseId;
    /// Block timestamp of the commit: the outputs existed by then.
    uint40 committedAt;
    /// Block of the commit: `OutputsCommitted` of this batch is in this block.
    uint48 blockNumber;
    /// Number of outputs (leaves) the provider declares; the contract cannot check it.
    uint64 count;
}

/// @notice What the registry needs from the market when a derivative is minted.
interface ILicenseMarket {
    /// The registry the market serves.
    function registry() external view returns (IModelRegistry);

    /// Consumes fine-tune license `licenseId` of `parentId` held by `holder` for one derivative
    /// (the license is burnt) and returns its royalty share. Only the registry may call it.
    function consume(uint256 licenseId, address holder, uint256 parentId) external returns (uint16 royaltyBps);
}

/// @notice What the market needs from the registry.
interface IModelRegistry {
    function exists(uint256 modelId) external view returns (bool);

    function ownerOf(uint256 modelId) external view returns (address);

    function headerOf(uint256 modelId) external view returns (ModelHeader memory);

    /// Who is paid for a sale of `modelId`: its owner (with the block it became owner, 0 since
    /// the mint) and the parents owed royalties, with their shares in basis points.
    function payees(uint256 modelId)
        external
        view
        returns (address owner, uint256 ownerSince, uint256[] memory parents, uint16[] memory bps);
}
