//! The GraphQL types of store groups, and of the caller (which groups its token sees).

use async_graphql::{Context, ID, Object, SimpleObject};

use super::page_size;
use super::tokens::Role;
use crate::service::{self, AppState, GroupRecord};

pub struct GroupNode(pub GroupRecord);

/// A store group (a brand, a franchisee, a region): a token scoped to groups sees their
/// stores alone. From the store-groups file, or set by admins (`setGroupStores`).
#[Object(name = "StoreGroup")]
impl GroupNode {
    /// Its name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// How many stores it has.
    async fn store_count(&self) -> i64 {
        self.0.stores
    }

    /// Its stores' ids in byte order, a page at a time.
    async fn store_ids(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, at most 1000 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The store id to start after (the last of the previous page).")] after: Option<
            String,
        >,
    ) -> async_graphql::Result<Vec<ID>> {
        let limit = page_size(first)?;
        let state = ctx.data_unchecked::<AppState>();
        let ids = service::group_store_ids(state, &self.0, after.as_deref(), limit).await?;
        Ok(ids.into_iter().map(ID).collect())
    }
}

/// Who is asking: the token a request came with, and which stores it sees.
#[derive(SimpleObject)]
pub struct Me {
    /// The token's name; null without a token (a server that needs none).
    pub name: Option<String>,
    /// What the token may do; null without a token.
    pub role: Option<Role>,
    /// The store groups it sees, alone; null: the whole fleet.
    pub groups: Option<Vec<String>>,
}

impl Me {
    pub(crate) fn of(ctx: &Context<'_>) -> Me {
        let caller = super::caller(ctx);
        match &caller.token {
            Some(token) => Me {
                name: Some(token.name.clone()),
                role: Some(token.role.into()),
                groups: token.groups.clone(),
            },
            None => Me {
                name: None,
                role: None,
                groups: None,
            },
        }
    }
}
