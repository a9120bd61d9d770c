//! Exact comparison of scalar values: decimal numbers by value, timestamps by instant.
//!
//! Numbers arrive as their original JSON text (serde_json's `arbitrary_precision`), so equality is
//! decided on the digits themselves: never through `f64`, which would equate 9007199254740993 with
//! 9007199254740992 and make 0.1 + 0.2 style rounding possible.

use std::cmp::Ordering;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A decimal number's text split into its parts, borrowed from the original text: no allocation.
///
/// The value is `sign * 0.d1d2d3... * 10^point`, where `d1...` are the significant digits (leading
/// and trailing zeros removed). Two decimals are equal exactly when sign, significant digits and
/// `point` are equal, or when both are zero.
#[derive(Debug, Clone, Copy)]
pub struct Decimal<'a> {
    negative: bool,
    /// Digits before the decimal point (empty for `.5`, accepted in numeric strings).
    int: &'a str,
    /// Digits after the decimal point.
    frac: &'a str,
    /// Decimal exponent (`e` part), saturated to stay in range.
    exp: i64,
}

impl<'a> Decimal<'a> {
    /// Parses a JSON-style number: optional sign, digits, optional fraction, optional exponent.
    /// A leading `+` is accepted too, for numeric strings such as `"+12.50"`.
    pub fn parse(text: &'a str) -> Option<Decimal<'a>> {
        let bytes = text.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let int_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int = &text[int_start..i];
        let mut frac = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac = &text[frac_start..i];
        }
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let mut exp: i64 = 0;
        if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
            i += 1;
            let exp_negative = match bytes.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let exp_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                // Saturating: an exponent beyond i64/4 is not a value anyone stores; keeping it
                // finite keeps the arithmetic below overflow-free.
                exp = exp
                    .saturating_mul(10)
                    .saturating_add(i64::from(bytes[i] - b'0'))
                    .min(i64::MAX / 4);
                i += 1;
            }
            if i == exp_start {
                return None;
            }
            if exp_negative {
                exp = -exp;
            }
        }
        if i != bytes.len() {
            return None;
        }
        Some(Decimal {
            negative,
            int,
            frac,
            exp,
        })
    }

    /// All mantissa digits, integer part then fraction part.
    fn digits(&self) -> impl Iterator<Item = u8> + Clone + 'a {
        self.int.bytes().chain(self.frac.bytes())
    }

    /// (number of leading zeros, number of significant digits); None when the value is zero.
    fn significant_span(&self) -> Option<(usize, usize)> {
        let total = self.int.len() + self.frac.len();
        let leading = self.digits().take_while(|&d| d == b'0').count();
        if leading == total {
            return None;
        }
        let trailing = trailing_zeros(self.int, self.frac);
        Some((leading, total - leading - trailing))
    }

    /// Position of the decimal point relative to the first significant digit (see the type doc).
    fn point(&self, leading: usize) -> i64 {
        self.int.len() as i64 - leading as i64 + self.exp
    }

    pub fn is_zero(&self) -> bool {
        self.significant_span().is_none()
    }

    /// Exact value equality: `1000 == 1000.0 == 1e3`, `-0 == 0`.
    pub fn value_eq(&self, other: &Decimal<'_>) -> bool {
        match (self.significant_span(), other.significant_span()) {
            (None, None) => true,
            (Some((la, na)), Some((lb, nb))) => {
                self.negative == other.negative
                    && na == nb
                    && self.point(la) == other.point(lb)
                    && self.digits().skip(la).take(na).eq(other.digits().skip(lb).take(nb))
            }
            _ => false,
        }
    }

    /// A canonical text for the value (equal values give equal texts), e.g. `1.5e3` and `1500.0`
    /// both give `15e2`. Used to match set elements on numeric keys.
    pub fn canonical(&self) -> String {
        match self.significant_span() {
            None => "0".to_string(),
            Some((leading, n)) => {
                let mut out = String::with_capacity(n + 8);
                if self.negative {
                    out.push('-');
                }
                out.extend(self.digits().skip(leading).take(n).map(char::from));
                let exp = self.point(leading) - n as i64;
                if exp != 0 {
                    out.push('e');
                    out.push_str(&exp.to_string());
                }
                out
            }
        }
    }

    /// Whether every digit sits within [`MAX_ARITHMETIC_MAGNITUDE`] places of the decimal point.
    fn within_arithmetic_range(&self) -> bool {
        match self.significant_span() {
            None => true,
            Some((leading, n)) => {
                let point = self.point(leading);
                point.abs() <= MAX_ARITHMETIC_MAGNITUDE && (point - n as i64).abs() <= MAX_ARITHMETIC_MAGNITUDE
            }
        }
    }

    /// The value as a `BigDecimal`, for arithmetic (tolerances). Slower than [`Decimal::value_eq`].
    pub fn to_big(&self) -> Option<BigDecimal> {
        let canonical = self.canonical();
        BigDecimal::from_str(&canonical).ok()
    }
}

/// Trailing zeros of the concatenated digits `int ++ frac`.
fn trailing_zeros(int: &str, frac: &str) -> usize {
    let in_frac = frac.bytes().rev().take_while(|&d| d == b'0').count();
    if in_frac < frac.len() {
        return in_frac;
    }
    in_frac + int.bytes().rev().take_while(|&d| d == b'0').count()
}

/// Compares two number texts by exact decimal value. Texts that are not numbers compare by bytes.
pub fn numbers_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (Decimal::parse(a), Decimal::parse(b)) {
        (Some(x), Some(y)) => x.value_eq(&y),
        _ => false,
    }
}

/// Numbers further than this many decimal places from the point are not given to the arithmetic:
/// subtracting 1e-1000000000 from 1 would expand a billion digits.
const MAX_ARITHMETIC_MAGNITUDE: i64 = 4096;

/// |a - b| <= tolerance, in exact decimals. None when either text is not a number (or, unequal, is
/// too far from the decimal point for arithmetic, see [`MAX_ARITHMETIC_MAGNITUDE`]).
pub fn within_tolerance(a: &str, b: &str, tolerance: &BigDecimal) -> Option<bool> {
    let x = Decimal::parse(a.trim())?;
    let y = Decimal::parse(b.trim())?;
    if x.value_eq(&y) {
        return Some(true);
    }
    if !x.within_arithmetic_range() || !y.within_arithmetic_range() {
        return None;
    }
    let difference = (x.to_big()? - y.to_big()?).abs();
    Some(difference.cmp(tolerance) != Ordering::Greater)
}

/// Parses a timestamp the way the `instant` rule reads them: RFC 3339 with any offset, a
/// `YYYY-MM-DDTHH:MM:SS[.fff]` local time taken as UTC, or a bare `YYYY-MM-DD` date (midnight UTC).
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    None
}

/// Epoch milliseconds as an instant (the write model's `bigint` timestamps).
pub fn instant_from_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_decimal_values_with_different_texts() {
        for (a, b) in [
            ("1000", "1000.0"),
            ("1000", "1000.00"),
            ("1000", "1e3"),
            ("1000", "1E+3"),
            ("1000", "10000e-1"),
            ("0.5", "5e-1"),
            ("0", "-0"),
            ("0", "0.000e5"),
            ("-12.50", "-12.5"),
            ("0.0012", "1.2e-3"),
            ("007", "7"),
        ] {
            assert!(numbers_equal(a, b), "{a} should equal {b}");
            assert!(numbers_equal(b, a), "{b} should equal {a}");
        }
    }

    #[test]
    fn different_decimal_values() {
        for (a, b) in [
            ("9007199254740993", "9007199254740992"),
            ("1", "-1"),
            ("1", "10"),
            ("0.1", "0.01"),
            ("12.5", "12.50001"),
            ("1e3", "1e4"),
            ("0", "0.0000001"),
            ("0.30000000000000004", "0.3"),
        ] {
            assert!(!numbers_equal(a, b), "{a} should differ from {b}");
        }
    }

    #[test]
    fn malformed_number_texts_are_rejected() {
        for text in ["", "-", ".", "1e", "1e+", "abc", "1.2.3", "1 ", "--1", "0x10"] {
            assert!(Decimal::parse(text).is_none(), "{text:?} parsed");
        }
        assert!(Decimal::parse("+1.5").is_some());
    }

    #[test]
    fn canonical_text_identifies_the_value() {
        assert_eq!(Decimal::parse("1500.0").unwrap().canonical(), "15e2");
        assert_eq!(Decimal::parse("1.5e3").unwrap().canonical(), "15e2");
        assert_eq!(Decimal::parse("-0.00").unwrap().canonical(), "0");
        assert_eq!(Decimal::parse("42").unwrap().canonical(), "42");
        assert_eq!(Decimal::parse("0.125").unwrap().canonical(), "125e-3");
    }

    #[test]
    fn tolerance_is_inclusive_and_exact() {
        let tol = BigDecimal::from_str("0.005").unwrap();
        assert_eq!(within_tolerance("12.50", "12.505", &tol), Some(true));
        assert_eq!(within_tolerance("12.50", "12.5051", &tol), Some(false));
        assert_eq!(within_tolerance("12.505", "12.50", &tol), Some(true));
        assert_eq!(within_tolerance("12.50", "x", &tol), None);
        let zero = BigDecimal::from(0);
        assert_eq!(within_tolerance("0.1", "0.10", &zero), Some(true));
        assert_eq!(
            within_tolerance("9007199254740993", "9007199254740992", &zero),
            Some(false)
        );
        // Absurd exponents are refused rather than expanded; equal ones need no arithmetic.
        assert_eq!(within_tolerance("1", "1e-1000000000", &tol), None);
        assert_eq!(within_tolerance("1e9999", "1.0e9999", &tol), Some(true));
        assert_eq!(within_tolerance("1e4000", "1.001e4000", &tol), Some(false));
    }

    #[test]
    fn instants_in_every_accepted_form() {
        let utc = parse_instant("2024-01-01T10:00:00Z").unwrap();
        assert_eq!(parse_instant("2024-01-01T11:00:00+01:00"), Some(utc));
        assert_eq!(parse_instant("2024-01-01T10:00:00.000Z"), Some(utc));
        assert_eq!(parse_instant("2024-01-01T10:00:00"), Some(utc));
        assert_eq!(parse_instant("2024-01-01T10:00:00.000"), Some(utc));
        assert_eq!(instant_from_millis(utc.timestamp_millis()), Some(utc));
        let midnight = parse_instant("2024-01-01").unwrap();
        assert_eq!(midnight, parse_instant("2024-01-01T00:00:00Z").unwrap());
        assert_ne!(parse_instant("2024-01-01T10:00:00.001Z"), Some(utc));
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(parse_instant("2024-13-01"), None);
    }
}
