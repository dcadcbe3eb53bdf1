//! What a token scoped to store groups sees of the dataset: the counts and poll bounds of
//! its groups' stores. The fleet's come from `loads` and `history`, cheaply; these count.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::loads::Tally;

/// `what` of the stores in any of `groups`.
pub(crate) async fn tally(db: impl PgExecutor<'_>, what: Tally, groups: &[String]) -> sqlx::Result<i64> {
    let statement = match what {
        Tally::Stores => "SELECT count(DISTINCT store) FROM store_groups WHERE group_name = ANY($1)",
        Tally::PolledStores => {
            "SELECT count(*) FROM stores
             WHERE first_poll IS NOT NULL
               AND id IN (SELECT store FROM store_groups WHERE group_name = ANY($1))"
        }
        Tally::Polls => {
            "SELECT count(*) FROM polls WHERE store IN (SELECT store FROM store_groups WHERE group_name = ANY($1))"
        }
        Tally::BusinessHours => {
            "SELECT count(*) FROM business_hours
             WHERE store IN (SELECT store FROM store_groups WHERE group_name = ANY($1))"
        }
        Tally::Timezones => {
            "SELECT count(*) FROM timezones WHERE store IN (SELECT store FROM store_groups WHERE group_name = ANY($1))"
        }
    };
    sqlx::query_scalar(statement).bind(groups).fetch_one(db).await
}

/// The newest poll of the stores in any of `groups`: each store's by its index, then the
/// newest of those.
pub(crate) async fn newest_poll(
    db: impl PgExecutor<'_>,
    groups: &[String],
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT max(last.at)
         FROM (SELECT DISTINCT store FROM store_groups WHERE group_name = ANY($1)) g,
              LATERAL (SELECT at FROM polls WHERE store = g.store ORDER BY at DESC LIMIT 1) last",
    )
    .bind(groups)
    .fetch_one(db)
    .await
}

/// The oldest poll stored of the stores in any of `groups`.
pub(crate) async fn oldest_poll(
    db: impl PgExecutor<'_>,
    groups: &[String],
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT min(first.at)
         FROM (SELECT DISTINCT store FROM store_groups WHERE group_name = ANY($1)) g,
              LATERAL (SELECT at FROM polls WHERE store = g.store ORDER BY at LIMIT 1) first",
    )
    .bind(groups)
    .fetch_one(db)
    .await
}

/// The ids of the stores in any of `groups`.
pub(crate) async fn store_ids(db: impl PgExecutor<'_>, groups: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT DISTINCT store_id FROM store_groups WHERE group_name = ANY($1)")
        .bind(groups)
        .fetch_all(db)
        .await
}
