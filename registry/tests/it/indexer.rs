//! The indexer against a real anvil, on SQLite and on PostgreSQL: a workload of every event
//! kind compared with the chain's own views; reorgs of depth 1, 5 and 30, one during backfill
//! and back-to-back ones, each ending equal to a clean replay; the writer lock; a schema that
//! is behind.

use std::sync::Arc;

use ethers::providers::Middleware;
use ethers::types::{Address, U256};
use registry::chain::{self, Client};
use registry::indexer::{Indexer, Options, Step};
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use store::entity::{balances, licenses, lineage, models, offerings, similarities};

use crate::dbs::{Kind, TestDb};
use crate::world::{options, World};

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
        assert_eq!(row.sold, i64::from(o.sold), "sold of offering {id}");
        assert_eq!(row.closed, o.closed, "closed of offering {id}");
        assert_eq!(row.price, o.price.to_string());
        assert_eq!(row.kind, i32::from(o.kind));
        assert_eq!(row.renewal_period, i64::from(o.renewal_period));
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
    let before = db.open().await.history().await.unwrap();
    world.indexer(&db, options()).await.sync().await.unwrap();
    assert_eq!(db.open().await.history().await.unwrap(), before);
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
            db.open().await.history().await.unwrap(),
            replay.open().await.history().await.unwrap(),
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
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap(),
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
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
    assert_matches_chain(&world, &db).await;
}

#[tokio::test]
async fn a_schema_that_is_behind_is_refused() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let db = TestDb::empty(kind).await;
        let err = store::Db::open(&db.url).await.unwrap_err().to_string();
        assert!(err.contains("behind") && err.contains("pending"), "{err}");
        let connected = store::Db::connect(&db.url).await.unwrap();
        assert!(connected.migrate().await.unwrap() > 0);
        assert_eq!(
            connected.migrate().await.unwrap(),
            0,
            "migrations are idempotent"
        );
        store::Db::open(&db.url).await.unwrap();
        db.drop_db().await;
    }
}

/// At most one current row per key, on both databases: an event applied twice fails its
/// step instead of doubling a row; closed versions of the key are not constrained.
#[tokio::test]
async fn a_second_current_row_for_a_key_is_refused() {
    use sea_orm::{ActiveModelTrait, ActiveValue::NotSet};
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let db = TestDb::new(kind).await;
        let conn = db.open().await;
        let insert = |valid_from: i64, valid_to: Option<i64>| {
            let mut row = balances::ActiveModel::from(balances::Model {
                vid: 0,
                account: "0x00000000000000000000000000000000000000aa".into(),
                currency: "0x0000000000000000000000000000000000000000".into(),
                credited: "1".into(),
                withdrawn: "0".into(),
                valid_from,
                valid_to,
            })
            .reset_all();
            row.vid = NotSet;
            balances::Entity::insert(row).exec(conn.conn())
        };
        insert(1, Some(2)).await.unwrap();
        insert(2, Some(3)).await.unwrap();
        insert(3, None).await.unwrap();
        let err = insert(4, None).await.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("unique"), "{kind:?}: {err}");
        db.drop_db().await;
    }
}

/// The cursor moves only from where this indexer left it: a second writer's progress (here,
/// written behind its back) stops it with `CursorMoved` instead of being written over.
#[tokio::test]
async fn a_cursor_moved_by_another_writer_stops_the_indexer() {
    let world = World::start().await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = world.indexer(&db, options()).await;
    indexer.sync().await.unwrap();
    db.open()
        .await
        .conn()
        .execute_unprepared("UPDATE indexer_state SET cursor_hash = '0xmoved'")
        .await
        .unwrap();
    let provider = chain::provider(world.url()).unwrap();
    let _: String = provider.request("evm_mine", ()).await.unwrap();
    let err = indexer.sync().await.unwrap_err();
    assert!(matches!(err, registry::Error::CursorMoved { .. }), "{err}");
}

async fn mine(world: &World, blocks: u64) {
    let provider = chain::provider(world.url()).unwrap();
    for _ in 0..blocks {
        let _: String = provider.request("evm_mine", ()).await.unwrap();
    }
}

/// Every block within the reorg window gets a stored hash, blocks without our logs too, so a
/// reorg finds its exact common ancestor (never an older stored block below the pruned
/// history).
#[tokio::test]
async fn every_block_in_the_reorg_window_has_a_stored_hash() {
    let world = World::start().await;
    let db = TestDb::new(Kind::Sqlite).await;
    let small = Options {
        reorg_window: 8,
        ..options()
    };
    let mut indexer = world.indexer(&db, small).await;
    indexer.sync().await.unwrap();
    mine(&world, 12).await;
    let head = indexer.sync().await.unwrap();
    let provider = chain::provider(world.url()).unwrap();
    let conn = db.open().await;
    for number in head - 7..=head {
        let stored = store::entity::blocks::Entity::find_by_id(number as i64)
            .one(conn.conn())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no hash stored for block {number}"));
        let header = provider.get_block(number).await.unwrap().unwrap();
        assert_eq!(
            stored.hash,
            format!("{:?}", header.hash.unwrap()),
            "{number}"
        );
        assert_eq!(stored.parent_hash, format!("{:?}", header.parent_hash));
    }
}

/// A reorg whose common ancestor is below the pruned history stops the indexer with
/// `ReorgTooDeep` instead of rolling back into it (history there is gone).
#[tokio::test]
async fn a_reorg_below_the_pruned_history_stops_the_indexer() {
    let world = World::start().await;
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = world.indexer(&db, options()).await;
    mine(&world, 3).await;
    indexer.sync().await.unwrap();
    let snap = snapshot(&world).await;
    mine(&world, 3).await;
    let head = indexer.sync().await.unwrap();
    drop(indexer);
    // As if everything up to the head had been pruned.
    db.open()
        .await
        .conn()
        .execute_unprepared(&format!("UPDATE indexer_state SET pruned_to = {head}"))
        .await
        .unwrap();
    let provider = chain::provider(world.url()).unwrap();
    let reverted: bool = provider.request("evm_revert", [snap]).await.unwrap();
    assert!(reverted);
    mine(&world, 5).await;
    let mut indexer = world.indexer(&db, options()).await;
    let err = indexer.sync().await.unwrap_err();
    assert!(matches!(err, registry::Error::ReorgTooDeep { .. }), "{err}");
}

/// A database an earlier version filled with an event applied twice is not given a bare
/// unique violation by the migration that adds the one-current-row indexes: it names the
/// table, the key and what to do.
#[tokio::test]
async fn duplicates_left_by_an_earlier_version_are_named_by_the_migration() {
    use migrations::sea_orm_migration::MigratorTrait;
    use sea_orm::{ActiveModelTrait, ActiveValue::NotSet};
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let db = TestDb::empty(kind).await;
        let conn = store::Db::connect(&db.url).await.unwrap();
        // The schema as the version before the unique indexes left it.
        migrations::Migrator::up(conn.conn(), Some(4))
            .await
            .unwrap();
        for credited in ["1", "2"] {
            let mut row = balances::ActiveModel::from(balances::Model {
                vid: 0,
                account: "0x00000000000000000000000000000000000000aa".into(),
                currency: "0x0000000000000000000000000000000000000000".into(),
                credited: credited.into(),
                withdrawn: "0".into(),
                valid_from: 1,
                valid_to: None,
            })
            .reset_all();
            row.vid = NotSet;
            balances::Entity::insert(row)
                .exec(conn.conn())
                .await
                .unwrap();
        }
        let err = conn.migrate().await.unwrap_err().to_string();
        assert!(
            err.contains("balances holds 1 keys (account, currency)")
                && err.contains("fresh database"),
            "{kind:?}: {err}"
        );
        db.drop_db().await;
    }
}

/// The API's connections to PostgreSQL cancel a statement that runs past their timeout (a
/// query the API gave up on does not keep the database busy); the indexer's do not.
#[tokio::test]
async fn query_connections_cancel_long_statements_on_postgres() {
    let db = TestDb::new(Kind::Postgres).await;
    let api = store::Db::open_for_queries(&db.url, std::time::Duration::from_millis(300))
        .await
        .unwrap();
    let err = api
        .conn()
        .execute_unprepared("SELECT pg_sleep(3)")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("statement timeout"), "{err}");
    db.open()
        .await
        .conn()
        .execute_unprepared("SELECT pg_sleep(0.5)")
        .await
        .unwrap();
    db.drop_db().await;
}

/// On PostgreSQL the writer lock is a session's advisory lock: when the server ends that
/// session, the next write stops the indexer with `WriterLockLost` (and `run` does not retry
/// it), instead of writing on while a second indexer may take the lock.
#[tokio::test]
async fn a_lost_advisory_lock_stops_the_writer() {
    let world = World::start().await;
    let db = TestDb::new(Kind::Postgres).await;
    let mut indexer = world.indexer(&db, options()).await;
    indexer.sync().await.unwrap();
    let admin = db.open().await;
    let ended = admin
        .conn()
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND objid::bigint = 1398035033 \
             AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())",
        )
        .await
        .unwrap();
    assert_eq!(ended.rows_affected(), 1, "one lock session ended");
    mine(&world, 2).await;
    let err = indexer.sync().await.unwrap_err();
    assert!(
        matches!(err, registry::Error::WriterLockLost { .. }),
        "{err}"
    );
    let err = indexer.run(std::future::pending()).await.unwrap_err();
    assert!(
        matches!(err, registry::Error::WriterLockLost { .. }),
        "{err}"
    );
    drop(indexer);
    db.drop_db().await;
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Fingerprints are fetched off the chain path, and in any order: the chain is indexed while
/// the content store has none of them (each `pending`, with why, and retried later); once the
/// content arrives, the base model's last (after the copy of it that is to be flagged against
/// it), the index equals a replay with all content reachable, names and flags included.
#[tokio::test]
async fn fingerprints_arrive_off_the_chain_path_in_any_order() {
    use store::entity::fingerprints;
    let world = World::start().await;
    world.workload().await;
    let later = tempfile::tempdir().unwrap();
    let store = content::Store::embedded(later.path()).unwrap();
    let db = TestDb::new(Kind::Sqlite).await;
    let mut indexer = Indexer::open(
        db.open().await,
        world.url(),
        world.deployment(),
        Some(store),
        options(),
    )
    .await
    .unwrap();
    let head = indexer.sync().await.unwrap();
    assert_eq!(indexer.cursor(), head);
    let conn = db.open().await;
    let rows = fingerprints::Entity::find().all(conn.conn()).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter().all(|r| r.status == "pending"
            && r.attempts == 1
            && r.retry_at > 0
            && r.detail.is_some()),
        "{rows:?}"
    );
    let minted = models::Entity::find().all(conn.conn()).await.unwrap();
    assert!(minted
        .iter()
        .all(|m| m.name.is_none() && m.flagged_model.is_none()));

    copy_tree(
        &world.store_dir.path().join("blocks"),
        &later.path().join("blocks"),
    );
    // Not due yet: nothing fetched.
    indexer.sync().await.unwrap();
    let rows = fingerprints::Entity::find().all(conn.conn()).await.unwrap();
    assert!(rows.iter().all(|r| r.status == "pending"), "{rows:?}");
    // Time passes for all but the base model's.
    conn.conn()
        .execute_unprepared("UPDATE fingerprints SET retry_at = 0 WHERE model_id <> 1")
        .await
        .unwrap();
    indexer.sync().await.unwrap();
    let rows = fingerprints::Entity::find().all(conn.conn()).await.unwrap();
    assert_eq!(
        rows.iter().filter(|r| r.status == "ok").count(),
        3,
        "{rows:?}"
    );
    conn.conn()
        .execute_unprepared("UPDATE fingerprints SET retry_at = 0")
        .await
        .unwrap();
    indexer.sync().await.unwrap();
    let replay = world.replay(Kind::Sqlite).await;
    assert_eq!(
        conn.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
}

/// The fingerprint worker's memory does not grow with the models minted: with no room for
/// decoded fingerprints and one compared at a time, each comparison reads and decodes the
/// others again, and the index ends the same as a replay's.
#[tokio::test]
async fn fingerprints_compared_without_a_cache_index_the_same() {
    use registry::indexer::fingerprints::{Fetched, Fingerprints, Options};
    let world = World::start().await;
    world.workload().await;
    let db = TestDb::new(Kind::Sqlite).await;
    // The chain only: the fingerprints wait.
    let mut indexer = Indexer::open(
        db.open().await,
        world.url(),
        world.deployment(),
        None,
        options(),
    )
    .await
    .unwrap();
    indexer.sync().await.unwrap();
    let worker = Fingerprints::new(
        db.open().await,
        world.store(),
        Options {
            cache_bytes: 0,
            compare_chunk: 1,
            ..Options::default()
        },
    );
    let fetched = worker.drain().await.unwrap();
    assert_eq!(fetched.len(), 4, "{fetched:?}");
    assert!(
        fetched
            .iter()
            .all(|f| matches!(f, Fetched::Recorded { .. })),
        "{fetched:?}"
    );
    let replay = world.replay(Kind::Sqlite).await;
    assert_eq!(
        db.open().await.history().await.unwrap(),
        replay.open().await.history().await.unwrap()
    );
}

/// Anyone may mint with a NUL byte in a URI or CID (the contract checks neither's text):
/// stored as U+FFFD, the index goes on (PostgreSQL refuses NUL in text, and the step failed
/// on every retry, the index halted for good).
#[tokio::test]
async fn a_nul_byte_in_an_events_string_does_not_halt_the_index() {
    let world = World::start().await;
    let market = &world.markets[0];
    market
        .mint(contracts::model_registry::MintParams {
            to: market.address(),
            weights_cid: "bafy\0weights".into(),
            content_root: [7; 32],
            fingerprint: [8; 32],
            metadata_uri: "ipfs://meta\0data".into(),
            sale_royalty_bps: 0,
            derivative_royalty_bps: 0,
            encrypted: false,
            parents: vec![],
            licenses: vec![],
        })
        .await
        .unwrap();
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let db = TestDb::new(kind).await;
        world.indexer(&db, options()).await.sync().await.unwrap();
        let row = models::Entity::find()
            .filter(current())
            .one(db.open().await.conn())
            .await
            .unwrap()
            .expect("the model is indexed");
        assert_eq!(row.metadata_uri, "ipfs://meta\u{FFFD}data", "{kind:?}");
        assert_eq!(row.weights_cid, "bafy\u{FFFD}weights", "{kind:?}");
    }
}
