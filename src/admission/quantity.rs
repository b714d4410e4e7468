//! Kubernetes resource quantities (`500m`, `1.5`, `128Mi`, `1e3`, `2G`) as exact integers.
//!
//! The scheduler compares cpu in millicores and everything else in whole units, each
//! rounded up as apimachinery's `MilliValue()`/`Value()` do; we keep the same rounding so a
//! pod that fits there fits here, byte for byte.
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
pub struct QuantityError(pub String);

/// The amount of `resource` in the unit the scheduler compares it in: millicores for
/// `cpu`, whole units for anything else, rounded up as apimachinery's `MilliValue()` /
/// `Value()` (one parser for the whole crate: `manifest::quantity`).
pub fn amount(resource: &str, q: &str) -> Result<i128, QuantityError> {
    let parsed = if resource == "cpu" {
        crate::manifest::quantity::parse_milli(q)
    } else {
        crate::manifest::quantity::parse_value(q)
    };
    parsed.map_err(|_| QuantityError(q.to_string()))
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
        amount("cpu", s).unwrap()
    }
    fn val(s: &str) -> i128 {
        amount("memory", s).unwrap()
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
            assert!(amount("memory", bad).is_err(), "{bad:?} should not parse");
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
