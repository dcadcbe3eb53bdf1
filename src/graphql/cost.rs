//! What a document could cost, judged before anything runs: how deep its data fields nest,
//! and how many nodes it could return, counted the way GitHub's API counts them: a list
//! field's `first` multiplies everything below it.
//!
//! The check runs right after parsing, so that a document refused here never reaches
//! validation, whose work grows with the fragments' expansion (fragments that each spread
//! the next ten times would take it forever). Each fragment is measured once.
//!
//! Introspection (`__schema`, `__type`) has a depth limit of its own, deep enough for the
//! standard introspection queries of graphql-js and GraphiQL, and its lists count at the
//! sizes this schema's lists can reach: the whole schema costs a few tens of thousands of
//! nodes, the same schema asked for a thousand times over does not pass.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Name, ServerResult, Value, Variables};

/// How deep data fields may nest.
pub const MAX_DEPTH: usize = 10;
/// How deep an introspection field may nest, counted from `__schema` or `__type`: the
/// graphql-js query asks for 15 levels.
pub const MAX_INTROSPECTION_DEPTH: usize = 20;
/// How many data nodes a document could return at most: a page of a thousand rows costs
/// about 7,000.
pub const MAX_COST: u64 = 200_000;
/// How many introspection nodes, counted apart: the whole schema by graphql-js's
/// introspection query counts about 440,000 (an upper bound: each list at its largest),
/// so the schema may grow, and the schema asked for twice over does not pass.
pub const MAX_INTROSPECTION_COST: u64 = 800_000;
/// What a field that returns a whole report costs: about its rows (14,092 stores in the
/// full data set).
pub const WHOLE_REPORT_COST: u64 = 20_000;

/// The list fields that take `first`, and their page when it is not given.
pub(crate) const PAGED_FIELDS: [(&str, u64); 10] = [
    ("reports", 100),
    ("incidents", 100),
    ("deliveries", 20),
    ("polls", 100),
    ("rows", 100),
    ("loads", 10),
    ("rejectedRows", 20),
    ("prunings", 10),
    ("storeGroups", 100),
    ("storeIds", 100),
];

/// Fields that return a whole report, whatever is asked below them.
const WHOLE_REPORT_FIELDS: [&str; 1] = ["csv"];

/// The introspection lists, and sizes they do not exceed in this schema (a test checks).
pub(crate) const INTROSPECTION_LISTS: [(&str, u64); 9] = [
    ("types", 80),
    ("fields", 20),
    ("args", 6),
    ("inputFields", 8),
    ("enumValues", 24),
    ("interfaces", 2),
    ("possibleTypes", 4),
    ("directives", 8),
    ("locations", 8),
];

/// Why a document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    TooDeep { depth: usize, limit: usize },
    TooDeepIntrospection { depth: usize, limit: usize },
    TooCostly { cost: u64, limit: u64 },
    FragmentCycle { fragment: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooDeep { depth, limit } => {
                write!(
                    f,
                    "the query nests {depth} fields deep, over the limit of {limit}"
                )
            }
            Refusal::TooDeepIntrospection { depth, limit } => write!(
                f,
                "the introspection query nests {depth} fields deep, over the limit of {limit}"
            ),
            Refusal::TooCostly { cost, limit } => write!(
                f,
                "the query could return {cost} nodes, over the limit of {limit}: ask for smaller pages (`first`) or fewer fields"
            ),
            Refusal::FragmentCycle { fragment } => write!(f, "fragment {fragment} spreads itself"),
        }
    }
}

/// Refuses, right after parsing, a document over a limit: `GRAPHQL_VALIDATION_FAILED`,
/// with the figure and the limit in the message and in `extensions`.
pub(crate) struct CostLimits;

impl ExtensionFactory for CostLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CostLimits)
    }
}

#[async_trait::async_trait]
impl Extension for CostLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check(&document, variables).map_err(refusal_error)?;
        Ok(document)
    }
}

/// A refusal as the error a client sees.
fn refusal_error(refusal: Refusal) -> async_graphql::ServerError {
    let error = async_graphql::Error::new(refusal.to_string()).extend_with(|_, e| {
        e.set("code", "GRAPHQL_VALIDATION_FAILED");
        match refusal {
            Refusal::TooCostly { cost, limit } => {
                e.set("cost", cost);
                e.set("limit", limit);
            }
            Refusal::TooDeep { depth, limit } | Refusal::TooDeepIntrospection { depth, limit } => {
                e.set("depth", depth as u64);
                e.set("limit", limit as u64);
            }
            Refusal::FragmentCycle { .. } => {}
        }
    });
    // About the whole document: no location (GraphQL's are 1-based; 0:0 is none).
    let mut error = error.into_server_error(async_graphql::Pos::default());
    error.locations.clear();
    error
}

/// Measures a request's document before async-graphql sees it, and keeps it parsed.
///
/// The extension above comes too late for one kind of document: async-graphql checks the
/// recursion depth of each parsed document by walking every fragment spread anew, which
/// for fragments that each spread the next ten times is 10^levels steps (7 levels took
/// 2 s, 30 never end). The transports call this first; a document that does not parse is
/// left to async-graphql, which reports it with its code.
pub(crate) fn precheck(request: &mut async_graphql::Request) -> Result<(), async_graphql::ServerError> {
    let variables = request.variables.clone();
    match request.parsed_query() {
        Ok(document) => check(document, &variables).map(|_| ()).map_err(refusal_error),
        Err(_) => Ok(()),
    }
}

/// What a selection adds up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Measure {
    nodes: u64,
    introspection_nodes: u64,
    depth: usize,
    introspection_depth: usize,
}

impl Measure {
    fn beside(self, other: Measure) -> Measure {
        Measure {
            nodes: self.nodes.saturating_add(other.nodes),
            introspection_nodes: self.introspection_nodes.saturating_add(other.introspection_nodes),
            depth: self.depth.max(other.depth),
            introspection_depth: self.introspection_depth.max(other.introspection_depth),
        }
    }
}

/// The document's figures: the largest of its operations'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub nodes: u64,
    pub introspection_nodes: u64,
    pub depth: usize,
    pub introspection_depth: usize,
}

/// Measures every operation of `document` and refuses it if any goes over a limit.
pub(crate) fn check(document: &ExecutableDocument, variables: &Variables) -> Result<Figures, Refusal> {
    let mut walker = Walker {
        document,
        variables,
        measured: HashMap::new(),
        open: Vec::new(),
    };
    let mut figures = Figures::default();
    for (_, operation) in document.operations.iter() {
        let m = walker.selection_set(&operation.node.selection_set.node, false)?;
        figures.nodes = figures.nodes.max(m.nodes);
        figures.introspection_nodes = figures.introspection_nodes.max(m.introspection_nodes);
        figures.depth = figures.depth.max(m.depth);
        figures.introspection_depth = figures.introspection_depth.max(m.introspection_depth);
    }
    if figures.depth > MAX_DEPTH {
        return Err(Refusal::TooDeep {
            depth: figures.depth,
            limit: MAX_DEPTH,
        });
    }
    if figures.introspection_depth > MAX_INTROSPECTION_DEPTH {
        return Err(Refusal::TooDeepIntrospection {
            depth: figures.introspection_depth,
            limit: MAX_INTROSPECTION_DEPTH,
        });
    }
    if figures.nodes > MAX_COST {
        return Err(Refusal::TooCostly {
            cost: figures.nodes,
            limit: MAX_COST,
        });
    }
    if figures.introspection_nodes > MAX_INTROSPECTION_COST {
        return Err(Refusal::TooCostly {
            cost: figures.introspection_nodes,
            limit: MAX_INTROSPECTION_COST,
        });
    }
    Ok(figures)
}

struct Walker<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    /// Each fragment's measure, in data and in introspection context.
    measured: HashMap<(&'a Name, bool), Measure>,
    /// The fragments being measured, to catch one that spreads itself.
    open: Vec<&'a Name>,
}

impl<'a> Walker<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, introspection: bool) -> Result<Measure, Refusal> {
        let mut total = Measure::default();
        for item in &set.items {
            let m = match &item.node {
                Selection::Field(field) => self.field(&field.node, introspection)?,
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node, introspection)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node, introspection)?
                }
            };
            total = total.beside(m);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a Name, introspection: bool) -> Result<Measure, Refusal> {
        if let Some(m) = self.measured.get(&(name, introspection)) {
            return Ok(*m);
        }
        // An unknown fragment is validation's to report.
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(Measure::default());
        };
        if self.open.contains(&name) {
            return Err(Refusal::FragmentCycle {
                fragment: name.to_string(),
            });
        }
        self.open.push(name);
        let m = self.selection_set(&fragment.node.selection_set.node, introspection)?;
        self.open.pop();
        self.measured.insert((name, introspection), m);
        Ok(m)
    }

    fn field(&mut self, field: &'a Field, introspection: bool) -> Result<Measure, Refusal> {
        let name = field.name.node.as_str();
        let introspection = introspection || name == "__schema" || name == "__type";
        let below = self.selection_set(&field.selection_set.node, introspection)?;
        let (base, times) = if introspection {
            (1, introspection_list(name))
        } else if WHOLE_REPORT_FIELDS.contains(&name) {
            (WHOLE_REPORT_COST, 1)
        } else {
            (1, self.page(field))
        };
        Ok(if introspection {
            // Everything below an introspection field is introspection.
            let below_nodes = below.nodes.saturating_add(below.introspection_nodes);
            Measure {
                nodes: 0,
                introspection_nodes: base.saturating_add(times.saturating_mul(below_nodes)),
                depth: 0,
                introspection_depth: below.introspection_depth + 1,
            }
        } else {
            Measure {
                nodes: base.saturating_add(times.saturating_mul(below.nodes)),
                introspection_nodes: times.saturating_mul(below.introspection_nodes),
                depth: below.depth + 1,
                introspection_depth: below.introspection_depth,
            }
        })
    }

    /// How many items a paged list field asks for: its `first` (a literal or a variable),
    /// else its default page; 1 for any other field.
    fn page(&self, field: &Field) -> u64 {
        let name = field.name.node.as_str();
        let Some(&(_, default)) = PAGED_FIELDS.iter().find(|(n, _)| *n == name) else {
            return 1;
        };
        let first = field.get_argument("first").and_then(|v| {
            let value = v
                .node
                .clone()
                .into_const_with(|var| self.variables.get(&var).cloned().ok_or(()));
            match value {
                Ok(Value::Number(n)) => n.as_u64(),
                _ => None,
            }
        });
        // A negative or unreadable `first` is refused when the field runs.
        first.unwrap_or(default)
    }
}

fn introspection_list(name: &str) -> u64 {
    INTROSPECTION_LISTS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(1, |&(_, size)| size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(query: &str) -> Result<Figures, Refusal> {
        let document = async_graphql::parser::parse_query(query).unwrap();
        check(&document, &Variables::default())
    }

    #[test]
    fn a_page_multiplies_what_is_below_it() {
        let f = figures("{ reports(first: 10) { edges { node { id status } } } }").unwrap();
        // reports + 10 × (edges + node + id + status)
        assert_eq!(f.nodes, 1 + 10 * 4);
        let f = figures("{ reports { edges { node { rows(first: 3) { edges { cursor } } } } } }").unwrap();
        // reports (100 by default) × (edges + node + rows × 3 × (edges + cursor))
        assert_eq!(f.nodes, 1 + 100 * (1 + 1 + (1 + 3 * 2)));
        assert_eq!(f.depth, 6);
    }

    #[test]
    fn a_page_given_as_a_variable_counts_at_its_value() {
        let document =
            async_graphql::parser::parse_query("query($n: Int) { reports(first: $n) { edges { cursor } } }")
                .unwrap();
        let variables = Variables::from_json(serde_json::json!({ "n": 7 }));
        assert_eq!(check(&document, &variables).unwrap().nodes, 1 + 7 * 2);
    }

    #[test]
    fn data_nested_one_level_over_the_limit_is_refused() {
        let nest = |depth: usize| format!("{}x{}", "a { ".repeat(depth - 1), " }".repeat(depth - 1));
        assert!(figures(&format!("{{ {} }}", nest(MAX_DEPTH))).is_ok());
        assert_eq!(
            figures(&format!("{{ {} }}", nest(MAX_DEPTH + 1))),
            Err(Refusal::TooDeep {
                depth: MAX_DEPTH + 1,
                limit: MAX_DEPTH
            })
        );
    }

    #[test]
    fn fragments_that_each_spread_the_next_ten_times_are_refused_at_once() {
        let mut query = String::from("{ ...f0 }\nfragment f30 on Query { __typename }\n");
        for level in 0..30 {
            let spreads = format!("...f{} ", level + 1).repeat(10);
            query.push_str(&format!("fragment f{level} on Query {{ {spreads}}}\n"));
        }
        // Measured once per fragment, not once per spread: 10^30 spreads would never end.
        assert!(matches!(figures(&query), Err(Refusal::TooCostly { .. })));
    }

    #[test]
    fn a_fragment_that_spreads_itself_is_refused() {
        let refusal =
            figures("{ ...a } fragment a on Query { ...b } fragment b on Query { ...a }").unwrap_err();
        assert!(matches!(refusal, Refusal::FragmentCycle { .. }), "{refusal:?}");
    }

    #[test]
    fn a_field_that_returns_a_whole_report_costs_its_size() {
        let f = figures("{ a: report(id: 1) { csv } b: report(id: 2) { csv } }").unwrap();
        assert_eq!(f.nodes, 2 * (1 + WHOLE_REPORT_COST));
        assert!(matches!(
            figures("{ reports(first: 10) { edges { node { csv } } } }"),
            Err(Refusal::TooCostly { .. })
        ));
    }

    #[test]
    fn every_alias_counts_even_typename() {
        // reports + 1000 × (edges + 200 aliases): just over the limit.
        let aliases: String = (0..200).map(|i| format!("a{i}: __typename ")).collect();
        let query = format!("{{ reports(first: 1000) {{ edges {{ {aliases}}} }} }}");
        assert_eq!(
            figures(&query),
            Err(Refusal::TooCostly {
                cost: 1 + 1000 * 201,
                limit: MAX_COST
            })
        );
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    /// Every list this schema has, against the sizes `INTROSPECTION_LISTS` assumes, and
    /// every field that takes `first` against `PAGED_FIELDS`.
    #[tokio::test]
    async fn the_assumed_sizes_hold_for_this_schema() {
        let query = "{ __schema { types { name fields(includeDeprecated: true) { name args { name } }
            inputFields { name } enumValues(includeDeprecated: true) { name } interfaces { name }
            possibleTypes { name } } directives { args { name } locations } } }";
        let response = crate::graphql::bare_schema().execute(query).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let data = response.data.into_json().unwrap();
        let schema = &data["__schema"];
        let len = |v: &serde_json::Value| v.as_array().map_or(0, Vec::len) as u64;
        let size = |name: &str| INTROSPECTION_LISTS.iter().find(|(n, _)| *n == name).unwrap().1;
        let types = schema["types"].as_array().unwrap();
        assert!(len(&schema["types"]) <= size("types"));
        assert!(len(&schema["directives"]) <= size("directives"));
        for d in schema["directives"].as_array().unwrap() {
            assert!(len(&d["args"]) <= size("args"));
            assert!(len(&d["locations"]) <= size("locations"));
        }
        for t in types {
            for list in [
                "fields",
                "inputFields",
                "enumValues",
                "interfaces",
                "possibleTypes",
            ] {
                assert!(len(&t[list]) <= size(list), "{} {list}", t["name"]);
            }
            for f in t["fields"].as_array().into_iter().flatten() {
                assert!(len(&f["args"]) <= size("args"), "{}.{}", t["name"], f["name"]);
                let paged = f["args"].as_array().unwrap().iter().any(|a| a["name"] == "first");
                let known = PAGED_FIELDS.iter().any(|(n, _)| f["name"] == *n);
                // The walker knows fields by name alone: the `reports` and `incidents`
                // subscriptions count as pages of the query's lists, and `Dataset.polls` (a
                // count) as a page of a store's polls: more than they cost, never less.
                let over_counted = (t["name"] == "Subscription"
                    && (f["name"] == "reports" || f["name"] == "incidents"))
                    || (t["name"] == "Dataset" && f["name"] == "polls");
                if !over_counted {
                    assert_eq!(paged, known, "{}.{} and PAGED_FIELDS", t["name"], f["name"]);
                }
            }
        }
    }
}

#[cfg(test)]
mod introspection_tests {
    use super::*;

    #[test]
    fn the_standard_introspection_query_costs_well_under_the_limit() {
        let query = include_str!("../../tests/fixtures/introspection-graphql-js-16.15.graphql");
        let document = async_graphql::parser::parse_query(query).unwrap();
        let f = check(&document, &Variables::default()).unwrap();
        assert_eq!(f.depth, 0, "introspection does not count as data depth");
        assert_eq!(f.introspection_depth, 15);
        assert_eq!(f.nodes, 0, "introspection counts apart");
        // Room for the schema to grow.
        assert!(
            f.introspection_nodes < MAX_INTROSPECTION_COST * 3 / 4,
            "{} nodes",
            f.introspection_nodes
        );
    }
}
