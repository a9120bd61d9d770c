//! The slice of Elasticsearch's date handling the emulator needs: the ISO formats, epoch formats and
//! Java-style patterns (`yyyy-MM-dd HH:mm:ss.SSS`), `||`-separated alternatives, and simple date math.
//! Instants are nanoseconds since the epoch (i128, so any year fits).

use chrono::{Datelike, NaiveDate, Timelike};

pub const NANOS_PER_MILLI: i128 = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Fraction(usize),
    Offset,
    Lit(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Format {
    Iso,
    EpochMillis,
    EpochSecond,
    Pattern(Vec<Tok>),
}

/// One or more formats (`a||b`); the first one formats, any one parses.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormats {
    pub text: String,
    formats: Vec<Format>,
}

impl DateFormats {
    pub fn default_date() -> DateFormats {
        DateFormats::parse("strict_date_optional_time||epoch_millis")
    }

    pub fn parse(text: &str) -> DateFormats {
        let formats = text.split("||").map(|f| compile(f.trim())).collect();
        DateFormats {
            text: text.to_string(),
            formats,
        }
    }

    /// Parses a date string into epoch nanoseconds.
    pub fn parse_str(&self, s: &str) -> Option<i128> {
        self.formats.iter().find_map(|f| parse_one(f, s))
    }

    /// Interprets a JSON number the way a date field does (epoch millis, or seconds if only that format).
    pub fn parse_number(&self, n: f64) -> Option<i128> {
        if self.formats.contains(&Format::EpochSecond) && !self.formats.contains(&Format::EpochMillis) {
            return Some((n * 1e9) as i128);
        }
        Some((n * 1e6) as i128)
    }

    pub fn format(&self, nanos: i128) -> String {
        match self.formats.first() {
            Some(Format::EpochMillis) => (nanos.div_euclid(NANOS_PER_MILLI)).to_string(),
            Some(Format::EpochSecond) => (nanos.div_euclid(1_000_000_000)).to_string(),
            Some(Format::Pattern(toks)) => format_pattern(toks, nanos),
            _ => format_iso(nanos),
        }
    }
}

fn compile(name: &str) -> Format {
    match name {
        "strict_date_optional_time"
        | "date_optional_time"
        | "strict_date_optional_time_nanos"
        | "strict_date_time"
        | "date_time"
        | "iso8601"
        | "strict_date_time_no_millis"
        | "date_time_no_millis"
        | "strict_date"
        | "date" => Format::Iso,
        "epoch_millis" => Format::EpochMillis,
        "epoch_second" => Format::EpochSecond,
        other => Format::Pattern(tokenize(other)),
    }
}

fn tokenize(p: &str) -> Vec<Tok> {
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let tok = match c {
            'y' | 'u' | 'Y' => Tok::Year,
            'M' => Tok::Month,
            'd' => Tok::Day,
            'H' => Tok::Hour,
            'm' => Tok::Minute,
            's' => Tok::Second,
            'S' => Tok::Fraction(run),
            'Z' | 'X' | 'x' => Tok::Offset,
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .map(|e| i + 1 + e)
                    .unwrap_or(chars.len());
                toks.push(Tok::Lit(chars[i + 1..end].iter().collect()));
                i = end + 1;
                continue;
            }
            _ => Tok::Lit(chars[i..i + run].iter().collect()),
        };
        toks.push(tok);
        i += run;
    }
    toks
}

// Civil fields map one-to-one onto the parsed pattern letters; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn to_nanos(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nano: u32, offset_secs: i64) -> Option<i128> {
    let dt = NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_nano_opt(h, mi, s, nano)?;
    let secs = dt.and_utc().timestamp() - offset_secs;
    Some(secs as i128 * 1_000_000_000 + nano as i128)
}

fn digits(s: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *pos;
    while *pos < s.len() && *pos - start < max && s[*pos].is_ascii_digit() {
        *pos += 1;
    }
    if *pos - start < min {
        return None;
    }
    std::str::from_utf8(&s[start..*pos]).ok()?.parse().ok()
}

fn fraction(s: &[u8], pos: &mut usize, max: usize) -> Option<u32> {
    let start = *pos;
    while *pos < s.len() && *pos - start < max && s[*pos].is_ascii_digit() {
        *pos += 1;
    }
    let len = *pos - start;
    if len == 0 {
        return None;
    }
    let v: u32 = std::str::from_utf8(&s[start..*pos]).ok()?.parse().ok()?;
    Some(v * 10u32.pow(9 - len as u32))
}

fn offset(s: &[u8], pos: &mut usize) -> Option<i64> {
    if *pos >= s.len() {
        return None;
    }
    match s[*pos] {
        b'Z' | b'z' => {
            *pos += 1;
            Some(0)
        }
        b'+' | b'-' => {
            let sign = if s[*pos] == b'-' { -1 } else { 1 };
            *pos += 1;
            let h = digits(s, pos, 2, 2)? as i64;
            if *pos < s.len() && s[*pos] == b':' {
                *pos += 1;
            }
            let m = digits(s, pos, 0, 2).unwrap_or(0) as i64;
            Some(sign * (h * 3600 + m * 60))
        }
        _ => None,
    }
}

fn parse_iso(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let mut p = 0;
    let neg = b.first() == Some(&b'-');
    if neg {
        p += 1;
    }
    let mut y = digits(b, &mut p, 4, 9)? as i32;
    if neg {
        y = -y;
    }
    let (mut mo, mut d, mut h, mut mi, mut sec, mut nano, mut off) = (1, 1, 0, 0, 0, 0, 0i64);
    if p < b.len() && b[p] == b'-' {
        p += 1;
        mo = digits(b, &mut p, 2, 2)?;
        if p < b.len() && b[p] == b'-' {
            p += 1;
            d = digits(b, &mut p, 2, 2)?;
        }
    }
    if p < b.len() && (b[p] == b'T' || b[p] == b't') {
        p += 1;
        h = digits(b, &mut p, 2, 2)?;
        if p < b.len() && b[p] == b':' {
            p += 1;
            mi = digits(b, &mut p, 2, 2)?;
            if p < b.len() && b[p] == b':' {
                p += 1;
                sec = digits(b, &mut p, 2, 2)?;
                if p < b.len() && (b[p] == b'.' || b[p] == b',') {
                    p += 1;
                    nano = fraction(b, &mut p, 9)?;
                }
            }
        }
        if p < b.len() {
            off = offset(b, &mut p)?;
        }
    }
    if p != b.len() {
        return None;
    }
    to_nanos(y, mo, d, h, mi, sec, nano, off)
}

fn parse_one(f: &Format, s: &str) -> Option<i128> {
    match f {
        Format::Iso => parse_iso(s),
        Format::EpochMillis => {
            let v: f64 = s.parse().ok()?;
            if let Ok(i) = s.parse::<i64>() {
                return Some(i as i128 * NANOS_PER_MILLI);
            }
            Some((v * 1e6) as i128)
        }
        Format::EpochSecond => {
            let v: f64 = s.parse().ok()?;
            Some((v * 1e9) as i128)
        }
        Format::Pattern(toks) => {
            let b = s.as_bytes();
            let mut p = 0;
            let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut nano, mut off) = (1970, 1, 1, 0, 0, 0, 0, 0i64);
            for t in toks {
                match t {
                    Tok::Year => y = digits(b, &mut p, 4, 4)? as i32,
                    Tok::Month => mo = digits(b, &mut p, 2, 2)?,
                    Tok::Day => d = digits(b, &mut p, 2, 2)?,
                    Tok::Hour => h = digits(b, &mut p, 2, 2)?,
                    Tok::Minute => mi = digits(b, &mut p, 2, 2)?,
                    Tok::Second => sec = digits(b, &mut p, 2, 2)?,
                    Tok::Fraction(n) => {
                        let start = p;
                        nano = fraction(b, &mut p, *n)?;
                        if p - start != *n {
                            return None;
                        }
                    }
                    Tok::Offset => off = offset(b, &mut p)?,
                    Tok::Lit(l) => {
                        if !s[p..].starts_with(l.as_str()) {
                            return None;
                        }
                        p += l.len();
                    }
                }
            }
            if p != b.len() {
                return None;
            }
            to_nanos(y, mo, d, h, mi, sec, nano, off)
        }
    }
}

fn civil(nanos: i128) -> chrono::NaiveDateTime {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, sub)
        .map(|d| d.naive_utc())
        .unwrap_or_default()
}

/// Calendar fields of an instant, for any i64-millis instant (chrono stops at ±262,143 years, but
/// Elasticsearch formats its ±Long sort sentinels too).
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nano: u32,
}

fn civil_fields(nanos: i128) -> Civil {
    let secs = nanos.div_euclid(1_000_000_000);
    let nano = nanos.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400) as i64;
    let sod = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    Civil {
        year,
        month,
        day,
        hour: sod / 3600,
        minute: sod / 60 % 60,
        second: sod % 60,
        nano,
    }
}

/// Years as java.time prints them: four digits, a sign beyond 9999 or before year 0.
fn year_text(y: i64) -> String {
    if y > 9999 {
        format!("+{y}")
    } else if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("{y:04}")
    }
}

fn format_iso(nanos: i128) -> String {
    let c = civil_fields(nanos);
    let sub = c.nano;
    let frac = if sub % 1_000_000 == 0 {
        format!("{:03}", sub / 1_000_000)
    } else if sub % 1000 == 0 {
        format!("{:06}", sub / 1000)
    } else {
        format!("{sub:09}")
    };
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z",
        year_text(c.year),
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        frac
    )
}

fn format_pattern(toks: &[Tok], nanos: i128) -> String {
    let dt = civil_fields(nanos);
    let mut out = String::new();
    for t in toks {
        match t {
            Tok::Year => out.push_str(&year_text(dt.year)),
            Tok::Month => out.push_str(&format!("{:02}", dt.month)),
            Tok::Day => out.push_str(&format!("{:02}", dt.day)),
            Tok::Hour => out.push_str(&format!("{:02}", dt.hour)),
            Tok::Minute => out.push_str(&format!("{:02}", dt.minute)),
            Tok::Second => out.push_str(&format!("{:02}", dt.second)),
            Tok::Fraction(n) => {
                let all = format!("{:09}", dt.nano);
                out.push_str(&all[..(*n).min(9)]);
            }
            Tok::Offset => out.push('Z'),
            Tok::Lit(l) => out.push_str(l),
        }
    }
    out
}

/// Resolves date math such as `now-1d/d` or `2022-12-31||/d` to epoch nanoseconds.
pub fn date_math(expr: &str, formats: &DateFormats, now_nanos: i128) -> Option<i128> {
    let (mut value, ops) = if let Some(rest) = expr.strip_prefix("now") {
        (now_nanos, rest)
    } else if let Some(idx) = expr.find("||") {
        (formats.parse_str(&expr[..idx])?, &expr[idx + 2..])
    } else {
        return formats.parse_str(expr);
    };
    let b = ops.as_bytes();
    let mut p = 0;
    while p < b.len() {
        let op = b[p];
        p += 1;
        match op {
            b'/' => {
                let unit = *b.get(p)? as char;
                p += 1;
                value = round_down(value, unit)?;
            }
            b'+' | b'-' => {
                let n = digits(b, &mut p, 1, 9).unwrap_or(1) as i64;
                let unit = *b.get(p)? as char;
                p += 1;
                let n = if op == b'-' { -n } else { n };
                value = add(value, n, unit)?;
            }
            _ => return None,
        }
    }
    Some(value)
}

fn round_down(nanos: i128, unit: char) -> Option<i128> {
    let dt = civil(nanos);
    let (y, mo, d) = (dt.year(), dt.month(), dt.day());
    let r = match unit {
        'y' => to_nanos(y, 1, 1, 0, 0, 0, 0, 0)?,
        'M' => to_nanos(y, mo, 1, 0, 0, 0, 0, 0)?,
        'w' => to_nanos(y, mo, d, 0, 0, 0, 0, 0)? - dt.weekday().num_days_from_monday() as i128 * 86_400_000_000_000,
        'd' => to_nanos(y, mo, d, 0, 0, 0, 0, 0)?,
        'h' | 'H' => to_nanos(y, mo, d, dt.hour(), 0, 0, 0, 0)?,
        'm' => to_nanos(y, mo, d, dt.hour(), dt.minute(), 0, 0, 0)?,
        's' => to_nanos(y, mo, d, dt.hour(), dt.minute(), dt.second(), 0, 0)?,
        _ => return None,
    };
    Some(r)
}

fn add(nanos: i128, n: i64, unit: char) -> Option<i128> {
    let unit_nanos: i128 = match unit {
        'w' => 7 * 86_400_000_000_000,
        'd' => 86_400_000_000_000,
        'h' | 'H' => 3_600_000_000_000,
        'm' => 60_000_000_000,
        's' => 1_000_000_000,
        'y' | 'M' => {
            let dt = civil(nanos);
            let months = dt.year() as i64 * 12 + dt.month0() as i64 + if unit == 'y' { n * 12 } else { n };
            let (y, m) = (months.div_euclid(12) as i32, months.rem_euclid(12) as u32 + 1);
            let day = dt.day().min(28);
            return to_nanos(y, m, day, dt.hour(), dt.minute(), dt.second(), dt.nanosecond(), 0);
        }
        _ => return None,
    };
    Some(nanos + unit_nanos * n as i128)
}

/// Resolves an index name written in date math (`<logs-{now/d}>`, `<a_{2022-12-31||/d{yyyy-MM-dd}}>`).
pub fn resolve_index_date_math(name: &str, now_nanos: i128) -> String {
    let Some(inner) = name.strip_prefix('<').and_then(|n| n.strip_suffix('>')) else {
        return name.to_string();
    };
    let mut out = String::new();
    let mut rest = inner;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        // The expression runs to the matching close brace; an optional `{format}` sits inside it.
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = &after[..end];
        let (expr, fmt) = match body.find('{') {
            Some(i) => (&body[..i], body[i + 1..].trim_end_matches('}')),
            None => (body, "yyyy.MM.dd"),
        };
        let value = date_math(expr, &DateFormats::default_date(), now_nanos).unwrap_or(now_nanos);
        out.push_str(&DateFormats::parse(fmt).format(value));
        rest = &after[(end + 1).min(after.len())..];
    }
    out.push_str(rest);
    out
}

pub fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_patterns_round_trip() {
        let f = DateFormats::parse("yyyy-MM-dd HH:mm:ss.SSS");
        let n = f.parse_str("2019-10-21 08:30:04.828").unwrap();
        assert_eq!(n / NANOS_PER_MILLI, 1571646604828);
        assert_eq!(f.format(n), "2019-10-21 08:30:04.828");
        assert_eq!(DateFormats::default_date().format(n), "2019-10-21T08:30:04.828Z");
        assert_eq!(
            DateFormats::default_date().parse_str("2019-10-21T08:30:04.828Z"),
            Some(n)
        );
        assert_eq!(
            DateFormats::default_date().parse_str("2019-10-21"),
            Some(1571616000000 * NANOS_PER_MILLI)
        );
        assert!(f.parse_str("2021-02-11T08:30:04.828Z").is_none());
        // Elasticsearch's missing-value sentinels format like java.time prints them.
        let iso = DateFormats::default_date();
        assert_eq!(
            iso.format(i64::MIN as i128 * NANOS_PER_MILLI),
            "-292275055-05-16T16:47:04.192Z"
        );
        assert_eq!(
            iso.format(i64::MAX as i128 * NANOS_PER_MILLI),
            "+292278994-08-17T07:12:55.807Z"
        );
        assert_eq!(iso.format(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn index_name_date_math() {
        assert_eq!(
            resolve_index_date_math("<logs_{2022-12-31||/d{yyyy-MM-dd}}>", 0),
            "logs_2022-12-31"
        );
        assert_eq!(resolve_index_date_math("plain", 0), "plain");
    }
}
