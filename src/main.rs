use clap::Parser;

fn main() -> std::process::ExitCode {
    // `.env` first, while the process has one thread (the runtime's start later).
    let env_file = match store_monitor::envfile::load(&std::env::args_os().collect::<Vec<_>>()) {
        Ok(file) => file,
        Err(error) => return fail(&error),
    };
    let cli = store_monitor::cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error.into()),
    };
    match runtime.block_on(store_monitor::cli::run(cli, env_file)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("store-monitor: error: {error:#}");
    std::process::ExitCode::FAILURE
}
