//! Keyset (cursor) pagination: rows ordered by a key column and a unique tie-break column;
//! the cursor holds the last row's pair, so a page starts exactly after it whatever was
//! inserted meanwhile.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Error, OutputType};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Value,
};

use crate::error::client;

/// Rows per page unless `first` says otherwise.
pub const DEFAULT_PAGE: usize = 20;
/// Most rows a page may ask for.
pub const MAX_PAGE: usize = 100;

/// The page size `first` asks for, checked.
pub(crate) fn page_size(first: Option<i32>) -> Result<usize, Error> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n < 0 => Err(client("BAD_USER_INPUT", "`first` must not be negative")),
        Some(n) if n as usize > MAX_PAGE => Err(client(
            "PAGE_SIZE_LIMIT",
            format!("`first` is {n}; at most {MAX_PAGE} rows fit a page"),
        )),
        Some(n) => Ok(n as usize),
    }
}

/// One value of a cursor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Int(i64),
    Text(String),
}

impl Part {
    fn encode(&self) -> String {
        match self {
            Part::Int(i) => format!("i{i}"),
            Part::Text(s) => format!("s{}", hex::encode(s)),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        match text.split_at_checked(1)? {
            ("i", rest) => rest.parse().ok().map(Part::Int),
            ("s", rest) => String::from_utf8(hex::decode(rest).ok()?)
                .ok()
                .map(Part::Text),
            _ => None,
        }
    }

    /// Whether the part can stand for a value of `column`: an integer for an integer
    /// column, text without NUL (which PostgreSQL refuses) for a text one. A forged cursor
    /// of another list or order compared text with a bigint: a database error on
    /// PostgreSQL, a wrong page on SQLite.
    fn fits<C: ColumnTrait>(&self, column: &C) -> bool {
        use sea_orm::sea_query::ColumnType as T;
        let integer = matches!(
            column.def().get_column_type(),
            T::TinyInteger
                | T::SmallInteger
                | T::Integer
                | T::BigInteger
                | T::TinyUnsigned
                | T::SmallUnsigned
                | T::Unsigned
                | T::BigUnsigned
        );
        match self {
            Part::Int(_) => integer,
            Part::Text(s) => !integer && !s.contains('\0'),
        }
    }

    fn value(&self) -> Value {
        match self {
            Part::Int(i) => Value::BigInt(Some(*i)),
            Part::Text(s) => Value::String(Some(s.clone())),
        }
    }
}

/// The position of a row in its order: (key, tie-break).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub key: Option<Part>,
    pub tie: Part,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        let key = self.key.as_ref().map(Part::encode).unwrap_or_default();
        hex::encode(format!("v1.{key}.{}", self.tie.encode()))
    }

    pub(crate) fn decode(text: &str) -> Result<Self, Error> {
        let bad = || {
            client(
                "BAD_CURSOR",
                format!("{text:?} is not a cursor of this list"),
            )
        };
        let raw = String::from_utf8(hex::decode(text).map_err(|_| bad())?).map_err(|_| bad())?;
        let mut parts = raw.split('.');
        if parts.next() != Some("v1") {
            return Err(bad());
        }
        let key = parts.next().ok_or_else(bad)?;
        let tie = parts.next().and_then(Part::decode).ok_or_else(bad)?;
        let key = if key.is_empty() {
            None
        } else {
            Some(Part::decode(key).ok_or_else(bad)?)
        };
        Ok(Cursor { key, tie })
    }
}

/// How a list is ordered: an optional key column, then a unique tie-break column.
pub(crate) struct Order<E: EntityTrait> {
    pub key: Option<E::Column>,
    pub tie: E::Column,
    pub desc: bool,
}

/// Fetches one page of `select` after `after`, in `order`. `cursor_of` gives a row's cursor.
pub(crate) async fn page<E, T, C>(
    conn: &C,
    mut select: Select<E>,
    order: Order<E>,
    first: Option<i32>,
    after: Option<String>,
    cursor_of: impl Fn(&E::Model) -> Cursor,
    node: impl Fn(E::Model) -> Result<T, Error>,
) -> Result<Connection<String, T>, Error>
where
    E: EntityTrait,
    T: OutputType,
    C: sea_orm::ConnectionTrait,
{
    let size = page_size(first)?;
    if let Some(after) = after {
        let cursor = Cursor::decode(&after)?;
        let fits = cursor.tie.fits(&order.tie)
            && match (&order.key, &cursor.key) {
                (Some(key), Some(value)) => value.fits(key),
                (None, None) => true,
                _ => false,
            };
        if !fits {
            return Err(client("BAD_CURSOR", "the cursor belongs to another order"));
        }
        let tie = if order.desc {
            order.tie.lt(cursor.tie.value())
        } else {
            order.tie.gt(cursor.tie.value())
        };
        let condition = match (order.key, &cursor.key) {
            (Some(key), Some(value)) => {
                let beyond = if order.desc {
                    key.lt(value.value())
                } else {
                    key.gt(value.value())
                };
                Condition::any()
                    .add(beyond)
                    .add(Condition::all().add(key.eq(value.value())).add(tie))
            }
            (None, None) => Condition::all().add(tie),
            _ => return Err(client("BAD_CURSOR", "the cursor belongs to another order")),
        };
        select = select.filter(condition);
    }
    let direction = if order.desc {
        sea_orm::Order::Desc
    } else {
        sea_orm::Order::Asc
    };
    if let Some(key) = order.key {
        select = select.order_by(key, direction.clone());
    }
    select = select.order_by(order.tie, direction);
    let mut rows = select
        .limit(size as u64 + 1)
        .all(conn)
        .await
        .map_err(crate::error::internal)?;
    let has_next = rows.len() > size;
    rows.truncate(size);
    let mut connection = Connection::new(false, has_next);
    for row in rows {
        let cursor = cursor_of(&row).encode();
        connection.edges.push(Edge::new(cursor, node(row)?));
    }
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            key: Some(Part::Text("000123".into())),
            tie: Part::Int(42),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        let c = Cursor {
            key: None,
            tie: Part::Text("0xab|0x00".into()),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "zz", &hex::encode("v2..i1"), &hex::encode("v1..x1")] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_size(Some(MAX_PAGE as i32)).unwrap(), MAX_PAGE);
        assert!(page_size(Some(MAX_PAGE as i32 + 1)).is_err());
        assert!(page_size(Some(-1)).is_err());
    }
}
