//! store-monitor: how much of their business hours each store was offline.
//!
//! [`domain`] is the pure computation of the report (SPEC §2); [`ingest`] reads the input
//! CSV files (SPEC §1); [`db`] keeps them in PostgreSQL; [`jobs`] are the apalis jobs
//! (reports, the scheduled reload); [`graphql`] and [`http`] are the API (SPEC §3), and
//! [`startup`] puts it all together.

pub mod cli;
pub mod commands;
pub mod db;
pub mod domain;
pub mod graphql;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod output;
pub mod service;
pub mod startup;
pub mod telemetry;
