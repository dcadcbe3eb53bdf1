//! What came of loading an input file.

/// What came of loading one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Read and applied.
    Loaded,
    /// The same bytes as the last successful load of this kind: skipped.
    Unchanged,
    /// Nothing applied; see the error.
    Failed,
}

impl Outcome {
    /// How logs and the command line say it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Loaded => "loaded",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
        }
    }
}
