//! Background jobs run by apalis workers.

pub mod reload;
pub mod report;
