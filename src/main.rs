use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = store_monitor::cli::Cli::parse();
    match store_monitor::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("store-monitor: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
