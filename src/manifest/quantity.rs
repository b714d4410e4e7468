//! Kubernetes resource quantities ("500m", "10Gi", "1e3"): parsing with the API server's
//! grammar, exact conversion to milli-units or whole units rounded up as Kubernetes does
//! (the scheduler's amounts), and printing them back as apimachinery does.

/// The message the API server gives for a string that is not a quantity.
pub const QUANTITY_REGEX_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity: `mantissa * 10^exp10 * 2^exp2`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedQuantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

/// Why a string is not a usable quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{QUANTITY_REGEX_MSG}")]
    Syntax,
    #[error("quantity is too large")]
    TooLarge,
}

impl ParsedQuantity {
    /// Parses `s` with the grammar of k8s.io/apimachinery's resource.ParseQuantity.
    pub fn parse(s: &str) -> Result<ParsedQuantity, QuantityError> {
        let s = s.trim();
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            negative = bytes[i] == b'-';
            i += 1;
        }
        let num_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[num_start..i];
        let suffix = &s[i..];
        if number.is_empty() || number.matches('.').count() > 1 || number == "." {
            return Err(QuantityError::Syntax);
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        let mut mantissa: i128 = 0;
        for c in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(c - b'0')))
                .ok_or(QuantityError::TooLarge)?;
        }
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| QuantityError::TooLarge)?;
        let mut exp10 = -frac_len;
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
            _ => {
                let rest = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))
                    .ok_or(QuantityError::Syntax)?;
                let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QuantityError::Syntax);
                }
                let e: i32 = rest.parse().map_err(|_| QuantityError::TooLarge)?;
                exp10 = exp10.checked_add(e).ok_or(QuantityError::TooLarge)?;
            }
        }
        if negative {
            mantissa = -mantissa;
        }
        Ok(ParsedQuantity {
            mantissa,
            exp10,
            exp2,
        })
    }

    /// The value scaled by `10^extra10`, rounded up (towards +inf) as Kubernetes rounds.
    fn scaled_ceil(&self, extra10: i32) -> Result<i128, QuantityError> {
        let mut v = self
            .mantissa
            .checked_mul(
                1i128
                    .checked_shl(self.exp2)
                    .ok_or(QuantityError::TooLarge)?,
            )
            .ok_or(QuantityError::TooLarge)?;
        let e = self.exp10 + extra10;
        if e >= 0 {
            let p = 10i128
                .checked_pow(e.unsigned_abs())
                .ok_or(QuantityError::TooLarge)?;
            v = v.checked_mul(p).ok_or(QuantityError::TooLarge)?;
        } else {
            let Some(p) = 10i128.checked_pow(e.unsigned_abs()) else {
                // More decimals than i128 holds: the value is a tiny fraction.
                return Ok(i128::from(v > 0));
            };
            let q = v.div_euclid(p);
            v = if v.rem_euclid(p) == 0 { q } else { q + 1 };
        }
        Ok(v)
    }

    /// Milli-units rounded up (Kubernetes' MilliValue): "1" → 1000, "0.5" → 500.
    pub fn milli(&self) -> Result<i128, QuantityError> {
        self.scaled_ceil(3)
    }

    /// Whole units rounded up (Kubernetes' Value): "10Gi" → 10737418240, "1m" → 1.
    pub fn value(&self) -> Result<i128, QuantityError> {
        self.scaled_ceil(0)
    }

    /// The value divided by `divisor`, rounded up, as the downward API resourceFieldRef does.
    pub fn divided_ceil(&self, divisor: &ParsedQuantity) -> Result<i128, QuantityError> {
        // Compare in nano-units so that "1m" divisors work; i128 leaves ample headroom.
        let v = self.scaled_ceil(9)?;
        let d = divisor.scaled_ceil(9)?;
        if d <= 0 {
            return Err(QuantityError::Syntax);
        }
        let q = v.div_euclid(d);
        Ok(if v.rem_euclid(d) == 0 { q } else { q + 1 })
    }
}

/// Milli-units of a quantity string (cpu: "500m" → 500).
pub fn parse_milli(s: &str) -> Result<i128, QuantityError> {
    ParsedQuantity::parse(s)?.milli()
}

/// Whole units of a quantity string (memory: "10Mi" → 10485760).
pub fn parse_value(s: &str) -> Result<i128, QuantityError> {
    ParsedQuantity::parse(s)?.value()
}

/// A quantity the scheduler cannot read, with the string it was given.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
pub struct InvalidQuantity(pub String);

/// The amount of `resource` in the unit the scheduler compares it in: millicores for
/// `cpu`, whole units for anything else, rounded up as apimachinery's `MilliValue()` /
/// `Value()`.
pub fn amount(resource: &str, q: &str) -> Result<i128, InvalidQuantity> {
    let parsed = if resource == "cpu" {
        parse_milli(q)
    } else {
        parse_value(q)
    };
    parsed.map_err(|_| InvalidQuantity(q.to_string()))
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

    #[test]
    fn cpu_quantities_in_millicores() {
        assert_eq!(parse_milli("1").unwrap(), 1000);
        assert_eq!(parse_milli("2").unwrap(), 2000);
        assert_eq!(parse_milli("500m").unwrap(), 500);
        assert_eq!(parse_milli("0.5").unwrap(), 500);
        assert_eq!(parse_milli("1.5").unwrap(), 1500);
        assert_eq!(
            parse_milli("100u").unwrap(),
            1,
            "rounded up as MilliValue does"
        );
    }

    #[test]
    fn memory_quantities_in_bytes() {
        assert_eq!(parse_value("10Gi").unwrap(), 10 * 1024 * 1024 * 1024);
        assert_eq!(parse_value("10Mi").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_value("128974848").unwrap(), 128_974_848);
        assert_eq!(parse_value("129e6").unwrap(), 129_000_000);
        assert_eq!(parse_value("123M").unwrap(), 123_000_000);
        assert_eq!(parse_value("1k").unwrap(), 1000);
        assert_eq!(parse_value("1Ki").unwrap(), 1024);
        assert_eq!(parse_value("1.5Gi").unwrap(), 1_610_612_736);
    }

    #[test]
    fn bad_quantities_give_the_api_server_message() {
        for bad in ["", "abc", "10Gx", "1..2", "Gi", "1e", "1 Gi", "10GiB"] {
            let err = ParsedQuantity::parse(bad).unwrap_err();
            assert_eq!(err.to_string(), QUANTITY_REGEX_MSG, "{bad:?}");
        }
    }

    #[test]
    fn divisor_rounds_up() {
        let two = ParsedQuantity::parse("2").unwrap();
        let milli = ParsedQuantity::parse("1m").unwrap();
        assert_eq!(two.divided_ceil(&milli).unwrap(), 2000);
        let mem = ParsedQuantity::parse("10Mi").unwrap();
        let mi = ParsedQuantity::parse("1Mi").unwrap();
        assert_eq!(mem.divided_ceil(&mi).unwrap(), 10);
        let half = ParsedQuantity::parse("500m").unwrap();
        let one = ParsedQuantity::parse("1").unwrap();
        assert_eq!(half.divided_ceil(&one).unwrap(), 1);
    }
}

#[cfg(test)]
mod scheduler_tests {
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
