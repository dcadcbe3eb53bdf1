//! Parsers for single CSV fields, each returning the reason a bad value is rejected.
//! Fields arrive with surrounding whitespace already trimmed.

use crate::domain::time::{MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_MINUTE, MICROS_PER_SECOND};
use crate::domain::{LocalTime, Timestamp, Weekday, Zone};

/// `active` / `inactive`, in any case.
pub fn status(field: &[u8]) -> Result<bool, String> {
    if field.eq_ignore_ascii_case(b"active") {
        Ok(true)
    } else if field.eq_ignore_ascii_case(b"inactive") {
        Ok(false)
    } else {
        Err(format!(
            "unknown status {} (expected active or inactive)",
            lossy(field)
        ))
    }
}

/// A UTC instant: `YYYY-MM-DD`, `T` or a space, `HH:MM:SS`, an optional fraction of 0–9
/// digits (kept to the microsecond, the rest truncated), then ` UTC`, `Z`, `+00:00` or
/// nothing.
pub fn timestamp(field: &[u8]) -> Result<Timestamp, String> {
    parse_timestamp(field).ok_or_else(|| {
        format!(
            "bad timestamp {} (expected like 2023-01-22 12:09:39.388884 UTC)",
            lossy(field)
        )
    })
}

fn parse_timestamp(s: &[u8]) -> Option<Timestamp> {
    if s.len() < 19
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b' ' | b'T')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let (hour, minute, second) = (digits(&s[11..13])?, digits(&s[14..16])?, digits(&s[17..19])?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros = 0;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let n = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
        if n > 9 {
            return None;
        }
        for (i, &b) in after_dot[..n].iter().enumerate().take(6) {
            micros += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
        }
        rest = &after_dot[n..];
    }
    let suffix = rest.trim_ascii_start();
    if !(suffix.is_empty() || suffix == b"UTC" || suffix == b"Z" || suffix == b"+00:00") {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(Timestamp(seconds * MICROS_PER_SECOND + micros))
}

/// Day of the week, `0` = Monday … `6` = Sunday.
pub fn weekday(field: &[u8]) -> Result<Weekday, String> {
    digits(field)
        .and_then(|d| u8::try_from(d).ok())
        .and_then(Weekday::new)
        .ok_or_else(|| format!("bad day {} (expected 0 = Monday … 6 = Sunday)", lossy(field)))
}

/// A local time of day, `HH:MM[:SS[.fraction]]`, up to `24:00`.
pub fn local_time(field: &[u8]) -> Result<LocalTime, String> {
    parse_local_time(field).ok_or_else(|| format!("bad time {} (expected HH:MM or HH:MM:SS)", lossy(field)))
}

fn parse_local_time(s: &[u8]) -> Option<LocalTime> {
    let mut parts = s.splitn(3, |&b| b == b':');
    let hour = parts
        .next()
        .filter(|p| (1..=2).contains(&p.len()))
        .and_then(digits)?;
    let minute = parts.next().filter(|p| p.len() == 2).and_then(digits)?;
    let (mut second, mut micros) = (0, 0);
    if let Some(sec) = parts.next() {
        let (whole, fraction) = match sec.iter().position(|&b| b == b'.') {
            Some(dot) => (&sec[..dot], Some(&sec[dot + 1..])),
            None => (sec, None),
        };
        if whole.len() != 2 {
            return None;
        }
        second = digits(whole)?;
        if let Some(fraction) = fraction {
            if fraction.len() > 9 || !fraction.iter().all(u8::is_ascii_digit) {
                return None;
            }
            for (i, &b) in fraction.iter().enumerate().take(6) {
                micros += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
            }
        }
    }
    if minute > 59 || second > 59 {
        return None;
    }
    let micros = hour * MICROS_PER_HOUR + minute * MICROS_PER_MINUTE + second * MICROS_PER_SECOND + micros;
    // 24:00 is the one time past 23:59:59.999999 that makes sense (the end of a day).
    (micros <= MICROS_PER_DAY)
        .then(|| LocalTime::from_micros(micros))
        .flatten()
}

/// An IANA zone name, exactly as the database spells it.
pub fn zone(field: &[u8]) -> Result<Zone, String> {
    std::str::from_utf8(field)
        .map_err(|_| format!("unknown time zone {}", lossy(field)))?
        .parse()
}

/// A group's name: UTF-8 text of 1 to 100 characters once trimmed, no control characters
/// (it is typed on command lines and shown on the dashboard).
pub fn group(field: &[u8]) -> Result<&str, String> {
    let name = std::str::from_utf8(field)
        .map_err(|_| format!("group {} is not UTF-8", lossy(field)))?
        .trim();
    if name.is_empty() {
        return Err("empty group".into());
    }
    if name.chars().count() > 100 {
        return Err(format!(
            "group {} is longer than 100 characters",
            crate::domain::store_id::quoted(name)
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "group {} contains a control character",
            crate::domain::store_id::quoted(name)
        ));
    }
    Ok(name)
}

/// A store id: UTF-8 text of 1 to [`MAX_STORE_ID_BYTES`](crate::domain::store_id::MAX_STORE_ID_BYTES)
/// bytes, no NUL.
pub fn store_id(field: &[u8]) -> Result<&str, String> {
    let id = std::str::from_utf8(field).map_err(|_| format!("store_id {} is not UTF-8", lossy(field)))?;
    crate::domain::store_id::check(id)?;
    Ok(id)
}

/// A field in quotes for a reason, cut short: a reason must not grow with the value.
fn lossy(field: &[u8]) -> String {
    crate::domain::store_id::quoted(&String::from_utf8_lossy(&field[..field.len().min(160)]))
}

/// An unsigned decimal number made only of ASCII digits.
fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    s.iter().try_fold(0_i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Result<Timestamp, String> {
        timestamp(s.as_bytes())
    }

    fn micros(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn timestamps_in_every_accepted_spelling() {
        let base = micros("2023-01-22T12:09:39.388884Z");
        for s in [
            "2023-01-22 12:09:39.388884 UTC",
            "2023-01-22T12:09:39.388884Z",
            "2023-01-22 12:09:39.388884+00:00",
            "2023-01-22T12:09:39.388884 +00:00",
            "2023-01-22 12:09:39.388884",
            "2023-01-22 12:09:39.388884999 UTC",
            "2023-01-22 12:09:39.3888849 UTC",
        ] {
            assert_eq!(ts(s), Ok(Timestamp(base)), "{s}");
        }
        assert_eq!(
            ts("2023-01-25 18:13:22.47922 UTC"),
            Ok(Timestamp(micros("2023-01-25T18:13:22.479220Z")))
        );
        assert_eq!(
            ts("2023-01-25 18:13:22 UTC"),
            Ok(Timestamp(micros("2023-01-25T18:13:22Z")))
        );
        assert_eq!(
            ts("2023-01-25 18:13:22. UTC"),
            Ok(Timestamp(micros("2023-01-25T18:13:22Z")))
        );
        assert_eq!(
            ts("2023-01-25 18:13:22.5Z"),
            Ok(Timestamp(micros("2023-01-25T18:13:22.5Z")))
        );
        assert_eq!(
            ts("2024-02-29 00:00:00 UTC"),
            Ok(Timestamp(micros("2024-02-29T00:00:00Z")))
        );
        assert_eq!(ts("1969-12-31 23:59:59.999999 UTC"), Ok(Timestamp(-1)));
    }

    #[test]
    fn malformed_timestamps_are_rejected_with_the_value() {
        for s in [
            "",
            "2023-01-22",
            "2023-13-22 12:09:39 UTC",
            "2023-02-29 12:09:39 UTC",
            "2023-01-22 24:00:00 UTC",
            "2023-01-22 12:60:00 UTC",
            "2023-01-22 12:09:39.1234567890 UTC",
            "2023-01-22 12:09:39 PST",
            "2023-01-22 12:09:39+01:00",
            "2023/01/22 12:09:39 UTC",
            "2023-01-22 12:09:3x UTC",
            "yesterday",
        ] {
            let err = ts(s).unwrap_err();
            assert!(err.contains("bad timestamp"), "{s}: {err}");
        }
    }

    #[test]
    fn statuses_in_any_case() {
        assert_eq!(status(b"active"), Ok(true));
        assert_eq!(status(b"ACTIVE"), Ok(true));
        assert_eq!(status(b"Inactive"), Ok(false));
        assert!(status(b"down").unwrap_err().contains("\"down\""));
        assert!(status(b"").is_err());
    }

    #[test]
    fn weekdays_zero_to_six() {
        assert_eq!(weekday(b"0").unwrap().number(), 0);
        assert_eq!(weekday(b"6").unwrap().number(), 6);
        for bad in [&b"7"[..], b"-1", b"", b"Mon", b"1.0"] {
            assert!(weekday(bad).is_err());
        }
    }

    #[test]
    fn local_times_with_and_without_seconds() {
        let t = |s: &str| local_time(s.as_bytes()).map(|t| t.micros());
        assert_eq!(t("09:00"), Ok(9 * MICROS_PER_HOUR));
        assert_eq!(t("9:05"), Ok(9 * MICROS_PER_HOUR + 5 * MICROS_PER_MINUTE));
        assert_eq!(t("23:59:59"), Ok(MICROS_PER_DAY - MICROS_PER_SECOND));
        assert_eq!(t("00:00:00.25"), Ok(250_000));
        assert_eq!(t("24:00"), Ok(MICROS_PER_DAY));
        assert_eq!(t("24:00:00"), Ok(MICROS_PER_DAY));
        for bad in [
            "24:01",
            "25:00",
            "12:60",
            "12:00:60",
            "12",
            "12:0",
            "ab:cd",
            "",
            "12:00:00:00",
            "12:00:00.x",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zones_and_store_ids() {
        assert_eq!(zone(b"Asia/Kolkata").unwrap().name(), "Asia/Kolkata");
        assert!(zone(b"Mars/Phobos").unwrap_err().contains("Mars/Phobos"));
        assert_eq!(store_id(b"1481966498820158979"), Ok("1481966498820158979"));
        assert!(store_id(b"").is_err());
        assert!(store_id(&[0xff, 0xfe]).is_err());
        assert!(store_id(b"b\0c").unwrap_err().contains("NUL"));
    }

    #[test]
    fn civil_days_match_chrono() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (2023, 1, 25),
            (1900, 3, 1),
            (2100, 12, 31),
        ] {
            let expect = chrono::NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
                .unwrap()
                .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                .num_days();
            assert_eq!(days_from_civil(y, m, d), expect);
        }
    }
}
