//! Proof verification written from the text of RFC 9162 §2.1.3.2 and §2.1.4.2 alone.
//!
//! It deliberately shares nothing with the proof *generation* in [`crate::merkle`] except the two
//! hash functions, so a bug in one is caught by the other. Hashes arrive as byte slices straight
//! from the wire; anything that is not 32 bytes fails verification.

use crate::merkle::{node_hash, Hash};

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("a hash is not 32 bytes")]
    HashLength,
    #[error("index is outside the tree")]
    IndexOutOfRange,
    #[error("tree sizes are not in order")]
    SizesOutOfOrder,
    #[error("a consistency proof from the empty tree proves nothing")]
    EmptyTree,
    #[error("proof has the wrong number of hashes")]
    WrongLength,
    #[error("computed root does not match")]
    RootMismatch,
}

fn hash32(bytes: &[u8]) -> Result<Hash, ProofError> {
    bytes.try_into().map_err(|_| ProofError::HashLength)
}

/// RFC 9162 §2.1.3.2: verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves whose
/// root is `root`, given the inclusion path `proof`.
pub fn verify_inclusion<P: AsRef<[u8]>>(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    let root = hash32(root)?;
    let mut r = hash32(leaf_hash)?;
    // 1. leaf_index must be below tree_size.
    if index >= size {
        return Err(ProofError::IndexOutOfRange);
    }
    // 2.
    let (mut f_n, mut s_n) = (index, size - 1);
    // 4.
    for p in proof {
        let p = hash32(p.as_ref())?;
        // 4a.
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        // 4b.
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(&p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, &p);
        }
        // 4c.
        f_n >>= 1;
        s_n >>= 1;
    }
    // 5.
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verifies that the tree of `old_size` leaves with root `old_root` is a prefix
/// of the tree of `new_size` leaves with root `new_root`, given the consistency `proof`.
///
/// Cases the RFC leaves implicit, decided as the transparency-dev test data does: equal sizes need
/// an empty proof and equal roots; a proof from the empty tree (size 0) proves nothing and fails.
pub fn verify_consistency<P: AsRef<[u8]>>(
    old_size: u64,
    new_size: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[P],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder);
    }
    if old_size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    let first_hash = hash32(old_root)?;
    let second_hash = hash32(new_root)?;
    // 1.
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path = Vec::with_capacity(proof.len() + 1);
    // 2. If first is an exact power of 2, prepend first_hash.
    if old_size.is_power_of_two() {
        path.push(first_hash);
    }
    for p in proof {
        path.push(hash32(p.as_ref())?);
    }
    // 3.
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    // 4.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // 5.
    let (mut f_r, mut s_r) = (path[0], path[0]);
    // 6.
    for c in &path[1..] {
        // 6a.
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        // 6b.
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        // 6c.
        f_n >>= 1;
        s_n >>= 1;
    }
    // 7.
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if f_r != first_hash || s_r != second_hash {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}
