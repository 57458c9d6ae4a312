//! Output receipts' leaves and trees against OpenZeppelin's own `@openzeppelin/merkle-tree`
//! (`StandardMerkleTree`, from npm): the same leaves give the same leaf hashes, root and proofs;
//! and a batch of 100,000 outputs commits in one transaction and every output verifies.

use std::path::Path;
use std::process::Command;

use ethers::types::{Address, H256, U256};
use registry::outputs::{tree, OutputLeaf, Tree};

fn leaves(n: u64) -> Vec<OutputLeaf> {
    (0..n)
        .map(|i| OutputLeaf {
            content_sha256: H256(ethers::utils::keccak256(i.to_be_bytes())),
            chain_id: 31_337 + i % 2,
            market: Address::from_low_u64_be(0xabc0 + i),
            license_id: U256::from(i + 1) << (i % 3 * 70),
            model_id: U256::from(7 * i + 3),
            produced_at: 1_700_000_000 + i * 3_600,
            salt: H256(ethers::utils::keccak256((i + 1_000).to_be_bytes())),
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

#[test]
fn leaves_root_and_proofs_are_openzeppelins() {
    let leaves = leaves(11);
    let hashes: Vec<H256> = leaves.iter().map(OutputLeaf::hash).collect();
    let tree = Tree::build(&hashes).unwrap();
    let values: Vec<serde_json::Value> = leaves
        .iter()
        .map(|l| {
            serde_json::json!([
                hex(&ethers::utils::keccak256(registry::outputs::leaf::TAG)),
                hex(l.content_sha256.as_bytes()),
                l.chain_id.to_string(),
                format!("{:?}", l.market),
                l.license_id.to_string(),
                l.model_id.to_string(),
                l.produced_at.to_string(),
                hex(l.salt.as_bytes()),
            ])
        })
        .collect();
    let script = r#"
        const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
        const values = JSON.parse(process.argv[1]);
        const tree = StandardMerkleTree.of(values,
            ['bytes32', 'bytes32', 'uint256', 'address', 'uint256', 'uint256', 'uint64', 'bytes32']);
        console.log(JSON.stringify({
            root: tree.root,
            leaves: values.map(v => tree.leafHash(v)),
            proofs: values.map((_, i) => tree.getProof(i)),
        }));
    "#;
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("node")
        .current_dir(&root_dir)
        .env("NODE_PATH", root_dir.join("node_modules"))
        .args(["-e", script, &serde_json::Value::from(values).to_string()])
        .output()
        .expect("node runs (npm ci at the repository root installs the library)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs["root"], hex(tree.root().as_bytes()));
    for (i, h) in hashes.iter().enumerate() {
        assert_eq!(theirs["leaves"][i], hex(h.as_bytes()), "leaf {i}");
        let proof: Vec<String> = tree
            .proof(h)
            .unwrap()
            .iter()
            .map(|p| hex(p.as_bytes()))
            .collect();
        assert_eq!(
            theirs["proofs"][i],
            serde_json::json!(proof),
            "proof of leaf {i}"
        );
        assert_eq!(tree::fold(h, &tree.proof(h).unwrap()), tree.root());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_outputs_commit_in_one_transaction_and_verify() {
    use registry::outputs::{Batch, Scope};

    let world = crate::world::World::start().await;
    let (model, offering) = world.output_offering(71).await;
    let license = world.buy(1, offering, U256::zero()).await;
    let market = &world.markets[1];
    let scope = Scope {
        chain_id: market.deployment().chain_id,
        market: market.deployment().market,
        license,
        model,
    };
    let outputs: Vec<(H256, u64)> = (0..100_000u64)
        .map(|i| {
            (
                H256(ethers::utils::keccak256(i.to_le_bytes())),
                1_700_000_000,
            )
        })
        .collect();
    let batch = Batch::new(scope, &outputs).unwrap();
    let before = market.latest_block().await.unwrap();
    let committed = market
        .commit_outputs(license, batch.root(), 100_000, "")
        .await
        .unwrap();
    assert_eq!(committed.block, before + 1, "one transaction, one block");
    assert_eq!(
        (committed.count, committed.provider),
        (100_000, world.address(1))
    );
    let stored = market.output_batch(batch.root()).await.unwrap().unwrap();
    assert_eq!((stored.license, stored.count), (license, 100_000));
    // Every output's proof folds to the root (16 or 17 hashes: the tree is complete, not
    // perfect); the market itself accepts a
    // sample of them, and refuses a proof for the wrong leaf.
    for (i, leaf) in batch.leaves.iter().enumerate() {
        let hash = leaf.hash();
        let proof = batch.tree.proof(&hash).unwrap();
        assert!((16..=17).contains(&proof.len()), "{}", proof.len());
        assert_eq!(tree::fold(&hash, &proof), batch.root());
        if i % 20_000 == 0 {
            assert!(market
                .verify_output(batch.root(), hash, &proof)
                .await
                .unwrap());
            let other = batch.leaves[i + 1].hash();
            assert!(!market
                .verify_output(batch.root(), other, &proof)
                .await
                .unwrap());
        }
    }
}

/// A root committed under one license does not prove leaves that name another: a provider
/// holding two output licenses cannot move outputs from one to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_naming_another_license_than_its_batch_is_not_valid() {
    use registry::outputs::receipt::{Contracts, FORMAT};
    use registry::outputs::{check, Batch, Receipt, Scope, Verdict};

    let world = crate::world::World::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (model, offering) = world.output_offering(72).await;
    let (a, b) = (
        world.buy(1, offering, U256::zero()).await,
        world.buy(1, offering, U256::zero()).await,
    );
    let market = &world.markets[1];
    let output = dir.path().join("out.txt");
    std::fs::write(&output, b"an output").unwrap();
    let sha = registry::outputs::batch::sha256_file(&output, &|_| {}).unwrap();
    let scope = |license| Scope {
        chain_id: market.deployment().chain_id,
        market: market.deployment().market,
        license,
        model,
    };
    let receipt_under = |batch: &Batch, committed: &registry::market::CommittedBatch| Receipt {
        format: FORMAT.into(),
        file: "out.txt".into(),
        leaf: batch.leaves[0].clone(),
        leaf_hash: batch.leaves[0].hash(),
        proof: vec![],
        root: batch.root(),
        count: 1,
        provider: committed.provider,
        uri: None,
        tx: committed.tx,
        block: committed.block,
        block_hash: committed.block_hash,
        committed_at: 0,
        contracts: Contracts {
            registry: market.deployment().registry,
            market: market.deployment().market,
        },
        inclusion: None,
    };
    // Leaves naming license a, the root committed under license b.
    let batch = Batch::new(scope(a), &[(sha, 1_700_000_000)]).unwrap();
    let committed = market.commit_outputs(b, batch.root(), 1, "").await.unwrap();
    let verdict = check(market, &output, &receipt_under(&batch, &committed))
        .await
        .unwrap();
    assert_eq!(
        verdict,
        Verdict::Invalid(format!(
            "root {:?} was committed under license {b}, not {a}",
            batch.root()
        ))
    );
    // The same output committed honestly under a is valid, and names its provider.
    let batch = Batch::new(scope(a), &[(sha, 1_700_000_000)]).unwrap();
    let committed = market.commit_outputs(a, batch.root(), 1, "").await.unwrap();
    match check(market, &output, &receipt_under(&batch, &committed))
        .await
        .unwrap()
    {
        Verdict::Valid(valid) => {
            assert_eq!((valid.license, valid.model), (a, model));
            assert_eq!(valid.provider, Some(world.address(1)));
        }
        other => panic!("{other:?}"),
    }
}
