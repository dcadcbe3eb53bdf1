//! Signed report links: a `csvUrl` works without a header, for its caller, for a while.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::{Caller, Denied, TokenUse, authorize, usable};
use crate::db::tokens;
use crate::domain::access::Action;
use crate::service::{AppState, Error, Result};

/// How long a signed report link (`csvUrl`) works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// A report's download link for `caller`, good for [`LINK_TTL`]: the path with an expiry,
/// the token it was given to (so that revoking the token kills its links, and a scoped
/// token's link gives its groups' rows alone) and an HMAC of the three, as a presigned URL
/// has.
pub fn report_link(state: &AppState, report: Uuid, caller: &Caller) -> String {
    let expires = (Utc::now() + LINK_TTL).timestamp();
    let by = caller
        .token
        .as_ref()
        .map_or_else(|| "-".to_string(), |t| t.id.to_string());
    let signature = hex::encode(
        link_mac(&state.access.key, report, expires, &by)
            .finalize()
            .into_bytes(),
    );
    format!("/reports/{report}.csv?expires={expires}&by={by}&signature={signature}")
}

/// The query string of a signed link, as sent back.
#[derive(Debug, Default, serde::Deserialize)]
pub struct LinkParams {
    pub expires: Option<String>,
    pub by: Option<String>,
    pub signature: Option<String>,
}

impl LinkParams {
    /// Whether the request has a signature to check (else its `Authorization` counts).
    pub fn given(&self) -> bool {
        self.expires.is_some() || self.by.is_some() || self.signature.is_some()
    }
}

/// Checks a signed link to `report`: whole, untampered, unexpired, and its token still
/// usable. The caller it stands for is returned (for the audit log).
pub async fn check_link(
    state: &AppState,
    report: Uuid,
    params: &LinkParams,
    address: Option<IpAddr>,
) -> Result<Caller> {
    let refused = |reason: &str| {
        Error::Denied(Denied::Unauthenticated {
            reason: format!("{reason}: ask for the report again for a fresh csvUrl"),
            token_sent: true,
        })
    };
    let (Some(expires), Some(by), Some(signature)) = (&params.expires, &params.by, &params.signature) else {
        return Err(refused(
            "the link is incomplete (expires, by and signature go together)",
        ));
    };
    let expires: i64 = expires
        .parse()
        .map_err(|_| refused("the link's expiry is not a time"))?;
    let signature = hex::decode(signature).map_err(|_| refused("the link's signature is not valid"))?;
    link_mac(&state.access.key, report, expires, by)
        .verify_slice(&signature)
        .map_err(|_| refused("the link's signature is not valid"))?;
    if expires <= Utc::now().timestamp() {
        return Err(refused("the link has expired"));
    }
    if by == "-" {
        // Given out without a token: good while the server needs none.
        let caller = Caller::anonymous(address);
        authorize(state, &caller, &[Action::Read])?;
        return Ok(caller);
    }
    let id = Uuid::parse_str(by).map_err(|_| refused("the link's signature is not valid"))?;
    let record = tokens::by_id(&state.db, id)
        .await?
        .ok_or_else(|| refused("the link's token no longer exists"))?;
    usable(&record, Utc::now())
        .map_err(|d| refused(&format!("the link's token is not usable ({})", d.message())))?;
    let caller = Caller {
        token: Some(TokenUse {
            id: record.id,
            name: record.name,
            role: record.role,
            groups: record.groups,
            secret_sha256: [0; 32],
        }),
        address,
        out_of_scope: Default::default(),
    };
    authorize(state, &caller, &[Action::Read])?;
    Ok(caller)
}

fn link_mac(key: &[u8], report: Uuid, expires: i64, by: &str) -> hmac::Hmac<Sha256> {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("store-monitor report link\n{report}\n{expires}\n{by}").as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_signature_covers_the_report_the_expiry_and_the_token() {
        let key = [7u8; 32];
        let report = Uuid::nil();
        let signature = link_mac(&key, report, 100, "-").finalize().into_bytes();
        assert!(link_mac(&key, report, 100, "-").verify_slice(&signature).is_ok());
        assert!(link_mac(&key, report, 101, "-").verify_slice(&signature).is_err());
        assert!(
            link_mac(&key, Uuid::max(), 100, "-")
                .verify_slice(&signature)
                .is_err()
        );
        assert!(link_mac(&key, report, 100, "x").verify_slice(&signature).is_err());
        assert!(
            link_mac(&[8u8; 32], report, 100, "-")
                .verify_slice(&signature)
                .is_err()
        );
    }
}
