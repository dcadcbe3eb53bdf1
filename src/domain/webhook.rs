//! Signing webhook deliveries as the Standard Webhooks 1.0 specification writes it
//! (<https://www.standardwebhooks.com>), so that receivers verify them with its libraries:
//! a secret is `whsec_` and the base64 of its bytes; a delivery's `webhook-signature` is
//! `v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, one per
//! secret in force, separated by spaces (a rotated secret signs beside the new one for a
//! while).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of a secret's text.
const PREFIX: &str = "whsec_";

/// A webhook's signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    /// Never the bytes: a secret must not reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A secret of these bytes (24 to 64 of them, as the specification asks).
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Secret> {
        (24..=64).contains(&bytes.len()).then_some(Secret(bytes))
    }

    /// Reads `whsec_…`.
    pub fn parse(text: &str) -> Option<Secret> {
        let encoded = text.strip_prefix(PREFIX)?;
        Secret::from_bytes(STANDARD.decode(encoded).ok()?)
    }

    /// The text a receiver configures: `whsec_` and the base64 of the bytes.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,` and the signature of one delivery: its id, its timestamp (seconds since the
    /// epoch) and its body, exactly as sent.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header of a delivery signed by each of `secrets`.
pub fn signature_header(secrets: &[&Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_signs_as_published() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_reads_back_as_written_and_never_shows_in_debug() {
        let secret = Secret::from_bytes((0..32).collect()).unwrap();
        assert_eq!(Secret::parse(&secret.reveal()), Some(secret.clone()));
        assert_eq!(format!("{secret:?}"), "Secret(…)");
        assert!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none(),
            "no prefix"
        );
        assert!(Secret::parse("whsec_not base64!").is_none());
        assert!(Secret::from_bytes(vec![1; 8]).is_none(), "too short");
    }

    #[test]
    fn two_secrets_sign_side_by_side() {
        let (old, new) = (
            Secret::from_bytes(vec![1; 32]).unwrap(),
            Secret::from_bytes(vec![2; 32]).unwrap(),
        );
        let header = signature_header(&[&new, &old], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [new.sign("msg_1", 1, b"{}"), old.sign("msg_1", 1, b"{}")]);
    }
}
