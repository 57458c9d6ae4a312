//! The initial schema: the market's state (models, lineage, offerings, licenses, credits,
//! withdrawals, balances, transfers), fingerprint summaries and similarities, and the indexer's
//! own bookkeeping (cursor, recent block hashes, reorg log).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

pub(crate) fn name(n: &str) -> Alias {
    Alias::new(n)
}

pub(crate) fn text(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).text().not_null().to_owned()
}

pub(crate) fn text_null(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).text().null().to_owned()
}

pub(crate) fn big(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).big_integer().not_null().to_owned()
}

pub(crate) fn big_null(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).big_integer().null().to_owned()
}

pub(crate) fn int(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).integer().not_null().to_owned()
}

fn boolean(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).boolean().not_null().to_owned()
}

fn double_null(n: &str) -> ColumnDef {
    ColumnDef::new(name(n)).double().null().to_owned()
}

/// A versioned table: surrogate key `vid`, the columns, and `valid_from`/`valid_to`.
pub(crate) fn versioned(table: &str, columns: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name(table)).if_not_exists().col(
        ColumnDef::new(name("vid"))
            .big_integer()
            .not_null()
            .auto_increment()
            .primary_key(),
    );
    for mut c in columns {
        t.col(&mut c);
    }
    t.col(big("valid_from")).col(big_null("valid_to"));
    t.to_owned()
}

pub(crate) fn index(table: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(format!("ix_{table}_{}", columns.join("_")))
        .table(name(table))
        .if_not_exists();
    for c in columns {
        i.col(name(c));
    }
    i.to_owned()
}

fn tables() -> Vec<Versioned> {
    vec![
        (
            "models",
            versioned(
                "models",
                vec![
                    big("id"),
                    text("owner"),
                    text("creator"),
                    text("minter"),
                    text("weights_cid"),
                    text("content_root"),
                    text("fingerprint"),
                    text("metadata_uri"),
                    text_null("name"),
                    big("minted_at"),
                    int("depth"),
                    int("sale_royalty_bps"),
                    big("block_number"),
                    text("tx_hash"),
                    big_null("flagged_model"),
                    double_null("flagged_similarity"),
                ],
            ),
            vec![vec!["id", "valid_to"], vec!["owner"], vec!["block_number"]],
        ),
        (
            "lineage",
            versioned(
                "lineage",
                vec![
                    big("child_id"),
                    big("parent_id"),
                    big("license_id"),
                    int("royalty_bps"),
                    int("position"),
                    big("block_number"),
                ],
            ),
            vec![vec!["child_id"], vec!["parent_id"]],
        ),
        (
            "offerings",
            versioned(
                "offerings",
                vec![
                    big("id"),
                    big("model_id"),
                    text("publisher"),
                    int("kind"),
                    text("currency"),
                    text("price"),
                    text("price_key"),
                    big("duration"),
                    big("supply_cap"),
                    big("sold"),
                    boolean("closed"),
                    boolean("transferable"),
                    boolean("commercial_use"),
                    int("royalty_bps"),
                    text("terms_uri"),
                    text("terms_hash"),
                    big("block_number"),
                ],
            ),
            vec![vec!["id", "valid_to"], vec!["model_id"], vec!["price_key"]],
        ),
        (
            "licenses",
            versioned(
                "licenses",
                vec![
                    big("id"),
                    big("offering_id"),
                    big("model_id"),
                    int("kind"),
                    text("holder"),
                    text("payer"),
                    text("currency"),
                    text("price"),
                    text("price_key"),
                    big("duration"),
                    boolean("transferable"),
                    boolean("commercial_use"),
                    int("royalty_bps"),
                    text("terms_hash"),
                    big("start"),
                    big("expiry"),
                    big("block_number"),
                ],
            ),
            vec![vec!["id", "valid_to"], vec!["holder"], vec!["model_id"]],
        ),
        (
            "credits",
            versioned(
                "credits",
                vec![
                    text("account"),
                    text("currency"),
                    big("license_id"),
                    big("model_id"),
                    text("amount"),
                    big("block_number"),
                    big("log_index"),
                    text("tx_hash"),
                ],
            ),
            vec![vec!["account"]],
        ),
        (
            "withdrawals",
            versioned(
                "withdrawals",
                vec![
                    text("account"),
                    text("currency"),
                    text("recipient"),
                    text("amount"),
                    big("block_number"),
                    big("log_index"),
                    text("tx_hash"),
                ],
            ),
            vec![vec!["account"]],
        ),
        (
            "balances",
            versioned(
                "balances",
                vec![
                    text("account"),
                    text("currency"),
                    text("credited"),
                    text("withdrawn"),
                ],
            ),
            vec![vec!["account", "currency"]],
        ),
        (
            "transfers",
            versioned(
                "transfers",
                vec![
                    text("token"),
                    big("token_id"),
                    text("from_address"),
                    text("to_address"),
                    big("block_number"),
                    big("log_index"),
                    text("tx_hash"),
                ],
            ),
            vec![vec!["token", "token_id"]],
        ),
        (
            "fingerprints",
            versioned(
                "fingerprints",
                vec![
                    big("model_id"),
                    text("status"),
                    text_null("detail"),
                    big("tensors"),
                    big("parameters"),
                    ColumnDef::new(name("encoding")).blob().null().to_owned(),
                ],
            ),
            vec![vec!["model_id"]],
        ),
        (
            "similarities",
            versioned(
                "similarities",
                vec![
                    big("model_id"),
                    big("other_id"),
                    ColumnDef::new(name("similarity"))
                        .double()
                        .not_null()
                        .to_owned(),
                    text("verdict"),
                    ColumnDef::new(name("log10_false_positive"))
                        .double()
                        .not_null()
                        .to_owned(),
                ],
            ),
            vec![vec!["model_id"], vec!["other_id"]],
        ),
    ]
}

/// A versioned table, its indexes, and indexes on `valid_from` and `valid_to`.
pub(crate) type Versioned = (&'static str, TableCreateStatement, Vec<Vec<&'static str>>);

/// Creates versioned tables with their indexes.
pub(crate) async fn create_versioned(
    manager: &SchemaManager<'_>,
    tables: Vec<Versioned>,
) -> Result<(), DbErr> {
    for (table_name, table, indexes) in tables {
        manager.create_table(table).await?;
        let mut all = indexes;
        all.push(vec!["valid_from"]);
        all.push(vec!["valid_to"]);
        for columns in all {
            manager.create_index(index(table_name, &columns)).await?;
        }
    }
    Ok(())
}

/// Drops tables, in the order given.
pub(crate) async fn drop_tables(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
    for t in tables {
        manager
            .drop_table(Table::drop().table(name(t)).if_exists().to_owned())
            .await?;
    }
    Ok(())
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_versioned(manager, tables()).await?;
        // Recent block hashes, for reorg detection.
        manager
            .create_table(
                Table::create()
                    .table(name("blocks"))
                    .if_not_exists()
                    .col(big("number").primary_key())
                    .col(text("hash"))
                    .col(text("parent_hash"))
                    .col(big("timestamp"))
                    .to_owned(),
            )
            .await?;
        // The indexer's cursor: one row per database (one chain, one deployment).
        manager
            .create_table(
                Table::create()
                    .table(name("indexer_state"))
                    .if_not_exists()
                    .col(int("id").primary_key())
                    .col(big("chain_id"))
                    .col(text("registry"))
                    .col(text("market"))
                    .col(big("start_block"))
                    .col(big("cursor_block"))
                    .col(text("cursor_hash"))
                    .col(big("head_block"))
                    .col(big("finalized_block"))
                    .col(big("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(name("reorgs"))
                    .if_not_exists()
                    .col(
                        ColumnDef::new(name("id"))
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(big("detected_at"))
                    .col(big("ancestor"))
                    .col(big("depth"))
                    .col(big("at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let versioned: Vec<&str> = tables().into_iter().rev().map(|(t, _, _)| t).collect();
        drop_tables(manager, &versioned).await?;
        drop_tables(manager, &["blocks", "indexer_state", "reorgs"]).await
    }
}
