//! One module per one-shot subcommand: each parses nothing itself (see [`crate::cli`]),
//! wires the library together and says what it did.

pub(crate) mod generate;
pub(crate) mod ingest;
pub(crate) mod report;
pub(crate) mod reset_db;
pub(crate) mod token;
