//! Merkle proofs as a specification: the RFC 6962 reference tree, the transparency-dev test data
//! (good and bad proofs), a cross-check against an independent generator (Go's sumdb/tlog as
//! ported in `tlog_tiles`), and properties over random trees.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use proptest::prelude::*;
use sigillum_audit::merkle::{self, consistency_ranges, hashes_for, inclusion_ranges, Frontier, Hash, NodeId};
use sigillum_audit::{leaf_hash, verify_consistency, verify_inclusion};

/// An in-memory log: every complete node, as the database stores them.
struct MemLog {
    frontier: Frontier,
    nodes: HashMap<NodeId, Hash>,
    roots: Vec<Hash>,
}

impl MemLog {
    fn new(leaves: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut log = Self { frontier: Frontier::new(), nodes: HashMap::new(), roots: vec![merkle::empty_root()] };
        for leaf in leaves {
            log.nodes.extend(log.frontier.push(leaf_hash(&leaf)));
            log.roots.push(log.frontier.root());
        }
        log
    }
    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        hashes_for(&inclusion_ranges(index, size).unwrap(), |id| self.nodes.get(id).copied()).unwrap()
    }
    fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        hashes_for(&consistency_ranges(old, new).unwrap(), |id| self.nodes.get(id).copied()).unwrap()
    }
    fn leaf(&self, index: u64) -> Hash {
        self.nodes[&NodeId::leaf(index)]
    }
}

/// The eight leaves of the RFC 6962 reference tree (certificate-transparency test data).
fn reference_leaves() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        (0x60..=0x6f).collect(),
    ]
}

const REFERENCE_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn reference_tree_roots_for_every_prefix() {
    let log = MemLog::new(reference_leaves());
    for (i, want) in REFERENCE_ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(log.roots[i + 1]), *want, "root of the first {} leaves", i + 1);
    }
    assert_eq!(
        hex::encode(log.roots[0]),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "empty tree"
    );
}

#[test]
fn reference_tree_proofs_verify_for_every_index_and_prefix() {
    let log = MemLog::new(reference_leaves());
    for size in 1..=8u64 {
        for index in 0..size {
            let proof = log.inclusion(index, size);
            verify_inclusion(index, size, &log.leaf(index), &proof, &log.roots[size as usize]).unwrap();
        }
        for old in 1..=size {
            let proof = log.consistency(old, size);
            verify_consistency(old, size, &log.roots[old as usize], &log.roots[size as usize], &proof).unwrap();
        }
    }
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    v.as_str().map(|s| B64.decode(s).unwrap()).unwrap_or_default()
}

fn b64_list(v: &serde_json::Value) -> Vec<Vec<u8>> {
    v.as_array().map(|a| a.iter().map(b64).collect()).unwrap_or_default()
}

fn json_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// All 196 transparency-dev cases, good and bad, through the RFC 9162 verifier; the good ones
/// from the reference tree must also be exactly what our generator produces.
#[test]
fn transparency_dev_vectors() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transparency-dev-merkle");
    let log = MemLog::new(reference_leaves());
    let (mut cases, mut generated_matches) = (0, 0);
    for kind in ["inclusion", "consistency"] {
        let mut files = Vec::new();
        json_files(&data.join(kind), &mut files);
        files.sort();
        for file in files {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            let want_err = v["wantErr"].as_bool().unwrap();
            let proof = b64_list(&v["proof"]);
            let result = if kind == "inclusion" {
                let (index, size) = (v["leafIdx"].as_u64().unwrap(), v["treeSize"].as_u64().unwrap());
                let r = verify_inclusion(index, size, &b64(&v["leafHash"]), &proof, &b64(&v["root"]));
                if !want_err && size <= 8 && b64(&v["root"]) == log.roots[size as usize] {
                    let ours: Vec<Vec<u8>> = log.inclusion(index, size).iter().map(|h| h.to_vec()).collect();
                    assert_eq!(ours, proof, "{}", file.display());
                    generated_matches += 1;
                }
                r
            } else {
                let (m, n) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
                let r = verify_consistency(m, n, &b64(&v["root1"]), &b64(&v["root2"]), &proof);
                if !want_err && 0 < m && n <= 8 && b64(&v["root2"]) == log.roots[n as usize] {
                    let ours: Vec<Vec<u8>> = log.consistency(m, n).iter().map(|h| h.to_vec()).collect();
                    assert_eq!(ours, proof, "{}", file.display());
                    generated_matches += 1;
                }
                r
            };
            assert_eq!(result.is_err(), want_err, "{}: {:?} ({})", file.display(), result, v["desc"]);
            cases += 1;
        }
    }
    assert_eq!(cases, 196);
    assert!(generated_matches >= 10, "only {generated_matches} generated proofs compared");
}

/// Go's sumdb/tlog (ported by Cloudflare as `tlog_tiles`) generates the same proofs and roots.
#[test]
fn proofs_match_an_independent_generator() {
    struct Stored(Vec<tlog_tiles::Hash>);
    impl tlog_tiles::HashReader for Stored {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
            Ok(indexes.iter().map(|i| self.0[*i as usize]).collect())
        }
    }
    let n = 300u64;
    let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("event {i}").into_bytes()).collect();
    let log = MemLog::new(leaves.clone());
    let mut stored = Stored(Vec::new());
    for (i, leaf) in leaves.iter().enumerate() {
        let more = tlog_tiles::stored_hashes(i as u64, leaf, &stored).unwrap();
        stored.0.extend(more);
    }
    for size in [1u64, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300] {
        assert_eq!(tlog_tiles::tree_hash(size, &stored).unwrap().0, log.roots[size as usize]);
        for index in (0..size).step_by(7).chain([size - 1]) {
            let theirs: Vec<Hash> =
                tlog_tiles::prove_record(size, index, &stored).unwrap().into_iter().map(|h| h.0).collect();
            assert_eq!(log.inclusion(index, size), theirs, "inclusion {index} in {size}");
        }
        for old in (1..=size).step_by(5).chain([size]) {
            let theirs: Vec<Hash> =
                tlog_tiles::prove_tree(size, old, &stored).unwrap().into_iter().map(|h| h.0).collect();
            assert_eq!(log.consistency(old, size), theirs, "consistency {old} → {size}");
        }
    }
}

/// One way to spoil a proof's hashes; every one must make verification fail. (Changing only the
/// claimed index or size is not always detectable by a proof alone — a smaller tree's root can equal
/// a differently shaped larger one's — so those cases are covered by the exhaustive test and the
/// vectors instead.)
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { hash: usize, bit: usize },
    Drop(usize),
    Append,
    Swap(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..256).prop_map(|(hash, bit)| Mutation::FlipBit { hash, bit }),
        any::<usize>().prop_map(Mutation::Drop),
        Just(Mutation::Append),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

/// Applies a mutation; `None` when it would not change anything (empty proof, equal swapped hashes).
fn mutate(proof: &[Hash], a: u64, b: u64, m: &Mutation) -> Option<(Vec<Hash>, u64, u64)> {
    let mut p = proof.to_vec();
    match *m {
        Mutation::FlipBit { hash, bit } => {
            let i = hash.checked_rem(p.len())?;
            p[i][bit / 8] ^= 1 << (bit % 8);
        }
        Mutation::Drop(i) => {
            let i = i.checked_rem(p.len())?;
            p.remove(i);
        }
        Mutation::Append => p.push([0x5a; 32]),
        Mutation::Swap(i, j) => {
            let (i, j) = (i.checked_rem(p.len())?, j.checked_rem(p.len())?);
            if p[i] == p[j] {
                return None;
            }
            p.swap(i, j);
        }
    }
    Some((p, a, b))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_inclusion_proof_verifies_and_every_mutation_fails(size in 1u64..600, pick in any::<u64>(), m in mutation()) {
        let log = MemLog::new((0..size).map(|i| i.to_le_bytes().to_vec()));
        let index = pick % size;
        let proof = log.inclusion(index, size);
        let root = log.roots[size as usize];
        prop_assert!(verify_inclusion(index, size, &log.leaf(index), &proof, &root).is_ok());
        if let Some((bad, i, n)) = mutate(&proof, index, size, &m) {
            prop_assert!(verify_inclusion(i, n, &log.leaf(index), &bad, &root).is_err(), "{:?} still verified", m);
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_every_mutation_fails(new in 1u64..600, pick in any::<u64>(), m in mutation()) {
        let log = MemLog::new((0..new).map(|i| i.to_le_bytes().to_vec()));
        let old = pick % new + 1;
        let proof = log.consistency(old, new);
        let (r1, r2) = (log.roots[old as usize], log.roots[new as usize]);
        prop_assert!(verify_consistency(old, new, &r1, &r2, &proof).is_ok());
        if let Some((bad, m1, n1)) = mutate(&proof, old, new, &m) {
            prop_assert!(verify_consistency(m1, n1, &r1, &r2, &bad).is_err(), "{:?} still verified", m);
        }
    }
}

/// Exhaustive over small trees: every (index, size) and every (old, new) up to 64 leaves.
#[test]
fn exhaustive_small_trees() {
    let log = MemLog::new((0..64u64).map(|i| i.to_le_bytes().to_vec()));
    for size in 1..=64u64 {
        for index in 0..size {
            let proof = log.inclusion(index, size);
            verify_inclusion(index, size, &log.leaf(index), &proof, &log.roots[size as usize]).unwrap();
            if index + 1 < size {
                assert!(verify_inclusion(index + 1, size, &log.leaf(index), &proof, &log.roots[size as usize]).is_err());
            }
        }
        for old in 1..=size {
            let proof = log.consistency(old, size);
            verify_consistency(old, size, &log.roots[old as usize], &log.roots[size as usize], &proof).unwrap();
            if old < size {
                assert!(verify_consistency(old, size, &log.roots[old as usize - 1], &log.roots[size as usize], &proof)
                    .is_err());
            }
        }
    }
}
