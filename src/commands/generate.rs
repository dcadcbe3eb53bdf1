//! `store-monitor generate`: writes a data set and says what it holds.

use std::time::Instant;

use crate::generate::{Plan, generate};

pub(crate) fn run(plan: &Plan) -> anyhow::Result<()> {
    let started = Instant::now();
    let generated = generate(plan)?;
    let size = std::fs::metadata(&generated.path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "generate: {} stores, {} polls from {} to {} into {} ({:.1} MB) in {:.1} s",
        generated.stores,
        generated.polls,
        generated.first,
        generated.last,
        generated.path.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
