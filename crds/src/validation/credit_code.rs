//! The unified social credit code (统一社会信用代码, GB 32100-2015).
//!
//! 18 characters: registration authority (1), entity type (1), administrative division code (6),
//! the organization code of GB 11714 (8 characters and its own check character), and a final
//! check character over the first 17. The alphabet leaves out I, O, S, V and Z.

/// The 31 characters a code is written in; a character's value is its index.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of the final check character: 3^i mod 31.
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Weights of the organization code's check character (GB 11714).
const ORGANIZATION_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// Why a string is not a unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    /// The code does not have 18 characters.
    #[error("a unified social credit code has 18 characters, this one has {0}")]
    Length(usize),
    /// A character outside the code's alphabet.
    #[error(
        "character {character:?} at position {position} is not allowed (the code uses 0-9 and A-Y without I, O, S, V, Z)"
    )]
    Character {
        /// 1-based position.
        position: usize,
        /// The offending character.
        character: char,
    },
    /// The administrative division part is not six digits.
    #[error("positions 3-8 must be the six-digit administrative division code")]
    Region,
    /// The organization code's check character (position 17) is wrong.
    #[error("the organization code check character (position 17) should be {expected:?}")]
    OrganizationCheck {
        /// The character the code should have.
        expected: char,
    },
    /// The final check character (position 18) is wrong.
    #[error("the check character (position 18) should be {expected:?}")]
    Check {
        /// The character the code should have.
        expected: char,
    },
}

/// Verifies a unified social credit code, both check characters included.
pub fn validate(code: &str) -> Result<(), CreditCodeError> {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != 18 {
        return Err(CreditCodeError::Length(chars.len()));
    }
    let mut values = [0u32; 18];
    for (index, &character) in chars.iter().enumerate() {
        values[index] = alphabet_value(character).ok_or(CreditCodeError::Character {
            position: index + 1,
            character,
        })?;
    }
    if !chars[2..8].iter().all(char::is_ascii_digit) {
        return Err(CreditCodeError::Region);
    }
    let expected = organization_check(&chars[8..16]);
    if chars[16] != expected {
        return Err(CreditCodeError::OrganizationCheck { expected });
    }
    let expected = final_check(&values[..17]);
    if chars[17] != expected {
        return Err(CreditCodeError::Check { expected });
    }
    Ok(())
}

/// Completes the first 16 characters of a code with both check characters. For fixtures and
/// samples; the caller supplies characters from the code's alphabet.
pub fn complete(first_sixteen: &str) -> String {
    let chars: Vec<char> = first_sixteen.chars().collect();
    let mut code: String = first_sixteen.to_owned();
    code.push(organization_check(chars.get(8..16).unwrap_or_default()));
    let values: Vec<u32> = code
        .chars()
        .map(|c| alphabet_value(c).unwrap_or(0))
        .collect();
    code.push(final_check(&values));
    code
}

fn alphabet_value(character: char) -> Option<u32> {
    ALPHABET
        .iter()
        .position(|&a| char::from(a) == character)
        .and_then(|p| u32::try_from(p).ok())
}

/// The GB 11714 check character of an 8-character organization code body.
fn organization_check(body: &[char]) -> char {
    let sum: u32 = body
        .iter()
        .zip(ORGANIZATION_WEIGHTS)
        .map(|(c, w)| c.to_digit(36).unwrap_or(0) * w)
        .sum();
    match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        digit => char::from_digit(digit, 10).unwrap_or('0'),
    }
}

/// The GB 32100 check character over the first 17 character values.
fn final_check(values: &[u32]) -> char {
    let sum: u32 = values.iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    char::from(ALPHABET[check as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_codes_are_valid() {
        // Codes printed on public business licences and government registers.
        for code in [
            "91350100M000100Y43",
            "91110000600037341L",
            "11100000000013127D",
        ] {
            assert_eq!(validate(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn a_changed_final_check_character_is_refused() {
        assert_eq!(
            validate("91350100M000100Y44"),
            Err(CreditCodeError::Check { expected: '3' })
        );
    }

    #[test]
    fn a_changed_organization_check_character_is_refused() {
        assert_eq!(
            validate("91350100M000100Y53"),
            Err(CreditCodeError::OrganizationCheck { expected: '4' })
        );
    }

    #[test]
    fn letters_outside_the_alphabet_are_refused() {
        assert_eq!(
            validate("91350100M0001O0Y43"),
            Err(CreditCodeError::Character {
                position: 14,
                character: 'O'
            })
        );
    }

    #[test]
    fn a_wrong_length_is_refused() {
        assert_eq!(validate("9135010"), Err(CreditCodeError::Length(7)));
        assert_eq!(
            validate("国家发展和改革委员会"),
            Err(CreditCodeError::Length(10))
        );
    }

    #[test]
    fn a_region_with_letters_is_refused() {
        let code = complete("1133A000MB000000");
        assert_eq!(validate(&code), Err(CreditCodeError::Region));
    }

    #[test]
    fn completed_codes_validate() {
        for prefix in ["1133000012345678", "11100000MB0A1234", "5144030012X45678"] {
            let code = complete(prefix);
            assert_eq!(code.len(), 18);
            assert_eq!(validate(&code), Ok(()), "{code}");
        }
    }
}
