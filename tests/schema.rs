//! The committed schema.graphql is the code's schema, and it documents itself.

mod common;

#[test]
fn the_committed_schema_is_the_codes_schema() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    let generated = store_monitor::graphql::sdl();
    assert!(
        committed == generated,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

#[tokio::test]
async fn every_type_field_argument_and_value_of_ours_is_documented() {
    let query = "{ __schema { types { name description
        fields { name description args { name description } }
        inputFields { name description }
        enumValues { name description } } } }";
    let response = store_monitor::graphql::bare_schema().execute(query).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let data = response.data.into_json().unwrap();
    // Built-in scalars and async-graphql's PageInfo are not ours to document; our
    // connection types and the DateTime scalar are (the schema overrides their text).
    let not_ours = |name: &str| {
        name.starts_with("__") || ["String", "Int", "Float", "Boolean", "ID", "PageInfo"].contains(&name)
    };
    let described = |v: &serde_json::Value| v["description"].as_str().is_some_and(|d| !d.trim().is_empty());
    let mut missing = Vec::new();
    for t in data["__schema"]["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        if not_ours(name) {
            continue;
        }
        if !described(t) {
            missing.push(name.to_string());
        }
        for list in ["fields", "inputFields", "enumValues"] {
            for member in t[list].as_array().into_iter().flatten() {
                let member_name = member["name"].as_str().unwrap();
                if !described(member) {
                    missing.push(format!("{name}.{member_name}"));
                }
                for arg in member["args"].as_array().into_iter().flatten() {
                    if !described(arg) {
                        missing.push(format!("{name}.{member_name}({})", arg["name"].as_str().unwrap()));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:?}");
}

#[tokio::test]
async fn graphql_schema_linter_finds_nothing_but_alphabetical_order() {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let log = common::js::run("lint.mjs", vec![schema.to_string()], vec![]).await;
    assert!(log.contains("nothing found"), "{log}");
}
