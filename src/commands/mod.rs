//! One module per subcommand: its flags (which `cli` names), and what it runs: the
//! one-shot commands wire the library together and say what they did; `serve` and
//! `worker` describe the settings `startup` runs with. `args` has the flags several share.

pub(crate) mod args;
pub(crate) mod generate;
pub(crate) mod healthcheck;
pub(crate) mod ingest;
pub(crate) mod migrate;
pub(crate) mod push;
pub(crate) mod report;
pub(crate) mod reset_db;
pub(crate) mod serve;
pub(crate) mod token;
