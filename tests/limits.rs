//! What the schema refuses before any resolver runs, each with the code a client can act
//! on: documents that do not parse, that do not fit the schema, that nest too deep or cost
//! too much, and argument values their type does not take; and what it lets through: the
//! standard introspection query of graphql-js, which GraphiQL, Apollo and codegen send.
//!
//! The schema here has no data: a resolver that ran would panic, so a refusal shows that
//! nothing ran.

use serde_json::Value;
use store_monitor::graphql::{MAX_COST, MAX_INTROSPECTION_DEPTH, bare_schema};

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
async fn the_standard_introspection_query_passes_the_limits_and_says_what_the_schema_is() {
    // graphql-js 16.15 `getIntrospectionQuery` with descriptions, specifiedByUrl,
    // directiveIsRepeatable, schemaDescription and inputValueDeprecation.
    let query = include_str!("fixtures/introspection-graphql-js-16.15.graphql");
    let response = bare_schema().execute(query).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let data = response.data.into_json().unwrap();
    let description = data["__schema"]["description"].as_str().unwrap();
    assert!(description.starts_with("store-monitor"), "{description}");
    let types = data["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Report"));
}

#[tokio::test]
async fn an_introspection_query_one_level_deeper_than_its_limit_is_refused_as_invalid() {
    let at_limit = refused(&introspection_of_depth(MAX_INTROSPECTION_DEPTH)).await;
    assert!(at_limit.is_empty(), "{at_limit:?}");
    let deeper = refused(&introspection_of_depth(MAX_INTROSPECTION_DEPTH + 1)).await;
    assert_eq!(deeper.len(), 1, "{deeper:?}");
    assert_eq!(deeper[0].0, "GRAPHQL_VALIDATION_FAILED", "{deeper:?}");
    assert!(deeper[0].1.contains("deep, over the limit"), "{deeper:?}");
}

#[tokio::test]
async fn a_query_that_could_return_too_much_is_refused_with_its_figure_before_anything_runs() {
    // 60 aliases of a thousand reports' CSVs: 181 MB once, in 0.42 s.
    let query: String = (0..60)
        .map(|i| format!("r{i}: reports(first: 1000) {{ nodes {{ csv }} }} "))
        .collect();
    let response = bare_schema().execute(format!("{{ {query}}}")).await;
    let errors = serde_json::to_value(&response.errors).unwrap();
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
    let error = &errors[0];
    assert_eq!(
        error["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{error}"
    );
    assert_eq!(error["extensions"]["limit"], MAX_COST, "{error}");
    assert!(
        error["extensions"]["cost"].as_u64().unwrap() > MAX_COST,
        "{error}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("nodes, over the limit"),
        "{error}"
    );
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

#[tokio::test]
async fn a_parse_error_quotes_only_a_short_excerpt_of_the_query() {
    let query = format!("{{ dataset {{ stores {} }}", "x ".repeat(500_000));
    let errors = refused(&format!("{query} )")).await;
    assert_eq!(errors[0].0, "GRAPHQL_PARSE_FAILED");
    assert!(errors[0].1.chars().count() <= 301, "{} chars", errors[0].1.len());
}
