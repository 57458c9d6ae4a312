//! The writes of one indexing step, gathered in memory and written in bulk when the step ends.
//!
//! A step applies up to thousands of events. Writing each change as its own statements (and
//! reading back the row the next event changes) made the database the indexer's bottleneck.
//! The batch keeps the current version of every row the step touched, so later events of the
//! step read it from memory, and writes the step's row versions with multi-row inserts, inside
//! the step's one transaction. The versions written are those the event-by-event path wrote,
//! less the ones the step's own pruning would delete in the same transaction.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};

use store::entity::{
    balances, credits, fingerprints, licenses, lineage, models, offerings, output_batches,
    similarities, transfers, withdrawals,
};
use store::Versioned;

/// Row ids per `UPDATE … WHERE vid IN (…)`.
const CLOSE_CHUNK: usize = 1_000;

/// The row versions one step writes to one table.
#[derive(Debug)]
pub(crate) struct Table<M> {
    /// New versions, in the order written; `vid`s are assigned when they are inserted.
    pending: Vec<M>,
    /// Stored versions this step closed: `(vid, block)`.
    closed: Vec<(i64, i64)>,
    /// Stored versions rewritten in place (a change in the block that wrote them).
    rewritten: Vec<M>,
}

impl<M> Default for Table<M> {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            closed: Vec::new(),
            rewritten: Vec::new(),
        }
    }
}

impl<M: Versioned> Table<M> {
    /// Adds `row` as a new version valid from `block`; returns its place among the pending.
    pub(crate) fn insert(&mut self, mut row: M, block: i64) -> usize {
        row.set_validity(block, None);
        self.pending.push(row);
        self.pending.len() - 1
    }

    /// Writes the step's versions. Versions closed at or below `pruned` are left out: the
    /// step prunes them in the same transaction anyway.
    async fn flush<C: ConnectionTrait>(self, c: &C, pruned: Option<i64>) -> Result<(), DbErr> {
        for row in self.rewritten {
            row.update_in(c).await?;
        }
        let mut closed: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (vid, block) in self.closed {
            closed.entry(block).or_default().push(vid);
        }
        for (block, vids) in closed {
            for chunk in vids.chunks(CLOSE_CHUNK) {
                let close = Query::update()
                    .table(Alias::new(M::TABLE))
                    .value(Alias::new("valid_to"), block)
                    .and_where(Expr::col(Alias::new("vid")).is_in(chunk.iter().copied()))
                    .to_owned();
                c.execute(&close).await?;
            }
        }
        let kept: Vec<M> = self
            .pending
            .into_iter()
            .filter(|row| match (row.valid_to(), pruned) {
                (Some(to), Some(horizon)) => to > horizon,
                _ => true,
            })
            .collect();
        M::insert_all(kept, c).await
    }
}

/// Where the current version of a keyed row is.
#[derive(Debug)]
enum Slot<M> {
    /// In the database, as read at the start of the step.
    Stored(M),
    /// Among the step's pending versions.
    Pending(usize),
}

/// A table whose rows are changed by later events (looked up by key).
#[derive(Debug)]
pub(crate) struct Keyed<K, M> {
    table: Table<M>,
    current: HashMap<K, Slot<M>>,
}

impl<K, M> Default for Keyed<K, M> {
    fn default() -> Self {
        Self {
            table: Table::default(),
            current: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + std::fmt::Debug, M: Versioned> Keyed<K, M> {
    /// The current version of `key`: this step's latest, else what `load` reads from the
    /// database (remembered for the rest of the step).
    pub(crate) async fn get<F, Fut>(&mut self, key: K, load: F) -> Result<Option<M>, DbErr>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<M>, DbErr>>,
    {
        match self.current.get(&key) {
            Some(Slot::Stored(row)) => return Ok(Some(row.clone())),
            Some(Slot::Pending(i)) => return Ok(Some(self.table.pending[*i].clone())),
            None => {}
        }
        let row = load().await?;
        if let Some(row) = &row {
            self.current.insert(key, Slot::Stored(row.clone()));
        }
        Ok(row)
    }

    /// Adds a new row, valid from `block`.
    pub(crate) fn insert(&mut self, key: K, row: M, block: i64) {
        let i = self.table.insert(row, block);
        self.current.insert(key, Slot::Pending(i));
    }

    /// Writes `next` as the version of `key` from `block` on: in place when the current
    /// version was written in `block`, else by closing it at `block`. The current version
    /// must have been read with [`Keyed::get`].
    pub(crate) fn replace(&mut self, key: K, mut next: M, block: i64) -> Result<(), DbErr> {
        match self.current.get(&key) {
            Some(Slot::Pending(i)) => {
                let i = *i;
                if self.table.pending[i].valid_from() == block {
                    next.set_validity(block, None);
                    self.table.pending[i] = next;
                } else {
                    let from = self.table.pending[i].valid_from();
                    self.table.pending[i].set_validity(from, Some(block));
                    let j = self.table.insert(next, block);
                    self.current.insert(key, Slot::Pending(j));
                }
            }
            Some(Slot::Stored(row)) => {
                if row.valid_from() == block {
                    next.set_validity(block, None);
                    self.table.rewritten.push(next.clone());
                    self.current.insert(key, Slot::Stored(next));
                } else {
                    self.table.closed.push((row.vid(), block));
                    let j = self.table.insert(next, block);
                    self.current.insert(key, Slot::Pending(j));
                }
            }
            None => {
                return Err(DbErr::Custom(format!(
                    "{} row {key:?} was replaced before it was read",
                    M::TABLE
                )))
            }
        }
        Ok(())
    }
}

/// Every table one step writes.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) models: Keyed<i64, models::Model>,
    pub(crate) offerings: Keyed<i64, offerings::Model>,
    pub(crate) licenses: Keyed<i64, licenses::Model>,
    /// Keyed by (account, currency).
    pub(crate) balances: Keyed<(String, String), balances::Model>,
    pub(crate) lineage: Table<lineage::Model>,
    pub(crate) credits: Table<credits::Model>,
    pub(crate) withdrawals: Table<withdrawals::Model>,
    pub(crate) transfers: Table<transfers::Model>,
    pub(crate) fingerprints: Table<fingerprints::Model>,
    pub(crate) similarities: Table<similarities::Model>,
    pub(crate) output_batches: Table<output_batches::Model>,
}

impl Batch {
    /// Writes everything, inside the caller's transaction. `pruned`: the horizon the step
    /// prunes history at, if it does.
    pub(crate) async fn flush<C: ConnectionTrait>(
        self,
        c: &C,
        pruned: Option<i64>,
    ) -> Result<(), DbErr> {
        self.models.table.flush(c, pruned).await?;
        self.lineage.flush(c, pruned).await?;
        self.offerings.table.flush(c, pruned).await?;
        self.licenses.table.flush(c, pruned).await?;
        self.balances.table.flush(c, pruned).await?;
        self.credits.flush(c, pruned).await?;
        self.withdrawals.flush(c, pruned).await?;
        self.transfers.flush(c, pruned).await?;
        self.fingerprints.flush(c, pruned).await?;
        self.similarities.flush(c, pruned).await?;
        self.output_batches.flush(c, pruned).await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, QueryOrder};

    use super::*;
    use store::Db;

    fn balance(account: &str, credited: u32, from: i64) -> balances::Model {
        balances::Model {
            vid: 0,
            account: account.into(),
            currency: "native".into(),
            credited: credited.to_string(),
            withdrawn: "0".into(),
            valid_from: from,
            valid_to: None,
        }
    }

    async fn versions(db: &Db) -> Vec<(String, String, i64, Option<i64>)> {
        balances::Entity::find()
            .order_by_asc(balances::Column::Account)
            .order_by_asc(balances::Column::ValidFrom)
            .all(db.conn())
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.account, r.credited, r.valid_from, r.valid_to))
            .collect()
    }

    async fn step(db: &Db, pruned: Option<i64>, changes: &[(&str, u32, i64)]) {
        let mut batch = Batch::default();
        for &(account, credited, block) in changes {
            let key = (account.to_string(), "native".to_string());
            let stored = batch
                .balances
                .get(key.clone(), || async {
                    use sea_orm::{ColumnTrait, QueryFilter};
                    balances::Entity::find()
                        .filter(balances::Column::Account.eq(account))
                        .filter(balances::Column::ValidTo.is_null())
                        .one(db.conn())
                        .await
                })
                .await
                .unwrap();
            match stored {
                Some(mut next) => {
                    next.credited = credited.to_string();
                    batch.balances.replace(key, next, block).unwrap();
                }
                None => batch
                    .balances
                    .insert(key, balance(account, credited, block), block),
            }
        }
        batch.flush(db.conn(), pruned).await.unwrap();
    }

    /// The versions a batch writes are those of writing each change on its own: a change in
    /// the block of the current version rewrites it, a later one closes it, across steps too.
    #[tokio::test]
    async fn a_batch_writes_the_versions_of_its_changes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();

        step(
            &db,
            None,
            &[("a", 1, 10), ("a", 2, 10), ("a", 3, 11), ("b", 5, 11)],
        )
        .await;
        let s = |x: &str| x.to_string();
        assert_eq!(
            versions(&db).await,
            vec![
                (s("a"), s("2"), 10, Some(11)),
                (s("a"), s("3"), 11, None),
                (s("b"), s("5"), 11, None),
            ]
        );

        // A stored version is closed; pending ones closed at or below the pruning horizon are
        // not written at all (the step's pruning would delete them).
        step(
            &db,
            Some(13),
            &[("a", 4, 12), ("a", 5, 13), ("a", 6, 14), ("b", 7, 14)],
        )
        .await;
        assert_eq!(
            versions(&db).await,
            vec![
                (s("a"), s("2"), 10, Some(11)),
                (s("a"), s("3"), 11, Some(12)),
                (s("a"), s("5"), 13, Some(14)),
                (s("a"), s("6"), 14, None),
                (s("b"), s("5"), 11, Some(14)),
                (s("b"), s("7"), 14, None),
            ]
        );

        // Replacing a row never read in the step is refused rather than guessed at.
        let mut batch = Batch::default();
        let err = batch
            .balances
            .replace((s("c"), s("native")), balance("c", 1, 15), 15)
            .unwrap_err();
        assert!(
            err.to_string().contains("replaced before it was read"),
            "{err}"
        );
    }
}
