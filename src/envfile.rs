//! `.env`: the variables of a developer's set-up, in a file in the working directory, for
//! the commands that run against a database (`serve`, `worker`, `ingest`, `token`,
//! `reset-db`). A variable already in the environment wins over the file; `.env.example`
//! lists them all.

use std::path::Path;

use anyhow::Context;

/// The commands that read `.env`.
const READERS: [&str; 5] = ["serve", "worker", "ingest", "token", "reset-db"];

/// What was read from `.env`, to be logged once logging is set up.
#[derive(Debug, Default)]
pub struct EnvFile {
    /// The variables it set.
    pub set: Vec<String>,
    /// The variables it has that the environment set already (the environment's value stands).
    pub overridden: Vec<String>,
}

impl EnvFile {
    /// Logs what the file did.
    pub fn log(&self) {
        tracing::info!(
            set = ?self.set,
            kept_from_environment = ?self.overridden,
            "read .env"
        );
    }
}

/// Reads `.env` when the command (the first argument) is one that reads it and the file
/// exists; `None` otherwise. A file that cannot be parsed is an error naming its line.
///
/// Call it before any other thread starts: it changes the process's environment.
pub fn load(args: &[std::ffi::OsString]) -> anyhow::Result<Option<EnvFile>> {
    let command = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    let path = Path::new(".env");
    if !READERS.contains(&command) || !path.is_file() {
        return Ok(None);
    }
    let items = dotenvy::from_path_iter(path).context("cannot read .env")?;
    let mut file = EnvFile::default();
    for item in items {
        let (name, value) = item.context("cannot read .env")?;
        if std::env::var_os(&name).is_some() {
            file.overridden.push(name);
        } else {
            // SAFETY: `load`'s caller runs it while the process has a single thread, so no
            // one reads the environment meanwhile.
            unsafe { std::env::set_var(&name, value) };
            file.set.push(name);
        }
    }
    Ok(Some(file))
}
