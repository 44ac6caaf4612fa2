//! Administrative division codes (行政区划代码, GB/T 2260): six digits, two each for province,
//! prefecture and county. `100000` stands for the central government.

use crate::common::AdministrativeLevel;

/// Province-level prefixes in use (GB/T 2260), 10 standing for the central government.
const PROVINCES: [u8; 35] = [
    10, 11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51,
    52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// Why a string is not an administrative division code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    /// Not six ASCII digits.
    #[error("{0:?} is not a six-digit administrative division code")]
    Format(String),
    /// The first two digits name no province.
    #[error("{0:?} starts with {1:02}, which is no province-level division")]
    Province(String, u8),
    /// A county part without a prefecture part (`33 00 12`).
    #[error("{0:?} has a county part but no prefecture part")]
    Hierarchy(String),
}

/// A parsed administrative division code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionCode {
    province: u8,
    prefecture: u8,
    county: u8,
}

impl RegionCode {
    /// Parses and checks a six-digit code.
    pub fn parse(code: &str) -> Result<RegionCode, RegionCodeError> {
        let bytes = code.as_bytes();
        if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(RegionCodeError::Format(code.to_owned()));
        }
        let pair = |i: usize| (bytes[i] - b'0') * 10 + (bytes[i + 1] - b'0');
        let region = RegionCode {
            province: pair(0),
            prefecture: pair(2),
            county: pair(4),
        };
        if !PROVINCES.contains(&region.province) {
            return Err(RegionCodeError::Province(code.to_owned(), region.province));
        }
        if region.prefecture == 0 && region.county != 0 {
            return Err(RegionCodeError::Hierarchy(code.to_owned()));
        }
        if region.province == 10 && (region.prefecture, region.county) != (0, 0) {
            return Err(RegionCodeError::Format(code.to_owned()));
        }
        Ok(region)
    }

    /// The administrative level the code designates.
    pub fn level(self) -> AdministrativeLevel {
        match (self.province, self.prefecture, self.county) {
            (10, _, _) => AdministrativeLevel::Central,
            (_, 0, 0) => AdministrativeLevel::Provincial,
            (_, _, 0) => AdministrativeLevel::Municipal,
            _ => AdministrativeLevel::County,
        }
    }

    /// Whether `other` lies within this region (a region contains itself).
    pub fn contains(self, other: RegionCode) -> bool {
        match self.level() {
            AdministrativeLevel::Central => true,
            AdministrativeLevel::Provincial => self.province == other.province,
            AdministrativeLevel::Municipal => {
                (self.province, self.prefecture) == (other.province, other.prefecture)
            }
            AdministrativeLevel::County => self == other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(code: &str) -> AdministrativeLevel {
        RegionCode::parse(code).expect("valid code").level()
    }

    #[test]
    fn levels_follow_the_trailing_zeros() {
        assert_eq!(level("100000"), AdministrativeLevel::Central);
        assert_eq!(level("330000"), AdministrativeLevel::Provincial);
        assert_eq!(level("330100"), AdministrativeLevel::Municipal);
        assert_eq!(level("330102"), AdministrativeLevel::County);
    }

    #[test]
    fn unknown_provinces_are_refused() {
        assert_eq!(
            RegionCode::parse("990000"),
            Err(RegionCodeError::Province("990000".into(), 99))
        );
        assert!(RegionCode::parse("200000").is_err());
    }

    #[test]
    fn malformed_codes_are_refused() {
        for code in ["33000", "3300000", "33a000", "", "１１００００"] {
            assert!(
                matches!(RegionCode::parse(code), Err(RegionCodeError::Format(_))),
                "{code}"
            );
        }
        assert!(matches!(
            RegionCode::parse("330012"),
            Err(RegionCodeError::Hierarchy(_))
        ));
        assert!(RegionCode::parse("100100").is_err());
    }

    #[test]
    fn a_province_contains_its_counties_but_not_its_neighbours() {
        let zhejiang = RegionCode::parse("330000").expect("valid");
        let hangzhou_shangcheng = RegionCode::parse("330102").expect("valid");
        let jiangsu = RegionCode::parse("320000").expect("valid");
        assert!(zhejiang.contains(hangzhou_shangcheng));
        assert!(!jiangsu.contains(hangzhou_shangcheng));
        assert!(
            RegionCode::parse("100000")
                .expect("valid")
                .contains(jiangsu)
        );
    }
}
