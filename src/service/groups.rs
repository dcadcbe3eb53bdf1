//! Store groups: which stores a token scoped to groups sees. Admins set them here, for
//! fleets without a store-groups file; where there is one, each load of a changed file
//! replaces them all (it is the fleet's record of groups, as the hours file is of hours).

use super::auth::Caller;
use super::{AppState, Error, Result};
use crate::db::groups::{self, GroupRecord};
use crate::db::tokens;

/// The most stores `setGroupStores` takes at once.
pub const MAX_GROUP_STORES: usize = 100_000;

/// Up to `limit` of the groups the caller sees by name, after `after`: every group for a
/// fleet caller, its own for a scoped one.
pub async fn list_groups(
    state: &AppState,
    caller: &Caller,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<GroupRecord>> {
    Ok(groups::page(&state.db, caller.groups(), after, limit).await?)
}

/// Up to `limit` of the ids of a group's stores, in byte order, after `after`.
pub async fn group_store_ids(
    state: &AppState,
    group: &GroupRecord,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(groups::store_ids(&state.db, &group.name, after, limit).await?)
}

/// A group name as given, trimmed, or why it is none.
fn group_name(name: &str) -> Result<String> {
    crate::input::fields::group(name.as_bytes())
        .map(str::to_string)
        .map_err(Error::BadInput)
}

/// Makes `group` hold exactly the stores `store_ids` (creating it if new). Every id must
/// name a known store (one a file or a push has named).
pub async fn set_group_stores(
    state: &AppState,
    caller: &Caller,
    group: &str,
    mut store_ids: Vec<String>,
) -> Result<GroupRecord> {
    let name = group_name(group)?;
    if store_ids.is_empty() {
        return Err(Error::BadInput(
            "storeIds is empty: a group has at least one store (deleteGroup removes one)".into(),
        ));
    }
    if store_ids.len() > MAX_GROUP_STORES {
        return Err(Error::BadInput(format!(
            "storeIds may list at most {MAX_GROUP_STORES} stores"
        )));
    }
    for id in &store_ids {
        super::check_store_id(id)?;
    }
    store_ids.sort();
    store_ids.dedup();
    let mut tx = state.db.begin().await?;
    let unknown = groups::unknown_stores(&mut *tx, &store_ids).await?;
    if !unknown.is_empty() {
        let shown: Vec<String> = unknown.iter().take(10).map(|id| format!("{id:?}")).collect();
        return Err(Error::BadInput(format!(
            "{} of the store ids name no store ({}{}): a store is known once a file or a push names it",
            unknown.len(),
            shown.join(", "),
            if unknown.len() > shown.len() { ", …" } else { "" }
        )));
    }
    let before = groups::clear(&mut *tx, &name).await?;
    let stores = groups::add(&mut *tx, &name, &store_ids).await?;
    tx.commit().await?;
    tracing::info!(caller = %caller, group = name, before, stores, "group's stores set");
    Ok(GroupRecord {
        name,
        stores: stores as i64,
    })
}

/// Renames a group, in the tokens scoped to it too (they see the same stores).
pub async fn rename_group(state: &AppState, caller: &Caller, group: &str, to: &str) -> Result<GroupRecord> {
    let (from, to) = (group_name(group)?, group_name(to)?);
    let mut tx = state.db.begin().await?;
    if !groups::exists(&mut *tx, &from).await? {
        return Err(Error::NotFound(format!("no store is in the group {from:?}")));
    }
    if from != to && groups::exists(&mut *tx, &to).await? {
        return Err(Error::BadInput(format!(
            "a group named {to:?} exists already: set its stores, or delete it first"
        )));
    }
    let stores = groups::rename(&mut *tx, &from, &to).await?;
    let tokens = tokens::rename_group(&mut *tx, &from, &to).await?;
    tx.commit().await?;
    // This process reads those tokens again at once, not when the notice comes back.
    super::auth::forget_tokens(state, &tokens);
    tracing::info!(caller = %caller, from, to, stores, tokens = tokens.len(), "group renamed");
    Ok(GroupRecord {
        name: to,
        stores: stores as i64,
    })
}

/// Deletes a group: its stores stay, in their other groups. Refused while a token is
/// scoped to it (revoke those first): a token scoped to no store would see nothing and
/// say nothing of why.
pub async fn delete_group(state: &AppState, caller: &Caller, group: &str) -> Result<GroupRecord> {
    let name = group_name(group)?;
    let mut tx = state.db.begin().await?;
    let scoped = tokens::scoped_to(&mut *tx, &name).await?;
    if scoped > 0 {
        return Err(Error::BadInput(format!(
            "{scoped} token{} scoped to the group {name:?}: revoke {} first",
            if scoped == 1 { " is" } else { "s are" },
            if scoped == 1 { "it" } else { "them" }
        )));
    }
    let stores = groups::clear(&mut *tx, &name).await?;
    if stores == 0 {
        return Err(Error::NotFound(format!("no store is in the group {name:?}")));
    }
    tx.commit().await?;
    tracing::info!(caller = %caller, group = name, stores, "group deleted");
    Ok(GroupRecord {
        name,
        stores: stores as i64,
    })
}
