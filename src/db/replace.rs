//! Tables that each load of their file replaces whole: business hours, time zones and store
//! groups.
//!
//! A load stages the file's rows beside the table and replaces the table's rows only when
//! the two differ as multisets, so that an unchanged snapshot leaves the data version as
//! it was.

use sqlx::{PgConnection, PgExecutor};

use super::copy::CopyWriter;

/// What came of a replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replaced {
    /// The staged rows are the table's already.
    Unchanged,
    /// The table now holds these many rows.
    Rows(u64),
    /// The staged rows would drop `lost` of the `held` stores the table has rows for.
    Refused { held: i64, lost: i64 },
}

/// A table replaced whole by each load of its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplacedTable {
    BusinessHours,
    Timezones,
    StoreGroups,
}

/// The statements of one replaced table, spelled out at compile time: table and column
/// names are never run-time text.
struct Statements {
    create_staging: &'static str,
    copy: &'static str,
    differs: &'static str,
    clear: &'static str,
    fill: &'static str,
    /// How many stores the table has rows for, and how many of them the staged rows lose.
    stores_lost: &'static str,
}

macro_rules! statements {
    ($table:literal, $staging:literal, $columns:literal) => {
        Statements {
            create_staging: concat!(
                "CREATE TEMP TABLE ",
                $staging,
                " (LIKE ",
                $table,
                ") ON COMMIT DROP"
            ),
            copy: concat!("COPY ", $staging, " (", $columns, ") FROM STDIN (FORMAT binary)"),
            differs: concat!(
                "SELECT EXISTS (SELECT ",
                $columns,
                " FROM ",
                $table,
                " EXCEPT ALL SELECT ",
                $columns,
                " FROM ",
                $staging,
                ")",
                " OR EXISTS (SELECT ",
                $columns,
                " FROM ",
                $staging,
                " EXCEPT ALL SELECT ",
                $columns,
                " FROM ",
                $table,
                ")"
            ),
            clear: concat!("DELETE FROM ", $table),
            stores_lost: concat!(
                "SELECT count(DISTINCT store), count(DISTINCT store) FILTER (WHERE store NOT IN (SELECT store FROM ",
                $staging,
                ")) FROM ",
                $table
            ),
            fill: concat!(
                "INSERT INTO ",
                $table,
                " (",
                $columns,
                ") SELECT ",
                $columns,
                " FROM ",
                $staging
            ),
        }
    };
}

const BUSINESS_HOURS: Statements = statements!(
    "business_hours",
    "incoming_business_hours",
    "store, day, start_local, end_local"
);
const TIMEZONES: Statements = statements!("timezones", "incoming_timezones", "store, zone");
const STORE_GROUPS: Statements = statements!(
    "store_groups",
    "incoming_store_groups",
    "group_name, store, store_id"
);

impl ReplacedTable {
    fn statements(self) -> &'static Statements {
        match self {
            ReplacedTable::BusinessHours => &BUSINESS_HOURS,
            ReplacedTable::Timezones => &TIMEZONES,
            ReplacedTable::StoreGroups => &STORE_GROUPS,
        }
    }

    /// Stages `rows` (binary COPY data for the table's columns) and, if they differ from
    /// the table's rows, replaces the table's rows with them, unless they would leave more
    /// than `max_loss` of the stores the table has rows for without any (a half-copied
    /// file, say). One load per kind and reload, so the staging table is new.
    pub(crate) async fn replace(
        self,
        conn: &mut PgConnection,
        rows: CopyWriter,
        max_loss: Option<f64>,
    ) -> sqlx::Result<Replaced> {
        let sql = self.statements();
        execute(&mut *conn, sql.create_staging).await?;
        let mut copy = conn.copy_in_raw(sql.copy).await?;
        copy.send(rows.finish()).await?;
        let count = copy.finish().await?;
        if !differs(&mut *conn, sql.differs).await? {
            return Ok(Replaced::Unchanged);
        }
        if let Some(max_loss) = max_loss {
            let (held, lost) = stores_lost(&mut *conn, sql.stores_lost).await?;
            if held > 0 && lost as f64 > max_loss * held as f64 {
                return Ok(Replaced::Refused { held, lost });
            }
        }
        execute(&mut *conn, sql.clear).await?;
        execute(&mut *conn, sql.fill).await?;
        Ok(Replaced::Rows(count))
    }
}

async fn execute(db: impl PgExecutor<'_>, statement: &'static str) -> sqlx::Result<()> {
    sqlx::query(statement).execute(db).await.map(drop)
}

async fn differs(db: impl PgExecutor<'_>, statement: &'static str) -> sqlx::Result<bool> {
    sqlx::query_scalar(statement).fetch_one(db).await
}

async fn stores_lost(db: impl PgExecutor<'_>, statement: &'static str) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(statement).fetch_one(db).await
}
