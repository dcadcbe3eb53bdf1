//! What a GraphQL request asks to do, read off its document before anything runs: the
//! selected operation's root fields, through fragments, each mapped to an [`Action`]. The
//! HTTP and WebSocket doors ask `service::auth::authorize` about all of them at once, so
//! that a request with one field its caller may not use runs none (never half of a
//! document's mutations).

use std::collections::HashSet;

use async_graphql::Positioned;
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};

use crate::domain::access::Action;

/// The actions of the operation `request` selects. A document that does not parse, or
/// selects no operation, counts as a read: it runs nothing, but only a caller who may read
/// learns why.
pub(crate) fn actions(request: &mut async_graphql::Request) -> Vec<Action> {
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return vec![Action::Read];
    };
    let Some(operation) = selected(document, name.as_deref()) else {
        return vec![Action::Read];
    };
    let mut fields = Vec::new();
    root_fields(
        document,
        &operation.node.selection_set.node,
        &mut HashSet::new(),
        &mut fields,
    );
    let ty = operation.node.ty;
    let mut actions: Vec<Action> = fields
        .iter()
        .map(|field| action_of(ty, field).unwrap_or(Action::ManageTokens))
        .collect();
    actions.sort_by_key(|a| a.needs());
    actions.dedup();
    actions
}

/// The kind of the operation `request` selects, for the metrics: `query` (also for a
/// document that does not parse, or selects no operation), `mutation` or `subscription`.
/// The document is parsed once for this, the limits and the actions together.
pub(crate) fn operation_kind(request: &mut async_graphql::Request) -> &'static str {
    let name = request.operation_name.clone();
    let ty = request
        .parsed_query()
        .ok()
        .and_then(|document| selected(document, name.as_deref()))
        .map(|operation| operation.node.ty);
    match ty {
        None | Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
    }
}

/// The operation a request runs: the one named, or the first.
fn selected<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d Positioned<OperationDefinition>> {
    let mut operations = document.operations.iter();
    let found = match name {
        Some(name) => operations.find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => operations.next(),
    };
    found.map(|(_, operation)| operation)
}

/// What `operation { field }` does; `None` for a field this table does not know (a typo,
/// or a field added to the schema without a line here: a test checks there is none), which
/// is then treated as the most guarded action.
pub(crate) fn action_of(ty: OperationType, field: &str) -> Option<Action> {
    use OperationType::{Mutation, Query, Subscription};
    Some(match (ty, field) {
        (_, "__typename") | (Query, "__schema" | "__type") => Action::Introspect,
        (
            Query,
            "store" | "incidents" | "node" | "report" | "reports" | "latestReport" | "dataset"
            | "storeGroups" | "me",
        ) => Action::Read,
        (Mutation, "setGroupStores" | "renameGroup" | "deleteGroup") => Action::ManageGroups,
        (Query, "tokens") => Action::ManageTokens,
        (Mutation, "triggerReport") => Action::TriggerReport,
        (Mutation, "cancelReport") => Action::CancelReport,
        (Mutation, "reloadData") => Action::ReloadData,
        (Mutation, "deletePolls") => Action::DeletePolls,
        (Mutation, "recordPolls") => Action::PushPolls,
        (Mutation, "createToken" | "revokeToken") => Action::ManageTokens,
        (Query, "webhooks" | "webhook") => Action::ManageWebhooks,
        (Mutation, "createWebhook" | "rotateWebhookSecret" | "deleteWebhook" | "redeliver") => {
            Action::ManageWebhooks
        }
        (Subscription, "incidents" | "report" | "reports" | "dataset") => Action::Read,
        _ => return None,
    })
}

fn root_fields(
    document: &ExecutableDocument,
    selections: &SelectionSet,
    spread: &mut HashSet<String>,
    fields: &mut Vec<String>,
) {
    for selection in &selections.items {
        match &selection.node {
            Selection::Field(field) => fields.push(field.node.name.node.to_string()),
            Selection::InlineFragment(fragment) => {
                root_fields(document, &fragment.node.selection_set.node, spread, fields)
            }
            Selection::FragmentSpread(spread_node) => {
                let name = spread_node.node.fragment_name.node.to_string();
                if !spread.insert(name.clone()) {
                    continue;
                }
                if let Some(fragment) = document.fragments.get(name.as_str()) {
                    root_fields(document, &fragment.node.selection_set.node, spread, fields);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(query: &str) -> Vec<Action> {
        actions(&mut async_graphql::Request::new(query))
    }

    #[test]
    fn every_root_field_is_found_however_it_is_spelled() {
        assert_eq!(
            of("{ __typename __schema { description } }"),
            [Action::Introspect]
        );
        assert_eq!(of("{ dataset { stores } }"), [Action::Read]);
        assert_eq!(of("{ store(id: \"a\") { storeId } }"), [Action::Read]);
        assert_eq!(
            of("mutation { a: triggerReport { id } ... on Mutation { reloadData { changed } } }"),
            [Action::TriggerReport, Action::ReloadData]
        );
        assert_eq!(
            of(
                "mutation { ...M } fragment M on Mutation { ...N } fragment N on Mutation { createToken(input: {}) { secret } ...M }"
            ),
            [Action::ManageTokens]
        );
        assert_eq!(of("subscription { report(id: 1) { id } }"), [Action::Read]);
        assert_eq!(of("{ tokens { id } }"), [Action::ManageTokens]);
        assert_eq!(of("{ nosuchfield }"), [Action::ManageTokens]);
        assert_eq!(of("this is no document"), [Action::Read]);
    }

    #[test]
    fn only_the_selected_operation_counts() {
        let mut request = async_graphql::Request::new(
            "query A { dataset { stores } } mutation B { reloadData { changed } }",
        )
        .operation_name("A");
        assert_eq!(actions(&mut request), [Action::Read]);
        let mut request = request.operation_name("B");
        assert_eq!(actions(&mut request), [Action::ReloadData]);
    }

    #[test]
    fn every_root_field_of_the_schema_has_its_action() {
        let sdl = crate::graphql::sdl();
        for (ty, type_name) in [
            (OperationType::Query, "Query"),
            (OperationType::Mutation, "Mutation"),
            (OperationType::Subscription, "Subscription"),
        ] {
            let body = sdl
                .split(&format!("type {type_name} {{"))
                .nth(1)
                .and_then(|rest| rest.split("\n}").next())
                .unwrap_or_else(|| panic!("no type {type_name} in the SDL"));
            // A field starts a line at one level of indentation: `\tname(` or `\tname:`.
            let fields = body
                .lines()
                .filter(|l| l.starts_with('\t') && !l.starts_with("\t\t") && !l.trim_start().starts_with('"'))
                .filter_map(|l| l.trim().split(['(', ':']).next())
                .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            let mut seen = 0;
            for field in fields {
                seen += 1;
                assert!(
                    action_of(ty, field).is_some(),
                    "{type_name}.{field} has no action in graphql::access"
                );
            }
            assert!(seen > 0, "no fields read from type {type_name}");
        }
    }
}
