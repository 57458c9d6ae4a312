//! A batch's Merkle tree, built exactly as OpenZeppelin's `StandardMerkleTree` builds it, so
//! its root and proofs are the ones that library gives for the same leaves, and a proof
//! verifies with Solidity's `MerkleProof.verify`:
//!
//! - the leaf hashes are sorted (bytewise, ascending);
//! - the tree is an array of `2n - 1` nodes, the sorted leaves at its end in reverse order
//!   (`tree[2n - 2 - i] = leaves[i]`), every inner node `i` the hash of its children `2i + 1`
//!   and `2i + 2`, the root at `tree[0]`;
//! - a pair hashes as `keccak256(min ‖ max)` (sorted, so a proof needs no left/right flags);
//! - a leaf's proof is its sibling, its parent's sibling, … up to the root.

use std::collections::HashMap;

use ethers::types::H256;
use ethers::utils::keccak256;

/// The hash of two nodes, in either order.
pub fn hash_pair(a: &H256, b: &H256) -> H256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(lo.as_bytes());
    both[32..].copy_from_slice(hi.as_bytes());
    H256(keccak256(both))
}

/// The root a proof leads to from `leaf`.
pub fn fold(leaf: &H256, proof: &[H256]) -> H256 {
    proof
        .iter()
        .fold(*leaf, |node, sibling| hash_pair(&node, sibling))
}

/// A built tree.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<H256>,
    /// Where each leaf hash sits in `nodes`.
    index: HashMap<H256, usize>,
}

impl Tree {
    /// The tree of `leaves` (hashes, in any order). `None` for no leaves; a repeated leaf
    /// hash is kept once per occurrence, as the library keeps it.
    pub fn build(leaves: &[H256]) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut sorted = leaves.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let mut nodes = vec![H256::zero(); 2 * n - 1];
        let mut index = HashMap::with_capacity(n);
        for (i, leaf) in sorted.iter().enumerate() {
            let at = nodes.len() - 1 - i;
            nodes[at] = *leaf;
            index.entry(*leaf).or_insert(at);
        }
        for i in (0..nodes.len() - n).rev() {
            nodes[i] = hash_pair(&nodes[2 * i + 1], &nodes[2 * i + 2]);
        }
        Some(Self { nodes, index })
    }

    pub fn root(&self) -> H256 {
        self.nodes[0]
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.nodes.len().div_ceil(2)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The proof of `leaf`, or `None` when it is not in the tree.
    pub fn proof(&self, leaf: &H256) -> Option<Vec<H256>> {
        let mut at = *self.index.get(leaf)?;
        let mut proof = Vec::new();
        while at > 0 {
            // Odd indices are left children, their siblings follow them; even ones precede.
            let sibling = if at % 2 == 1 { at + 1 } else { at - 1 };
            proof.push(self.nodes[sibling]);
            at = (at - 1) / 2;
        }
        Some(proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u32) -> H256 {
        H256(keccak256(i.to_le_bytes()))
    }

    #[test]
    fn every_leaf_proves_the_root_and_nothing_else_does() {
        for n in [1u32, 2, 3, 4, 5, 7, 8, 9, 100] {
            let leaves: Vec<_> = (0..n).map(leaf).collect();
            let tree = Tree::build(&leaves).unwrap();
            assert_eq!(tree.len(), n as usize);
            for l in &leaves {
                let proof = tree.proof(l).unwrap();
                assert_eq!(fold(l, &proof), tree.root(), "leaf of {n}");
                let mut other = *l;
                other.0[0] ^= 1;
                assert_ne!(fold(&other, &proof), tree.root(), "a changed leaf, {n}");
            }
            assert!(tree.proof(&leaf(n)).is_none());
            // The order the leaves come in does not matter.
            let mut reversed = leaves.clone();
            reversed.reverse();
            assert_eq!(Tree::build(&reversed).unwrap().root(), tree.root());
        }
        assert!(Tree::build(&[]).is_none());
        // One leaf: the root is the leaf, its proof empty.
        let one = Tree::build(&[leaf(7)]).unwrap();
        assert_eq!(one.root(), leaf(7));
        assert!(one.proof(&leaf(7)).unwrap().is_empty());
    }
}
