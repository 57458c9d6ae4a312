//! sea-orm entities of the schema in the `migrations` crate. Versioned tables carry `vid`,
//! `valid_from` and `valid_to` (see `migrations`' crate docs); a row is current while
//! `valid_to` is NULL.

use sea_orm::ConnectionTrait;

/// A row version of a versioned table.
// Only the indexer implements and calls it, on concrete types whose futures are Send.
#[allow(async_fn_in_trait)]
pub trait Versioned: Clone + Send + Sync + 'static {
    /// The table's name.
    const TABLE: &'static str;
    fn vid(&self) -> i64;
    fn valid_from(&self) -> i64;
    fn valid_to(&self) -> Option<i64>;
    /// Sets the blocks the version is valid for.
    fn set_validity(&mut self, from: i64, to: Option<i64>);
    /// Inserts the rows as new versions with fresh `vid`s and their own validity, in
    /// multi-row statements.
    async fn insert_all<C: ConnectionTrait>(rows: Vec<Self>, c: &C) -> Result<(), sea_orm::DbErr>;
    /// Writes every column of the row over the version with its `vid`.
    async fn update_in<C: ConnectionTrait>(self, c: &C) -> Result<(), sea_orm::DbErr>;
}

/// Rows per multi-row insert: the widest table has about 20 columns, which keeps a statement
/// well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
const INSERT_CHUNK: usize = 500;

macro_rules! versioned_entity {
    ($module:ident, $table:literal, { $($field:ident : $ty:ty),* $(,)? }) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;
            use serde::{Deserialize, Serialize};

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key)]
                #[serde(skip)]
                pub vid: i64,
                $(pub $field: $ty,)*
                pub valid_from: i64,
                pub valid_to: Option<i64>,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }

        impl Versioned for $module::Model {
            const TABLE: &'static str = $table;
            fn vid(&self) -> i64 {
                self.vid
            }
            fn valid_from(&self) -> i64 {
                self.valid_from
            }
            fn valid_to(&self) -> Option<i64> {
                self.valid_to
            }
            fn set_validity(&mut self, from: i64, to: Option<i64>) {
                self.valid_from = from;
                self.valid_to = to;
            }
            async fn insert_all<C: ConnectionTrait>(rows: Vec<Self>, c: &C) -> Result<(), sea_orm::DbErr> {
                use sea_orm::{ActiveModelTrait as _, EntityTrait as _};
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let actives = chunk.iter().cloned().map(|row| {
                        let mut active = $module::ActiveModel::from(row).reset_all();
                        active.vid = sea_orm::ActiveValue::NotSet;
                        active
                    });
                    $module::Entity::insert_many(actives).exec_without_returning(c).await?;
                }
                Ok(())
            }
            async fn update_in<C: ConnectionTrait>(self, c: &C) -> Result<(), sea_orm::DbErr> {
                use sea_orm::{ActiveModelTrait as _, EntityTrait as _};
                let active = $module::ActiveModel::from(self).reset_all();
                $module::Entity::update(active).exec(c).await?;
                Ok(())
            }
        }
    };
}

versioned_entity!(models, "models", {
    id: i64,
    owner: String,
    creator: String,
    minter: String,
    weights_cid: String,
    content_root: String,
    fingerprint: String,
    metadata_uri: String,
    name: Option<String>,
    minted_at: i64,
    depth: i32,
    sale_royalty_bps: i32,
    derivative_royalty_bps: i32,
    encrypted: bool,
    block_number: i64,
    tx_hash: String,
    flagged_model: Option<i64>,
    flagged_similarity: Option<f64>,
});

versioned_entity!(lineage, "lineage", {
    child_id: i64,
    parent_id: i64,
    license_id: i64,
    royalty_bps: i32,
    position: i32,
    block_number: i64,
});

versioned_entity!(offerings, "offerings", {
    id: i64,
    model_id: i64,
    publisher: String,
    kind: i32,
    currency: String,
    price: String,
    price_key: String,
    duration: i64,
    supply_cap: i64,
    sold: i64,
    closed: bool,
    transferable: bool,
    commercial_use: bool,
    royalty_bps: i32,
    renewal_period: i64,
    delivery_period: i64,
    terms_uri: String,
    terms_hash: String,
    block_number: i64,
});

versioned_entity!(licenses, "licenses", {
    id: i64,
    offering_id: i64,
    model_id: i64,
    kind: i32,
    holder: String,
    payer: String,
    currency: String,
    price: String,
    price_key: String,
    duration: i64,
    transferable: bool,
    commercial_use: bool,
    royalty_bps: i32,
    terms_hash: String,
    start: i64,
    expiry: i64,
    key_deadline: i64,
    recipient: Option<String>,
    key_delivered_at: i64,
    key_cid: Option<String>,
    keeper: Option<String>,
    refunded: bool,
    block_number: i64,
});

versioned_entity!(credits, "credits", {
    account: String,
    currency: String,
    license_id: i64,
    model_id: i64,
    amount: String,
    block_number: i64,
    log_index: i64,
    tx_hash: String,
});

versioned_entity!(withdrawals, "withdrawals", {
    account: String,
    currency: String,
    recipient: String,
    amount: String,
    block_number: i64,
    log_index: i64,
    tx_hash: String,
});

versioned_entity!(balances, "balances", {
    account: String,
    currency: String,
    credited: String,
    withdrawn: String,
});

versioned_entity!(transfers, "transfers", {
    token: String,
    token_id: i64,
    from_address: String,
    to_address: String,
    block_number: i64,
    log_index: i64,
    tx_hash: String,
});

versioned_entity!(fingerprints, "fingerprints", {
    model_id: i64,
    status: String,
    detail: Option<String>,
    tensors: i64,
    parameters: i64,
    encoding: Option<Vec<u8>>,
    attempts: i64,
    retry_at: i64,
});

versioned_entity!(similarities, "similarities", {
    model_id: i64,
    other_id: i64,
    similarity: f64,
    verdict: String,
    log10_false_positive: f64,
});

versioned_entity!(output_batches, "output_batches", {
    root: String,
    license_id: i64,
    model_id: i64,
    provider: String,
    count: i64,
    uri: Option<String>,
    committed_at: i64,
    block_number: i64,
    log_index: i64,
    tx_hash: String,
    leaves_status: String,
    leaves_detail: Option<String>,
    leaves_attempts: i64,
    leaves_retry_at: i64,
});

versioned_entity!(outputs, "outputs", {
    id: String,
    content_hash: String,
    root: String,
    position: i64,
    leaf_hash: String,
    license_id: i64,
    model_id: i64,
    produced_at: i64,
    salt: String,
    block_number: i64,
});

/// Recent block hashes.
pub mod blocks {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "blocks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub number: i64,
        pub hash: String,
        pub parent_hash: String,
        pub timestamp: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The indexer's cursor (one row, id 1).
pub mod indexer_state {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "indexer_state")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub chain_id: i64,
        pub registry: String,
        pub market: String,
        pub start_block: i64,
        pub cursor_block: i64,
        pub cursor_hash: String,
        pub head_block: i64,
        pub finalized_block: i64,
        pub updated_at: i64,
        /// Closed row versions at or below this block are pruned.
        pub pruned_to: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Reorgs the indexer went through.
pub mod reorgs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reorgs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub detected_at: i64,
        pub ancestor: i64,
        pub depth: i64,
        pub at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
