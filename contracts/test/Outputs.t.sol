// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Cheats.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {OutputLedger} from "../src/OutputLedger.sol";
import {LicenseKind, MintParams, OutputBatch, Terms} from "../src/Types.sol";

/// @notice Output batches: the holder of a valid output license commits the Merkle root of a
/// batch of generated outputs once, and anyone proves an output's leaf against it. Every other
/// caller, kind of license or window is refused with a named error; a root is committed once.
contract OutputsTest is Fixture {
    bytes32 internal constant ROOT = keccak256("batch root");
    string internal constant URI = "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    uint64 internal constant COUNT = 1_000;
    /// The vector of `test_verify_matchesStandardMerkleTree`.
    address internal constant STANDARD_TREE_MARKET = 0xF62849F9A0B5Bf2913b396098F7c7019b51A820a;
    bytes32 internal constant STANDARD_TREE_LEAF0 = 0xf5181c614894b6233fa3e9dcb2aedd35aaa5477f6e176fde3a83ad1f7256c8ad;
    bytes32 internal constant STANDARD_TREE_ROOT = 0x441f1c4f9730dfbc04fa3964e3bb10aaf24738d81149cd1bdde8bf6990224f5c;

    /// A base model of alice, a 30-day output offering of it, and bob's license from it.
    uint256 internal model;
    uint256 internal outputs;
    uint256 internal lic;

    function setUp() public override {
        super.setUp();
        model = _mintBase(alice);
        outputs = _publish(_terms(model, LicenseKind.Output, NATIVE, 1 ether, 30 * DAY));
        lic = _buy(bob, outputs);
    }

    // ------------------------------------------------------------ helpers

    function _commit(address who, uint256 licenseId, bytes32 root) internal {
        vm.prank(who);
        market.commitOutputs(licenseId, root, COUNT, URI);
    }

    function _expectCommitRevert(address who, uint256 licenseId, bytes32 root, bytes memory reason) internal {
        vm.expectRevert(reason);
        _commit(who, licenseId, root);
    }

    function _notHolder(uint256 licenseId, address holder, address caller) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(LicenseMarket.NotLicenseHolder.selector, licenseId, holder, caller);
    }

    function _notValid(uint256 licenseId, uint64 start, uint64 expiry, uint64 at) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(LicenseMarket.LicenseNotValid.selector, licenseId, start, expiry, at);
    }

    function _alreadyCommitted(bytes32 root, uint256 licenseId) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(OutputLedger.RootAlreadyCommitted.selector, root, licenseId);
    }

    function _notOutput(uint256 licenseId, LicenseKind kind) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(OutputLedger.NotOutputLicense.selector, licenseId, kind);
    }

    function _assertBatch(bytes32 root, uint256 licenseId, uint256 at, uint256 blockNumber, uint256 count)
        internal
        view
    {
        OutputBatch memory b = market.outputBatch(root);
        vm.assertEq(b.licenseId, licenseId, "batch license");
        vm.assertEq(b.committedAt, at, "batch time");
        vm.assertEq(b.blockNumber, blockNumber, "batch block");
        vm.assertEq(b.count, count, "batch count");
    }

    /// The leaf of the `i`th output of a batch of `licenseId`: its content hash, production time
    /// and salt differ per output.
    function _leaf(uint256 licenseId, uint256 i) internal view returns (bytes32) {
        return market.outputLeaf(
            sha256(abi.encodePacked("generated output ", i)),
            licenseId,
            model,
            T0 + uint64(i),
            keccak256(abi.encode("salt", i))
        );
    }

    function _leaves(uint256 licenseId, uint256 n) internal view returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            leaves[i] = _leaf(licenseId, i);
        }
    }

    /// @dev OpenZeppelin StandardMerkleTree's tree of `leaves` as `StandardMerkleTree.of` builds
    /// it (`makeMerkleTree`): leaves sorted by hash, stored in reverse from the end of an array
    /// of 2n - 1 nodes, each inner node `i` the commutative hash of nodes 2i + 1 and 2i + 2. The
    /// root is node 0.
    function _tree(bytes32[] memory leaves) internal pure returns (bytes32[] memory tree) {
        bytes32[] memory sorted = _sorted(leaves);
        uint256 n = sorted.length;
        tree = new bytes32[](2 * n - 1);
        for (uint256 i; i < n; ++i) {
            tree[tree.length - 1 - i] = sorted[i];
        }
        for (uint256 i = tree.length - n; i > 0; --i) {
            tree[i - 1] = Hashes.commutativeKeccak256(tree[2 * i - 1], tree[2 * i]);
        }
    }

    /// @dev The proof of `leaf` in `tree` (`getProof`): its siblings up to the root.
    function _proof(bytes32[] memory tree, bytes32 leaf) internal pure returns (bytes32[] memory proof) {
        uint256 at = tree.length;
        while (tree[--at] != leaf) {}
        uint256 depth;
        for (uint256 i = at; i > 0; i = (i - 1) / 2) {
            ++depth;
        }
        proof = new bytes32[](depth);
        for (uint256 k; k < depth; ++k) {
            proof[k] = tree[at % 2 == 1 ? at + 1 : at - 1];
            at = (at - 1) / 2;
        }
    }

    function _sorted(bytes32[] memory a) internal pure returns (bytes32[] memory s) {
        s = new bytes32[](a.length);
        for (uint256 i; i < a.length; ++i) {
            uint256 j = i;
            for (; j > 0 && s[j - 1] > a[i]; --j) {
                s[j] = s[j - 1];
            }
            s[j] = a[i];
        }
    }

    // ------------------------------------------------------------ committing

    function test_commit_storesTheBatchAndEmits() public {
        vm.warp(T0 + 3 * DAY);
        vm.roll(4_242);
        vm.expectEmit(address(market));
        emit OutputLedger.OutputsCommitted(lic, model, bob, ROOT, COUNT, URI);
        _commit(bob, lic, ROOT);
        _assertBatch(ROOT, lic, T0 + 3 * DAY, 4_242, COUNT);
        _assertBatch(keccak256("another root"), 0, 0, 0, 0);
    }

    /// The event carries the exact fields: three topics (license, model, provider) and the root,
    /// count and uri as data, an empty uri included.
    function test_commit_eventFieldsExact() public {
        vm.recordLogs();
        vm.prank(bob);
        market.commitOutputs(lic, ROOT, 7, "");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        vm.assertEq(logs.length, 1, "one event");
        vm.assertEq(logs[0].emitter, address(market), "emitter");
        vm.assertEq(logs[0].topics.length, 4, "topics");
        vm.assertEq(logs[0].topics[0], OutputLedger.OutputsCommitted.selector, "signature");
        vm.assertEq(uint256(logs[0].topics[1]), lic, "license topic");
        vm.assertEq(uint256(logs[0].topics[2]), model, "model topic");
        vm.assertEq(address(uint160(uint256(logs[0].topics[3]))), bob, "provider topic");
        (bytes32 root, uint64 count, string memory uri) = abi.decode(logs[0].data, (bytes32, uint64, string));
        vm.assertEq(root, ROOT, "root");
        vm.assertEq(count, 7, "count");
        vm.assertEq(uri, "", "uri");
    }

    function test_commit_emptyRootRefused() public {
        _expectCommitRevert(bob, lic, bytes32(0), abi.encodeWithSelector(OutputLedger.EmptyRoot.selector));
    }

    function test_commit_emptyBatchRefused() public {
        vm.expectRevert(abi.encodeWithSelector(OutputLedger.EmptyBatch.selector));
        vm.prank(bob);
        market.commitOutputs(lic, ROOT, 0, URI);
        _assertBatch(ROOT, 0, 0, 0, 0);
    }

    function test_commit_sameRootTwiceRefused_alsoByAnotherLicense() public {
        _commit(bob, lic, ROOT);
        _expectCommitRevert(bob, lic, ROOT, _alreadyCommitted(ROOT, lic));
        // Another provider's output license of another model: the root is the first license's.
        uint256 other = _mintBase(dave);
        uint256 carols = _buy(carol, _publish(_terms(other, LicenseKind.Output, NATIVE, 0, 0)));
        _expectCommitRevert(carol, carols, ROOT, _alreadyCommitted(ROOT, lic));
        _assertBatch(ROOT, lic, T0, block.number, COUNT);
        // The other license commits roots of its own.
        _commit(carol, carols, keccak256("carol's root"));
        _assertBatch(keccak256("carol's root"), carols, T0, block.number, COUNT);
    }

    function test_commit_unknownLicenseRefused() public {
        _expectCommitRevert(bob, 0, ROOT, abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, uint256(0)));
        uint256 next = market.totalLicenses() + 1;
        _expectCommitRevert(bob, next, ROOT, abi.encodeWithSelector(LicenseMarket.UnknownLicense.selector, next));
        uint256 huge = uint256(type(uint96).max) + 1;
        _expectCommitRevert(bob, huge, ROOT, abi.encodeWithSelector(OutputLedger.LicenseIdTooLarge.selector, huge));
    }

    function test_commit_byNonHolderRefused() public {
        _expectCommitRevert(carol, lic, ROOT, _notHolder(lic, bob, carol));
        // Not the model's owner either: an output license is a right of its holder only.
        _expectCommitRevert(alice, lic, ROOT, _notHolder(lic, bob, alice));
        // Nor an operator the holder approved: commits speak for the provider.
        vm.prank(bob);
        market.approve(dave, lic);
        _expectCommitRevert(dave, lic, ROOT, _notHolder(lic, bob, dave));
        _assertBatch(ROOT, 0, 0, 0, 0);
    }

    function test_commit_accessAndFineTuneLicensesRefused() public {
        uint256 access = _buy(bob, _publish(_terms(model, LicenseKind.Access, NATIVE, 0, 0)));
        _expectCommitRevert(bob, access, ROOT, _notOutput(access, LicenseKind.Access));
        uint256 fineTune = _fineTuneLicense(bob, model, 0);
        _expectCommitRevert(bob, fineTune, ROOT, _notOutput(fineTune, LicenseKind.FineTune));
    }

    /// Windows are half-open: the last second before expiry commits, the expiry second does not.
    function test_commit_expiredLicenseRefused() public {
        uint64 expiry = T0 + 30 * DAY;
        vm.warp(expiry);
        _expectCommitRevert(bob, lic, ROOT, _notValid(lic, T0, expiry, expiry));
        vm.warp(expiry + 365 * DAY);
        _expectCommitRevert(bob, lic, ROOT, _notValid(lic, T0, expiry, expiry + 365 * DAY));
        vm.warp(expiry - 1);
        _commit(bob, lic, ROOT);
        _assertBatch(ROOT, lic, expiry - 1, block.number, COUNT);
    }

    /// A renewal extends what the license may commit for: validity is the rights view's window.
    function test_commit_renewedLicenseCommitsPastItsFirstExpiry() public {
        vm.warp(T0 + 29 * DAY);
        _renew(bob, lic);
        vm.warp(T0 + 45 * DAY);
        _commit(bob, lic, ROOT);
        _assertBatch(ROOT, lic, T0 + 45 * DAY, block.number, COUNT);
    }

    /// Before its start a license is not valid. A license starts at its purchase (output
    /// licenses are never escrowed), so only a clock set back reaches this bound: the check is
    /// `_validAt`'s, shared with the rights view.
    function test_commit_beforeStartRefused() public {
        vm.warp(T0 - 1);
        _expectCommitRevert(bob, lic, ROOT, _notValid(lic, T0, T0 + 30 * DAY, T0 - 1));
    }

    /// Output licenses are never burnt (only fine-tune licenses are consumed, only escrowed
    /// ones refunded); a burnt license of any kind is held by nobody, so its former holder is
    /// refused as a non-holder.
    function test_commit_burntLicensesRefused() public {
        uint256 fineTune = _fineTuneLicense(bob, model, 0);
        _mintChild(bob, _ids(model), _ids(fineTune));
        _expectCommitRevert(bob, fineTune, ROOT, _notHolder(fineTune, address(0), bob));

        MintParams memory p = _params(alice);
        p.encrypted = true;
        vm.prank(alice);
        uint256 encrypted = registry.mint(p);
        Terms memory t = _terms(encrypted, LicenseKind.Access, NATIVE, 1 ether, 0);
        t.deliveryPeriod = 3 * DAY;
        uint256 refunded = _buy(carol, _publish(t));
        // Pending its key, the license is carol's but no output license.
        _expectCommitRevert(carol, refunded, ROOT, _notOutput(refunded, LicenseKind.Access));
        vm.warp(T0 + 3 * DAY);
        market.refund(refunded);
        _expectCommitRevert(carol, refunded, ROOT, _notHolder(refunded, address(0), carol));
    }

    /// An output license of an encrypted model is not escrowed (outputs need no key): it
    /// commits at once.
    function test_commit_outputLicenseOfAnEncryptedModelCommitsAtOnce() public {
        MintParams memory p = _params(alice);
        p.encrypted = true;
        vm.prank(alice);
        uint256 encrypted = registry.mint(p);
        uint256 l = _buy(carol, _publish(_terms(encrypted, LicenseKind.Output, NATIVE, 1 ether, 0)));
        vm.expectEmit(address(market));
        emit OutputLedger.OutputsCommitted(l, encrypted, carol, ROOT, COUNT, URI);
        _commit(carol, l, ROOT);
    }

    /// The right follows the license: once transferred, the old holder cannot commit and the
    /// new one can; batches committed before stay the license's.
    function test_commit_followsTheLicenseToItsNewHolder() public {
        _commit(bob, lic, ROOT);
        vm.prank(bob);
        market.transferFrom(bob, carol, lic);
        bytes32 next = keccak256("next root");
        _expectCommitRevert(bob, lic, next, _notHolder(lic, carol, bob));
        vm.expectEmit(address(market));
        emit OutputLedger.OutputsCommitted(lic, model, carol, next, COUNT, URI);
        _commit(carol, lic, next);
        _assertBatch(ROOT, lic, T0, block.number, COUNT);
        _assertBatch(next, lic, T0, block.number, COUNT);
    }

    function testFuzz_commitAnyRootOnceThenNever(bytes32 root, uint64 count, uint32 later) public {
        vm.assume(root != bytes32(0));
        count = uint64(bound(count, 1, type(uint64).max));
        vm.prank(bob);
        market.commitOutputs(lic, root, count, "");
        _assertBatch(root, lic, T0, block.number, count);
        vm.warp(T0 + bound(later, 0, 30 * DAY - 1));
        vm.roll(block.number + 1);
        vm.expectRevert(_alreadyCommitted(root, lic));
        vm.prank(bob);
        market.commitOutputs(lic, root, count, URI);
        uint256 carols = _buy(carol, outputs);
        vm.expectRevert(_alreadyCommitted(root, lic));
        vm.prank(carol);
        market.commitOutputs(carols, root, 1, "");
        _assertBatch(root, lic, T0, block.number - 1, count);
    }

    // ------------------------------------------------------------ proofs

    /// Each of the five outputs of a committed batch proves its leaf; a changed leaf, a proof of
    /// another leaf and an uncommitted root prove nothing.
    function test_verify_fiveLeafTree() public {
        bytes32[] memory leaves = _leaves(lic, 5);
        bytes32[] memory tree = _tree(leaves);
        bytes32 root = tree[0];
        vm.assertFalse(market.verifyOutput(root, leaves[0], _proof(tree, leaves[0])), "uncommitted root");
        _commit(bob, lic, root);
        for (uint256 i; i < 5; ++i) {
            vm.assertTrue(market.verifyOutput(root, leaves[i], _proof(tree, leaves[i])), "real proof");
        }
        bytes32[] memory proof0 = _proof(tree, leaves[0]);
        // The same output with another salt.
        bytes32 changed = market.outputLeaf(
            sha256(abi.encodePacked("generated output ", uint256(0))), lic, model, T0, keccak256("other salt")
        );
        vm.assertFalse(market.verifyOutput(root, changed, proof0), "changed leaf");
        vm.assertFalse(market.verifyOutput(root, leaves[1], proof0), "proof of another leaf");
        vm.assertFalse(market.verifyOutput(root, _leaf(lic, 5), proof0), "leaf outside the batch");
        // The same tree's root, had it not been committed, and a root committed by no-one.
        bytes32[] memory four = _tree(_leaves(lic, 4));
        vm.assertFalse(market.verifyOutput(four[0], leaves[0], _proof(four, leaves[0])), "uncommitted root");
        vm.assertFalse(market.verifyOutput(bytes32(0), leaves[0], new bytes32[](0)), "zero root");
    }

    /// A batch of one output: its root is its leaf, proved by the empty proof.
    function test_verify_singleOutputBatch() public {
        bytes32 leaf = _leaf(lic, 0);
        _commit(bob, lic, leaf);
        vm.assertTrue(market.verifyOutput(leaf, leaf, new bytes32[](0)), "root is the leaf");
        vm.assertFalse(market.verifyOutput(leaf, _leaf(lic, 1), new bytes32[](0)), "another leaf");
    }

    /// Why a verifier computes the leaf from the output's fields (`outputLeaf`): as with any
    /// Merkle proof, an inner node passes as a bare hash with a shorter proof. No output's leaf
    /// is an inner node: a leaf hashes 32 bytes, an inner node 64.
    function test_verify_innerNodePassesOnlyAsABareHash() public {
        bytes32[] memory leaves = _leaves(lic, 5);
        bytes32[] memory tree = _tree(leaves);
        _commit(bob, lic, tree[0]);
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = tree[2];
        vm.assertTrue(market.verifyOutput(tree[0], tree[1], proof), "inner node as a bare hash");
        for (uint256 i; i < 5; ++i) {
            vm.assertNotEq(leaves[i], tree[1], "no leaf is that node");
        }
    }

    /// The Solidity tree above is OpenZeppelin's: the first leaf and the root of these five
    /// leaves as OpenZeppelin's merkle-tree package (1.0.8, in the repository's node_modules)
    /// computes them, `StandardMerkleTree.of(values, types)` with the types of `outputLeaf`'s
    /// tuple and the values of `_leaf`, for this fixture's market on chain 31337.
    function test_verify_matchesStandardMerkleTree() public view {
        vm.assertEq(address(market), STANDARD_TREE_MARKET, "the vector's market");
        vm.assertEq(block.chainid, 31_337, "the vector's chain");
        vm.assertEq(_leaf(lic, 0), STANDARD_TREE_LEAF0, "leaf hash");
        vm.assertEq(_tree(_leaves(lic, 5))[0], STANDARD_TREE_ROOT, "root");
    }

    // ------------------------------------------------------------ leaves

    function test_outputLeaf_isTheStandardLeafOfTheTaggedTuple() public view {
        vm.assertEq(market.OUTPUT_LEAF_TAG(), keccak256("ModelRegistry.OutputLeaf.v1"), "tag");
        bytes32 sha = sha256("output");
        bytes32 inner = keccak256(
            abi.encode(
                keccak256("ModelRegistry.OutputLeaf.v1"),
                sha,
                uint256(31_337),
                address(market),
                lic,
                model,
                uint64(T0),
                bytes32("salt")
            )
        );
        vm.assertEq(market.outputLeaf(sha, lic, model, T0, "salt"), keccak256(abi.encode(inner)), "leaf");
    }

    /// Each field of a leaf is bound: changing any one of them changes the leaf.
    function test_outputLeaf_changesWithEveryField() public {
        bytes32 sha = sha256("output");
        bytes32 leaf = market.outputLeaf(sha, lic, model, T0, "salt");
        vm.assertNotEq(market.outputLeaf(sha256("output!"), lic, model, T0, "salt"), leaf, "content");
        vm.assertNotEq(market.outputLeaf(sha, lic + 1, model, T0, "salt"), leaf, "license");
        vm.assertNotEq(market.outputLeaf(sha, lic, model + 1, T0, "salt"), leaf, "model");
        vm.assertNotEq(market.outputLeaf(sha, lic, model, T0 + 1, "salt"), leaf, "time");
        vm.assertNotEq(market.outputLeaf(sha, lic, model, T0, "salt!"), leaf, "salt");
        LicenseMarket second = _marketAccepting(address(token));
        vm.assertNotEq(second.outputLeaf(sha, lic, model, T0, "salt"), leaf, "market");
        vm.assertEq(market.outputLeaf(sha, lic, model, T0, "salt"), leaf, "same fields, same leaf");
        vm.chainId(1);
        vm.assertNotEq(market.outputLeaf(sha, lic, model, T0, "salt"), leaf, "chain");
    }
}
