//! The value transformations, one function per rule. Each writes into a caller's buffer, so that a
//! run allocates per field once, not per value, and says whether the value could not be parsed
//! (the caller then publishes it empty: an unparseable value is never passed through).

use std::fmt::Write as _;

use govdc_crds::open_dataset::{DatePrecision, PseudonymAlgorithm};
use hmac::{Hmac, Mac};
use jiff::civil::Date;
use sha2::Sha256;
use sm3::Sm3;

use super::identifiers;

/// What a rule does to one field, its settings checked and converted once by the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Published unchanged.
    Keep,
    /// Not published.
    Drop,
    /// All but the first and last characters replaced.
    Mask {
        /// Characters kept at the start.
        first: usize,
        /// Characters kept at the end.
        last: usize,
        /// The replacement.
        character: char,
    },
    /// Replaced by a keyed hash.
    Pseudonymize(PseudonymAlgorithm),
    /// A `YYYY-MM-DD` date cut to its year or month.
    GeneralizeDate(DatePrecision),
    /// A region code cut to a prefix and zero-filled.
    GeneralizeRegion {
        /// Digits kept.
        prefix: usize,
    },
    /// A number replaced by its band.
    GeneralizeNumber {
        /// The band width.
        width: i64,
    },
    /// A `YYYY-MM-DD` date moved by the record's offset.
    DateShift {
        /// The largest shift either way, in days.
        max_days: i64,
    },
}

/// The dataset key, ready to use: HMAC states with the key already absorbed, cloned per value
/// (cheaper than keying a new HMAC each time).
#[derive(Clone)]
pub(super) struct Keys {
    sha256: Hmac<Sha256>,
    sm3: Hmac<Sm3>,
}

/// Domain separation of date-shift offsets from pseudonyms: with it, a pseudonym never reveals
/// an offset and the other way round, although both come from the one dataset key.
const DATE_SHIFT_DOMAIN: &[u8] = b"govdc.io/dateShift\0";

impl Keys {
    pub(super) fn new(key: &[u8]) -> Keys {
        // HMAC takes keys of any length (longer ones are hashed first), so neither can fail.
        Keys {
            sha256: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length")),
            sm3: <Hmac<Sm3> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length")),
        }
    }

    /// The pseudonym of `value`: lower-case hex of HMAC(key, normalize(value)). `scratch` holds
    /// the normalized value.
    pub(super) fn pseudonym(
        &self,
        algorithm: PseudonymAlgorithm,
        value: &str,
        scratch: &mut Vec<u8>,
        out: &mut String,
    ) {
        normalize(value, scratch);
        if scratch.is_empty() {
            // An empty value stays empty: the pseudonym of "" would be one constant that marks
            // every record with a missing value anyway.
            return;
        }
        match algorithm {
            PseudonymAlgorithm::HmacSha256 => {
                let mut mac = self.sha256.clone();
                mac.update(scratch);
                push_hex(&mac.finalize().into_bytes(), out);
            }
            PseudonymAlgorithm::HmacSm3 => {
                let mut mac = self.sm3.clone();
                mac.update(scratch);
                push_hex(&mac.finalize().into_bytes(), out);
            }
        }
    }

    /// 64 bits of HMAC-SHA256 over the date-shift domain and the given parts (each
    /// length-prefixed, so that ("ab", "c") and ("a", "bc") differ), from which each date-shift
    /// field takes its offset.
    pub(super) fn shift_seed<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
        let mut mac = self.sha256.clone();
        mac.update(DATE_SHIFT_DOMAIN);
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

/// The form of a value that is hashed: trimmed and with ASCII letters upper-cased, so that
/// `11010519491231002x` and ` 11010519491231002X` (the same person) get the same pseudonym; a
/// legacy 15-digit identity number in its 18-digit form, so that `110105491231002` does too.
pub(super) fn normalize(value: &str, out: &mut Vec<u8>) {
    if upgrade_identity(value, out) {
        return;
    }
    out.clear();
    out.extend(value.trim().bytes().map(|b| b.to_ascii_uppercase()));
}

/// When `value` (trimmed) is a legacy 15-digit identity number, writes its 18-digit form to
/// `out` and returns true.
pub(super) fn upgrade_identity(value: &str, out: &mut Vec<u8>) -> bool {
    let trimmed = value.trim().as_bytes();
    if !identifiers::is_legacy_resident_id(trimmed) {
        return false;
    }
    identifiers::upgrade_legacy(trimmed, out);
    true
}

fn push_hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// Masks `value` keeping its first and last characters (Unicode scalar values, so a Chinese name
/// loses whole characters, never half of one). The masked value has as many characters as the
/// original. When the kept characters would cover the whole value, all of it is masked: a short
/// value is never published in the clear.
pub(super) fn mask(value: &str, first: usize, last: usize, character: char, out: &mut String) {
    let length = value.chars().count();
    if first.saturating_add(last) >= length {
        out.extend(std::iter::repeat_n(character, length));
        return;
    }
    let mut chars = value.chars();
    out.extend(chars.by_ref().take(first));
    for _ in 0..length - first - last {
        chars.next();
        out.push(character);
    }
    out.extend(chars);
}

/// A `YYYY-MM-DD` calendar date (after trimming), and nothing else.
pub(super) fn parse_date(value: &str) -> Option<Date> {
    let b = value.trim().as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i32> {
        b[range].iter().try_fold(0i32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i32::from(d - b'0'))
        })
    };
    let year = i16::try_from(number(0..4)?).ok()?;
    let month = i8::try_from(number(5..7)?).ok()?;
    let day = i8::try_from(number(8..10)?).ok()?;
    Date::new(year, month, day).ok()
}

fn push_date(date: Date, out: &mut String) -> bool {
    if !(1..=9999).contains(&date.year()) {
        return false;
    }
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month(),
        date.day()
    );
    true
}

/// A date cut to its year (`1987`) or month (`1987-06`). Returns false when `value` is not a
/// date.
pub(super) fn generalize_date(value: &str, precision: DatePrecision, out: &mut String) -> bool {
    let Some(date) = parse_date(value) else {
        return false;
    };
    let _ = match precision {
        DatePrecision::Year => write!(out, "{:04}", date.year()),
        DatePrecision::Month => write!(out, "{:04}-{:02}", date.year(), date.month()),
    };
    true
}

/// A region code (GB/T 2260: 6 digits; the statistical codes extending it: 9 or 12) cut to its
/// first `prefix` digits and zero-filled to its length: `330106` with prefix 4 is `330100`.
/// Returns false when `value` is not such a code.
pub(super) fn generalize_region(value: &str, prefix: usize, out: &mut String) -> bool {
    let code = value.trim();
    if !matches!(code.len(), 6 | 9 | 12) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    out.push_str(&code[..prefix.min(code.len())]);
    out.extend(std::iter::repeat_n('0', code.len().saturating_sub(prefix)));
    true
}

/// A number replaced by the band of `width` it falls in, `lo-hi` with `hi = lo + width - 1`:
/// 35 with width 10 is `30-39`. Decimals fall in the band of their floor (39.5 is in `30-39`,
/// which covers [30, 40)); bands of negative numbers read `-10--1`. Returns false when `value` is
/// not a finite number.
pub(super) fn generalize_number(value: &str, width: i64, out: &mut String) -> bool {
    let text = value.trim();
    let number = match text.parse::<i64>() {
        Ok(n) => n,
        Err(_) => match text.parse::<f64>() {
            // `as` saturates; the range check keeps saturated values out.
            Ok(x) if x.is_finite() && x.abs() < 9.0e18 => x.floor() as i64,
            _ => return false,
        },
    };
    let low = i128::from(number.div_euclid(width)) * i128::from(width);
    let high = low + i128::from(width) - 1;
    let _ = write!(out, "{low}-{high}");
    true
}

/// The offset in days a date-shift field with `max_days` takes from a record's seed: uniform over
/// [-max_days, -1] and [1, max_days]. Zero is left out so that no date is published unmoved.
pub(super) fn shift_days(seed: u64, max_days: i64) -> i64 {
    let span = max_days.unsigned_abs().max(1);
    // The bias of the modulo is below 2^-50 for spans of at most 3650 days.
    let n = (seed % (2 * span)) as i64;
    let max = span as i64;
    if n < max { -(n + 1) } else { n - max + 1 }
}

/// `value` moved by `days`. Returns false when it is not a date or would leave years 1-9999.
pub(super) fn shift_date(value: &str, days: i64, out: &mut String) -> bool {
    let Some(date) = parse_date(value) else {
        return false;
    };
    match date.checked_add(jiff::Span::new().days(days)) {
        Ok(shifted) => push_date(shifted, out),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl FnOnce(&mut String) -> bool) -> Option<String> {
        let mut out = String::new();
        f(&mut out).then_some(out)
    }

    #[test]
    fn masks_by_characters_and_never_leaves_a_short_value_in_the_clear() {
        let masked = |v: &str, first, last, c| {
            let mut out = String::new();
            mask(v, first, last, c, &mut out);
            out
        };
        assert_eq!(masked("13812348000", 3, 4, '*'), "138****8000");
        assert_eq!(masked("欧阳修文", 1, 0, '*'), "欧***");
        assert_eq!(masked("张三", 1, 1, '*'), "**");
        assert_eq!(masked("张三", 1, 0, '×'), "张×");
        assert_eq!(masked("abc", 0, 0, '#'), "###");
        assert_eq!(masked("", 2, 2, '*'), "");
        assert_eq!(masked("ab", 5, 0, '*'), "**");
    }

    #[test]
    fn pseudonyms_are_the_keyed_hmac_of_the_normalized_value() {
        let keys = Keys::new(b"key");
        let mut scratch = Vec::new();
        let pseudonym = |algorithm, v: &str, scratch: &mut Vec<u8>| {
            let mut out = String::new();
            keys.pseudonym(algorithm, v, scratch, &mut out);
            out
        };
        // Computed independently (Python: hmac.new(b"key",
        // b"THE QUICK BROWN FOX", "sha256")).
        assert_eq!(
            pseudonym(
                PseudonymAlgorithm::HmacSha256,
                " the quick brown fox ",
                &mut scratch
            ),
            "29714cdedb6efbffe4067071865eb54920eaf962b33e2b36f6cc62a77dde8ce4"
        );
        // Python with OpenSSL's SM3: hmac.new(b"key", b"11010519491231002X", "sm3").
        assert_eq!(
            pseudonym(
                PseudonymAlgorithm::HmacSm3,
                "11010519491231002x",
                &mut scratch
            ),
            "63980cc27de15e7683c3997cfe9ea4d3b3b2eead9cfd68c3b84fd713ce8247e4"
        );
        let a = pseudonym(
            PseudonymAlgorithm::HmacSha256,
            "11010519491231002X",
            &mut scratch,
        );
        assert_eq!(a.len(), 64);
        assert_eq!(
            a,
            pseudonym(
                PseudonymAlgorithm::HmacSha256,
                "11010519491231002x",
                &mut scratch
            )
        );
        assert_ne!(
            a,
            pseudonym(
                PseudonymAlgorithm::HmacSm3,
                "11010519491231002X",
                &mut scratch
            )
        );
        let other = Keys::new(b"another key");
        let mut out = String::new();
        other.pseudonym(
            PseudonymAlgorithm::HmacSha256,
            "11010519491231002X",
            &mut scratch,
            &mut out,
        );
        assert_ne!(
            a, out,
            "one key per dataset: another key, another pseudonym"
        );
        assert_eq!(
            pseudonym(PseudonymAlgorithm::HmacSha256, "  ", &mut scratch),
            ""
        );
    }

    #[test]
    fn generalizes_dates_regions_and_numbers() {
        assert_eq!(
            run(|o| generalize_date("1987-06-15", DatePrecision::Year, o)).as_deref(),
            Some("1987")
        );
        assert_eq!(
            run(|o| generalize_date(" 1987-06-15", DatePrecision::Month, o)).as_deref(),
            Some("1987-06")
        );
        for bad in [
            "1987-02-30",
            "1987/06/15",
            "19870615",
            "1987-6-15",
            "x",
            "1987-06-15T00:00",
        ] {
            assert_eq!(
                run(|o| generalize_date(bad, DatePrecision::Year, o)),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            run(|o| generalize_region("330106", 4, o)).as_deref(),
            Some("330100")
        );
        assert_eq!(
            run(|o| generalize_region("330106001001", 2, o)).as_deref(),
            Some("330000000000")
        );
        for bad in ["33010", "3301060", "33010a", "11010519491231002X"] {
            assert_eq!(run(|o| generalize_region(bad, 4, o)), None, "{bad}");
        }
        assert_eq!(
            run(|o| generalize_number("35", 10, o)).as_deref(),
            Some("30-39")
        );
        assert_eq!(
            run(|o| generalize_number("39.5", 10, o)).as_deref(),
            Some("30-39")
        );
        assert_eq!(
            run(|o| generalize_number("-5", 10, o)).as_deref(),
            Some("-10--1")
        );
        assert_eq!(
            run(|o| generalize_number("12345", 1000, o)).as_deref(),
            Some("12000-12999")
        );
        assert_eq!(
            run(|o| generalize_number(&i64::MAX.to_string(), 7, o)).as_deref(),
            Some("9223372036854775807-9223372036854775813")
        );
        for bad in ["", "abc", "NaN", "inf", "1e300", "13812348000x"] {
            assert_eq!(run(|o| generalize_number(bad, 10, o)), None, "{bad}");
        }
    }

    #[test]
    fn date_shifts_move_by_a_nonzero_offset_within_the_bound() {
        let keys = Keys::new(b"a dataset key of 32 bytes.......");
        let mut seen = std::collections::BTreeSet::new();
        for subject in 0..2000u32 {
            let seed = keys.shift_seed([subject.to_string().as_bytes()]);
            let days = shift_days(seed, 3);
            assert!((-3..=3).contains(&days) && days != 0, "{days}");
            seen.insert(days);
        }
        assert_eq!(seen.len(), 6, "every offset in range is used");
        assert_eq!(
            run(|o| shift_date("2024-03-01", -1, o)).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(
            run(|o| shift_date("2024-12-31", 1, o)).as_deref(),
            Some("2025-01-01")
        );
        assert_eq!(run(|o| shift_date("0001-01-01", -1, o)), None);
        assert_eq!(run(|o| shift_date("2024-13-01", 1, o)), None);
        assert_ne!(
            keys.shift_seed([b"ab".as_slice(), b"c"]),
            keys.shift_seed([b"a".as_slice(), b"bc"])
        );
    }
}
