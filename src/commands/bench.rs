//! `store-monitor bench`: placeholder replaced below.
use clap::Args;
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {}
pub fn run(_: &BenchArgs) -> anyhow::Result<()> {
    Ok(())
}
