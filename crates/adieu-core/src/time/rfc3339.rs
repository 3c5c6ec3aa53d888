//! RFC 3339 times in UTC (`2026-12-03T06:19:29.123Z`): how the command line shows and reads times.
//!
//! The civil-date conversions are Howard Hinnant's `days_from_civil` / `civil_from_days`
//! (proleptic Gregorian calendar).

use super::UnixMillis;

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A reader of one RFC 3339 text.
struct Text<'a> {
    b: &'a [u8],
    original: &'a str,
}

impl Text<'_> {
    fn bad(&self) -> String {
        format!("{:?} is not an RFC 3339 time (e.g. 2026-12-03T06:19:29Z)", self.original)
    }

    fn num(&self, from: usize, len: usize) -> Result<i64, String> {
        match self.b.get(from..from + len) {
            Some(part) if part.iter().all(u8::is_ascii_digit) => {
                Ok(part.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
            }
            _ => Err(self.bad()),
        }
    }

    fn is(&self, at: usize, ok: &[u8]) -> bool {
        self.b.get(at).is_some_and(|c| ok.contains(c))
    }

    /// Milliseconds of a fraction starting at `i` (after the dot), and where it ends.
    fn fraction(&self, start: usize) -> Result<(i64, usize), String> {
        let mut i = start;
        while self.b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(self.bad());
        }
        let mut ms = 0;
        for k in 0..3 {
            ms = ms * 10 + if start + k < i { i64::from(self.b[start + k] - b'0') } else { 0 };
        }
        Ok((ms, i))
    }

    /// The offset from UTC in milliseconds of what starts at `i`: `Z` or `±hh:mm`.
    fn offset(&self, i: usize) -> Result<i64, String> {
        match self.b.get(i..) {
            Some(b"Z" | b"z") => Ok(0),
            Some([sign @ (b'+' | b'-'), ..]) if self.b.len() == i + 6 && self.is(i + 3, b":") => {
                let (h, m) = (self.num(i + 1, 2)?, self.num(i + 4, 2)?);
                if h > 23 || m > 59 {
                    return Err(self.bad());
                }
                let o = (h * 60 + m) * 60_000;
                Ok(if *sign == b'+' { o } else { -o })
            }
            _ => Err(self.bad()),
        }
    }
}

impl UnixMillis {
    /// This time in RFC 3339, UTC, with milliseconds: `2026-12-03T06:19:29.123Z`.
    pub fn to_rfc3339(self) -> String {
        let (days, ms) = (self.0.div_euclid(86_400_000), self.0.rem_euclid(86_400_000));
        let (y, m, d) = civil_from_days(days);
        let (h, min, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
    }

    /// Reads an RFC 3339 time (`2026-12-03T06:19:29Z`; fractions and `+02:00` offsets accepted,
    /// `t`, `z` and a space for `T` too), or a date alone (`2026-12-03`, midnight UTC). A leap
    /// second reads as the second before it.
    pub fn parse_rfc3339(s: &str) -> Result<UnixMillis, String> {
        let t = Text { b: s.trim().as_bytes(), original: s };
        let (y, mo, d) = (t.num(0, 4)?, t.num(5, 2)?, t.num(8, 2)?);
        if !t.is(4, b"-") || !t.is(7, b"-") || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
            return Err(t.bad());
        }
        let day = days_from_civil(y, mo, d) * 86_400_000;
        if t.b.len() == 10 {
            return Ok(UnixMillis(day));
        }
        if !t.is(10, b"Tt ") || !t.is(13, b":") || !t.is(16, b":") {
            return Err(t.bad());
        }
        let (h, mi, sec) = (t.num(11, 2)?, t.num(14, 2)?, t.num(17, 2)?);
        if h > 23 || mi > 59 || sec > 60 {
            return Err(t.bad());
        }
        let (ms, end) = if t.is(19, b".") { t.fraction(20)? } else { (0, 19) };
        let offset = t.offset(end)?;
        Ok(UnixMillis(day + ((h * 60 + mi) * 60 + sec.min(59)) * 1000 + ms - offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(UnixMillis(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(UnixMillis(1_796_278_769_123).to_rfc3339(), "2026-12-03T06:19:29.123Z");
        assert_eq!(UnixMillis(951_782_400_000).to_rfc3339(), "2000-02-29T00:00:00.000Z");
        assert_eq!(UnixMillis(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn reads_back_what_it_writes_and_the_usual_forms() {
        for t in [0, 1_796_278_769_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(UnixMillis::parse_rfc3339(&UnixMillis(t).to_rfc3339()), Ok(UnixMillis(t)));
        }
        let t = UnixMillis(1_796_278_769_000);
        assert_eq!(UnixMillis::parse_rfc3339("2026-12-03T06:19:29Z"), Ok(t));
        assert_eq!(UnixMillis::parse_rfc3339("2026-12-03t06:19:29z"), Ok(t));
        assert_eq!(UnixMillis::parse_rfc3339("2026-12-03 08:19:29+02:00"), Ok(t));
        assert_eq!(UnixMillis::parse_rfc3339("2026-12-03T01:19:29.000000-05:00"), Ok(t));
        assert_eq!(UnixMillis::parse_rfc3339("2026-12-03T06:19:29.5Z"), Ok(UnixMillis(1_796_278_769_500)));
        assert_eq!(UnixMillis::parse_rfc3339("2026-12-03"), Ok(UnixMillis(1_796_256_000_000)));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for s in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-30",
            "2026-12-03T24:00:00Z",
            "2026-12-03T06:19:29",
            "2026-12-03T06:19:29+2:00",
            "2026-12-03T06:19:29.Z",
            "１９７０-01-01",
            "2026-12-03T06:19:29Zjunk",
            "+026-12-03T06:19:29Z",
        ] {
            assert!(UnixMillis::parse_rfc3339(s).is_err(), "{s:?}");
        }
    }
}
