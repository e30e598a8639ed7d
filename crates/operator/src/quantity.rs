//! Kubernetes resource quantities (`500m`, `2Gi`, `1e3`), parsed the way the API server parses
//! them. k8s_openapi's `Quantity` is a bare string and the CRD schema takes any string, so
//! without this a quantity like `lots` is first refused by the API server, half-way through
//! applying a farm.
//!
//! The grammar (apimachinery's `resource.Quantity`):
//!
//! ```text
//! quantity  = [sign] number suffix
//! number    = digits | digits "." [digits] | "." digits
//! suffix    = "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"     (decimal SI)
//!           | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"                      (binary SI)
//!           | ("e" | "E") [sign] digits                                    (decimal exponent)
//! ```
//!
//! No whitespace anywhere. The value is kept to compare requests with limits.

/// A parsed quantity, in billionths of its unit: the API server keeps quantities to the nano,
/// rounding finer ones up, and caps them at 2^63-1 units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i128);

const NANOS_PER_UNIT: u128 = 1_000_000_000;
const CAP: u128 = i64::MAX as u128 * NANOS_PER_UNIT;
/// Significant digits kept (about 2^63, so that a shift by up to 60 for `Ei` fits in 128 bits);
/// any further digit only rounds up, far below what a request or a limit can mean.
const MANTISSA_MAX: u128 = 10_000_000_000_000_000_000;

impl Amount {
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// A whole number of units (extended resources such as GPUs come in whole units).
    pub fn is_whole(self) -> bool {
        self.0 % NANOS_PER_UNIT as i128 == 0
    }
}

/// Why a string is not a quantity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("it is empty")]
    Empty,
    #[error("it does not start with a number")]
    NoNumber,
    #[error("{0:?} after the number is not a unit (n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)")]
    Suffix(String),
}

/// Parses a quantity, refusing what the API server refuses.
pub fn parse(s: &str) -> Result<Amount, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, rest) = split_digits(rest);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(after) => split_digits(after),
        None => ("", rest),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(QuantityError::NoNumber);
    }
    let (exp10, exp2) = suffix(rest).ok_or_else(|| QuantityError::Suffix(rest.into()))?;

    let mut mantissa: u128 = 0;
    let mut scale = i64::from(exp10) - frac.len() as i64;
    let mut dropped = false;
    for d in int.bytes().chain(frac.bytes()) {
        if mantissa < MANTISSA_MAX {
            mantissa = mantissa * 10 + u128::from(d - b'0');
        } else {
            scale += 1;
            dropped |= d != b'0';
        }
    }
    // Rounding the dropped digits up, as the API server rounds up what it cannot keep.
    let shifted = (mantissa + u128::from(dropped)) << exp2;
    let nanos = scale_by_ten(shifted, scale + 9).min(CAP) as i128;
    Ok(Amount(if negative { -nanos } else { nanos }))
}

fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.bytes().take_while(u8::is_ascii_digit).count())
}

/// The power of ten and the power of two a suffix stands for.
fn suffix(s: &str) -> Option<(i32, u32)> {
    let decimal = |e| Some((e, 0));
    let binary = |e| Some((0, e));
    match s {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        // `e` or `E` then a signed whole exponent that fits 32 bits, as the API server reads it.
        _ => {
            let exponent = s.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(exponent.parse().ok()?)
        }
    }
}

/// `v × 10^exp`, rounded up, saturating past the cap.
fn scale_by_ten(v: u128, exp: i64) -> u128 {
    if v == 0 {
        return 0;
    }
    match u32::try_from(exp.unsigned_abs())
        .ok()
        .and_then(|e| 10u128.checked_pow(e))
    {
        Some(p) if exp >= 0 => v.saturating_mul(p),
        Some(p) => v.div_ceil(p),
        // 10^39 and beyond: more than any cap, or less than one nano.
        None if exp >= 0 => u128::MAX,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> i128 {
        parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).0
    }

    #[test]
    fn the_usual_quantities_parse() {
        for ok in [
            "500m", "1", "2Gi", "1e3", "0.5", "1E3", "1e-3", "1e+3", "+1", ".5", "5.", "100Mi", "1k", "1M", "1E", "3n",
            "7u", "1Ei",
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn values_are_kept_to_the_nano() {
        assert_eq!(nanos("500m"), 500_000_000);
        assert_eq!(nanos("0.5"), 500_000_000);
        assert_eq!(nanos("1"), 1_000_000_000);
        assert_eq!(nanos("1e3"), 1_000_000_000_000);
        assert_eq!(nanos("1k"), nanos("1000"));
        assert_eq!(nanos("2Gi"), 2 * (1 << 30) * 1_000_000_000);
        assert_eq!(nanos("1.5Ki"), 1536 * 1_000_000_000);
        assert_eq!(nanos("3n"), 3);
        assert_eq!(nanos("-250m"), -250_000_000);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("0e999999"), 0);
    }

    #[test]
    fn finer_than_a_nano_rounds_up_and_huge_values_cap() {
        assert_eq!(nanos("1e-10"), 1);
        assert_eq!(nanos("1.0000000001"), 1_000_000_001);
        assert_eq!(nanos("0.0000000001Ki"), 103, "102.4 nanos round up");
        let cap = i64::MAX as i128 * 1_000_000_000;
        assert_eq!(nanos("1e300"), cap);
        assert_eq!(nanos("99999999999999999999999999999999999999999Ei"), cap);
        assert_eq!(nanos("1e-300"), 1);
    }

    #[test]
    fn comparisons_follow_the_values() {
        assert!(parse("100m").unwrap() < parse("1").unwrap());
        assert!(parse("1Gi").unwrap() > parse("1G").unwrap());
        assert_eq!(parse("1000m").unwrap(), parse("1").unwrap());
        assert!(parse("2").unwrap().is_whole() && !parse("1.5").unwrap().is_whole());
        assert!(parse("-1").unwrap().is_negative() && !parse("0").unwrap().is_negative());
    }

    #[test]
    fn malformed_quantities_are_refused_with_the_reason() {
        assert_eq!(parse(""), Err(QuantityError::Empty));
        for no_number in ["lots", ".", "-", "+", "--1", "Gi", "e3", " 1"] {
            assert_eq!(parse(no_number), Err(QuantityError::NoNumber), "{no_number:?}");
        }
        for (bad, rest) in [
            ("1.2.3", ".3"),
            ("5 Gi", " Gi"),
            ("1 ", " "),
            ("1K", "K"),
            ("1gi", "gi"),
            ("1KiB", "KiB"),
            ("1e", "e"),
            ("1e3.5", "e3.5"),
            ("1e+", "e+"),
            ("1e99999999999", "e99999999999"),
            ("1mi", "mi"),
        ] {
            assert_eq!(parse(bad), Err(QuantityError::Suffix(rest.into())), "{bad:?}");
        }
    }
}
