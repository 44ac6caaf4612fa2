//! Kubernetes quantities (`500m`, `2`, `4Gi`, `1e3`) as exact numbers, for adding up quotas and
//! checking them against capacity and usage. Values are held in thousandths (milli-units), as
//! the API server does; finer fractions round up, as it does.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Quantities by resource name, in milli-units.
pub type Amounts = BTreeMap<String, i128>;

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Kubernetes quantity")]
pub struct QuantityError(pub String);

/// Parses a quantity into milli-units.
pub fn parse(text: &str) -> Result<i128, QuantityError> {
    let error = || QuantityError(text.to_owned());
    let trimmed = text.trim();
    let (negative, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(error());
    }
    // mantissa as an integer and a power of ten it must be scaled by
    let digits = format!("{whole}{fraction}");
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| error())?
    };
    let mut exponent10: i32 = -i32::try_from(fraction.len()).map_err(|_| error())?;
    let mut multiplier: i128 = 1;
    match suffix {
        "" => {}
        "m" => exponent10 -= 3,
        "k" => exponent10 += 3,
        "M" => exponent10 += 6,
        "G" => exponent10 += 9,
        "T" => exponent10 += 12,
        "P" => exponent10 += 15,
        "E" => exponent10 += 18,
        "Ki" => multiplier = 1 << 10,
        "Mi" => multiplier = 1 << 20,
        "Gi" => multiplier = 1 << 30,
        "Ti" => multiplier = 1 << 40,
        "Pi" => multiplier = 1 << 50,
        "Ei" => multiplier = 1 << 60,
        other => {
            let exponent = other.strip_prefix(['e', 'E']).ok_or_else(error)?;
            let exponent = exponent.parse::<i32>().map_err(|_| error())?;
            exponent10 = exponent10.checked_add(exponent).ok_or_else(error)?;
        }
    }
    // milli-units: one more factor of 10^3 (checked: `1e2147483647` must be an error, not a
    // panic)
    exponent10 = exponent10.checked_add(3).ok_or_else(error)?;
    let scaled = mantissa.checked_mul(multiplier).ok_or_else(error)?;
    let value = if exponent10 >= 0 {
        10i128
            .checked_pow(exponent10.unsigned_abs())
            .and_then(|p| scaled.checked_mul(p))
            .ok_or_else(error)?
    } else {
        let divisor = 10i128
            .checked_pow(exponent10.unsigned_abs())
            .ok_or_else(error)?;
        // round up, as the API server does for precision below a milli-unit
        (scaled + divisor - 1) / divisor
    };
    Ok(if negative { -value } else { value })
}

/// Formats milli-units for messages: whole numbers plainly, binary multiples with their suffix.
pub fn format(milli: i128) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let value = milli / 1000;
    for (suffix, size) in [
        ("Ti", 1i128 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if value != 0 && value % size == 0 {
            return format!("{}{suffix}", value / size);
        }
    }
    value.to_string()
}

/// Parses every quantity of a resource map.
pub fn parse_all(quantities: &BTreeMap<String, Quantity>) -> Result<Amounts, QuantityError> {
    quantities
        .iter()
        .map(|(name, q)| Ok((name.clone(), parse(&q.0)?)))
        .collect()
}

/// Adds `other` into `total`, resource by resource.
pub fn add(total: &mut Amounts, other: &Amounts) {
    for (name, amount) in other {
        *total.entry(name.clone()).or_default() += amount;
    }
}

/// The resources where `amounts` exceeds `limit`, with by how much.
pub fn excess(amounts: &Amounts, limit: &Amounts) -> Amounts {
    amounts
        .iter()
        .filter_map(|(name, amount)| {
            let allowed = limit.get(name)?;
            (amount > allowed).then(|| (name.clone(), amount - allowed))
        })
        .collect()
}

/// `cpu 2, memory 1Gi`, for messages.
pub fn describe(amounts: &Amounts) -> String {
    amounts
        .iter()
        .map(|(name, amount)| format!("{name} {}", format(*amount)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether two quantity texts denote the same amount (`0.5` and `500m`).
pub fn same(a: &str, b: &str) -> bool {
    a == b || matches!((parse(a), parse(b)), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffixes_scale_as_the_api_server_does() {
        assert_eq!(parse("500m"), Ok(500));
        assert_eq!(parse("2"), Ok(2000));
        assert_eq!(parse("0.5"), Ok(500));
        assert_eq!(parse("1k"), Ok(1_000_000));
        assert_eq!(parse("1Ki"), Ok(1024 * 1000));
        assert_eq!(parse("4Gi"), Ok(4 * (1 << 30) * 1000));
        assert_eq!(parse("1e3"), Ok(1_000_000));
        assert_eq!(parse("1.5Gi"), Ok(3 * (1 << 29) * 1000));
        assert_eq!(parse("-1"), Ok(-1000));
        assert_eq!(parse("+1"), Ok(1000));
    }

    #[test]
    fn precision_below_a_milli_unit_rounds_up() {
        assert_eq!(parse("0.0001"), Ok(1));
        assert_eq!(parse("1.0005"), Ok(1001));
    }

    #[test]
    fn non_quantities_are_refused() {
        for text in ["", "lots", "1Qi", "Gi", ".", "1.2.3", "1e", "1eX"] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn equal_amounts_in_different_notations_are_the_same() {
        assert!(same("0.5", "500m"));
        assert!(same("1024Mi", "1Gi"));
        assert!(!same("1G", "1Gi"));
    }

    #[test]
    fn excess_names_only_limited_resources_over_their_limit() {
        let amounts = Amounts::from([
            ("cpu".into(), 3000),
            ("memory".into(), 5),
            ("pods".into(), 99),
        ]);
        let limit = Amounts::from([("cpu".into(), 2000), ("memory".into(), 10)]);
        assert_eq!(
            excess(&amounts, &limit),
            Amounts::from([("cpu".into(), 1000)])
        );
        assert_eq!(describe(&excess(&amounts, &limit)), "cpu 1");
    }

    #[test]
    fn formatting_prefers_binary_suffixes_and_milli_units() {
        assert_eq!(format(parse("8Gi").expect("valid")), "8Gi");
        assert_eq!(format(500), "500m");
        assert_eq!(format(3000), "3");
    }
}
