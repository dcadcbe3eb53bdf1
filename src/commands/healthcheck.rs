//! `store-monitor healthcheck`: exit 0 when a server answers `/readyz` with 200 in time, 1
//! otherwise: a container's health check, with no curl in the image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct HealthcheckArgs {
    /// The server's address, as `serve --bind` has it (an unspecified address, 0.0.0.0 or
    /// [::], is asked on loopback).
    #[arg(long, env = "STORE_MONITOR_BIND", default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// The URL to ask instead (its `/readyz` is asked).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// How long to wait for the answer, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,
}

impl HealthcheckArgs {
    fn readyz(&self) -> String {
        match &self.url {
            Some(url) => format!("{}/readyz", url.trim_end_matches('/')),
            None => {
                let ip = match self.bind.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                format!("http://{}/readyz", SocketAddr::new(ip, self.bind.port()))
            }
        }
    }
}

/// Asks once; an error (the process exits 1) says why it is not healthy.
pub(crate) async fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let url = args.readyz();
    let timeout = Duration::from_secs(args.timeout);
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let response = client.get(&url).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            format!("no answer within {} s", args.timeout)
        } else if e.is_connect() {
            "cannot connect (nothing listens there, or the network refuses)".to_string()
        } else {
            "the request failed".to_string()
        };
        anyhow::anyhow!("{url}: {why}: {e}")
    })?;
    let status = response.status();
    anyhow::ensure!(
        status == reqwest::StatusCode::OK,
        "{url} answered {status}: {}",
        response.text().await.unwrap_or_default().trim()
    );
    println!("{url}: ready");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: HealthcheckArgs,
    }

    #[test]
    fn an_unspecified_bind_is_asked_on_loopback() {
        let of = |args: &[&str]| Cli::parse_from([&["x"], args].concat()).args.readyz();
        assert_eq!(of(&["--bind", "0.0.0.0:9000"]), "http://127.0.0.1:9000/readyz");
        assert_eq!(of(&["--bind", "[::]:9000"]), "http://[::1]:9000/readyz");
        assert_eq!(of(&["--bind", "10.0.0.5:80"]), "http://10.0.0.5:80/readyz");
        assert_eq!(
            of(&["--url", "https://monitor.example/"]),
            "https://monitor.example/readyz"
        );
    }
}
