//! The `report_rows` table: a finished report's rows, read a page at a time in the order
//! of any figure, filtered by stores and figure ranges.

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgExecutor, Row};
use uuid::Uuid;

use super::copy::CopyWriter;
use crate::domain::StoreReport;
use crate::domain::report::{Figure, Rounded};

/// One stored row of a finished report.
#[derive(Clone, Debug, PartialEq)]
pub struct RowRecord {
    pub store_id: String,
    pub figures: Rounded,
}

impl<'r> FromRow<'r, PgRow> for RowRecord {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        let mut figures = Rounded([0; 6]);
        for figure in Figure::ALL {
            figures.set(figure, i64::from(row.try_get::<i32, _>(figure.column())?));
        }
        Ok(RowRecord {
            store_id: row.try_get("store_id")?,
            figures,
        })
    }
}

/// What a page of rows is ordered by (then by store id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RowOrder {
    #[default]
    StoreId,
    Figure(Figure),
}

/// Which rows of a report to read: some stores only, the stores of some groups only (a
/// scoped caller's), and each figure within a range of its stored value (hundredths), both
/// ends included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFilter {
    pub store_ids: Option<Vec<String>>,
    /// The store groups whose stores are read (`None`: every store).
    pub groups: Option<Vec<String>>,
    /// By figure, in [`Figure::ALL`]'s order.
    ranges: [(i32, i32); 6],
}

impl Default for RowFilter {
    fn default() -> Self {
        RowFilter {
            store_ids: None,
            groups: None,
            ranges: [(i32::MIN, i32::MAX); 6],
        }
    }
}

impl RowFilter {
    /// Only the rows of these stores.
    pub fn stores(store_ids: Vec<String>) -> RowFilter {
        RowFilter {
            store_ids: Some(store_ids),
            ..RowFilter::default()
        }
    }

    /// Keeps only the rows whose `figure` is within `min..=max` (hundredths).
    pub fn range(&mut self, figure: Figure, min: i32, max: i32) {
        self.ranges[figure.index()] = (min, max);
    }
}

/// A page of rows: where it starts (after the row with this figure and store id; the figure
/// is ignored in store-id order), how many, in which order.
#[derive(Clone, Debug, Default)]
pub struct RowPage<'a> {
    pub order: RowOrder,
    pub descending: bool,
    pub after: Option<(i32, &'a str)>,
    pub limit: i64,
}

/// Keeps the rows of the stores of a scoped caller's groups: those `$condition` picks of
/// `store_groups`. Its own text, not `$n IS NULL OR …`: a sub-select under an OR cannot
/// become a join, and the join is what reads a group's slice of a large report by its
/// stores rather than every row.
macro_rules! in_scope {
    ($condition:literal) => {
        concat!(
            "AND store_id IN (SELECT store_id FROM store_groups WHERE ",
            $condition,
            ")"
        )
    };
}

/// Whose rows a statement reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Fleet,
    /// One group's (most scoped tokens): named by `=`, the group's ids come in key order
    /// from their index, so a page in store-id order stops with the page.
    OneGroup,
    Groups,
}

impl Scope {
    fn of(filter: &RowFilter) -> Scope {
        match filter.groups.as_deref() {
            None => Scope::Fleet,
            Some([_]) => Scope::OneGroup,
            Some(_) => Scope::Groups,
        }
    }
}

/// The statement reading a page of rows in `$order`, after the row whose `$key` is
/// `($15, $16)` in the direction `$cmp`, of the stores `$scope` keeps: each order is its
/// own static text. A figure's order reads the report's rows by the primary key and keeps
/// the page's top N (no index per figure: migration 12 says why).
macro_rules! ordered_rows {
    ($scope:expr, $order:expr, $key:expr, $cmp:literal) => {
        concat!(
            "SELECT * FROM report_rows
             WHERE report = $1 ",
            $scope,
            "
               AND ($2::text[] IS NULL OR store_id = ANY($2))
               AND uptime_last_hour BETWEEN $3 AND $4 AND uptime_last_day BETWEEN $5 AND $6
               AND uptime_last_week BETWEEN $7 AND $8 AND downtime_last_hour BETWEEN $9 AND $10
               AND downtime_last_day BETWEEN $11 AND $12 AND downtime_last_week BETWEEN $13 AND $14
               AND ($16::text IS NULL OR ",
            $key,
            " ",
            $cmp,
            " ($15, $16))
             ORDER BY ",
            $order,
            " LIMIT $17"
        )
    };
}

/// [`ordered_rows`] in store-id order or by a figure's column, then the store id, either
/// way, of every store or of a scope's.
macro_rules! statements {
    ($scope:expr, $order:expr, $descending:expr) => {
        match $order {
            // The figure ($15) is ignored: the key is the store id alone.
            RowOrder::StoreId if $descending => ordered_rows!($scope, "store_id DESC", "(0, store_id)", "<"),
            RowOrder::StoreId => ordered_rows!($scope, "store_id", "(0, store_id)", ">"),
            RowOrder::Figure(Figure::UptimeLastHour) => by_figure!($scope, "uptime_last_hour", $descending),
            RowOrder::Figure(Figure::UptimeLastDay) => by_figure!($scope, "uptime_last_day", $descending),
            RowOrder::Figure(Figure::UptimeLastWeek) => by_figure!($scope, "uptime_last_week", $descending),
            RowOrder::Figure(Figure::DowntimeLastHour) => {
                by_figure!($scope, "downtime_last_hour", $descending)
            }
            RowOrder::Figure(Figure::DowntimeLastDay) => by_figure!($scope, "downtime_last_day", $descending),
            RowOrder::Figure(Figure::DowntimeLastWeek) => {
                by_figure!($scope, "downtime_last_week", $descending)
            }
        }
    };
}

/// [`ordered_rows`] by a figure's column, then the store id, either way.
macro_rules! by_figure {
    ($scope:expr, $column:literal, $descending:expr) => {
        if $descending {
            ordered_rows!(
                $scope,
                concat!($column, " DESC, store_id DESC"),
                concat!("(", $column, ", store_id)"),
                "<"
            )
        } else {
            ordered_rows!(
                $scope,
                concat!($column, ", store_id"),
                concat!("(", $column, ", store_id)"),
                ">"
            )
        }
    };
}

/// The statement of a page in `order`, either way, of every store or of a scope's.
fn statement(order: RowOrder, descending: bool, scope: Scope) -> &'static str {
    match scope {
        Scope::Fleet => statements!("", order, descending),
        Scope::OneGroup => statements!(in_scope!("group_name = ($18::text[])[1]"), order, descending),
        Scope::Groups => statements!(in_scope!("group_name = ANY($18)"), order, descending),
    }
}

/// A page of the rows of the report `result` that pass `filter`.
pub(crate) async fn page(
    db: impl PgExecutor<'_>,
    result: Uuid,
    filter: &RowFilter,
    page: &RowPage<'_>,
) -> sqlx::Result<Vec<RowRecord>> {
    // Planned for its values each time (an unnamed statement): a plan for any values takes
    // the six ranges, unknown, for a filter that keeps one row, and for a group's page
    // probed the group's stores once for each of the report's rows (247 ms instead of 35).
    let mut query = sqlx::query_as(statement(page.order, page.descending, Scope::of(filter)))
        .persistent(false)
        .bind(result)
        .bind(&filter.store_ids);
    for (min, max) in filter.ranges {
        query = query.bind(min).bind(max);
    }
    let (after_figure, after_store) = page.after.unzip();
    // In store-id order the key compares (0, store_id): the figure given is 0.
    let after_figure = match page.order {
        RowOrder::StoreId => after_store.map(|_| 0),
        RowOrder::Figure(_) => after_figure,
    };
    query = query.bind(after_figure).bind(after_store).bind(page.limit);
    if let Some(groups) = &filter.groups {
        query = query.bind(groups);
    }
    query.fetch_all(db).await
}

/// The statement counting rows, of every store or of a scope's.
macro_rules! counted_rows {
    ($scope:expr) => {
        concat!(
            "SELECT count(*) FROM report_rows
             WHERE report = $1 ",
            $scope,
            "
           AND ($2::text[] IS NULL OR store_id = ANY($2))
           AND uptime_last_hour BETWEEN $3 AND $4 AND uptime_last_day BETWEEN $5 AND $6
           AND uptime_last_week BETWEEN $7 AND $8 AND downtime_last_hour BETWEEN $9 AND $10
           AND downtime_last_day BETWEEN $11 AND $12 AND downtime_last_week BETWEEN $13 AND $14"
        )
    };
}

/// How many rows of the report `result` pass `filter`.
pub(crate) async fn count(db: impl PgExecutor<'_>, result: Uuid, filter: &RowFilter) -> sqlx::Result<i64> {
    let statement = match Scope::of(filter) {
        Scope::Fleet => counted_rows!(""),
        Scope::OneGroup => counted_rows!(in_scope!("group_name = ($15::text[])[1]")),
        Scope::Groups => counted_rows!(in_scope!("group_name = ANY($15)")),
    };
    // Planned for its values each time, as `page` is.
    let mut query = sqlx::query_scalar(statement)
        .persistent(false)
        .bind(result)
        .bind(&filter.store_ids);
    for (min, max) in filter.ranges {
        query = query.bind(min).bind(max);
    }
    if let Some(groups) = &filter.groups {
        query = query.bind(groups);
    }
    query.fetch_one(db).await
}

/// Whether `written` new rows make the planner's statistics of `report_rows` stale: never
/// analyzed, or a fifth of its rows new since. Without them it takes a report's rows for a
/// few hundred and the six figure ranges for a handful, and reads a page of 100 by sorting
/// the whole report (22 ms instead of 1.5 at 140,000 stores); autovacuum may be off.
pub(super) async fn stale_statistics(db: impl PgExecutor<'_>, written: u64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT c.reltuples < 0 OR ($1 + coalesce(s.n_mod_since_analyze, 0)) * 5 > c.reltuples
         FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE c.oid = 'report_rows'::regclass",
    )
    .bind(written as f64)
    .fetch_one(db)
    .await
}

pub(super) async fn analyze(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("ANALYZE report_rows").execute(db).await.map(drop)
}

/// Rows of an earlier attempt, which a crash may have left (the rows' transaction was
/// rolled back then, so this finds none unless the schema changes).
pub(super) async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM report_rows WHERE report = $1")
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

pub(super) async fn copy(conn: &mut PgConnection, id: Uuid, rows: &[StoreReport]) -> sqlx::Result<u64> {
    let mut copy = conn
        .copy_in_raw(
            "COPY report_rows (report, store_id, uptime_last_hour, uptime_last_day, uptime_last_week,
                 downtime_last_hour, downtime_last_day, downtime_last_week) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut w = CopyWriter::new();
    for row in rows {
        w.row(8);
        w.uuid(id);
        w.text(&row.store_id);
        let figures = Rounded::from(&row.uptime);
        for figure in Figure::ALL {
            w.int4(figures.get(figure) as i32);
        }
        if w.len() > 1 << 20 {
            copy.send(w.take()).await?;
        }
    }
    copy.send(w.finish()).await?;
    copy.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_figure_is_ordered_by_its_own_column_either_way() {
        for figure in Figure::ALL {
            for descending in [false, true] {
                let text = statement(RowOrder::Figure(figure), descending, Scope::Fleet);
                let by = format!("ORDER BY {}", figure.column());
                assert!(text.contains(&by), "{figure:?} {descending}: {text}");
                assert_eq!(text.contains("DESC"), descending);
            }
        }
    }

    #[test]
    fn a_scope_keeps_its_groups_stores_in_every_order() {
        let orders = [RowOrder::StoreId]
            .into_iter()
            .chain(Figure::ALL.map(RowOrder::Figure));
        for order in orders {
            for descending in [false, true] {
                let of = |scope| statement(order, descending, scope);
                assert!(!of(Scope::Fleet).contains("store_groups"), "{order:?}");
                assert!(
                    of(Scope::OneGroup).contains("group_name = ($18::text[])[1]"),
                    "{order:?}"
                );
                assert!(of(Scope::Groups).contains("group_name = ANY($18)"), "{order:?}");
            }
        }
        let one = |groups: &[&str]| RowFilter {
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            ..RowFilter::default()
        };
        assert_eq!(Scope::of(&RowFilter::default()), Scope::Fleet);
        assert_eq!(Scope::of(&one(&["A"])), Scope::OneGroup);
        assert_eq!(Scope::of(&one(&["A", "B"])), Scope::Groups);
    }

    #[test]
    fn a_range_filters_its_own_figure() {
        let mut filter = RowFilter::default();
        filter.range(Figure::DowntimeLastDay, 5, 7);
        let kept: Vec<_> = Figure::ALL
            .iter()
            .zip(filter.ranges)
            .filter(|(_, r)| *r != (i32::MIN, i32::MAX))
            .collect();
        assert_eq!(kept, vec![(&Figure::DowntimeLastDay, (5, 7))]);
    }
}
