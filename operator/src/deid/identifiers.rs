//! Finding personal identifiers in text: the content gate's scanner. A hand-written byte scanner
//! (one pass over a value, no allocation) for the identifiers of mainland China's records:
//!
//! - resident identity numbers (GB 11643): 17 digits and a check digit or `X`/`x` that matches
//!   the ISO 7064 MOD 11-2 check; the residence permits of Hong Kong, Macao and Taiwan residents
//!   (81/82/83...) are of the same form;
//! - legacy 15-digit identity numbers (before 1999): a province prefix and a real birth date
//!   `YYMMDD` (19YY);
//! - mobile numbers: `1[3-9]` and nine digits, optionally after `86` (`+86`, `0086`), in groups
//!   separated by spaces, dashes or parentheses (`+86 138 1000 1000`, `(0086)138-1000-1000`);
//! - bank card numbers: 16 to 19 digits, in groups or not, with a valid Luhn check digit;
//! - e-mail addresses;
//! - passport numbers (`E`, `G`, `D`, `S`, `P` and 8 digits; `E`, a letter and 7 digits) and
//!   travel permits (`C`/`L` and 8 digits or `C`, a letter and 7 digits; `H`/`M` and 8 or 10
//!   digits) written as a word of their own, in capitals.
//!
//! A number is found where it stands on its own or between letters or Chinese text
//! (`身份证号11010519491231002X`, `ID110105...`), never inside a longer run of digits, and never
//! inside a hexadecimal word of 20 characters or more (a hash, such as a pseudonym: its digits
//! are not a number anyone wrote). Full-width digits are not looked at.

use govdc_crds::open_dataset::IdentifierKind;

/// The kinds of identifier, in the order of [`Kinds`]' bits.
pub const KINDS: [IdentifierKind; 7] = [
    IdentifierKind::ResidentId,
    IdentifierKind::LegacyResidentId,
    IdentifierKind::MobilePhone,
    IdentifierKind::BankCard,
    IdentifierKind::Email,
    IdentifierKind::Passport,
    IdentifierKind::TravelPermit,
];

/// A set of identifier kinds, one bit each in the order of [`KINDS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    /// No kind.
    pub const NONE: Kinds = Kinds(0);

    fn bit(kind: IdentifierKind) -> u8 {
        let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        1 << index
    }

    /// The set with `kind` added.
    pub fn with(self, kind: IdentifierKind) -> Kinds {
        Kinds(self.0 | Kinds::bit(kind))
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: IdentifierKind) -> bool {
        self.0 & Kinds::bit(kind) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds of `self` that are not in `other`.
    pub fn without(self, other: Kinds) -> Kinds {
        Kinds(self.0 & !other.0)
    }

    /// The kinds in the set, in the order of [`KINDS`].
    pub fn iter(self) -> impl Iterator<Item = (usize, IdentifierKind)> {
        KINDS
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
    }
}

impl FromIterator<IdentifierKind> for Kinds {
    fn from_iter<I: IntoIterator<Item = IdentifierKind>>(iter: I) -> Self {
        iter.into_iter().fold(Kinds::NONE, Kinds::with)
    }
}

/// The fewest ASCII digits any identifier has (a passport's `EA1234567`).
const MIN_DIGITS: usize = 7;

/// The fewest ASCII digits an identifier without a letter has (a mobile number).
const MIN_NUMBER_DIGITS: usize = 11;

/// The kinds of identifier in `text`, also where it is written in full-width forms
/// (`１３８１０００１０００`, `＋８６`, an ideographic space), as Chinese text often has it.
pub fn scan(text: &str) -> Kinds {
    // Every full-width form is U+FF01..=U+FF5E, three bytes starting 0xEF; the ideographic space
    // U+3000 is E3 80 80. A value without 0xEF needs no folding (almost all of them).
    if text.as_bytes().contains(&0xEF) {
        scan_ascii(&fold_full_width(text))
    } else {
        scan_ascii(text)
    }
}

/// `text` with full-width ASCII forms and the ideographic space folded to ASCII.
fn fold_full_width(text: &str) -> String {
    text.chars()
        .map(|c| match u32::from(c) {
            wide @ 0xFF01..=0xFF5E => char::from_u32(wide - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        })
        .collect()
}

/// The kinds of identifier in `text`, written in ASCII.
fn scan_ascii(text: &str) -> Kinds {
    let bytes = text.as_bytes();
    // Most published values (a year, a date, a band, a masked number, a name, a pseudonym)
    // cannot hold one, which a count of their digits, letters and `@` tells in one pass that
    // the compiler vectorizes, before the scanner proper looks at them.
    let (mut digits, mut letters, mut hex, mut at) = (0usize, 0usize, 0usize, 0usize);
    // Byte-wide counters over chunks of at most 255 bytes, so that each lane is a byte.
    for chunk in bytes.chunks(255) {
        let (mut d, mut l, mut h, mut a) = (0u8, 0u8, 0u8, 0u8);
        for &b in chunk {
            let digit = b.wrapping_sub(b'0') < 10;
            let lower = b | 0x20;
            d += u8::from(digit);
            l += u8::from(lower.wrapping_sub(b'a') < 26);
            h += u8::from(digit | (lower.wrapping_sub(b'a') < 6));
            a += u8::from(b == b'@');
        }
        digits += usize::from(d);
        letters += usize::from(l);
        hex += usize::from(h);
        at += usize::from(a);
    }
    let hash = hex == bytes.len() && letters > 0 && bytes.len() >= HASH_WORD;
    let too_few = digits < MIN_DIGITS || (digits < MIN_NUMBER_DIGITS && letters == 0);
    if hash || (at == 0 && too_few) {
        return Kinds::NONE;
    }
    let mut found = Kinds::NONE;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !b.is_ascii_alphanumeric() {
            if b == b'@' && is_email_at(bytes, i) {
                found = found.with(IdentifierKind::Email);
            }
            i += 1;
            continue;
        }
        let (end, hash) = word(bytes, i);
        let word = &bytes[i..end];
        if hash {
            i = end;
            continue;
        }
        if b.is_ascii_alphabetic() {
            if let Some(kind) = document(word) {
                found = found.with(kind);
            }
            // Digits inside the word (`ID110105...`) are looked at below.
            match word.iter().position(u8::is_ascii_digit) {
                Some(offset) => i += offset,
                None => {
                    i = end;
                    continue;
                }
            }
        }
        let (kinds, next) = number_chain(bytes, i);
        found = Kinds(found.0 | kinds.0);
        i = next;
    }
    found
}

/// The shortest hexadecimal word taken for a hash, not for text with numbers in it.
const HASH_WORD: usize = 20;

/// The most digit groups of one written number looked at together (`+86 138 1000 1000` is 4,
/// a card in groups of four 5).
const MAX_GROUPS: usize = 8;

/// The longest identifier, in digits (a bank card).
const MAX_DIGITS: usize = 19;

/// The end of the word (ASCII letters and digits) starting at `start`, and whether it is a hash:
/// hexadecimal, with a letter, [`HASH_WORD`] characters or more. One pass over the word.
fn word(bytes: &[u8], start: usize) -> (usize, bool) {
    let (mut hex, mut letter) = (true, false);
    let mut end = start;
    while let Some(&b) = bytes.get(end) {
        if !b.is_ascii_alphanumeric() {
            break;
        }
        hex &= b.is_ascii_hexdigit();
        letter |= b.is_ascii_alphabetic();
        end += 1;
    }
    (end, hex && letter && end - start >= HASH_WORD)
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'(' | b')')
}

/// A group of digits of a written number: where its digits are, and whether an `X` or `x`
/// follows them (the check character of an identity number, which ends the number).
#[derive(Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    check_x: bool,
}

/// The digit groups starting at `start` (a digit), separated by one or two separator
/// characters, and every identifier made of consecutive groups. Returns what was found and
/// where scanning goes on.
fn number_chain(bytes: &[u8], start: usize) -> (Kinds, usize) {
    let mut groups = [Group::default(); MAX_GROUPS];
    let mut count = 0;
    let mut at = start;
    loop {
        let end = bytes[at..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |n| at + n);
        let check_x = matches!(bytes.get(end), Some(b'X' | b'x'));
        groups[count] = Group {
            start: at,
            end,
            check_x,
        };
        count += 1;
        let after = end + usize::from(check_x);
        if check_x || count == MAX_GROUPS {
            at = after;
            break;
        }
        // One or two separators, then digits that are not the start of a hash.
        let mut next = after;
        while next < bytes.len() && next - after < 2 && is_separator(bytes[next]) {
            next += 1;
        }
        let continues =
            next > after && bytes.get(next).is_some_and(u8::is_ascii_digit) && !word(bytes, next).1;
        if !continues {
            at = after;
            break;
        }
        at = next;
    }

    let mut found = Kinds::NONE;
    let mut digits = [0u8; MAX_DIGITS];
    for first in 0..count {
        let mut length = 0;
        for (last, group) in groups.iter().enumerate().take(count).skip(first) {
            let run = &bytes[group.start..group.end];
            if length + run.len() > MAX_DIGITS {
                break;
            }
            digits[length..length + run.len()].copy_from_slice(run);
            length += run.len();
            let x = group.check_x && last == count - 1;
            if let Some(kind) = number_kind(&digits[..length], x) {
                found = found.with(kind);
            }
        }
    }
    (found, at.max(start + 1))
}

/// The kind of identifier the digits `d` are (followed by a check `X` when `x`), if any.
fn number_kind(d: &[u8], x: bool) -> Option<IdentifierKind> {
    if x {
        return (d.len() == 17 && resident_check(d) == b'X').then_some(IdentifierKind::ResidentId);
    }
    match d.len() {
        11 if is_mobile(d) => Some(IdentifierKind::MobilePhone),
        13 if d.starts_with(b"86") && is_mobile(&d[2..]) => Some(IdentifierKind::MobilePhone),
        15 if d.starts_with(b"0086") && is_mobile(&d[4..]) => Some(IdentifierKind::MobilePhone),
        15 if is_legacy_resident_id(d) => Some(IdentifierKind::LegacyResidentId),
        18 if resident_check(&d[..17]) == d[17] => Some(IdentifierKind::ResidentId),
        16..=19 if d[0] != b'0' && luhn(d) => Some(IdentifierKind::BankCard),
        _ => None,
    }
}

fn is_mobile(d: &[u8]) -> bool {
    d.len() == 11 && d[0] == b'1' && (b'3'..=b'9').contains(&d[1])
}

/// Weights of the MOD 11-2 check: 2^(17-i) mod 11.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character of 17 digits (GB 11643, ISO 7064 MOD 11-2).
pub fn resident_check(first_seventeen: &[u8]) -> u8 {
    let sum: u32 = first_seventeen
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d.wrapping_sub(b'0')) * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize]
}

/// The first two digits of a region code (GB/T 2260): a province, or 71 (Taiwan), 81 (Hong
/// Kong), 82 (Macao).
fn is_province(d: &[u8]) -> bool {
    let code = u32::from(d[0].wrapping_sub(b'0')) * 10 + u32::from(d[1].wrapping_sub(b'0'));
    matches!(code, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82)
}

/// A 15-digit identity number of before 1999: a province prefix and a birth date `YYMMDD` of
/// the 1900s that is on the calendar.
pub fn is_legacy_resident_id(d: &[u8]) -> bool {
    if d.len() != 15 || !d.iter().all(u8::is_ascii_digit) || !is_province(d) {
        return false;
    }
    let n = |i: usize| u32::from(d[i] - b'0') * 10 + u32::from(d[i + 1] - b'0');
    let (year, month, day) = (1900 + n(6), n(8), n(10));
    let days = match month {
        2 if year.is_multiple_of(4) && year != 1900 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => 0,
    };
    (1..=days).contains(&day)
}

/// The 18-digit form of a legacy 15-digit identity number: `19` before the birth year and the
/// check character after the sequence number, as the public security bureaus converted them.
pub fn upgrade_legacy(d: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&d[..6]);
    out.extend_from_slice(b"19");
    out.extend_from_slice(&d[6..15]);
    let check = resident_check(out);
    out.push(check);
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let v = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = v * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A passport or travel-permit number written as a word of its own, in capitals.
fn document(word: &[u8]) -> Option<IdentifierKind> {
    let digits = |from: usize| word[from..].iter().all(u8::is_ascii_digit);
    let (first, second) = (word[0], word.get(1).copied().unwrap_or(0));
    match word.len() {
        9 if digits(1) => match first {
            b'E' | b'G' | b'D' | b'S' | b'P' => Some(IdentifierKind::Passport),
            b'C' | b'L' | b'H' | b'M' => Some(IdentifierKind::TravelPermit),
            _ => None,
        },
        9 if second.is_ascii_uppercase() && digits(2) => match first {
            b'E' => Some(IdentifierKind::Passport),
            b'C' => Some(IdentifierKind::TravelPermit),
            _ => None,
        },
        11 if matches!(first, b'H' | b'M') && digits(1) => Some(IdentifierKind::TravelPermit),
        _ => None,
    }
}

/// Whether the `@` at `at` joins a local part and a domain with a dot and a top-level domain
/// of two letters or more.
fn is_email_at(bytes: &[u8], at: usize) -> bool {
    let local = |b: &u8| b.is_ascii_alphanumeric() || b"._%+-".contains(b);
    let local_length = bytes[..at].iter().rev().take_while(|b| local(b)).count();
    if local_length == 0 {
        return false;
    }
    let domain = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.';
    let domain_length = bytes[at + 1..].iter().take_while(|b| domain(b)).count();
    let name = bytes[at + 1..at + 1 + domain_length]
        .strip_suffix(b".")
        .unwrap_or(&bytes[at + 1..at + 1 + domain_length]);
    match name.iter().rposition(|b| *b == b'.') {
        Some(dot) if dot > 0 => {
            let top = &name[dot + 1..];
            top.len() >= 2 && top.iter().all(u8::is_ascii_alphabetic)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IdentifierKind::*;

    fn kinds(text: &str) -> Vec<IdentifierKind> {
        scan(text).iter().map(|(_, k)| k).collect()
    }

    #[test]
    fn finds_resident_identity_numbers_and_their_legacy_form() {
        assert_eq!(kinds("11010519491231002X"), [ResidentId]);
        assert_eq!(kinds("11010519491231002x"), [ResidentId]);
        assert_eq!(kinds("身份证号11010519491231002X，住址"), [ResidentId]);
        assert_eq!(kinds("ID:110105 19491231 002X"), [ResidentId]);
        assert_eq!(kinds("ID110105194912310021"), Vec::<IdentifierKind>::new());
        assert_eq!(kinds("11010519491231002Y"), Vec::<IdentifierKind>::new());
        // A wrong check character is no identity number (and fails Luhn too).
        assert_eq!(kinds("110105194912310029"), Vec::<IdentifierKind>::new());
        assert_eq!(kinds("旧号110105491231002"), [LegacyResidentId]);
        assert_eq!(
            kinds("110105491331002"),
            Vec::<IdentifierKind>::new(),
            "month 13"
        );
        assert_eq!(
            kinds("990105491231002"),
            Vec::<IdentifierKind>::new(),
            "no province 99"
        );
        let mut upgraded = Vec::new();
        upgrade_legacy(b"110105491231002", &mut upgraded);
        assert_eq!(upgraded, b"11010519491231002X");
    }

    #[test]
    fn finds_mobile_numbers_in_their_written_forms() {
        for written in [
            "13810001000",
            "+86 138 1000 1000",
            "+8613810001000",
            "0086 138-1000-1000",
            "(+86) 138 1000 1000",
            "(0086)13810001000",
            "138-1000-1000",
            "138 1000 1000",
            "(138)1000-1000",
            "电话：13810001000（白天）",
            "call 13810001000 or 13910002000",
        ] {
            assert_eq!(kinds(written), [MobilePhone], "{written}");
        }
        for not in [
            "12810001000",
            "1381000100",
            "138100010001",
            "138****1000",
            "2024-03-05",
            "12001299",
        ] {
            assert_eq!(kinds(not), Vec::<IdentifierKind>::new(), "{not}");
        }
    }

    #[test]
    fn finds_bank_cards_by_luhn_and_addresses_and_documents() {
        assert_eq!(kinds("6222021234567890128"), [BankCard]);
        assert_eq!(kinds("卡号 6222 0212 3456 7890 128"), [BankCard]);
        assert_eq!(kinds("4111-1111-1111-1111"), [BankCard]);
        assert_eq!(kinds("4111111111111112"), Vec::<IdentifierKind>::new());
        assert_eq!(kinds("zhang.san+tag@hospital.gov.cn"), [Email]);
        assert_eq!(kinds("写信给 li_si@163.com。"), [Email]);
        for not in ["a@b", "@example.com", "x@localhost", "user@host.c1"] {
            assert_eq!(kinds(not), Vec::<IdentifierKind>::new(), "{not}");
        }
        assert_eq!(kinds("护照E12345678"), [Passport]);
        assert_eq!(kinds("EA1234567"), [Passport]);
        assert_eq!(kinds("G12345678"), [Passport]);
        assert_eq!(kinds("通行证 C12345678"), [TravelPermit]);
        assert_eq!(kinds("CA1234567"), [TravelPermit]);
        assert_eq!(kinds("L12345678"), [TravelPermit]);
        assert_eq!(kinds("H1234567890"), [TravelPermit]);
        assert_eq!(kinds("M12345678"), [TravelPermit]);
        assert_eq!(
            kinds("X12345678 E1234567 E123456789"),
            Vec::<IdentifierKind>::new()
        );
    }

    #[test]
    fn finds_identifiers_written_in_full_width_forms() {
        assert_eq!(
            kinds("电话：＋８６　１３８－１０００－１０００"),
            [MobilePhone]
        );
        assert_eq!(
            kinds("身份证号１１０１０５１９４９１２３１００２Ｘ"),
            [ResidentId]
        );
        assert_eq!(kinds("邮箱 ｌｉ＿ｓｉ＠１６３．ｃｏｍ"), [Email]);
        assert_eq!(kinds("护照Ｅ１２３４５６７８"), [Passport]);
        assert_eq!(kinds("全角的 ２０２４ 年"), Vec::<IdentifierKind>::new());
    }

    #[test]
    fn hashes_and_ordinary_values_are_not_identifiers() {
        for value in [
            "63980cc27de15e7683c3997cfe9ea4d3b3b2eead9cfd68c3b84fd713ce8247e4",
            "1381000100013810001000abcdef0123456789",
            "1987",
            "330100",
            "30-39",
            "J45.9",
            "浙江大学医学院附属第一医院",
            "张*",
            "",
        ] {
            assert_eq!(kinds(value), Vec::<IdentifierKind>::new(), "{value}");
        }
        assert_eq!(
            kinds(
                "hash 63980cc27de15e7683c3997cfe9ea4d3b3b2eead9cfd68c3b84fd713ce8247e4, tel 13810001000"
            ),
            [MobilePhone]
        );
        assert_eq!(
            kinds("11010519491231002X 13810001000 a@b.cn"),
            [ResidentId, MobilePhone, Email]
        );
    }
}
