//! What the schema refuses before any resolver runs, each with the code a client can act
//! on: documents that do not parse, that do not fit the schema, that nest too deep or cost
//! too much, and argument values their type does not take.

use serde_json::Value;
use store_monitor::graphql::{MAX_COMPLEXITY, MAX_DEPTH, bare_schema};

/// The errors' codes and messages of running `query` on the schema (with its limits).
async fn refused(query: &str) -> Vec<(String, String)> {
    let response = bare_schema().execute(query).await;
    let errors = serde_json::to_value(&response.errors).unwrap();
    errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let code = e["extensions"]["code"].as_str().unwrap_or("(none)").to_string();
            (code, e["message"].as_str().unwrap().to_string())
        })
        .collect()
}

/// A valid introspection query `depth` fields deep: `__schema { types { fields { type
/// { ofType { … name } } } } }`.
fn introspection_of_depth(depth: usize) -> String {
    assert!(depth >= 5);
    let of_types = depth - 5;
    format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(of_types),
        " }".repeat(of_types)
    )
}

#[tokio::test]
async fn a_query_one_level_deeper_than_the_limit_is_refused_as_invalid() {
    assert_eq!(MAX_DEPTH, 10, "the queries below are built for a limit of 10");
    let at_limit = refused(&introspection_of_depth(MAX_DEPTH)).await;
    assert!(at_limit.is_empty(), "{at_limit:?}");
    let deeper = refused(&introspection_of_depth(MAX_DEPTH + 1)).await;
    assert_eq!(deeper.len(), 1, "{deeper:?}");
    assert_eq!(deeper[0].0, "GRAPHQL_VALIDATION_FAILED", "{deeper:?}");
    assert!(deeper[0].1.contains("nested too deep"), "{deeper:?}");
}

#[tokio::test]
async fn a_query_over_the_cost_limit_is_refused_as_invalid() {
    // Four fields an alias: reports, edges, node, id.
    let aliases = MAX_COMPLEXITY / 4 + 1;
    let query: String = (0..aliases)
        .map(|i| format!("r{i}: reports(first: 1) {{ edges {{ node {{ id }} }} }} "))
        .collect();
    let errors = refused(&format!("{{ {query}}}")).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "GRAPHQL_VALIDATION_FAILED", "{errors:?}");
    assert!(errors[0].1.contains("too complex"), "{errors:?}");
}

#[tokio::test]
async fn each_step_that_refuses_a_document_gives_its_own_code() {
    let syntax = refused("{ report(id: ").await;
    assert_eq!(syntax[0].0, "GRAPHQL_PARSE_FAILED", "{syntax:?}");
    let unknown_field = refused("{ dataset { weather } }").await;
    assert_eq!(
        unknown_field[0].0, "GRAPHQL_VALIDATION_FAILED",
        "{unknown_field:?}"
    );
    let unknown_operation = bare_schema()
        .execute(async_graphql::Request::new("query a { __typename }").operation_name("b"))
        .await;
    let unknown_operation: Value = serde_json::to_value(&unknown_operation.errors).unwrap();
    assert_eq!(
        unknown_operation[0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    // A value its type does not take, inline: the client's input, not the document's shape.
    let bad_enum = refused("mutation { triggerReport(input: { interpolation: LINEAR }) { id } }").await;
    assert_eq!(bad_enum[0].0, "BAD_USER_INPUT", "{bad_enum:?}");
    let bad_int = refused("{ reports(first: \"many\") { edges { cursor } } }").await;
    assert_eq!(bad_int[0].0, "BAD_USER_INPUT", "{bad_int:?}");
}
