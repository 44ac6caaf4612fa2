//! `Range` headers of portal downloads: `govdc_hub::portal::http::parse_range`.
//!
//! Input: 8 bytes of file size (little-endian; 0 to 2^20 mostly, any u64 sometimes), then the
//! header value. Checks: a range answered with `206` lies within the file (`start <= end <
//! size`), and the answer is the one RFC 9110 §14.1.2's grammar gives (digits only, a last
//! position or suffix past the end meaning the end), written out below as directly as possible.
#![no_main]

use govdc_hub::portal::http::{Ranged, parse_range};
use libfuzzer_sys::fuzz_target;

/// A decimal of RFC 9110's `1*DIGIT`, saturating (a position past any file is past this one).
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// RFC 9110's answer for one `bytes=` range (several: the whole file, as the portal chooses).
fn reference(value: &str, size: u64) -> Ranged {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // suffix-range = "-" suffix-length
        return match digits(last) {
            Some(n) if n > 0 && size > 0 => Ranged::Part(size - n.min(size), size - 1),
            _ => Ranged::Unsatisfiable,
        };
    }
    // int-range = first-pos "-" [ last-pos ]
    let Some(start) = digits(first) else {
        return Ranged::Unsatisfiable;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match digits(last) {
            Some(end) if end >= start => end,
            _ => return Ranged::Unsatisfiable,
        }
    };
    if start >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(start, end.min(size - 1))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size, header) = data.split_at(8);
    let raw = u64::from_le_bytes(size.try_into().unwrap_or_default());
    // Mostly sizes of real files, so that ranges inside them are common; sometimes any u64.
    let size = if raw >> 63 == 1 {
        raw & !(1 << 63)
    } else {
        raw % (1 << 20)
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let answer = parse_range(header, size);
    if let Ranged::Part(start, end) = answer {
        assert!(
            start <= end && end < size,
            "{header:?} on {size} bytes gave bytes {start}-{end}, outside the file"
        );
    }
    assert_eq!(
        answer,
        reference(header, size),
        "{header:?} on {size} bytes: the portal's answer is not RFC 9110's"
    );
});
