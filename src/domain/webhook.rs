//! Signing webhook deliveries as the Standard Webhooks 1.0 specification writes it
//! (<https://www.standardwebhooks.com>), so that receivers verify them with its libraries:
//! a secret is `whsec_` and the base64 of its bytes; a delivery's `webhook-signature` is
//! `v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, one per
//! secret in force, separated by spaces (a rotated secret signs beside the new one for a
//! while). Also when a delivery is tried again, and what its answer means.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::Duration;

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

/// The delays between a delivery's attempts: after the first fails, the first delay, and so
/// on; once they are spent the delivery has failed. Written `5s,5m,30m,2h,5h,10h,10h`
/// (the default, Standard Webhooks' and Svix's), units `s`, `m`, `h`, `d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 60 * MINUTE;
        RetrySchedule(
            [
                5,
                5 * MINUTE,
                30 * MINUTE,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
        )
    }
}

impl std::str::FromStr for RetrySchedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let delays = text
            .split(',')
            .map(|step| {
                let step = step.trim();
                let split = step.len().saturating_sub(1);
                let (number, unit) = step.split_at(split);
                let seconds = match unit {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3_600,
                    "d" => 86_400,
                    _ => {
                        return Err(format!(
                            "{step:?}: a delay is a number and a unit, s, m, h or d (5s, 30m)"
                        ));
                    }
                };
                match number.parse::<u64>() {
                    Ok(n) if n > 0 && n <= 7 * 86_400 / seconds => Ok(Duration::from_secs(n * seconds)),
                    _ => Err(format!(
                        "{step:?}: a delay is a whole number of its unit, from 1 up to 7 days"
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule(delays))
    }
}

impl RetrySchedule {
    /// How long to wait before attempt `failed + 1`, after `failed` attempts failed (`None`:
    /// none is left). `jitter`, in `[0, 1)`, spreads retries of many deliveries over ±10 %
    /// of the delay; a receiver's `Retry-After` is waited for if longer.
    pub fn delay(&self, failed: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
        let scheduled = *self.0.get(usize::try_from(failed.checked_sub(1)?).ok()?)?;
        let spread = scheduled.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0));
        Some(retry_after.map_or(spread, |asked| asked.min(MAX_RETRY_AFTER).max(spread)))
    }

    /// How many attempts a delivery gets in all.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX).saturating_add(1)
    }
}

/// The longest `Retry-After` honoured: a receiver cannot park a delivery for weeks.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// What a delivery's answer means for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: delivered.
    Delivered,
    /// 5xx, 429, a timeout or a refused connection (`None`): try again later.
    Retry,
    /// 410 Gone: the receiver is gone for good; its endpoint is disabled.
    Gone,
    /// Any other status (another 4xx; 1xx or 3xx, since redirects are not followed): the
    /// delivery failed, and another attempt would fail the same way.
    Failed,
}

/// What the HTTP status of an attempt (`None`: no answer) means.
pub fn answer(status: Option<u16>) -> Answer {
    match status {
        None | Some(429) | Some(500..=599) => Answer::Retry,
        Some(200..=299) => Answer::Delivered,
        Some(410) => Answer::Gone,
        Some(_) => Answer::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_the_standard_one_and_reads_as_written() {
        let schedule: RetrySchedule = "5s,5m,30m,2h,5h,10h,10h".parse().unwrap();
        assert_eq!(schedule, RetrySchedule::default());
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(
            schedule.delay(0, None, 0.5),
            None,
            "nothing failed, nothing to wait for"
        );
        assert_eq!(schedule.delay(1, None, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(schedule.delay(7, None, 0.5), Some(Duration::from_secs(36_000)));
        assert_eq!(schedule.delay(8, None, 0.5), None, "spent: the delivery failed");
        let tests: RetrySchedule = "1s, 2s".parse().unwrap();
        assert_eq!(tests.delay(2, None, 0.5), Some(Duration::from_secs(2)));
        for bad in ["", "5", "5x", "0s", "-1s", "8d", "1.5s", "5s,,5m"] {
            assert!(bad.parse::<RetrySchedule>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn jitter_spreads_by_a_tenth_and_retry_after_is_waited_for() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.delay(2, None, 0.0), Some(Duration::from_secs(270)));
        assert_eq!(schedule.delay(2, None, 1.0), Some(Duration::from_secs(330)));
        let asked = Some(Duration::from_secs(3_600));
        assert_eq!(schedule.delay(2, asked, 0.5), Some(Duration::from_secs(3_600)));
        let sooner = Some(Duration::from_secs(1));
        assert_eq!(
            schedule.delay(2, sooner, 0.5),
            Some(Duration::from_secs(300)),
            "never sooner than scheduled"
        );
        let weeks = Some(Duration::from_secs(30 * 86_400));
        assert_eq!(schedule.delay(2, weeks, 0.5), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn answers_retry_on_5xx_429_and_silence_disable_on_410_and_fail_otherwise() {
        assert_eq!(answer(Some(200)), Answer::Delivered);
        assert_eq!(answer(Some(204)), Answer::Delivered);
        for retry in [None, Some(429), Some(500), Some(503)] {
            assert_eq!(answer(retry), Answer::Retry, "{retry:?}");
        }
        assert_eq!(answer(Some(410)), Answer::Gone);
        for failed in [Some(400), Some(401), Some(404), Some(301), Some(302)] {
            assert_eq!(answer(failed), Answer::Failed, "{failed:?}");
        }
    }

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
