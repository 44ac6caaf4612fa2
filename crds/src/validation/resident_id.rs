//! The citizen identity number (公民身份号码, GB 11643-1999): a six-digit region code, the birth
//! date as YYYYMMDD, a three-digit sequence number and an ISO 7064 MOD 11-2 check character.
//! The open-data pipeline uses it to find identifiers that must not leave in the clear.

/// Weights of the MOD 11-2 check: 2^(17-i) mod 11.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character for each remainder of the weighted sum mod 11.
const CHECK_CHARACTERS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Why a string is not a citizen identity number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    /// Not 17 digits followed by a digit or X.
    #[error("an identity number is 17 digits and a digit or X")]
    Format,
    /// The birth date is not a calendar date.
    #[error("positions 7-14 are not a birth date (YYYYMMDD)")]
    BirthDate,
    /// The check character is wrong.
    #[error("the check character should be {expected:?}")]
    Check {
        /// The character the number should end in.
        expected: char,
    },
}

/// Verifies an 18-character identity number: format, birth date and check character.
pub fn validate(number: &str) -> Result<(), ResidentIdError> {
    let bytes = number.as_bytes();
    if bytes.len() != 18
        || !bytes[..17].iter().all(u8::is_ascii_digit)
        || !(bytes[17].is_ascii_digit() || bytes[17] == b'X' || bytes[17] == b'x')
    {
        return Err(ResidentIdError::Format);
    }
    let digit = |i: usize| u32::from(bytes[i] - b'0');
    let year = (6..10).fold(0, |n, i| n * 10 + digit(i));
    let month = digit(10) * 10 + digit(11);
    let day = digit(12) * 10 + digit(13);
    if !(1900..=2100).contains(&year)
        || day == 0
        || month == 0
        || month > 12
        || day > days_in_month(year, month)
    {
        return Err(ResidentIdError::BirthDate);
    }
    let expected = check_character(&bytes[..17]);
    if char::from(bytes[17]).to_ascii_uppercase() != expected {
        return Err(ResidentIdError::Check { expected });
    }
    Ok(())
}

/// The check character of the first 17 digits.
pub fn check_character(first_seventeen: &[u8]) -> char {
    let sum: u32 = first_seventeen
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d.wrapping_sub(b'0')) * w)
        .sum();
    CHECK_CHARACTERS[(sum % 11) as usize]
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_example_is_valid() {
        // The worked example of GB 11643-1999, appendix.
        assert_eq!(validate("11010519491231002X"), Ok(()));
        assert_eq!(validate("11010519491231002x"), Ok(()));
    }

    #[test]
    fn a_wrong_check_character_is_refused() {
        assert_eq!(
            validate("110105194912310021"),
            Err(ResidentIdError::Check { expected: 'X' })
        );
    }

    #[test]
    fn impossible_birth_dates_are_refused() {
        for date in ["19490230", "19491301", "19490100", "18000101"] {
            let mut number = format!("110105{date}002");
            number.push(check_character(number.as_bytes()));
            assert_eq!(
                validate(&number),
                Err(ResidentIdError::BirthDate),
                "{number}"
            );
        }
    }

    #[test]
    fn leap_days_are_dates() {
        let mut number = "110105200002290013".to_owned();
        number.pop();
        number.push(check_character(number.as_bytes()));
        assert_eq!(validate(&number), Ok(()));
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for number in [
            "",
            "1101051949123100",
            "11010519491231002Y",
            "A1010519491231002X",
        ] {
            assert_eq!(validate(number), Err(ResidentIdError::Format), "{number}");
        }
    }
}
