//! A chain with the contracts, dev-account market clients, an embedded content store, and a
//! workload of every event kind: shared by the indexer's tests and the web crate's.

use std::path::Path;
use std::time::Duration;

use content::{Store, Version};
use contracts::model_registry::MintParams;
use contracts::LicenseKind;
use ethers::types::{Address, U256};
use registry::chain;
use registry::deploy::Deployment;
use registry::indexer::{Finality, Indexer, Options};
use registry::market::{Market, OfferingTerms};
use registry::metadata::{ipfs_uri, Encryption, ModelMetadata, AGE_X25519, SCHEMA};
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;
use registry::sealed::{add_encrypted, ModelKey};

use crate::dbs::{Kind, TestDb};
use crate::models::write_model;
use crate::support::Chain;

pub const DAY: u64 = 86_400;

/// Terms of a native-currency offering; `transferable` licenses may change hands.
pub fn terms(
    model: U256,
    kind: LicenseKind,
    price: U256,
    duration: u64,
    royalty: u16,
    transferable: bool,
) -> OfferingTerms {
    OfferingTerms {
        model_id: model,
        kind: kind.into(),
        currency: Address::zero(),
        price,
        duration,
        supply_cap: 0,
        transferable,
        commercial_use: kind == LicenseKind::Output,
        royalty_bps: royalty,
        renewal_period: 0,
        delivery_period: 0,
        terms_uri: String::new(),
        terms_hash: [0; 32],
    }
}

pub fn milli(n: u64) -> U256 {
    U256::exp10(15) * n
}

/// Indexer options for tests: small history, fast polling, bounded retries.
pub fn options() -> Options {
    Options {
        finality: Finality::Tag,
        confirmations: 2,
        reorg_window: 64,
        max_range: 50,
        poll_interval: Duration::from_millis(50),
        max_retries: Some(20),
        content_timeout: Duration::from_secs(20),
        parallel_calls: 8,
    }
}

#[derive(Debug)]
pub struct World {
    pub chain: Chain,
    pub store_dir: tempfile::TempDir,
    pub markets: Vec<Market>,
}

impl World {
    pub async fn start() -> World {
        let chain = Chain::start().await.unwrap();
        let mut markets = Vec::new();
        for i in 0..5 {
            let client = chain.client(i).await.unwrap();
            markets.push(Market::new(client, chain.deployment.clone()).await.unwrap());
        }
        World {
            chain,
            store_dir: tempfile::tempdir().unwrap(),
            markets,
        }
    }

    pub fn store(&self) -> Store {
        Store::embedded(self.store_dir.path()).unwrap()
    }

    pub fn url(&self) -> &str {
        self.chain.devnet.endpoint()
    }

    pub fn deployment(&self) -> Deployment {
        self.chain.deployment.clone()
    }

    pub fn address(&self, i: usize) -> Address {
        self.markets[i].address()
    }

    pub async fn indexer(&self, db: &TestDb, options: Options) -> Indexer {
        Indexer::open(
            db.open().await,
            self.url(),
            self.deployment(),
            Some(self.store()),
            options,
        )
        .await
        .unwrap()
    }

    /// The leaf-list worker over `db` and this world's store and deployment.
    pub async fn leaf_lists(
        &self,
        db: &TestDb,
        options: registry::indexer::leaves::Options,
    ) -> registry::indexer::leaves::LeafLists {
        registry::indexer::leaves::LeafLists::new(
            db.open().await,
            self.store(),
            &self.deployment(),
            options,
        )
    }

    /// A fresh database indexed from scratch.
    pub async fn replay(&self, kind: Kind) -> TestDb {
        self.replay_with(kind, options()).await
    }

    /// A fresh database indexed from scratch with `options` (the reorg window decides which
    /// history is kept).
    pub async fn replay_with(&self, kind: Kind, options: Options) -> TestDb {
        let db = TestDb::new(kind).await;
        self.indexer(&db, options).await.sync().await.unwrap();
        db
    }

    pub async fn mint_file(
        &self,
        account: usize,
        path: &Path,
        name: &str,
        parents: Vec<(U256, U256)>,
    ) -> U256 {
        let request = MintRequest {
            weights: path.to_path_buf(),
            name: name.into(),
            description: None,
            parents,
            to: None,
            sale_royalty_bps: 250,
            derivative_royalty_bps: 0,
            encrypt_to: None,
            force: false,
            backend: fingerprint::BackendKind::Cpu,
            cid_version: Version::V1,
        };
        mint(&self.markets[account], &self.store(), &request, &Silent)
            .await
            .unwrap()
            .model
    }

    /// Mints without the provenance check, as a contract caller could (to exercise flagging).
    pub async fn mint_unchecked(&self, account: usize, path: &Path, name: &str) -> U256 {
        self.mint_crafted(account, path, name, path, None).await
    }

    /// Mints as a contract caller could, lying if asked: commits the content root and
    /// fingerprint of `path` but stores the weights `stored`, encrypted when `sealed` names the
    /// envelope's recipient and the plaintext size to declare.
    pub async fn mint_crafted(
        &self,
        account: usize,
        path: &Path,
        name: &str,
        stored: &Path,
        sealed: Option<(&age::x25519::Recipient, u64)>,
    ) -> U256 {
        let store = self.store();
        let (weights, encryption) = match sealed {
            None => (
                store
                    .store_file(stored, Version::V1, &|_| {})
                    .await
                    .unwrap(),
                None,
            ),
            Some((recipient, plaintext_bytes)) => {
                let key = ModelKey::generate();
                let weights = add_encrypted(&store, stored, &key.recipient(), Version::V1, &|_| {})
                    .await
                    .unwrap();
                let envelope = store
                    .store_bytes(
                        &key.wrap(std::slice::from_ref(recipient)).unwrap(),
                        Version::V1,
                    )
                    .await
                    .unwrap();
                let encryption = Encryption {
                    scheme: AGE_X25519.into(),
                    envelope: ipfs_uri(&envelope),
                    plaintext_bytes,
                };
                (weights, Some(encryption))
            }
        };
        self.mint_record(account, path, name, weights.cid, encryption)
            .await
    }

    /// Mints as a contract caller could: commits the content root and fingerprint of the
    /// model at `path` (a file or a folder), with `weights` (any CID the store holds, a
    /// crafted one too) as its stored weights.
    pub async fn mint_record(
        &self,
        account: usize,
        path: &Path,
        name: &str,
        weights: content::Cid,
        encryption: Option<Encryption>,
    ) -> U256 {
        let store = self.store();
        let model = fingerprint::Model::open(path).unwrap();
        let fp =
            fingerprint::fingerprint(&model, &fingerprint::backend::CpuBackend, |_| {}).unwrap();
        let fp_cid = store.store_bytes(&fp.encode(), Version::V1).await.unwrap();
        let metadata = ModelMetadata {
            schema: SCHEMA.into(),
            name: name.into(),
            description: None,
            weights: ipfs_uri(&weights),
            fingerprint: ipfs_uri(&fp_cid),
            fingerprint_hash: fingerprint::hex(&fp.hash()),
            content_root: fingerprint::hex(&fp.content_root),
            parameters: fp.parameters(),
            tensors: fp.tensors.len() as u64,
            bytes: model.data_bytes(),
            encryption: encryption.clone(),
        };
        let meta_cid = store
            .store_bytes(&metadata.to_json(), Version::V1)
            .await
            .unwrap();
        let market = &self.markets[account];
        market
            .mint(MintParams {
                to: market.address(),
                weights_cid: weights.to_string(),
                content_root: fp.content_root,
                fingerprint: fp.hash(),
                metadata_uri: ipfs_uri(&meta_cid),
                sale_royalty_bps: 0,
                derivative_royalty_bps: 0,
                encrypted: encryption.is_some(),
                parents: vec![],
                licenses: vec![],
            })
            .await
            .unwrap()
            .0
    }

    pub async fn offer(&self, account: usize, terms: OfferingTerms) -> U256 {
        self.markets[account].publish(terms).await.unwrap().0
    }

    pub async fn buy(&self, account: usize, offering: U256, price: U256) -> U256 {
        let holder = self.address(account);
        self.markets[account]
            .buy(offering, holder, price, None)
            .await
            .unwrap()
            .license
    }

    /// A fresh model minted by account 0 (weights of `seed`) and a free, perpetual output
    /// offering of it: (model, offering).
    pub async fn output_offering(&self, seed: u32) -> (U256, U256) {
        let weights = self
            .store_dir
            .path()
            .join(format!("outputs-{seed}.safetensors"));
        write_model(&weights, seed, 0.0);
        let model = self.mint_file(0, &weights, "m", vec![]).await;
        let terms = terms(model, LicenseKind::Output, U256::zero(), 0, 0, false);
        (model, self.offer(0, terms).await)
    }

    /// Writes one file per content into `dir` and commits them under `license` as `account`
    /// (produced at a fixed past time), publishing the leaf list to the world's store if
    /// `publish`.
    pub async fn commit_outputs(
        &self,
        account: usize,
        license: U256,
        dir: &Path,
        contents: &[&[u8]],
        publish: bool,
    ) -> registry::outputs::Committed {
        let files: Vec<_> = contents
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let path = dir.join(format!("output-{i}-{}.txt", publish as u8));
                std::fs::write(&path, bytes).unwrap();
                path
            })
            .collect();
        let request = registry::outputs::CommitRequest {
            files,
            license,
            publish,
            produced_at: Some(1_700_000_000),
            cid_version: Version::V1,
        };
        registry::outputs::commit(&self.markets[account], &self.store(), &request, &Silent)
            .await
            .unwrap()
    }

    /// A small burst of activity: `n` offerings on model 1 (owned by account 3 after the
    /// workload), each bought once; 2n blocks.
    pub async fn activity(&self, n: usize, seed: u64) {
        for i in 0..n {
            let price = milli(1 + seed * 10 + i as u64);
            let offering = self
                .offer(
                    3,
                    terms(U256::one(), LicenseKind::Output, price, DAY, 0, false),
                )
                .await;
            self.buy(2, offering, price).await;
        }
    }

    /// Every kind of event: mints (base, declared derivative, undeclared copy), offerings,
    /// purchases, a transfer of a license and of a model, a renewal, a closing, withdrawals.
    pub async fn workload(&self) {
        let dir = self.store_dir.path();
        let (base, tuned, sneaky, other) = (
            dir.join("base.safetensors"),
            dir.join("tuned.safetensors"),
            dir.join("sneaky.safetensors"),
            dir.join("other.safetensors"),
        );
        write_model(&base, 1, 0.0);
        write_model(&tuned, 1, 0.03);
        // A re-mint of the base's weights by someone else, changed by a hair (the exact weights
        // cannot be registered twice).
        write_model(&sneaky, 1, 0.005);
        write_model(&other, 9, 0.0);
        let m1 = self.mint_file(0, &base, "base", vec![]).await;
        let access = self
            .offer(0, terms(m1, LicenseKind::Access, milli(100), DAY, 0, false))
            .await;
        let fine_tune = self
            .offer(
                0,
                terms(m1, LicenseKind::FineTune, milli(1000), 0, 2000, false),
            )
            .await;
        let output = self
            .offer(0, terms(m1, LicenseKind::Output, milli(200), 0, 0, true))
            .await;
        let l_access = self.buy(1, access, milli(100)).await;
        let l_ft = self.buy(1, fine_tune, milli(1000)).await;
        let l_out = self.buy(2, output, milli(200)).await;
        // Derivative with its parent declared.
        let m2 = self.mint_file(1, &tuned, "tuned", vec![(m1, l_ft)]).await;
        let access2 = self
            .offer(1, terms(m2, LicenseKind::Access, milli(500), DAY, 0, false))
            .await;
        self.buy(4, access2, milli(500)).await;
        // An unrelated model and an undeclared copy of the base (to be flagged).
        self.mint_file(3, &other, "other", vec![]).await;
        self.mint_unchecked(4, &sneaky, "sneaky").await;
        // Transfers: the transferable output license, and the base model itself.
        let (registry0, _) = self
            .deployment()
            .contracts(self.markets[0].client().clone());
        let (_, market2) = self
            .deployment()
            .contracts(self.markets[2].client().clone());
        chain::send(
            chain::Target::Market,
            "transfer",
            market2.transfer_from(self.address(2), self.address(3), l_out),
        )
        .await
        .unwrap();
        // Renew the access license before it lapses; close the fine-tune offering.
        self.chain.advance(DAY / 2).await.unwrap();
        self.markets[1].renew(l_access, milli(100)).await.unwrap();
        self.markets[0].close(fine_tune).await.unwrap();
        self.markets[0]
            .withdraw(Address::zero(), self.address(0))
            .await
            .unwrap();
        chain::send(
            chain::Target::Registry,
            "transfer",
            registry0.transfer_from(self.address(0), self.address(3), m1),
        )
        .await
        .unwrap();
        // The former owner's offerings sell nothing now; the new owner's do, and renewals of
        // licenses sold before the transfer credit the new owner.
        let output3 = self
            .offer(3, terms(m1, LicenseKind::Output, milli(300), 0, 0, true))
            .await;
        self.buy(2, output3, milli(300)).await;
        self.markets[1].renew(l_access, milli(100)).await.unwrap();
    }
}
