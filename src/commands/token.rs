//! `store-monitor token`: create, list and revoke API tokens, straight in the database
//! (the way to make the first admin token of a server that needs one).

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::args::DbArgs;
use crate::db;
use crate::db::tokens::TokenRecord;
use crate::domain::access::Role;
use crate::service::auth;

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    #[command(flatten)]
    database: DbArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print its secret (alone on stdout; details on stderr).
    Create {
        /// What it may do: viewer, operator or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who or what it is for, as the audit log and `token list` show it.
        #[arg(long)]
        name: String,
        /// See only the stores of this store group (repeat it for several; from the
        /// store-groups file). A viewer's or operator's token; none: the whole fleet.
        #[arg(long = "group", value_name = "NAME")]
        groups: Vec<String>,
        /// Stop working after this many days (default: never).
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
        expires_in_days: Option<u32>,
    },
    /// List the tokens (never their secrets): id, role, state, created, last used, expiry.
    List,
    /// Revoke a token by id: it is refused from its next use on, by every server.
    Revoke {
        /// The token's id, as `token list` shows it, or its first characters (at least
        /// four) when no other token's id starts with them.
        id: String,
    },
}

/// Which stores the token sees, in words.
fn sees(record: &TokenRecord) -> String {
    match &record.groups {
        Some(groups) => format!("seeing the stores of {}", groups.join(", ")),
        None => "seeing the whole fleet".to_string(),
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

pub(crate) async fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let (command, database) = (&args.command, &args.database);
    // Tokens belong to a database that serves: one that is not there is a mistake (a wrong
    // DATABASE_URL), not one to create.
    let pool = db::connect_existing(&database.database_url, 2).await?;
    match command {
        TokenCommand::Create {
            role,
            name,
            groups,
            expires_in_days,
        } => {
            let expires_at = expires_in_days.map(|days| Utc::now() + chrono::TimeDelta::days(days.into()));
            let groups = (!groups.is_empty()).then_some(groups.as_slice());
            let (record, secret) = auth::create_token(&pool, name, *role, groups, expires_at).await?;
            tracing::info!(target: "audit", token_id = %record.id, token_name = %record.name, role = %record.role, "token created from the command line");
            // The secret alone on stdout, for scripts: TOKEN=$(store-monitor token create …).
            println!("{}", secret.0);
            eprintln!(
                "created {} token {:?} (id {}), {}, {}.\nThe secret above is shown only this once: keep it where you keep passwords. \
                 Send it as `Authorization: Bearer <secret>`.",
                record.role,
                record.name,
                record.id,
                sees(&record),
                expiry(record.expires_at)
            );
        }
        TokenCommand::List => {
            let tokens = auth::list_tokens(&pool).await?;
            if tokens.is_empty() {
                eprintln!("no tokens yet: store-monitor token create --role admin --name NAME");
            }
            println!(
                "{:<36}  {:<8}  {:<7}  {:<20}  {:<20}  {:<20}  name",
                "id", "role", "state", "created", "last used", "expires"
            );
            for token in tokens {
                println!(
                    "{:<36}  {:<8}  {:<7}  {:<20}  {:<20}  {:<20}  {}",
                    token.id,
                    token.role.name(),
                    state(&token),
                    when(Some(token.created_at)),
                    when(token.last_used_at),
                    when(token.expires_at),
                    match &token.groups {
                        Some(groups) => format!("{} (groups {})", token.name, groups.join(", ")),
                        None => token.name.clone(),
                    }
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let token = auth::find_token(&pool, id).await?;
            match auth::revoke_token(&pool, &token).await? {
                auth::Revocation::Revoked(record) => {
                    tracing::info!(target: "audit", token_id = %record.id, token_name = %record.name, "token revoked from the command line");
                    eprintln!(
                        "revoked {} token {:?} (id {}): it is refused from its next use on",
                        record.role, record.name, record.id
                    );
                }
                auth::Revocation::AlreadyRevoked(record) => eprintln!(
                    "the {} token {:?} (id {}) was revoked already, at {}: nothing changed",
                    record.role,
                    record.name,
                    record.id,
                    when(record.revoked_at)
                ),
            }
        }
    }
    Ok(())
}

fn state(token: &TokenRecord) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at.is_some_and(|at| at <= Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "-".to_string(),
        |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

fn expiry(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never expires".to_string(),
        |at| format!("expires {}", at.to_rfc3339()),
    )
}
