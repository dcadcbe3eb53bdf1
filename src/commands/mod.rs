//! One module per subcommand: each parses nothing itself (see [`crate::cli`]) and wires
//! the library together.

pub mod bench;
pub mod bench_db;
pub mod bench_server;
pub mod generate;
pub mod ingest;
pub mod report;
