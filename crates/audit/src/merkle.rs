//! The Merkle tree of RFC 9162 §2.1, shaped for storage.
//!
//! The log stores one hash per *complete* aligned subtree ("node" `(level, index)` covers leaves
//! `[index·2^level, (index+1)·2^level)`), written once when its last leaf arrives and never
//! changed. Every hash a proof needs is either such a node or the hash of a leaf range whose
//! decomposition into nodes is known in advance, so proving is three steps: say which ranges the
//! proof is made of ([`inclusion_ranges`], [`consistency_ranges`]), read their nodes
//! ([`range_nodes`], one batched read of O(log n) rows) and fold them ([`range_hash`]).
//!
//! Verification lives apart, in [`crate::verify`], written from the RFC text alone.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ data)`: the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// One complete, aligned subtree: leaves `[index << level, (index + 1) << level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }
}

/// A half-open range of leaves `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafRange {
    pub start: u64,
    pub end: u64,
}

/// Largest power of two strictly smaller than `n` (`n ≥ 2`): RFC 9162's split point `k`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The complete aligned subtrees that make up `range`, left to right (largest first). For any
/// range produced by this module the list has at most ⌈log₂ n⌉ entries.
pub fn range_nodes(range: LeafRange) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let remaining = range.end - start;
        // Largest block aligned at `start` that fits in what is left.
        let align = if start == 0 { 63 } else { start.trailing_zeros() };
        let fit = 63 - remaining.leading_zeros();
        let level = align.min(fit);
        nodes.push(NodeId { level: level as u8, index: start >> level });
        start += 1u64 << level;
    }
    nodes
}

/// The hash of a range from the hashes of its [`range_nodes`] (same order): RFC 9162's MTH,
/// because each split point of MTH is the end of the largest complete left subtree.
pub fn range_hash(node_hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = node_hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc)))
}

/// Every node that must be read to hash `ranges` (deduplicated, sorted).
pub fn nodes_for(ranges: &[LeafRange]) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = ranges.iter().flat_map(|r| range_nodes(*r)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The hashes of `ranges`, from a lookup of the nodes named by [`nodes_for`]. `None` if a node is
/// missing (the tree is not as large as the ranges need).
pub fn hashes_for(ranges: &[LeafRange], lookup: impl Fn(&NodeId) -> Option<Hash>) -> Option<Vec<Hash>> {
    ranges
        .iter()
        .map(|r| {
            let hashes = range_nodes(*r).iter().map(&lookup).collect::<Option<Vec<Hash>>>()?;
            range_hash(&hashes)
        })
        .collect()
}

/// The ranges whose hashes form the inclusion proof of leaf `index` in a tree of `size` leaves
/// (RFC 9162 §2.1.3.1 PATH), ordered from the leaf up. `None` if `index >= size`.
pub fn inclusion_ranges(index: u64, size: u64) -> Option<Vec<LeafRange>> {
    if index >= size {
        return None;
    }
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            out.push(LeafRange { start: lo + k, end: hi });
            hi = lo + k;
        } else {
            out.push(LeafRange { start: lo, end: lo + k });
            lo += k;
        }
    }
    out.reverse();
    Some(out)
}

/// The ranges whose hashes form the consistency proof between tree sizes `old` and `new` (RFC 9162
/// §2.1.4.1 PROOF/SUBPROOF), ordered as the RFC emits them. `None` unless `0 < old <= new`.
pub fn consistency_ranges(old: u64, new: u64) -> Option<Vec<LeafRange>> {
    if old == 0 || old > new {
        return None;
    }
    let mut out = Vec::new();
    let (mut lo, mut hi, mut m, mut complete) = (0u64, new, old, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !complete {
                out.push(LeafRange { start: lo, end: hi });
            }
            break;
        }
        let k = split(n);
        if m <= k {
            out.push(LeafRange { start: lo + k, end: hi });
            hi = lo + k;
        } else {
            out.push(LeafRange { start: lo, end: lo + k });
            lo += k;
            m -= k;
            complete = false;
        }
    }
    out.reverse();
    Some(out)
}

/// The nodes that become complete when leaf `index` is appended (the leaf itself first, then each
/// parent it completes). Their hashes are computed by [`complete_nodes`].
pub fn nodes_completed_by(index: u64) -> Vec<NodeId> {
    let mut nodes = vec![NodeId::leaf(index)];
    let mut level = 0u8;
    while (index >> level) & 1 == 1 {
        level += 1;
        nodes.push(NodeId { level, index: index >> level });
    }
    nodes
}

/// The left siblings needed to compute the nodes completed by appending leaf `index`.
pub fn siblings_for_append(index: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut level = 0u8;
    while (index >> level) & 1 == 1 {
        out.push(NodeId { level, index: (index >> level) - 1 });
        level += 1;
    }
    out
}

/// Appends leaves to a tree whose right edge ("frontier": the nodes of `range_nodes(0..size)`) is
/// known, producing every newly complete node. Used by the writer (one batch per commit) and by
/// the full-log verifier, which streams every leaf through it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Hashes of `range_nodes(0..size)`, largest subtree first.
    edge: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of a tree of `size` leaves from the hashes of `range_nodes(0..size)`.
    pub fn from_edge(size: u64, edge: Vec<Hash>) -> Option<Self> {
        (range_nodes(LeafRange { start: 0, end: size }).len() == edge.len()).then_some(Self { size, edge })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the tree so far.
    pub fn root(&self) -> Hash {
        range_hash(&self.edge).unwrap_or_else(empty_root)
    }

    /// Appends one leaf hash; returns the nodes this completed with their hashes, leaf first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let index = self.size;
        let mut completed = vec![(NodeId::leaf(index), leaf)];
        let mut hash = leaf;
        let mut level = 0u8;
        while (index >> level) & 1 == 1 {
            // The left sibling is the smallest subtree on the current edge.
            let Some(left) = self.edge.pop() else { break };
            hash = node_hash(&left, &hash);
            level += 1;
            completed.push((NodeId { level, index: index >> level }, hash));
        }
        self.edge.push(hash);
        self.size += 1;
        completed
    }
}

/// Computes the hashes of [`nodes_completed_by`]`(index)` from the leaf hash and the hashes of
/// [`siblings_for_append`]`(index)` (same order).
pub fn complete_nodes(index: u64, leaf: Hash, siblings: &[Hash]) -> Vec<(NodeId, Hash)> {
    let mut out = vec![(NodeId::leaf(index), leaf)];
    let mut hash = leaf;
    for (level, left) in siblings.iter().enumerate() {
        hash = node_hash(left, &hash);
        out.push((NodeId { level: level as u8 + 1, index: index >> (level + 1) }, hash));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tree(n: u64) -> (Frontier, HashMap<NodeId, Hash>) {
        let mut f = Frontier::new();
        let mut nodes = HashMap::new();
        for i in 0..n {
            nodes.extend(f.push(leaf_hash(&i.to_be_bytes())));
        }
        (f, nodes)
    }

    /// MTH straight from RFC 9162 §2.1.1, recursive, as the reference.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn every_proof_range_hashes_to_its_mth() {
        let leaves: Vec<Hash> = (0..70u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let (_, nodes) = tree(70);
        for size in 1..=70u64 {
            let mut ranges = vec![LeafRange { start: 0, end: size }];
            for i in 0..size {
                ranges.extend(inclusion_ranges(i, size).unwrap());
                ranges.extend(consistency_ranges(i + 1, size).unwrap());
            }
            for r in ranges {
                // Every node of a proof range is complete in a tree that reaches its end.
                let hashes: Vec<Hash> = range_nodes(r).iter().map(|id| nodes[id]).collect();
                assert_eq!(range_hash(&hashes), Some(mth(&leaves[r.start as usize..r.end as usize])), "{r:?}");
            }
        }
    }

    #[test]
    fn frontier_root_matches_mth_and_rebuilds_from_edge() {
        let leaves: Vec<Hash> = (0..40u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for (i, l) in leaves.iter().enumerate() {
            let completed = f.push(*l);
            assert_eq!(completed.iter().map(|c| c.0).collect::<Vec<_>>(), nodes_completed_by(i as u64));
            assert_eq!(f.root(), mth(&leaves[..=i]));
            let rebuilt = Frontier::from_edge(f.size(), f.edge.clone()).unwrap();
            assert_eq!(rebuilt, f);
        }
    }

    #[test]
    fn complete_nodes_agrees_with_frontier() {
        let (_, nodes) = tree(64);
        let mut f = Frontier::new();
        for i in 0..64u64 {
            let leaf = leaf_hash(&i.to_be_bytes());
            let siblings: Vec<Hash> = siblings_for_append(i).iter().map(|id| nodes[id]).collect();
            assert_eq!(complete_nodes(i, leaf, &siblings), f.push(leaf));
        }
    }

    #[test]
    fn proof_ranges_have_logarithmic_reads() {
        let n = 1_000_003u64;
        for index in [0, 1, 500_000, n - 2, n - 1] {
            let reads: usize = inclusion_ranges(index, n).unwrap().into_iter().map(|r| range_nodes(r).len()).sum();
            assert!(reads <= 2 * 64 - (n.leading_zeros() as usize) * 2, "{reads} reads");
        }
        assert!(inclusion_ranges(5, 5).is_none());
        assert!(consistency_ranges(0, 5).is_none());
        assert!(consistency_ranges(6, 5).is_none());
        assert_eq!(consistency_ranges(5, 5), Some(vec![]));
    }
}
