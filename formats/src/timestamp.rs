//! Timestamps as real logs write them, into microseconds since the epoch.
//!
//! A [`TimestampParser`] takes a source's settings — an explicit strftime
//! format or automatic detection, and the zone of times written without one
//! (UTC by default; a fixed offset or an IANA name) — and parses:
//!
//! | written | example |
//! |---|---|
//! | RFC 3339 / ISO 8601, `T` or space, `.` or `,` fractions, with or without zone | `2026-11-01T12:00:05.123Z`, `2015-07-29 17:41:44,747` |
//! | slashes | `2026/11/01 12:00:05` (nginx error log) |
//! | syslog RFC 3164, no year (taken from the receive time, rolled back across New Year) | `Dec 10 06:55:46` |
//! | ctime, Apache error log | `Sun Dec 04 04:47:44 2005`, `[Sun Oct 11 14:32:52.123456 2026]` |
//! | Common Log Format | `10/Oct/2026:13:55:36 +0000` |
//! | RFC 2822 | `Tue, 1 Jul 2003 10:52:37 +0200` |
//! | compact | `081109 203615` (Hadoop), `20151109T203615`, `20151109203615` |
//! | epoch seconds, milliseconds, microseconds or nanoseconds (by magnitude), integer or float | `1700000000`, `1700000000123`, `1700000000.5` |
//!
//! Shared by the engine's decoder (the `timestamp` field of every format and
//! `parse_timestamp(...)`) and the `weir ship` agent.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The name of the event-time field.
pub const FIELD: &str = "timestamp";

/// The zone of times written without one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Utc,
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `UTC`, `+02:00`, `-0530`, or an IANA name such as `Europe/Berlin`.
    pub fn parse(text: &str) -> Result<Zone, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") {
            return Ok(Zone::Utc);
        }
        if let Some(off) = parse_offset(t) {
            return Ok(Zone::Fixed(off));
        }
        t.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!("unknown time zone `{t}`: write UTC, an offset such as +02:00, or an IANA name such as Europe/Berlin")
        })
    }

    /// A local time in this zone, in µs (the earlier reading of an
    /// ambiguous time; a time skipped by a DST change moves forward an hour).
    fn micros(&self, t: NaiveDateTime) -> Option<i64> {
        match self {
            Zone::Utc => Some(t.and_utc().timestamp_micros()),
            Zone::Fixed(o) => o
                .from_local_datetime(&t)
                .earliest()
                .map(|d| d.timestamp_micros()),
            Zone::Named(z) => z
                .from_local_datetime(&t)
                .earliest()
                .or_else(|| {
                    z.from_local_datetime(&(t + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|d| d.timestamp_micros()),
        }
    }

    /// The year it is at `now_us` in this zone.
    fn year_at(&self, now_us: i64) -> i32 {
        let utc = DateTime::<Utc>::from_timestamp_micros(now_us).unwrap_or_default();
        match self {
            Zone::Utc => utc.year(),
            Zone::Fixed(o) => utc.with_timezone(o).year(),
            Zone::Named(z) => utc.with_timezone(z).year(),
        }
    }
}

/// Why a text is not a time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimestampError {
    #[error("`{text}` does not match the timestamp format `{format}`")]
    Format { text: String, format: String },
    #[error("`{0}` is not a timestamp in any known form (RFC 3339, syslog, Common Log Format, ctime, epoch...); set `timestamp_format` on the source")]
    Unknown(String),
    #[error("`{0}` is out of range")]
    Range(String),
}

/// Parses timestamps with a source's settings.
#[derive(Debug, Clone)]
pub struct TimestampParser {
    format: Option<String>,
    /// Whether the explicit format carries its own zone (`%z`, `%Z`, `%:z`).
    format_has_zone: bool,
    /// Whether the explicit format names the year (Android's logcat,
    /// many Java layouts do not: the receive time's year is taken, as for
    /// syslog).
    format_has_year: bool,
    zone: Zone,
}

impl Default for TimestampParser {
    fn default() -> Self {
        TimestampParser {
            format: None,
            format_has_zone: false,
            format_has_year: true,
            zone: Zone::Utc,
        }
    }
}

impl TimestampParser {
    /// `format`: a strftime-style format (`%d/%b/%Y:%H:%M:%S %z`), or none
    /// (or `auto`) to detect the forms above; `zone`: the zone of times
    /// written without one.
    pub fn new(format: Option<&str>, zone: Option<&str>) -> Result<TimestampParser, String> {
        let zone = zone.map(Zone::parse).transpose()?.unwrap_or(Zone::Utc);
        let format = format.filter(|f| !f.eq_ignore_ascii_case("auto"));
        if let Some(f) = format {
            check_format(f)?;
        }
        Ok(TimestampParser {
            format_has_zone: format
                .is_some_and(|f| f.contains("%z") || f.contains("%:z") || f.contains("%#z")),
            format_has_year: format.is_none_or(names_the_year),
            format: format.map(str::to_string),
            zone,
        })
    }

    /// `text` in µs since the epoch. `now_us` (the receive time) supplies
    /// the year of syslog times, which have none.
    pub fn parse(&self, text: &str, now_us: i64) -> Result<i64, TimestampError> {
        let t = text.trim().trim_start_matches('[').trim_end_matches(']');
        match &self.format {
            Some(f) if !self.format_has_year => self.without_year(t, f, now_us),
            Some(f) => self.explicit(t, f),
            None => self.detect(t, now_us),
        }
    }

    /// A time whose format has no year: the receive time's year, or the one
    /// before when that would put it more than a day ahead (as syslog's).
    fn without_year(&self, t: &str, f: &str, now_us: i64) -> Result<i64, TimestampError> {
        let year_now = self.zone.year_at(now_us);
        let at = |y: i32| self.explicit(&format!("{y} {t}"), &format!("%Y {f}"));
        let err = || TimestampError::Format {
            text: t.to_string(),
            format: f.to_string(),
        };
        match at(year_now) {
            Ok(us) if us > now_us + DAY_US => at(year_now - 1).map_err(|_| err()),
            Ok(us) => Ok(us),
            // Feb 29 in a year without one: a year before.
            Err(_) => at(year_now - 1).map_err(|_| err()),
        }
    }

    fn explicit(&self, t: &str, f: &str) -> Result<i64, TimestampError> {
        let err = || TimestampError::Format {
            text: t.to_string(),
            format: f.to_string(),
        };
        if self.format_has_zone {
            return DateTime::parse_from_str(t, f)
                .map(|d| d.timestamp_micros())
                .map_err(|_| err());
        }
        let naive = NaiveDateTime::parse_from_str(t, f)
            .or_else(|_| NaiveDate::parse_from_str(t, f).map(|d| d.and_time(Default::default())))
            .map_err(|_| err())?;
        self.zone.micros(naive).ok_or_else(err)
    }

    fn detect(&self, t: &str, now_us: i64) -> Result<i64, TimestampError> {
        let unknown = || TimestampError::Unknown(t.to_string());
        let b = t.as_bytes();
        if b.is_empty() {
            return Err(unknown());
        }
        if let Some(us) = epoch(t) {
            return us.ok_or_else(|| TimestampError::Range(t.to_string()));
        }
        if b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && (b[4] == b'-' || b[4] == b'/')
        {
            return self.iso(t).ok_or_else(unknown);
        }
        if b[0].is_ascii_digit() {
            return self
                .clf(t)
                .or_else(|| self.compact(t))
                .or_else(|| self.with_formats(t, DAY_FIRST))
                .ok_or_else(unknown);
        }
        if b[0].is_ascii_alphabetic() {
            return DateTime::parse_from_rfc2822(t)
                .ok()
                .map(|d| d.timestamp_micros())
                .or_else(|| self.ctime(t))
                .or_else(|| self.syslog(t, now_us))
                .ok_or_else(unknown);
        }
        Err(unknown())
    }

    /// `YYYY-MM-DD[T ]HH:MM[:SS][.,frac][zone]` and `YYYY/MM/DD ...`: the
    /// form most logs use, read without chrono (it is on every event's path).
    fn iso(&self, t: &str) -> Option<i64> {
        let b = t.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let s = b.get(r)?;
            let mut v = 0u32;
            for &c in s {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + u32::from(c - b'0');
            }
            Some(v)
        };
        let sep = b[4];
        if b.get(7) != Some(&sep) {
            return None;
        }
        let (y, mo, d) = (num(0..4)? as i64, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
            return None;
        }
        let days = civil_days(y, mo, d);
        if b.len() == 10 {
            return self.local(days * DAY_US);
        }
        if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
            return None;
        }
        let (h, m) = (num(11..13)?, num(14..16)?);
        let mut i = 16;
        let mut s = 0;
        if b.get(i) == Some(&b':') {
            s = num(17..19)?;
            i = 19;
        }
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        let mut micros = 0i64;
        if matches!(b.get(i), Some(b'.' | b',')) {
            let start = i + 1;
            let mut end = start;
            let mut scale = 100_000i64;
            while end < b.len() && b[end].is_ascii_digit() {
                micros += i64::from(b[end] - b'0') * scale;
                scale /= 10;
                end += 1;
            }
            if end == start {
                return None;
            }
            i = end;
        }
        let local = days * DAY_US
            + i64::from(h) * 3_600_000_000
            + i64::from(m) * 60_000_000
            + i64::from(s) * 1_000_000
            + micros;
        let rest = t[i..].trim_start();
        if rest.is_empty() {
            return self.local(local);
        }
        let offset = if rest.eq_ignore_ascii_case("z")
            || rest.eq_ignore_ascii_case("utc")
            || rest.eq_ignore_ascii_case("gmt")
        {
            0
        } else {
            parse_offset(rest)?.local_minus_utc()
        };
        Some(local - i64::from(offset) * 1_000_000)
    }

    /// A zone-less local time (µs as if it were UTC) in the source's zone.
    fn local(&self, local_us: i64) -> Option<i64> {
        match self.zone {
            Zone::Utc => Some(local_us),
            Zone::Fixed(o) => Some(local_us - i64::from(o.local_minus_utc()) * 1_000_000),
            Zone::Named(_) => self
                .zone
                .micros(DateTime::<Utc>::from_timestamp_micros(local_us)?.naive_utc()),
        }
    }

    /// `10/Oct/2026:13:55:36 +0000`.
    fn clf(&self, t: &str) -> Option<i64> {
        if t.len() < 20 || t.as_bytes().get(2) != Some(&b'/') {
            return None;
        }
        DateTime::parse_from_str(t, "%d/%b/%Y:%H:%M:%S %z")
            .map(|d| d.timestamp_micros())
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(t, "%d/%b/%Y:%H:%M:%S")
                    .ok()
                    .and_then(|n| self.zone.micros(n))
            })
    }

    /// `081109 203615`, `20151109T203615`, `20151109 203615`, `20151109203615`.
    fn compact(&self, t: &str) -> Option<i64> {
        let b = t.as_bytes();
        let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        let f = match b.len() {
            13 if b[6] == b' ' && digits(&b[..6]) && digits(&b[7..]) => "%y%m%d %H%M%S",
            15 if matches!(b[8], b'T' | b' ') && digits(&b[..8]) && digits(&b[9..]) => {
                if b[8] == b'T' {
                    "%Y%m%dT%H%M%S"
                } else {
                    "%Y%m%d %H%M%S"
                }
            }
            _ => return None,
        };
        NaiveDateTime::parse_from_str(t, f)
            .ok()
            .and_then(|n| self.zone.micros(n))
    }

    /// `Sun Dec 04 04:47:44 2005`, with an optional fraction of a second.
    fn ctime(&self, t: &str) -> Option<i64> {
        let words: Vec<&str> = t.split_whitespace().collect();
        if words.len() != 5 || words[0].len() != 3 {
            return None;
        }
        let joined = format!("{} {} {} {}", words[1], words[2], words[3], words[4]);
        NaiveDateTime::parse_from_str(&joined, "%b %d %H:%M:%S%.f %Y")
            .ok()
            .and_then(|n| self.zone.micros(n))
    }

    /// `Dec 10 06:55:46` (RFC 3164): the year is the receive time's, or the
    /// one before when that would put the time more than a day ahead (logs
    /// of December 31 read on January 1).
    fn syslog(&self, t: &str, now_us: i64) -> Option<i64> {
        let words: Vec<&str> = t.split_whitespace().collect();
        let (month_day_time, year) = match words.as_slice() {
            [m, d, time] => (format!("{m} {d} {time}"), None),
            // `Dec 10 2026 06:55:46` (some network devices).
            [m, d, y, time] if y.len() == 4 => (format!("{m} {d} {time}"), y.parse::<i32>().ok()),
            _ => return None,
        };
        let year_now = self.zone.year_at(now_us);
        let at = |y: i32| {
            NaiveDateTime::parse_from_str(&format!("{y} {month_day_time}"), "%Y %b %d %H:%M:%S%.f")
                .ok()
                .and_then(|n| self.zone.micros(n))
        };
        if let Some(y) = year {
            return at(y);
        }
        let this_year = at(year_now);
        match this_year {
            Some(us) if us > now_us + 86_400_000_000 => at(year_now - 1),
            Some(us) => Some(us),
            // Feb 29 of a year that has none: the year before had none either,
            // so the log is from the last leap year... rare; try last year.
            None => at(year_now - 1),
        }
    }

    fn with_formats(&self, t: &str, formats: &[&str]) -> Option<i64> {
        formats.iter().find_map(|f| {
            NaiveDateTime::parse_from_str(t, f)
                .ok()
                .and_then(|n| self.zone.micros(n))
        })
    }
}

const DAY_US: i64 = 86_400_000_000;

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn civil_days(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Day-first forms: `29-Jul-2015 17:41:44.747` (Tomcat), `29/07/2015 17:41:44`.
const DAY_FIRST: &[&str] = &[
    "%d-%b-%Y %H:%M:%S%.f",
    "%d/%b/%Y %H:%M:%S%.f",
    "%d.%m.%Y %H:%M:%S%.f",
];

/// A number of seconds, milliseconds, microseconds or nanoseconds since the
/// epoch, by magnitude: `Some(None)` when out of range, `None` when not a
/// number.
fn epoch(t: &str) -> Option<Option<i64>> {
    let b = t.as_bytes();
    let digits_from = usize::from(b[0] == b'-');
    if b.len() <= digits_from
        || !b[digits_from..]
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b'.')
    {
        return None;
    }
    if b.iter().filter(|&&c| c == b'.').count() > 1 {
        return None;
    }
    let v: f64 = t.parse().ok()?;
    let a = v.abs();
    let us = if a < 1e11 {
        v * 1e6
    } else if a < 1e14 {
        v * 1e3
    } else if a < 1e17 {
        v
    } else {
        v / 1e3
    };
    // Integers keep their exact digits (f64 holds 2^53 exactly).
    let us = if !t.contains('.') && (1e14..1e17).contains(&a) {
        t.parse::<i64>().ok()
    } else if us.is_finite() && us.abs() < 9.2e18 {
        Some(us.round() as i64)
    } else {
        None
    };
    Some(us)
}

/// `+02:00`, `+0200`, `+02`, `-05:30`.
fn parse_offset(t: &str) -> Option<FixedOffset> {
    let b = t.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = t[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// Whether a strftime format has a year (or a whole date-time: `%s`,
/// `%+`, `%c`).
fn names_the_year(f: &str) -> bool {
    use chrono::format::{Fixed, Item, Numeric, StrftimeItems};
    StrftimeItems::new(f).any(|i| {
        matches!(
            i,
            Item::Numeric(
                Numeric::Year
                    | Numeric::YearDiv100
                    | Numeric::YearMod100
                    | Numeric::IsoYear
                    | Numeric::IsoYearDiv100
                    | Numeric::IsoYearMod100
                    | Numeric::Timestamp,
                _
            ) | Item::Fixed(Fixed::RFC2822 | Fixed::RFC3339)
        )
    })
}

/// Refuses a strftime format chrono cannot read, with the reason.
fn check_format(f: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
        return Err(format!(
            "`{f}` is not a valid timestamp format: see the strftime specifiers (%Y %m %d %H %M %S %.f %z %b ...)"
        ));
    }
    if !f.contains('%') {
        return Err(format!(
            "`{f}` has no % specifiers: write e.g. \"%d/%b/%Y:%H:%M:%S %z\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(rfc: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc)
            .unwrap_or_else(|e| panic!("{rfc}: {e}"))
            .timestamp_micros()
    }

    /// Received on 2026-01-01T00:30:00Z, just after New Year.
    const NOW: &str = "2026-01-01T00:30:00Z";

    #[test]
    fn every_common_form_is_read() {
        let p = TimestampParser::default();
        let now = us(NOW);
        let cases = [
            ("2026-11-01T12:00:05Z", "2026-11-01T12:00:05Z"),
            (
                "2026-11-01T12:00:05.123456+02:00",
                "2026-11-01T10:00:05.123456Z",
            ),
            ("2026-11-01 12:00:05", "2026-11-01T12:00:05Z"),
            ("2015-07-29 17:41:44,747", "2015-07-29T17:41:44.747Z"),
            ("2026-11-01T12:00:05.5-0530", "2026-11-01T17:30:05.5Z"),
            ("2026/11/01 12:00:05", "2026-11-01T12:00:05Z"),
            ("2026-11-01", "2026-11-01T00:00:00Z"),
            ("Dec 31 23:59:58", "2025-12-31T23:59:58Z"),
            ("Jan  1 00:10:00", "2026-01-01T00:10:00Z"),
            ("Sun Dec 04 04:47:44 2005", "2005-12-04T04:47:44Z"),
            (
                "[Wed Oct 11 14:32:52.123456 2026]",
                "2026-10-11T14:32:52.123456Z",
            ),
            ("10/Oct/2026:13:55:36 +0000", "2026-10-10T13:55:36Z"),
            ("10/Oct/2026:13:55:36 -0700", "2026-10-10T20:55:36Z"),
            ("Tue, 1 Jul 2003 10:52:37 +0200", "2003-07-01T08:52:37Z"),
            ("081109 203615", "2008-11-09T20:36:15Z"),
            ("20151109T203615", "2015-11-09T20:36:15Z"),
            ("29-Jul-2015 17:41:44.747", "2015-07-29T17:41:44.747Z"),
            ("1700000000", "2023-11-14T22:13:20Z"),
            ("1700000000.25", "2023-11-14T22:13:20.25Z"),
            ("1700000000123", "2023-11-14T22:13:20.123Z"),
            ("1700000000123456", "2023-11-14T22:13:20.123456Z"),
            ("1700000000123456789", "2023-11-14T22:13:20.123457Z"),
        ];
        for (text, want) in cases {
            assert_eq!(p.parse(text, now), Ok(us(want)), "{text}");
        }
        assert_eq!(
            p.parse("2024-02-29T23:59:60Z", now),
            Ok(us("2024-03-01T00:00:00Z")),
            "leap second"
        );
        assert_eq!(
            p.parse("1969-12-31T23:59:59.9Z", now),
            Ok(us("1969-12-31T23:59:59.9Z"))
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-29 00:00:00",
            "2026-01-01T24:00:00Z",
            "12:00",
            "Foo 10 06:55:46",
            "1.2.3",
        ] {
            assert!(p.parse(bad, now).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn zones_apply_to_times_written_without_one() {
        let now = us(NOW);
        let berlin =
            TimestampParser::new(None, Some("Europe/Berlin")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            berlin.parse("2026-07-01 12:00:00", now),
            Ok(us("2026-07-01T10:00:00Z"))
        );
        assert_eq!(
            berlin.parse("2026-01-15 12:00:00", now),
            Ok(us("2026-01-15T11:00:00Z"))
        );
        assert_eq!(
            berlin.parse("2026-07-01T12:00:00Z", now),
            Ok(us("2026-07-01T12:00:00Z")),
            "a written zone wins"
        );
        let fixed = TimestampParser::new(None, Some("+05:30")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            fixed.parse("Jan  1 05:30:00", now),
            Ok(us("2026-01-01T00:00:00Z"))
        );
        assert!(TimestampParser::new(None, Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn explicit_formats() {
        let now = us(NOW);
        let clf = TimestampParser::new(Some("%d/%b/%Y:%H:%M:%S %z"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            clf.parse("10/Oct/2026:13:55:36 +0100", now),
            Ok(us("2026-10-10T12:55:36Z"))
        );
        let local = TimestampParser::new(Some("%Y%m%d-%H%M%S"), Some("-02:00"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            local.parse("20261010-135536", now),
            Ok(us("2026-10-10T15:55:36Z"))
        );
        let err = local
            .parse("2026-10-10", now)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("%Y%m%d-%H%M%S"), "{err}");
        // No year in the format (Android's logcat): the receive time's,
        // or the year before for a time more than a day ahead of it.
        let logcat = TimestampParser::new(Some("%m-%d %H:%M:%S%.3f"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let year = chrono::DateTime::from_timestamp_micros(now)
            .map(|d| d.year())
            .unwrap_or_default();
        assert_eq!(
            logcat.parse("03-17 16:13:38.811", us(&format!("{year}-06-01T00:00:00Z"))),
            Ok(us(&format!("{year}-03-17T16:13:38.811Z")))
        );
        assert_eq!(
            logcat.parse("12-31 23:59:59.000", us(&format!("{year}-01-01T00:00:05Z"))),
            Ok(us(&format!("{}-12-31T23:59:59Z", year - 1)))
        );
        assert!(logcat.parse("13-45 00:00:00.000", now).is_err());
        assert!(names_the_year("%D %T") && names_the_year("%s") && !names_the_year("%b %e %T"));
        assert!(TimestampParser::new(Some("%Q"), None).is_err());
        assert!(TimestampParser::new(Some("yyyy-MM-dd"), None).is_err());
        assert!(TimestampParser::new(Some("auto"), None).is_ok());
    }
}
