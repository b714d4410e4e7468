//! Kubernetes resource quantities (`500m`, `1.5`, `128Mi`, `1e3`, `2G`) as exact integers.
//!
//! The scheduler compares cpu in millicores and everything else in whole units, each
//! rounded up as apimachinery's `MilliValue()`/`Value()` do; we keep the same rounding so a
//! pod that fits there fits here, byte for byte.
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
pub struct QuantityError(pub String);

/// A parsed quantity: `digits * 10^exp10 * 2^exp2`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    digits: u128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let err = || QuantityError(s.to_string());
        let t = s.trim();
        let (negative, rest) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, suffix) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(err());
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let mut digits: u128 = 0;
        let mut exp10: i32 = 0;
        for c in int_part.chars().chain(frac_part.chars()) {
            let d = u128::from(c as u8 - b'0');
            digits = digits
                .checked_mul(10)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(err)?;
        }
        exp10 -= frac_part.len() as i32;
        let mut exp2 = 0u32;
        match suffix {
            "" => {}
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            other => {
                let exp = other
                    .strip_prefix('e')
                    .or_else(|| other.strip_prefix('E'))
                    .ok_or_else(err)?;
                let e: i32 = exp.parse().map_err(|_| err())?;
                if !(-100..=100).contains(&e) {
                    return Err(err());
                }
                exp10 += e;
            }
        }
        Ok(Quantity {
            negative,
            digits,
            exp10,
            exp2,
        })
    }

    /// The value scaled by 10^`scale`, rounded up (towards +infinity), saturating.
    fn scaled_ceil(&self, scale: i32) -> i128 {
        let mut v: u128 = self.digits;
        let e = self.exp10 + scale;
        let mut inexact = false;
        if e >= 0 {
            for _ in 0..e {
                v = v.saturating_mul(10);
            }
            v = v.saturating_mul(1u128 << self.exp2);
        } else {
            v = v.saturating_mul(1u128 << self.exp2);
            for _ in 0..(-e) {
                if !v.is_multiple_of(10) {
                    inexact = true;
                }
                v /= 10;
                if v == 0 {
                    break;
                }
            }
        }
        let v = i128::try_from(v).unwrap_or(i128::MAX);
        match (self.negative, inexact) {
            (false, true) => v.saturating_add(1),
            (true, _) => -v,
            (false, false) => v,
        }
    }

    /// Whole units, rounded up (apimachinery `Value()`): bytes for memory, count for pods.
    pub fn value(&self) -> i128 {
        self.scaled_ceil(0)
    }

    /// Thousandths, rounded up (apimachinery `MilliValue()`): millicores for cpu.
    pub fn milli_value(&self) -> i128 {
        self.scaled_ceil(3)
    }
}

/// The amount of `resource` in the unit the scheduler compares it in: millicores for
/// `cpu`, whole units for anything else.
pub fn amount(resource: &str, q: &str) -> Result<i128, QuantityError> {
    let q = Quantity::parse(q)?;
    Ok(if resource == "cpu" {
        q.milli_value()
    } else {
        q.value()
    })
}

/// Formats a byte count as apimachinery prints a binary-SI quantity: the largest binary
/// suffix that divides it exactly (`24537856Ki`), or plain bytes.
pub fn format_binary(bytes: i128) -> String {
    const SUFFIXES: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    if bytes != 0 {
        for (s, shift) in SUFFIXES {
            let unit = 1i128 << shift;
            if bytes % unit == 0 {
                return format!("{}{}", bytes / unit, s);
            }
        }
    }
    bytes.to_string()
}

/// Formats millicores as apimachinery prints cpu: whole cores (`2`) or millicores (`250m`).
pub fn format_cpu(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> i128 {
        Quantity::parse(s).unwrap().milli_value()
    }
    fn val(s: &str) -> i128 {
        Quantity::parse(s).unwrap().value()
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(milli("1"), 1000);
        assert_eq!(milli("500m"), 500);
        assert_eq!(milli("0.5"), 500);
        assert_eq!(milli("2.5"), 2500);
        assert_eq!(milli("100u"), 1, "sub-milli rounds up as MilliValue does");
        assert_eq!(milli("1e3"), 1_000_000);
        assert_eq!(milli("+1"), 1000);
    }

    #[test]
    fn memory_forms() {
        assert_eq!(val("128Mi"), 128 << 20);
        assert_eq!(val("1000Gi"), 1000i128 << 30);
        assert_eq!(val("1G"), 1_000_000_000);
        assert_eq!(val("1.5Gi"), 3 << 29);
        assert_eq!(val("10Ki"), 10240);
        assert_eq!(val("1k"), 1000);
        assert_eq!(val("0.1"), 1, "fractions of a byte round up");
        assert_eq!(val("12E"), 12_000_000_000_000_000_000);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1.2.3", "1Xi", "Mi", ".", "1e", "--1"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_binary(24537856 * 1024), "24537856Ki");
        assert_eq!(format_binary(1 << 30), "1Gi");
        assert_eq!(format_binary(1000), "1000");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(250), "250m");
    }
}
