//! The indexer against a real anvil, on SQLite and on PostgreSQL: a workload of every event
//! kind compared with the chain's own views; reorgs of depth 1, 5 and 30, one during backfill
//! and back-to-back ones, each ending equal to a clean replay; the writer lock; a schema that
//! is behind.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use contracts::model_registry::MintParams;
use contracts::LicenseKind;
use ethers::providers::Middleware;
use ethers::types::{Address, U256};
use registry::chain::{self, Client};
use registry::content::{Store, Version};
use registry::db::entity::{balances, licenses, lineage, models, offerings, similarities};
use registry::deploy::Deployment;
use registry::indexer::{Indexer, Options, Step};
use registry::market::{Market, OfferingTerms};
use registry::metadata::{ipfs_uri, ModelMetadata, SCHEMA};
use registry::mint::{mint, MintRequest};
use registry::progress::Silent;
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::dbs::{Kind, TestDb};
use crate::models::write_model;
use crate::support::Chain;

const DAY: u64 = 86_400;

/// Terms of a native-currency offering; `transferable` licenses may change hands.
fn terms(
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
        terms_uri: String::new(),
        terms_hash: [0; 32],
    }
}

fn milli(n: u64) -> U256 {
    U256::exp10(15) * n
}

fn options() -> Options {
    Options {
        confirmations: 2,
        reorg_window: 64,
        max_range: 50,
        poll_interval: Duration::from_millis(50),
        max_retries: Some(20),
        content_timeout: Duration::from_secs(20),
    }
}

struct World {
    chain: Chain,
    store_dir: tempfile::TempDir,
    markets: Vec<Market>,
}

impl World {
    async fn start() -> World {
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

    fn store(&self) -> Store {
        Store::embedded(self.store_dir.path()).unwrap()
    }

    fn url(&self) -> &str {
        self.chain.devnet.endpoint()
    }

    fn deployment(&self) -> Deployment {
        self.chain.deployment.clone()
    }

    fn address(&self, i: usize) -> Address {
        self.markets[i].address()
    }

    async fn indexer(&self, db: &TestDb, options: Options) -> Indexer {
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

    /// A fresh database indexed from scratch.
    async fn replay(&self, kind: Kind) -> TestDb {
        let db = TestDb::new(kind).await;
        self.indexer(&db, options()).await.sync().await.unwrap();
        db
    }

    async fn mint_file(
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
            backend: fingerprint::BackendKind::Cpu,
            cid_version: Version::V1,
        };
        mint(&self.markets[account], &self.store(), &request, &Silent)
            .await
            .unwrap()
            .model
    }

    /// Mints without the provenance check, as a contract caller could (to exercise flagging).
    async fn mint_unchecked(&self, account: usize, path: &Path, name: &str) -> U256 {
        let store = self.store();
        let model = fingerprint::Model::open(path).unwrap();
        let fp =
            fingerprint::fingerprint(&model, &fingerprint::backend::CpuBackend, |_| {}).unwrap();
        let weights = store.store_file(path, Version::V1, &|_| {}).await.unwrap();
        let fp_cid = store.store_bytes(&fp.encode(), Version::V1).await.unwrap();
        let metadata = ModelMetadata {
            schema: SCHEMA.into(),
            name: name.into(),
            description: None,
            weights: ipfs_uri(&weights.cid),
            fingerprint: ipfs_uri(&fp_cid),
            fingerprint_hash: fingerprint::hex(&fp.hash()),
            content_root: fingerprint::hex(&fp.content_root),
            parameters: fp.parameters(),
            tensors: fp.tensors.len() as u64,
            bytes: model.data_bytes(),
        };
        let meta_cid = store
            .store_bytes(&metadata.to_json(), Version::V1)
            .await
            .unwrap();
        let market = &self.markets[account];
        market
            .mint(MintParams {
                to: market.address(),
                weights_cid: weights.cid.to_string(),
                content_root: fp.content_root,
                fingerprint: fp.hash(),
                metadata_uri: ipfs_uri(&meta_cid),
                sale_royalty_bps: 0,
                parents: vec![],
                licenses: vec![],
            })
            .await
            .unwrap()
            .0
    }

    async fn offer(&self, account: usize, terms: OfferingTerms) -> U256 {
        self.markets[account].publish(terms).await.unwrap().0
    }

    async fn buy(&self, account: usize, offering: U256, price: U256) -> U256 {
        let holder = self.address(account);
        self.markets[account]
            .buy(offering, holder, price)
            .await
            .unwrap()
            .license
    }

    /// A small burst of activity: `n` offerings on model 1 (owned by account 3 after the
    /// workload), each bought once; 2n blocks.
    async fn activity(&self, n: usize, seed: u64) {
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
    async fn workload(&self) {
        let dir = self.store_dir.path();
        let (base, tuned, sneaky, other) = (
            dir.join("base.safetensors"),
            dir.join("tuned.safetensors"),
            dir.join("sneaky.safetensors"),
            dir.join("other.safetensors"),
        );
        write_model(&base, 1, 0.0);
        write_model(&tuned, 1, 0.03);
        // A re-mint of the base's exact weights by someone else.
        write_model(&sneaky, 1, 0.0);
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
        // Lapse and renew the access license; close the fine-tune offering.
        self.chain.advance(2 * DAY).await.unwrap();
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
        // Sales after the transfer credit the new owner.
        self.buy(2, output, milli(200)).await;
    }
}

fn current() -> sea_orm::sea_query::Expr {
    Expr::col(Alias::new("valid_to")).is_null()
}

fn hex_address(a: Address) -> String {
    format!("{a:?}")
}

/// Every table against the chain's views.
async fn assert_matches_chain(world: &World, db: &TestDb) {
    let db = db.open().await;
    let conn = db.conn();
    let m = &world.markets[0];
    let client: Arc<Client> = m.client().clone();
    let (_, market) = world.deployment().contracts(client);

    let rows = models::Entity::find()
        .filter(current())
        .all(conn)
        .await
        .unwrap();
    let total = m.total_models().await.unwrap();
    assert_eq!(rows.len() as u64, total, "one current row per model");
    for id in 1..=total {
        let view = m.model(U256::from(id)).await.unwrap();
        let row = rows.iter().find(|r| r.id == id as i64).unwrap();
        assert_eq!(row.owner, hex_address(view.owner), "owner of model {id}");
        assert_eq!(row.weights_cid, view.model.weights_cid);
        assert_eq!(row.content_root, fingerprint::hex(&view.model.content_root));
        assert_eq!(row.fingerprint, fingerprint::hex(&view.model.fingerprint));
        assert_eq!(row.depth, i32::from(view.model.depth));
        let edges = lineage::Entity::find()
            .filter(lineage::Column::ChildId.eq(id as i64))
            .filter(current())
            .all(conn)
            .await
            .unwrap();
        assert_eq!(edges.len(), view.parents.len(), "parents of model {id}");
        for (edge, parent) in edges.iter().zip(&view.parents) {
            assert_eq!(edge.parent_id as u64, parent.model_id.as_u64());
            assert_eq!(edge.royalty_bps, i32::from(parent.royalty_bps));
        }
    }
    let total_offerings = market.total_offerings().call().await.unwrap().as_u64();
    let rows = offerings::Entity::find()
        .filter(current())
        .all(conn)
        .await
        .unwrap();
    assert_eq!(rows.len() as u64, total_offerings);
    for id in 1..=total_offerings {
        let o = m.offering(U256::from(id)).await.unwrap();
        let row = rows.iter().find(|r| r.id == id as i64).unwrap();
        assert_eq!(row.sold as u64, o.sold, "sold of offering {id}");
        assert_eq!(row.closed, o.closed, "closed of offering {id}");
        assert_eq!(row.price, o.terms.price.to_string());
        assert_eq!(row.kind, i32::from(o.terms.kind));
    }
    let total_licenses = market.total_licenses().call().await.unwrap().as_u64();
    let rows = licenses::Entity::find()
        .filter(current())
        .all(conn)
        .await
        .unwrap();
    assert_eq!(rows.len() as u64, total_licenses);
    for id in 1..=total_licenses {
        let l = m.license(U256::from(id)).await.unwrap();
        let row = rows.iter().find(|r| r.id == id as i64).unwrap();
        assert_eq!(row.holder, hex_address(l.holder), "holder of license {id}");
        assert_eq!(row.start as u64, l.license.start, "start of license {id}");
        assert_eq!(
            row.expiry as u64, l.license.expiry,
            "expiry of license {id}"
        );
    }
    let rows = balances::Entity::find()
        .filter(current())
        .all(conn)
        .await
        .unwrap();
    for i in 0..5 {
        let account = world.address(i);
        let on_chain = m.credits(account, Address::zero()).await.unwrap();
        let indexed = rows
            .iter()
            .find(|r| r.account == hex_address(account))
            .map(|r| {
                U256::from_dec_str(&r.credited).unwrap() - U256::from_dec_str(&r.withdrawn).unwrap()
            })
            .unwrap_or_default();
        assert_eq!(indexed, on_chain, "balance of account {i}");
    }
}

async fn workload_matches_the_chain(kind: Kind) {
    let world = World::start().await;
    world.workload().await;
    let db = TestDb::new(kind).await;
    let mut indexer = world.indexer(&db, options()).await;
    indexer.sync().await.unwrap();
    assert_matches_chain(&world, &db).await;

    // Provenance: the declared derivative is related but not flagged; the undeclared copy is
    // flagged against the base; the unrelated model is neither.
    let conn = db.open().await;
    let rows = models::Entity::find()
        .filter(current())
        .all(conn.conn())
        .await
        .unwrap();
    let by_name = |n: &str| rows.iter().find(|r| r.name.as_deref() == Some(n)).unwrap();
    assert_eq!(by_name("tuned").flagged_model, None);
    assert_eq!(by_name("sneaky").flagged_model, Some(1));
    assert!(by_name("sneaky").flagged_similarity.unwrap() > 0.5);
    assert_eq!(by_name("other").flagged_model, None);
    let similar = similarities::Entity::find()
        .filter(similarities::Column::ModelId.eq(1))
        .filter(current())
        .all(conn.conn())
        .await
        .unwrap();
    let mut others: Vec<i64> = similar
        .iter()
        .filter(|s| s.verdict != "unrelated")
        .map(|s| s.other_id)
        .collect();
    others.sort();
    assert_eq!(others, vec![2, 4], "the base's related models");

    // A second indexer on the same database is refused.
    let second = Indexer::open(
        db.open().await,
        world.url(),
        world.deployment(),
        None,
        options(),
    )
    .await;
    let err = second.unwrap_err().to_string();
    assert!(err.contains("another indexer"), "{err}");
    drop(indexer);
    // Once the first is gone, the lock is free and a restart is a no-op.
    let before = db.open().await.snapshot().await.unwrap();
    world.indexer(&db, options()).await.sync().await.unwrap();
    assert_eq!(db.open().await.snapshot().await.unwrap(), before);
    db.drop_db().await;
}

#[tokio::test]
async fn workload_matches_the_chain_on_sqlite() {
    workload_matches_the_chain(Kind::Sqlite).await;
}

#[tokio::test]
async fn workload_matches_the_chain_on_postgres() {
    workload_matches_the_chain(Kind::Postgres).await;
}

/// Reorganises the last `depth` blocks: reverts to a snapshot taken `depth` blocks ago and
/// mines different activity (one block more, so the new branch is the longer one).
async fn reorg(world: &World, snapshot: U256, depth: u64, seed: u64) {
    let provider = chain::provider(world.url()).unwrap();
    let reverted: bool = provider.request("evm_revert", [snapshot]).await.unwrap();
    assert!(reverted);
    // New branch: different offerings and prices, then empty blocks up to depth + 1.
    let start = provider.get_block_number().await.unwrap().as_u64();
    world.activity(1, seed).await;
    while provider.get_block_number().await.unwrap().as_u64() < start + depth + 1 {
        let _: String = provider.request("evm_mine", ()).await.unwrap();
    }
}

async fn snapshot(world: &World) -> U256 {
    let provider = chain::provider(world.url()).unwrap();
    provider.request("evm_snapshot", ()).await.unwrap()
}

/// Mines `depth` blocks of activity (a buy and an offering per two blocks).
async fn blocks_of_activity(world: &World, depth: u64, seed: u64) {
    world.activity((depth as usize).div_ceil(2), seed).await;
}

async fn reorgs_end_equal_to_a_clean_replay(kind: Kind) {
    let world = World::start().await;
    world.workload().await;
    let db = TestDb::new(kind).await;
    let mut indexer = world.indexer(&db, options()).await;
    indexer.sync().await.unwrap();

    for (round, depth) in [1u64, 5, 30].into_iter().enumerate() {
        let snap = snapshot(&world).await;
        blocks_of_activity(&world, depth, 100 + round as u64).await;
        indexer.sync().await.unwrap();
        reorg(&world, snap, depth, 200 + round as u64).await;
        indexer.sync().await.unwrap();
        let replay = world.replay(kind).await;
        assert_eq!(
            db.open().await.snapshot().await.unwrap(),
            replay.open().await.snapshot().await.unwrap(),
            "after a reorg of depth {depth}"
        );
        replay.drop_db().await;
    }
    let reorgs = db
        .open()
        .await
        .conn()
        .query_all_raw(sea_orm::Statement::from_string(
            db.open().await.backend(),
            "SELECT depth FROM reorgs ORDER BY id",
        ))
        .await
        .unwrap();
    assert_eq!(reorgs.len(), 3, "each reorg was detected once");

    // Back-to-back: two reorgs before the indexer looks again, then one right after it did.
    let snap = snapshot(&world).await;
    blocks_of_activity(&world, 4, 300).await;
    indexer.sync().await.unwrap();
    reorg(&world, snap, 4, 301).await;
    let snap = snapshot(&world).await;
    blocks_of_activity(&world, 3, 302).await;
    reorg(&world, snap, 3, 303).await;
    indexer.sync().await.unwrap();
    let snap = snapshot(&world).await;
    blocks_of_activity(&world, 2, 304).await;
    indexer.sync().await.unwrap();
    reorg(&world, snap, 2, 305).await;
    indexer.sync().await.unwrap();
    let replay = world.replay(kind).await;
    assert_eq!(
        db.open().await.snapshot().await.unwrap(),
        replay.open().await.snapshot().await.unwrap(),
        "after back-to-back reorgs"
    );
    assert_matches_chain(&world, &db).await;
    replay.drop_db().await;
    db.drop_db().await;
}

#[tokio::test]
async fn reorgs_end_equal_to_a_clean_replay_on_sqlite() {
    reorgs_end_equal_to_a_clean_replay(Kind::Sqlite).await;
}

#[tokio::test]
async fn reorgs_end_equal_to_a_clean_replay_on_postgres() {
    reorgs_end_equal_to_a_clean_replay(Kind::Postgres).await;
}

#[tokio::test]
async fn a_reorg_during_backfill_is_undone() {
    let world = World::start().await;
    world.workload().await;
    let snap = snapshot(&world).await;
    blocks_of_activity(&world, 10, 1).await;
    let db = TestDb::new(Kind::Sqlite).await;
    // Small ranges, so the backfill is still going when the chain reorganises.
    let mut indexer = world
        .indexer(
            &db,
            Options {
                max_range: 3,
                ..options()
            },
        )
        .await;
    let mut applied = 0;
    while applied < 8 {
        if let Step::Applied { .. } = indexer.step().await.unwrap() {
            applied += 1;
        }
    }
    let head = chain::provider(world.url())
        .unwrap()
        .get_block_number()
        .await
        .unwrap()
        .as_u64();
    assert!(
        indexer.cursor() < head,
        "still backfilling ({} of {head})",
        indexer.cursor()
    );
    reorg(&world, snap, 10, 2).await;
    indexer.sync().await.unwrap();
    let replay = world.replay(Kind::Sqlite).await;
    assert_eq!(
        db.open().await.snapshot().await.unwrap(),
        replay.open().await.snapshot().await.unwrap()
    );
    assert_matches_chain(&world, &db).await;
}

#[tokio::test]
async fn a_schema_that_is_behind_is_refused() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let db = TestDb::empty(kind).await;
        let err = registry::db::Db::open(&db.url)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("behind") && err.contains("pending"), "{err}");
        let connected = registry::db::Db::connect(&db.url).await.unwrap();
        assert!(connected.migrate().await.unwrap() > 0);
        assert_eq!(
            connected.migrate().await.unwrap(),
            0,
            "migrations are idempotent"
        );
        registry::db::Db::open(&db.url).await.unwrap();
        db.drop_db().await;
    }
}
