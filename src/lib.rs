//! store-monitor: how much of their business hours each store was offline.
//!
//! [`domain`] is the pure computation of the report (SPEC §2) and a report's life;
//! [`input`] reads the input CSV files (SPEC §1); [`db`] keeps them, the reports and the
//! job queue in PostgreSQL; [`jobs`] are the apalis jobs (reports, the scheduled reload);
//! [`service`] is what the API does, the one door of `graphql` and `http` (SPEC §3);
//! [`startup`] puts it all together. `ARCHITECTURE.md` draws the map.

pub mod cli;
mod commands;
pub mod db;
pub mod domain;
pub mod envfile;
mod failpoint;
pub mod generate;
pub mod graphql;
mod http;
pub mod input;
pub mod jobs;
pub mod output;
pub(crate) mod service;
pub mod settings;
pub mod startup;
mod telemetry;
