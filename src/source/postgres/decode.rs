//! PostgreSQL's binary wire format, decoded straight into JSON: one decoder per column, chosen at connect.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use compact_str::CompactString;
use serde_json::Number;
use sqlx::postgres::PgPool;

use crate::model::{DocValue, Key};

/// How to read one column's binary value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Uuid,
    TimestampTz,
    Timestamp,
    Date,
    Json,
    Jsonb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decoder {
    Scalar(Scalar),
    Array(Scalar),
}

/// Built-in types by OID (stable across servers, see pg_type.dat); anything else (domains, citext) is
/// resolved through pg_type.
pub(super) fn builtin_decoder(oid: u32) -> Option<Decoder> {
    use Scalar::*;
    let scalar = |s| Some(Decoder::Scalar(s));
    let array = |s| Some(Decoder::Array(s));
    match oid {
        16 => scalar(Bool),
        21 => scalar(Int2),
        23 => scalar(Int4),
        20 => scalar(Int8),
        700 => scalar(Float4),
        701 => scalar(Float8),
        1700 => scalar(Numeric),
        25 | 1043 | 1042 | 19 => scalar(Text),
        2950 => scalar(Uuid),
        1184 => scalar(TimestampTz),
        1114 => scalar(Timestamp),
        1082 => scalar(Date),
        114 => scalar(Json),
        3802 => scalar(Jsonb),
        1000 => array(Bool),
        1005 => array(Int2),
        1007 => array(Int4),
        1016 => array(Int8),
        1021 => array(Float4),
        1022 => array(Float8),
        1231 => array(Numeric),
        1009 | 1015 | 1014 | 1003 => array(Text),
        2951 => array(Uuid),
        1185 => array(TimestampTz),
        1115 => array(Timestamp),
        1182 => array(Date),
        199 => array(Json),
        3807 => array(Jsonb),
        _ => None,
    }
}

/// Resolves a non-built-in type: a domain decodes as its base type, citext as text, an array of such a
/// type as an array of its element.
pub(super) async fn resolve_decoder(pool: &PgPool, oid: u32) -> Result<Option<Decoder>, sqlx::Error> {
    let mut oid = oid;
    let mut array = false;
    // Bounded: domains over domains over arrays of domains...
    for _ in 0..8 {
        if let Some(decoder) = builtin_decoder(oid) {
            return Ok(match (array, decoder) {
                (false, d) => Some(d),
                (true, Decoder::Scalar(s)) => Some(Decoder::Array(s)),
                (true, Decoder::Array(_)) => None,
            });
        }
        let row: Option<(String, String, i64, i64, String)> = sqlx::query_as(
            "SELECT typname::text, typtype::text, typbasetype::int8, typelem::int8, typcategory::text \
             FROM pg_type WHERE oid = $1::int8::oid",
        )
        .bind(oid as i64)
        .fetch_optional(pool)
        .await?;
        let Some((name, kind, base, elem, category)) = row else {
            return Ok(None);
        };
        if name == "citext" {
            return Ok(Some(if array {
                Decoder::Array(Scalar::Text)
            } else {
                Decoder::Scalar(Scalar::Text)
            }));
        }
        if kind == "d" {
            oid = base as u32;
        } else if category == "A" && elem != 0 && !array {
            array = true;
            oid = elem as u32;
        } else {
            return Ok(None);
        }
    }
    Ok(None)
}

pub(super) fn decode_key(scalar: Scalar, bytes: &[u8]) -> Result<Key, String> {
    Ok(match scalar {
        Scalar::Int2 => Key::Int(i64::from(i16::from_be_bytes(fixed(bytes)?))),
        Scalar::Int4 => Key::Int(i64::from(i32::from_be_bytes(fixed(bytes)?))),
        Scalar::Int8 => Key::Int(i64::from_be_bytes(fixed(bytes)?)),
        Scalar::Uuid => Key::Text(uuid::Uuid::from_bytes(fixed(bytes)?).hyphenated().to_string()),
        _ => Key::Text(text(bytes)?.to_string()),
    })
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

pub(super) fn micros_to_epoch_ms(pg_micros: i64) -> Option<i64> {
    // i64::MIN/MAX are -infinity/infinity.
    if pg_micros == i64::MIN || pg_micros == i64::MAX {
        return None;
    }
    Some((pg_micros + PG_EPOCH_MICROS).div_euclid(1000))
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

pub(super) fn read_i64(bytes: &[u8]) -> Result<i64, String> {
    Ok(i64::from_be_bytes(fixed(bytes)?))
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))
}

/// One binary value as the JSON a projector would send.
pub(super) fn decode_value(decoder: Decoder, bytes: &[u8]) -> Result<DocValue, String> {
    match decoder {
        Decoder::Scalar(scalar) => decode_scalar(scalar, bytes),
        Decoder::Array(element) => decode_array(element, bytes),
    }
}

fn decode_scalar(scalar: Scalar, bytes: &[u8]) -> Result<DocValue, String> {
    Ok(match scalar {
        Scalar::Bool => DocValue::Bool(fixed::<1>(bytes)?[0] != 0),
        Scalar::Int2 => DocValue::from(i64::from(i16::from_be_bytes(fixed(bytes)?))),
        Scalar::Int4 => DocValue::from(i64::from(i32::from_be_bytes(fixed(bytes)?))),
        Scalar::Int8 => DocValue::from(i64::from_be_bytes(fixed(bytes)?)),
        Scalar::Float4 => {
            let f = f32::from_be_bytes(fixed(bytes)?);
            // The shortest digits that round-trip as f32, not the widened f64's.
            if f.is_finite() {
                DocValue::number(&format!("{f:?}")).ok_or_else(|| format!("float4 {f:?} is not a JSON number"))?
            } else {
                DocValue::String(non_finite(f64::from(f)))
            }
        }
        Scalar::Float8 => {
            let f = f64::from_be_bytes(fixed(bytes)?);
            Number::from_f64(f).map_or_else(
                || DocValue::String(non_finite(f)),
                |n| DocValue::Number(CompactString::from(n.as_str())),
            )
        }
        Scalar::Numeric => numeric_value(bytes)?,
        Scalar::Text => DocValue::String(CompactString::from(text(bytes)?)),
        Scalar::Uuid => DocValue::String(CompactString::from(
            uuid::Uuid::from_bytes(fixed(bytes)?)
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()) as &str,
        )),
        Scalar::TimestampTz => DocValue::String(format_timestamp(read_i64(bytes)?, true)),
        Scalar::Timestamp => DocValue::String(format_timestamp(read_i64(bytes)?, false)),
        Scalar::Date => DocValue::String(format_date(i32::from_be_bytes(fixed(bytes)?))),
        Scalar::Json => serde_json::from_slice(bytes).map_err(|e| format!("invalid json: {e}"))?,
        Scalar::Jsonb => match bytes.split_first() {
            Some((1, json)) => serde_json::from_slice(json).map_err(|e| format!("invalid jsonb: {e}"))?,
            _ => return Err("unknown jsonb binary format version".into()),
        },
    })
}

fn non_finite(f: f64) -> CompactString {
    // PostgreSQL's own spelling.
    if f.is_nan() {
        "NaN".into()
    } else if f > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

/// A binary array (any number of dimensions) as nested JSON arrays.
fn decode_array(element: Scalar, bytes: &[u8]) -> Result<DocValue, String> {
    let mut reader = Reader { bytes, at: 0 };
    let dimensions = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_oid = reader.i32()?;
    if dimensions == 0 {
        return Ok(DocValue::Array(Vec::new()));
    }
    let mut lengths = Vec::with_capacity(dimensions as usize);
    for _ in 0..dimensions {
        lengths.push(usize::try_from(reader.i32()?).map_err(|_| "negative array length")?);
        let _lower_bound = reader.i32()?;
    }
    let array = read_dimension(element, &mut reader, &lengths)?;
    if reader.at != bytes.len() {
        return Err("trailing bytes after array".into());
    }
    Ok(array)
}

fn read_dimension(element: Scalar, reader: &mut Reader<'_>, lengths: &[usize]) -> Result<DocValue, String> {
    let (&length, inner) = lengths.split_first().expect("at least one dimension");
    let mut items = Vec::with_capacity(length);
    for _ in 0..length {
        if inner.is_empty() {
            let len = reader.i32()?;
            items.push(if len < 0 {
                DocValue::Null
            } else {
                decode_scalar(element, reader.take(len as usize)?)?
            });
        } else {
            items.push(read_dimension(element, reader, inner)?);
        }
    }
    Ok(DocValue::Array(items))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or("value ends early")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(fixed(self.take(4)?)?))
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(fixed(self.take(2)?)?))
    }
}

/// numeric as a JSON number with exactly PostgreSQL's digits (its display scale included: `12.50`
/// stays `12.50`); NaN and ±Infinity become strings.
fn numeric_value(bytes: &[u8]) -> Result<DocValue, String> {
    let text = numeric_text(bytes)?;
    if matches!(text.as_str(), "NaN" | "Infinity" | "-Infinity") {
        return Ok(DocValue::String(text));
    }
    // The digits are written here in JSON's number grammar: no second parse.
    Ok(DocValue::Number(text))
}

/// The binary numeric format: ndigits, weight (of the first base-10000 digit), sign, display scale,
/// then the base-10000 digits.
fn numeric_text(bytes: &[u8]) -> Result<CompactString, String> {
    let mut reader = Reader { bytes, at: 0 };
    let ndigits = reader.i16()?;
    let weight = i32::from(reader.i16()?);
    let sign = reader.i16()? as u16;
    let dscale = reader.i16()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("unknown numeric sign {other:#x}")),
    }
    let digits = (0..ndigits.max(0))
        .map(|_| reader.i16())
        .collect::<Result<Vec<_>, _>>()?;
    // digits[k] carries weight `weight - k`.
    let digit = |k: i32| {
        if k >= 0 && (k as usize) < digits.len() {
            digits[k as usize]
        } else {
            0
        }
    };
    if let Some(bad) = digits.iter().find(|d| !(0..10_000).contains(*d)) {
        return Err(format!("numeric digit {bad} out of range"));
    }
    let mut out = CompactString::default();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for k in 0..=weight {
            push_padded(&mut out, digit(k) as u32, if k == 0 { 1 } else { 4 });
        }
    }
    let dscale = usize::try_from(dscale).map_err(|_| "negative numeric scale")?;
    if dscale > 0 {
        out.push('.');
        let start = out.len();
        let mut k = weight + 1;
        while out.len() - start < dscale {
            push_padded(&mut out, digit(k) as u32, 4);
            k += 1;
        }
        out.truncate(start + dscale);
    }
    Ok(out)
}

/// RFC 3339; UTC with `Z` for timestamptz, no zone for timestamp; fractional seconds only when not
/// zero, without trailing zeros.
fn format_timestamp(pg_micros: i64, utc: bool) -> CompactString {
    match pg_micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let Some(instant) = pg_micros
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
    else {
        return compact_str::format_compact!("out of range timestamp {pg_micros}");
    };
    let mut out = CompactString::default();
    if (0..=9999).contains(&instant.year()) {
        // By hand, without core::fmt: chrono's strftime parser cost 7% of a whole check run, and
        // `write!` with padded integers another 5% (perf).
        push_date(&mut out, instant.date_naive());
        out.push('T');
        push_padded(&mut out, instant.hour(), 2);
        out.push(':');
        push_padded(&mut out, instant.minute(), 2);
        out.push(':');
        push_padded(&mut out, instant.second(), 2);
    } else {
        let _ = write!(out, "{}", instant.format("%Y-%m-%dT%H:%M:%S"));
    }
    let micros = instant.timestamp_subsec_micros();
    if micros != 0 {
        out.push('.');
        push_padded(&mut out, micros, 6);
        let trimmed = out.trim_end_matches('0').len();
        out.truncate(trimmed);
    }
    if utc {
        out.push('Z');
    }
    out
}

fn format_date(pg_days: i32) -> CompactString {
    match pg_days {
        i32::MAX => return "infinity".into(),
        i32::MIN => return "-infinity".into(),
        _ => {}
    }
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
    match epoch.checked_add_signed(chrono::Duration::days(i64::from(pg_days))) {
        Some(date) if (0..=9999).contains(&date.year()) => {
            let mut out = CompactString::default();
            push_date(&mut out, date);
            out
        }
        Some(date) => CompactString::from(date.format("%Y-%m-%d").to_string()),
        None => compact_str::format_compact!("out of range date {pg_days}"),
    }
}

/// `YYYY-MM-DD` of a date whose year has at most four digits.
fn push_date(out: &mut CompactString, date: NaiveDate) {
    push_padded(out, date.year() as u32, 4);
    out.push('-');
    push_padded(out, date.month(), 2);
    out.push('-');
    push_padded(out, date.day(), 2);
}

/// Appends `value` in decimal, left-padded with zeros to at least `width` (at most 10) digits.
fn push_padded(out: &mut CompactString, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = at.min(digits.len() - width.min(digits.len()));
    // One copy of all the digits: pushing them one by one re-checked the string's capacity for each.
    out.push_str(std::str::from_utf8(&digits[start..]).expect("ASCII digits"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(ndigits: &[i16], weight: i16, sign: u16, dscale: i16) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(ndigits.len() as i16).to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        for d in ndigits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_keeps_exact_digits_and_scale() {
        // 12345678901234567890.10 = 1234 5678 9012 3456 7890 . 1000
        let bytes = numeric_bytes(&[1234, 5678, 9012, 3456, 7890, 1000], 4, 0, 2);
        assert_eq!(numeric_text(&bytes).unwrap(), "12345678901234567890.10");
        assert_eq!(numeric_value(&bytes).unwrap().to_string(), "12345678901234567890.10");
        // -0.0005 with scale 4: digit 5 at weight -1 (0.0005 = 5 * 10000^-1).
        assert_eq!(numeric_text(&numeric_bytes(&[5], -1, 0x4000, 4)).unwrap(), "-0.0005");
        // 0.00000001: one digit 1 at weight -2 (0.0000 0001).
        assert_eq!(numeric_text(&numeric_bytes(&[1], -2, 0, 8)).unwrap(), "0.00000001");
        // 10000 (trailing zero groups are not stored): digit 1 at weight 1.
        assert_eq!(numeric_text(&numeric_bytes(&[1], 1, 0, 0)).unwrap(), "10000");
        assert_eq!(numeric_text(&numeric_bytes(&[], 0, 0, 2)).unwrap(), "0.00");
        assert_eq!(
            numeric_value(&numeric_bytes(&[], 0, 0xC000, 0)).unwrap(),
            DocValue::String("NaN".into())
        );
        assert_eq!(
            numeric_value(&numeric_bytes(&[], 0, 0xF000, 0)).unwrap(),
            DocValue::String("-Infinity".into())
        );
    }

    #[test]
    fn timestamps_render_utc_with_fraction_only_when_present() {
        let micros = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros() - PG_EPOCH_MICROS;
        assert_eq!(
            format_timestamp(micros("2024-03-01T10:00:00Z"), true),
            "2024-03-01T10:00:00Z"
        );
        assert_eq!(
            format_timestamp(micros("2024-03-01T11:00:00.123456+01:00"), true),
            "2024-03-01T10:00:00.123456Z"
        );
        assert_eq!(
            format_timestamp(micros("2024-03-01T10:00:00.5Z"), false),
            "2024-03-01T10:00:00.5"
        );
        assert_eq!(
            format_timestamp(micros("1999-12-31T23:59:59.999Z"), true),
            "1999-12-31T23:59:59.999Z"
        );
        assert_eq!(format_timestamp(i64::MAX, true), "infinity");
        // The hand-written fast path agrees with chrono's strftime, and years beyond four digits use it.
        for text in [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.000001Z",
            "2024-02-29T00:00:00.1Z",
        ] {
            let pg = micros(text);
            let instant = DateTime::from_timestamp_micros(pg + PG_EPOCH_MICROS).unwrap();
            assert!(format_timestamp(pg, true).starts_with(&instant.format("%Y-%m-%dT%H:%M:%S").to_string()));
        }
        let far = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
            .unwrap()
            .timestamp_micros()
            - PG_EPOCH_MICROS
            + 86_400_000_000;
        assert_eq!(format_timestamp(far, true), "+10000-01-01T23:59:59Z");
        assert_eq!(micros_to_epoch_ms(micros("1970-01-01T00:00:00.0015Z")), Some(1));
        assert_eq!(micros_to_epoch_ms(micros("1969-12-31T23:59:59.9995Z")), Some(-1));
        assert_eq!(format_date(0), "2000-01-01");
        assert_eq!(format_date(-1), "1999-12-31");
        assert_eq!(format_date(i32::MIN), "-infinity");
    }

    #[test]
    fn padded_digits_and_dates_by_hand_match_core_fmt() {
        for (value, width) in [
            (0u32, 1),
            (7, 2),
            (42, 4),
            (9999, 4),
            (123456, 6),
            (1, 6),
            (u32::MAX, 10),
            (5, 10),
        ] {
            let mut out = CompactString::from("x");
            push_padded(&mut out, value, width);
            assert_eq!(out, format!("x{value:0width$}"));
        }
        for days in [-730_119, -1, 0, 59, 366, 2_921_939] {
            let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
            let date = epoch + chrono::Duration::days(days);
            assert_eq!(format_date(days as i32), date.format("%Y-%m-%d").to_string());
        }
        // An out-of-range base-10000 digit is corrupt data, not a number to print.
        assert!(numeric_text(&numeric_bytes(&[10_000], 0, 0, 0)).is_err());
        assert!(numeric_text(&numeric_bytes(&[-1], 0, 0, 0)).is_err());
    }

    #[test]
    fn floats_use_shortest_round_trip_digits() {
        let f4 = decode_scalar(Scalar::Float4, &0.1f32.to_be_bytes()).unwrap();
        assert_eq!(f4.to_string(), "0.1");
        let f8 = decode_scalar(Scalar::Float8, &0.1f64.to_be_bytes()).unwrap();
        assert_eq!(f8.to_string(), "0.1");
        let nan = decode_scalar(Scalar::Float8, &f64::NAN.to_be_bytes()).unwrap();
        assert_eq!(nan, DocValue::String("NaN".into()));
    }

    #[test]
    fn arrays_nest_by_dimension_and_keep_nulls() {
        // int4[][] {{1,NULL},{3,4}}
        let mut bytes = Vec::new();
        for v in [2i32, 1, 23, 2, 1, 2, 1] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        for element in [Some(1i32), None, Some(3), Some(4)] {
            match element {
                Some(v) => {
                    bytes.extend_from_slice(&4i32.to_be_bytes());
                    bytes.extend_from_slice(&v.to_be_bytes());
                }
                None => bytes.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(
            decode_array(Scalar::Int4, &bytes).unwrap(),
            serde_json::json!([[1, null], [3, 4]])
        );
        let empty = [0i32, 0, 23].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<_>>();
        assert_eq!(decode_array(Scalar::Int4, &empty).unwrap(), serde_json::json!([]));
        assert!(decode_array(Scalar::Int4, &bytes[..bytes.len() - 2]).is_err());
    }
}
