//! `store-monitor token`: create, list and revoke API tokens, straight in the database
//! (the way to make the first admin token of a server that needs one).

use chrono::{DateTime, Utc};

use crate::cli::{DbArgs, TokenCommand};
use crate::db;
use crate::db::tokens::TokenRecord;
use crate::service::auth;

pub(crate) async fn run(command: &TokenCommand, database: &DbArgs) -> anyhow::Result<()> {
    let pool = db::connect(&database.database_url, 2).await?;
    match command {
        TokenCommand::Create {
            role,
            name,
            expires_in_days,
        } => {
            let expires_at = expires_in_days.map(|days| Utc::now() + chrono::TimeDelta::days(days.into()));
            let (record, secret) = auth::create_token(&pool, name, *role, expires_at).await?;
            tracing::info!(target: "audit", token_id = %record.id, token_name = %record.name, role = %record.role, "token created from the command line");
            // The secret alone on stdout, for scripts: TOKEN=$(store-monitor token create …).
            println!("{}", secret.0);
            eprintln!(
                "created {} token {:?} (id {}), {}.\nThe secret above is shown only this once: keep it where you keep passwords. \
                 Send it as `Authorization: Bearer <secret>`.",
                record.role,
                record.name,
                record.id,
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
                    token.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let Some(record) = auth::revoke_token(&pool, *id).await? else {
                anyhow::bail!("no token with id {id} (see `store-monitor token list`)");
            };
            tracing::info!(target: "audit", token_id = %record.id, token_name = %record.name, "token revoked from the command line");
            eprintln!(
                "revoked {} token {:?} (id {}): it is refused from its next use on",
                record.role, record.name, record.id
            );
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
