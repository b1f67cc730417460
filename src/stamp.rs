//! Dates and times as benchmark artifacts write them: RFC 3339 output, and the stamps read from
//! values (RFC 3339, `YYYY-MM-DD HH:MM:SS`, Unix seconds or milliseconds) and from file and folder
//! names (`20251114-101500`, `20251114_101500`, `20251114`, `_1762000000`).

use std::time::SystemTime;

/// Seconds since the Unix epoch, UTC.
pub type Unix = i64;

/// Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 UTC with second precision.
pub fn format(t: Unix) -> String {
    let (days, sod) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// A system time as RFC 3339 UTC.
pub fn rfc3339(t: SystemTime) -> String {
    format(t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64)
}

/// The date part (YYYY-MM-DD) of a stamp.
pub fn date(t: Unix) -> String {
    format(t)[..10].to_string()
}

/// Plausible artifact times: 1990 to 2100 (keeps counts and sizes from passing as Unix times).
fn plausible(t: Unix) -> Option<Unix> {
    (631_152_000..4_102_444_800).contains(&t).then_some(t)
}

fn civil(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<Unix> {
    let ok = (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0..61).contains(&s);
    ok.then(|| days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s).and_then(plausible)
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// A time written as a value: RFC 3339 (offset applied, fraction dropped), `YYYY-MM-DD HH:MM:SS`
/// (read as UTC), `YYYY-MM-DD`, or Unix seconds / milliseconds.
pub fn parse(s: &str) -> Option<Unix> {
    let s = s.trim().trim_matches('"');
    if let Some(n) = digits(s) {
        return plausible(n).or_else(|| plausible(n / 1000));
    }
    if let Ok(x) = s.parse::<f64>() {
        return (x.is_finite() && x > 0.0).then(|| plausible(x as i64)).flatten();
    }
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (digits(&s[..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    if b.len() == 10 {
        return civil(y, mo, d, 0, 0, 0);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (digits(&s[11..13])?, digits(&s[14..16])?, digits(&s[17..19])?);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) && &r[3..4] == ":" => {
            let m = digits(&r[1..3])? * 3600 + digits(&r[4..6])? * 60;
            if r.starts_with('+') {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    civil(y, mo, d, h, mi, sec).map(|t| t - offset)
}

/// A stamp found in a file or folder name, with the text it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct NameStamp {
    pub text: String,
    pub time: Unix,
    /// Byte range of the stamp in the name.
    pub at: std::ops::Range<usize>,
}

/// The stamps in one path component: `YYYYMMDD[-_T]HHMMSS`, `YYYYMMDD`, `YYYY-MM-DD`, and
/// 10-digit Unix seconds; each delimited by non-digits.
pub fn in_name(name: &str) -> Vec<NameStamp> {
    let b = name.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    let run = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let n = run(i);
        let num = |a: usize, len: usize| digits(&name[a..a + len]);
        let mut found = None;
        if n == 8 {
            let (y, mo, d) = (num(i, 4), num(i + 4, 2), num(i + 6, 2));
            let date = y.zip(mo).zip(d).and_then(|((y, mo), d)| civil(y, mo, d, 0, 0, 0));
            let sep = b.get(i + 8).copied();
            let time_ok = matches!(sep, Some(b'-' | b'_' | b'T')) && run_at(b, i + 9) == 6;
            found = match (date, time_ok) {
                (Some(t), true) => {
                    let (h, mi, s) = (num(i + 9, 2), num(i + 11, 2), num(i + 13, 2));
                    let hms =
                        h.zip(mi).zip(s).filter(|((h, mi), s)| *h < 24 && *mi < 60 && *s < 61);
                    match hms {
                        Some(((h, mi), s)) => Some((t + h * 3600 + mi * 60 + s, i + 15)),
                        None => Some((t, i + 8)),
                    }
                }
                (Some(t), false) => Some((t, i + 8)),
                _ => None,
            };
        } else if n == 4 && b.get(i + 4) == Some(&b'-') && b.len() >= i + 10 && b[i + 7] == b'-' {
            found = parse(&name[i..i + 10]).map(|t| (t, i + 10));
        } else if n == 10 {
            found = num(i, 10).and_then(plausible).map(|t| (t, i + 10));
        }
        match found {
            Some((time, end)) => {
                out.push(NameStamp { text: name[i..end].to_string(), time, at: i..end });
                i = end;
            }
            None => i += n.max(1),
        }
    }
    out
}

fn run_at(b: &[u8], i: usize) -> usize {
    b.get(i..).map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
}

/// Whether a column or key names a point in time (timestamp, generated_at, export_datetime, date).
pub fn is_time_key(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    let last = n.rsplit(['.', ']']).next().unwrap_or(&n);
    last == "date"
        || last == "time"
        || last.ends_with("timestamp")
        || last.ends_with("datetime")
        || last.ends_with("_at")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(format(1_763_100_000), "2025-11-14T06:00:00Z");
        for s in ["2025-11-14T06:00:00Z", "2025-11-14 06:00:00", "2025-11-14T07:00:00+01:00"] {
            assert_eq!(parse(s), Some(1_763_100_000), "{s}");
        }
        assert_eq!(parse("2025-11-14T06:00:00.250Z"), Some(1_763_100_000));
        assert_eq!(parse("1763100000"), Some(1_763_100_000));
        assert_eq!(parse("1763100000000"), Some(1_763_100_000), "milliseconds");
        assert_eq!(parse("2025-11-14"), Some(1_763_078_400));
        for bad in ["42", "2025-13-01", "yesterday", "2025-11-14T25:00:00Z", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn stamps_in_names() {
        let s = in_name("conv_bench_20251008-120000.json");
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].text.as_str(), format(s[0].time).as_str()),
            ("20251008-120000", "2025-10-08T12:00:00Z")
        );
        assert_eq!(
            format(in_name("chimera_metrics_20251114_100000.json")[0].time),
            "2025-11-14T10:00:00Z"
        );
        assert_eq!(
            format(in_name("inference_baseline_1762000000.json")[0].time),
            "2025-11-01T12:26:40Z"
        );
        assert_eq!(in_name("20251101-090000")[0].text, "20251101-090000");
        assert_eq!(date(in_name("lessons_20251114.md")[0].time), "2025-11-14");
        assert!(in_name("gemma3_270m_q4_k_m").is_empty());
        assert!(in_name("g999_c1024_t0.2").is_empty());
        assert!(
            is_time_key("timestamp")
                && is_time_key("generated_at")
                && is_time_key("export_datetime")
        );
        assert!(!is_time_key("compile_time_s") && !is_time_key("ttft_s"));
    }
}
