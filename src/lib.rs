//! store-monitor: how much of their business hours each store was offline.
//!
//! [`domain`] is the pure computation of the report (SPEC §2); [`ingest`] reads the input
//! CSV files (SPEC §1).

pub mod cli;
pub mod commands;
pub mod db;
pub mod domain;
pub mod ingest;
pub mod jobs;
pub mod telemetry;
