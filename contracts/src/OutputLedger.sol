// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {LicenseKind, OutputBatch} from "./Types.sol";

/// @title OutputLedger
/// @notice Batches of generated outputs committed by the holders of output licenses: what makes
/// an output license mean something. An inference provider holding a valid output license of a
/// model commits, once, the Merkle root of a batch of outputs it generated under that license;
/// anyone can later prove that an output was in a committed batch (`verifyOutput`), so a
/// provider's claim "generated under license L of model M by time T" is checkable.
///
/// - Leaves are OpenZeppelin StandardMerkleTree leaves of the tuple `outputLeaf` documents: the
///   output's SHA-256, the chain, this market, the license, its model, when the output was
///   produced, and a salt (so that a leaf of a guessable output reveals nothing). Trees are built
///   off-chain with StandardMerkleTree (sorted pairs, `Hashes.commutativeKeccak256`).
/// - A root is committed once, by one license, and batches are append-only: nothing changes or
///   removes a batch, so an answer of `outputBatch` or `verifyOutput` never changes once true.
/// - What the ledger cannot check: that the outputs exist, that `count` is the number of leaves,
///   or that the leaves name the committing license. A root is anyone's to commit first, so a
///   holder of another output license seeing a commit pending can commit the same root first
///   (its provider then adds a salt and commits again): a verifier must check that the license in
///   the leaf's fields is the batch's (`outputBatch(root).licenseId`).
///
/// The license checks need the market's storage: the market implements `_outputLicense`.
abstract contract OutputLedger {
    /// First value of every output leaf's tuple: the leaves of this ledger cannot be mistaken for
    /// another tuple of the same types, and a v2 encoding would take another tag.
    bytes32 public constant OUTPUT_LEAF_TAG = keccak256("ModelRegistry.OutputLeaf.v1");

    /// Committed batches by Merkle root. A batch whose `licenseId` is 0 was never committed.
    mapping(bytes32 root => OutputBatch) internal _outputBatches;

    /// `provider`, holder of output license `licenseId` of `modelId`, committed the batch of
    /// `count` outputs with Merkle root `root`; `uri` is where the provider publishes the batch
    /// (possibly empty). The uri is kept in the event only.
    event OutputsCommitted(
        uint256 indexed licenseId,
        uint256 indexed modelId,
        address indexed provider,
        bytes32 root,
        uint64 count,
        string uri
    );

    error EmptyRoot();
    error EmptyBatch();
    /// `root` was committed before, by license `licenseId`.
    error RootAlreadyCommitted(bytes32 root, uint256 licenseId);
    error NotOutputLicense(uint256 licenseId, LicenseKind kind);
    /// A batch names its license in 96 bits.
    error LicenseIdTooLarge(uint256 licenseId);

    /// @notice Commits the batch of `count` outputs with Merkle root `root`, generated under
    /// output license `licenseId`, which the caller must hold and which must be valid now (a
    /// batch committed under an expired license would claim rights the provider no longer has).
    /// Once per root, for ever.
    function commitOutputs(uint256 licenseId, bytes32 root, uint64 count, string calldata uri) external {
        if (root == bytes32(0)) revert EmptyRoot();
        if (count == 0) revert EmptyBatch();
        if (licenseId > type(uint96).max) revert LicenseIdTooLarge(licenseId);
        uint96 committedBy = _outputBatches[root].licenseId;
        if (committedBy != 0) revert RootAlreadyCommitted(root, committedBy);
        uint256 modelId = _outputLicense(licenseId, msg.sender);
        // The id was checked above; timestamps fit 40 bits and block numbers 48 for millennia.
        // forge-lint: disable-next-line(unsafe-typecast)
        _outputBatches[root] = OutputBatch(uint96(licenseId), uint40(block.timestamp), uint48(block.number), count);
        emit OutputsCommitted(licenseId, modelId, msg.sender, root, count, uri);
    }

    /// @notice The batch committed with Merkle root `root`; zeros when none was.
    function outputBatch(bytes32 root) external view returns (OutputBatch memory) {
        return _outputBatches[root];
    }

    /// @notice Whether `leaf` is in the committed batch with Merkle root `root`, by `proof` (a
    /// StandardMerkleTree proof). Pass a leaf computed by `outputLeaf` from the output's fields:
    /// the proof of a bare hash proves nothing about an output (every inner node of a tree passes
    /// with a shorter proof). Then check the batch's license against the leaf's (`outputBatch`).
    function verifyOutput(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        return _outputBatches[root].licenseId != 0 && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice The leaf of an output in a batch of this market: the StandardMerkleTree leaf
    /// (double keccak of the ABI encoding) of the tuple (bytes32 tag, bytes32 contentSha256,
    /// uint256 chainId, address market, uint256 licenseId, uint256 modelId, uint64 producedAt,
    /// bytes32 salt), the tag being `OUTPUT_LEAF_TAG`. The chain and the market bind a leaf to
    /// one deployment; the double hash keeps a leaf (a 32-byte preimage) from ever equalling an
    /// inner node (a 64-byte one).
    function outputLeaf(bytes32 contentSha256, uint256 licenseId, uint256 modelId, uint64 producedAt, bytes32 salt)
        public
        view
        returns (bytes32)
    {
        return keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        OUTPUT_LEAF_TAG,
                        contentSha256,
                        block.chainid,
                        address(this),
                        licenseId,
                        modelId,
                        producedAt,
                        salt
                    )
                )
            )
        );
    }

    /// @dev The model of output license `licenseId` once `caller` may commit under it: it must
    /// exist (else `UnknownLicense`), be held by `caller` (`NotLicenseHolder`), be an output
    /// license (`NotOutputLicense`) and be valid now (`LicenseNotValid`).
    function _outputLicense(uint256 licenseId, address caller) internal view virtual returns (uint256 modelId);
}
