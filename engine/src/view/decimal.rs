//! Exact base-10 numbers for FHIR `decimal` values and FHIRPath decimal arithmetic.
//!
//! A FHIR decimal carries its written precision (`1.50` is not `1.5`) and has to reach an
//! Arrow `Decimal128(p, s)` column without binary rounding, so [`Decimal`] keeps an `i128`
//! mantissa and a power-of-ten scale and never routes arithmetic through `f64`. This module
//! owns decimal parsing, the FHIRPath operators (`+ - * / mod div`), comparison by numeric
//! value, the checked conversion to a fixed `Decimal128` column, and the FHIRPath
//! `lowBoundary()` / `highBoundary()` rules for decimals.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// The greatest scale a [`Decimal`] can carry: 10^38 is the largest power of ten an `i128`
/// holds, so no operation here produces a larger scale.
pub const MAX_SCALE: u32 = 38;

/// The most fractional digits a computed result is given (quotients, boundaries, products
/// that cannot be kept exact). FHIRPath asks for at least 8; 28 is the scale of the
/// decimal types most FHIRPath engines are built on (.NET `decimal`, `rust_decimal`).
pub const MAX_RESULT_SCALE: u32 = 28;

/// The fewest fractional digits a quotient is computed to: FHIRPath's decimal step size is
/// 10^-8, so division gives up (returns `None`) rather than keep fewer.
pub const MIN_DIVISION_SCALE: u32 = 8;

/// The precision `lowBoundary()` / `highBoundary()` use when none is given, the FHIRPath
/// minimum for Decimal.
pub const DEFAULT_BOUNDARY_PRECISION: u32 = 8;

const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut i = 1;
    while i < table.len() {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// 10^n, or `None` when it does not fit a `u128` (n > 38).
fn pow10(n: u32) -> Option<u128> {
    POW10.get(n as usize).copied()
}

/// An exact base-10 number: `mantissa × 10^-scale`. Never goes through `f64` for arithmetic.
///
/// The scale is the number of fractional digits as written, so `1.50` is mantissa 150,
/// scale 2. Equality, ordering and hashing are by numeric value (`1.0 == 1.00`), while
/// [`Display`](fmt::Display) and [`precision`](Decimal::precision) keep the written scale.
/// Values built by this module keep `scale <= MAX_SCALE`; a hand-built value with a larger
/// scale is normalised (trailing zeros dropped) before arithmetic and rejected if that does
/// not bring it into range.
///
/// ```
/// use fhirhouse::view::decimal::Decimal;
///
/// let a = Decimal::parse("1.50").unwrap();
/// assert_eq!((a.mantissa, a.scale), (150, 2));
/// assert_eq!(a, Decimal::parse("1.5").unwrap());
///
/// let sum = a.checked_add(Decimal::parse("0.25").unwrap()).unwrap();
/// assert_eq!(sum.to_string(), "1.75");
///
/// let third = Decimal::from_i64(1).checked_div(Decimal::from_i64(3)).unwrap();
/// assert_eq!(third.to_string(), "0.3333333333333333333333333333");
///
/// // Written into an Arrow Decimal128(10, 2) column without rounding:
/// assert_eq!(a.to_decimal128(10, 2), Ok(150));
/// assert!(Decimal::parse("1.234").unwrap().to_decimal128(10, 2).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Decimal {
    /// The digits of the value as an integer, sign included.
    pub mantissa: i128,
    /// How many of the mantissa's digits are fractional (the power of ten it is divided by).
    pub scale: u32,
}

/// Why [`Decimal::rescale`] or [`Decimal::to_decimal128`] refused a value, as a message
/// naming the value and the target ("value 1.2345 has more than 2 fractional digits").
/// Neither ever rounds, so losing a non-zero digit is an error like overflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescaleError(pub String);

impl fmt::Display for RescaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RescaleError {}

/// Where the discarded part of a quotient lies relative to half a unit of its last digit,
/// which is all rounding needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rest {
    Zero,
    Below,
    Half,
    Above,
}

impl Decimal {
    /// Zero, scale 0.
    pub const ZERO: Decimal = Decimal::new(0, 0);

    /// `mantissa × 10^-scale`, taken as given.
    pub const fn new(mantissa: i128, scale: u32) -> Decimal {
        Decimal { mantissa, scale }
    }

    /// An integer, scale 0.
    pub const fn from_i64(value: i64) -> Decimal {
        Decimal::new(value as i128, 0)
    }

    /// Parses FHIR / JSON decimal text: `-12.340`, `1e3`, `1.5E-2`, `0.0`.
    ///
    /// The written scale is kept (`"1.50"` → mantissa 150, scale 2); an exponent moves it
    /// (`"1.5E-2"` → 15 scale 3, `"1e3"` → 1000 scale 0). Besides the JSON number grammar
    /// this accepts a leading `+` and leading zeros, which FHIRPath's `toDecimal()` string
    /// form allows. Returns `None` for anything else (including surrounding whitespace, `.5`
    /// and `5.`) and for values that need more than 128 bits or [`MAX_SCALE`] fractional
    /// digits once trailing fractional zeros are dropped.
    pub fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = split_sign(text.as_bytes());
        let (int, mut rest) = split_digits(rest);
        let mut frac: &[u8] = &[];
        if let Some((b'.', after)) = rest.split_first() {
            (frac, rest) = split_digits(after);
            if frac.is_empty() {
                return None;
            }
        }
        let mut exponent: i64 = 0;
        if let Some((b'e' | b'E', after)) = rest.split_first() {
            let (exp_negative, after) = split_sign(after);
            let digits;
            (digits, rest) = split_digits(after);
            if digits.is_empty() {
                return None;
            }
            // Saturate: any exponent this large is out of range anyway.
            let magnitude = digits.iter().fold(0i64, |e, &c| (e * 10 + i64::from(c - b'0')).min(1_000_000));
            exponent = if exp_negative { -magnitude } else { magnitude };
        }
        if int.is_empty() || !rest.is_empty() {
            return None;
        }
        assemble(negative, int, frac, exponent).or_else(|| {
            // Written trailing zeros are the only digits that can go without changing
            // the value: drop them rather than reject a long but representable number.
            let trailing = frac.iter().rev().take_while(|&&c| c == b'0').count();
            if trailing == 0 {
                return None;
            }
            assemble(negative, int, &frac[..frac.len() - trailing], exponent)
        })
    }

    /// Converts an `f64` through Rust's shortest round-trip formatting, so `181.2` becomes
    /// mantissa 1812, scale 1 rather than the binary expansion of the double.
    ///
    /// JSON parsers hand over any number written with a `.` or an exponent as `f64` and
    /// lose its trailing zeros; `had_fraction` says the source literal had a decimal point,
    /// and then a whole value keeps one fractional digit (`1.0` → mantissa 10, scale 1)
    /// so it is still typed and written as a decimal. Trailing zeros beyond that (`1.50`)
    /// cannot be recovered from an `f64`: use [`Decimal::parse`] on the raw text when it is
    /// available. Returns `None` for NaN, infinities and values outside the 128-bit /
    /// [`MAX_SCALE`] range (such as `1e300` or `5e-324`).
    pub fn from_f64(value: f64, had_fraction: bool) -> Option<Decimal> {
        if !value.is_finite() {
            return None;
        }
        let d = match Self::from_short_f64(value) {
            Some(d) => d,
            None => Decimal::parse(&format!("{value:e}"))?,
        };
        if had_fraction && d.scale == 0 {
            d.mantissa.checked_mul(10).map(|m| Decimal::new(m, 1))
        } else {
            Some(d)
        }
    }

    /// The common case without formatting: a value with at most 9 fractional digits and
    /// under 2^53 once scaled. `m / 10^k == value` proves `m·10^-k` parses back to `value`,
    /// and trying `k` upwards finds the fewest fractional digits, which is what the
    /// shortest round-trip text gives.
    fn from_short_f64(value: f64) -> Option<Decimal> {
        const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        let mut power = 1.0f64;
        for scale in 0..=9u32 {
            let scaled = (value * power).round();
            if scaled.abs() >= MAX_EXACT {
                return None;
            }
            if scaled / power == value {
                return Some(Decimal::new(scaled as i128, scale));
            }
            power *= 10.0;
        }
        None
    }

    /// The number of fractional digits as written (the scale): FHIRPath `precision()`.
    pub fn precision(&self) -> u32 {
        self.scale
    }

    /// True for zero at any scale.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The same value with trailing fractional zeros removed (`1.500` → `1.5`, `2.0` → `2`).
    pub fn normalized(&self) -> Decimal {
        if self.mantissa == 0 {
            return Decimal::ZERO;
        }
        let mut d = *self;
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// The value as an `i64` when it is a whole number in range (`3.00` → 3), else `None`.
    pub fn to_i64(&self) -> Option<i64> {
        let n = self.normalized();
        if n.scale != 0 {
            return None;
        }
        i64::try_from(n.mantissa).ok()
    }

    /// The nearest `f64`, for display and statistics only.
    pub fn as_f64(&self) -> f64 {
        // Decimal text → f64 is correctly rounded by the standard library.
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// `-self`, or `None` on overflow.
    pub fn checked_neg(self) -> Option<Decimal> {
        (self.mantissa.checked_neg()).map(|m| Decimal::new(m, self.scale))
    }

    /// `|self|`, or `None` on overflow.
    pub fn checked_abs(self) -> Option<Decimal> {
        (self.mantissa.checked_abs()).map(|m| Decimal::new(m, self.scale))
    }

    /// Exact sum at the larger of the two scales (`1.5 + 0.25` → `1.75`), `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        aligned(self, other, i128::checked_add)
    }

    /// Exact difference at the larger of the two scales, `None` on overflow.
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        aligned(self, other, i128::checked_sub)
    }

    /// Exact product: the scale is the sum of the scales (`1.5 × 1.50` → `2.250`).
    ///
    /// A scale above [`MAX_RESULT_SCALE`] is brought back by dropping trailing zeros; if
    /// non-zero digits remain beyond it, the product is rounded half-to-even there, the
    /// same limit division has. `None` when the product needs more than 128 bits.
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let (a, b) = (self.valid()?, other.valid()?);
        let product =
            |x: Decimal, y: Decimal| (x.mantissa.checked_mul(y.mantissa)).map(|m| Decimal::new(m, x.scale + y.scale));
        let p = product(a, b).or_else(|| product(a.normalized(), b.normalized()))?;
        p.limit_scale(MAX_RESULT_SCALE)
    }

    /// FHIRPath `/`: the quotient as a decimal with at least [`MIN_DIVISION_SCALE`] and up
    /// to [`MAX_RESULT_SCALE`] fractional digits (as many as fit in 128 bits), rounded
    /// half-to-even in the last digit, trailing zeros stripped (`3 / 2` → `1.5`,
    /// `6 / 2` → `3`). `None` on division by zero (FHIRPath: empty) and on overflow.
    pub fn checked_div(self, other: Decimal) -> Option<Decimal> {
        let (a, b) = (self.valid()?, other.valid()?);
        if b.mantissa == 0 {
            return None;
        }
        let negative = (a.mantissa < 0) != (b.mantissa < 0);
        let (n, d) = (a.mantissa.unsigned_abs(), b.mantissa.unsigned_abs());
        for scale in (MIN_DIVISION_SCALE..=MAX_RESULT_SCALE).rev() {
            // value = n/d × 10^(b.scale - a.scale); at `scale` digits the mantissa is
            // n × 10^(scale + b.scale - a.scale) / d.
            let k = i64::from(scale) + i64::from(b.scale) - i64::from(a.scale);
            let Some((q, rest)) = div_scaled(n, d, k) else {
                continue;
            };
            let Some(q) = round_half_even(q, rest) else {
                continue;
            };
            if let Some(result) = from_parts(negative, q, scale) {
                return Some(result.normalized());
            }
        }
        None
    }

    /// FHIRPath `mod`: the remainder of truncated division, with the sign of `self` and the
    /// larger of the two scales (`5.5 mod 0.7` → `0.6`). `None` when `other` is zero.
    pub fn checked_rem(self, other: Decimal) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        aligned(self, other, i128::checked_rem)
    }

    /// FHIRPath `div`: the quotient truncated toward zero, scale 0 (`5.5 div 0.7` → `7`,
    /// `-7 div 2` → `-3`). `None` when `other` is zero or on overflow.
    pub fn int_div(self, other: Decimal) -> Option<Decimal> {
        let (a, b) = (self.valid()?, other.valid()?);
        if b.mantissa == 0 {
            return None;
        }
        let negative = (a.mantissa < 0) != (b.mantissa < 0);
        let k = i64::from(b.scale) - i64::from(a.scale);
        let (q, _) = div_scaled(a.mantissa.unsigned_abs(), b.mantissa.unsigned_abs(), k)?;
        from_parts(negative, q, 0)
    }

    /// The mantissa at exactly `target_scale`, for a fixed-scale column.
    ///
    /// # Errors
    /// Never rounds: non-zero digits below `target_scale` are an error, as is a result
    /// that does not fit an `i128`.
    ///
    /// ```
    /// use fhirhouse::view::decimal::Decimal;
    /// let d = Decimal::parse("1.2345").unwrap();
    /// assert_eq!(d.rescale(6), Ok(1_234_500));
    /// assert_eq!(
    ///     d.rescale(2).unwrap_err().to_string(),
    ///     "value 1.2345 has more than 2 fractional digits"
    /// );
    /// ```
    pub fn rescale(&self, target_scale: u32) -> Result<i128, RescaleError> {
        self.shift_to(i64::from(target_scale), None)
    }

    /// The `i128` an Arrow `Decimal128(precision, scale)` column stores for this value; a
    /// negative `scale` stores multiples of 10^-scale, as in Arrow.
    ///
    /// # Errors
    /// Never rounds: fails when digits below `scale` are non-zero ("value 1.2345 has more
    /// than 2 fractional digits"), when the value needs more than `precision` digits
    /// ("value 123.45 does not fit DECIMAL(4,2)"), and when `(precision, scale)` is not a
    /// valid Arrow type.
    pub fn to_decimal128(&self, precision: u8, scale: i8) -> Result<i128, RescaleError> {
        if precision == 0 || precision > 38 || scale > 38 || i16::from(scale) > i16::from(precision) {
            return Err(RescaleError(format!(
                "DECIMAL({precision},{scale}) is not a valid Decimal128 type \
                 (precision 1..=38, scale at most 38 and at most the precision)"
            )));
        }
        let v = self.shift_to(i64::from(scale), Some(precision))?;
        match pow10(u32::from(precision)) {
            Some(limit) if v.unsigned_abs() >= limit => Err(self.overflow(i64::from(scale), Some(precision))),
            _ => Ok(v),
        }
    }

    /// FHIRPath `lowBoundary([precision])` on a decimal: the least value the written digits
    /// can stand for, i.e. the value minus half a unit in its last written digit, rounded
    /// down to `precision` fractional digits.
    ///
    /// Without `precision` the result has [`DEFAULT_BOUNDARY_PRECISION`] (8) digits, or one
    /// more than the value's own scale when that is larger, so it stays exact. `None` when
    /// `precision` exceeds [`MAX_RESULT_SCALE`] ("greater than the maximum possible
    /// precision of the implementation": FHIRPath returns empty). An integer is passed as
    /// scale 0. Examples from <http://hl7.org/fhirpath/N1/#lowboundaryprecision-integer-decimal--date--datetime--time>:
    ///
    /// ```
    /// use fhirhouse::view::decimal::Decimal;
    /// let d = |s| Decimal::parse(s).unwrap();
    /// assert_eq!(d("1.587").low_boundary(None).unwrap().to_string(), "1.58650000");
    /// assert_eq!(d("1.587").low_boundary(Some(2)).unwrap().to_string(), "1.58");
    /// assert_eq!(d("-1.587").low_boundary(Some(0)).unwrap().to_string(), "-2");
    /// assert_eq!(d("1.0").low_boundary(None).unwrap().to_string(), "0.95000000");
    /// ```
    pub fn low_boundary(&self, precision: Option<u32>) -> Option<Decimal> {
        self.boundary(precision, false)
    }

    /// FHIRPath `highBoundary([precision])` on a decimal: the value plus half a unit in its
    /// last written digit, rounded up to `precision` fractional digits. Same precision rules
    /// as [`Decimal::low_boundary`].
    ///
    /// ```
    /// use fhirhouse::view::decimal::Decimal;
    /// let d = |s| Decimal::parse(s).unwrap();
    /// assert_eq!(d("1.587").high_boundary(None).unwrap().to_string(), "1.58750000");
    /// assert_eq!(d("1.0").high_boundary(None).unwrap().to_string(), "1.05000000");
    /// assert_eq!(d("1").high_boundary(None).unwrap().to_string(), "1.50000000");
    /// ```
    pub fn high_boundary(&self, precision: Option<u32>) -> Option<Decimal> {
        self.boundary(precision, true)
    }

    fn boundary(&self, precision: Option<u32>, high: bool) -> Option<Decimal> {
        let v = self.valid()?;
        let exact = (v.scale + 1).min(MAX_RESULT_SCALE);
        let target = precision.unwrap_or(DEFAULT_BOUNDARY_PRECISION.max(exact));
        if target > MAX_RESULT_SCALE {
            return None;
        }
        // v ± half a unit in the last written digit, exactly: (10·m ± 5) × 10^-(s+1).
        let m = v.mantissa.checked_mul(10)?.checked_add(if high { 5 } else { -5 })?;
        let s = v.scale + 1;
        if target >= s {
            let factor = i128::try_from(pow10(target - s)?).ok()?;
            return m.checked_mul(factor).map(|m| Decimal::new(m, target));
        }
        // Fewer digits than the exact boundary has: round away from the value (floor for
        // the low end, ceiling for the high end) so the result still bounds it.
        let mantissa = match pow10(s - target).and_then(|p| i128::try_from(p).ok()) {
            Some(p) => m.div_euclid(p) + i128::from(high && m.rem_euclid(p) != 0),
            // |m| < 10^39 ≤ p: the boundary rounds to 0 or to one unit either side.
            None => match (high, m.signum()) {
                (true, 1) => 1,
                (false, -1) => -1,
                _ => 0,
            },
        };
        Some(Decimal::new(mantissa, target))
    }

    /// `self` with a scale no larger than [`MAX_SCALE`] (trailing zeros dropped if a
    /// hand-built value needs it), or `None`.
    fn valid(self) -> Option<Decimal> {
        if self.scale <= MAX_SCALE {
            return Some(self);
        }
        let n = self.normalized();
        (n.scale <= MAX_SCALE).then_some(n)
    }

    /// Brings the scale down to `max`: trailing zeros first, then half-to-even rounding.
    fn limit_scale(self, max: u32) -> Option<Decimal> {
        let mut n = self;
        while n.scale > max && n.mantissa % 10 == 0 {
            n.mantissa /= 10;
            n.scale -= 1;
        }
        if n.scale <= max {
            return Some(n);
        }
        let negative = n.mantissa < 0;
        let mag = n.mantissa.unsigned_abs();
        let (q, rest) = match pow10(n.scale - max) {
            Some(p) => (mag / p, rest_of(mag % p, p)),
            None => (0, Rest::Below),
        };
        from_parts(negative, round_half_even(q, rest)?, max)
    }

    /// The mantissa at `target` scale (negative: a multiple of 10^-target), or why not;
    /// `precision` only names the column in the overflow message.
    fn shift_to(&self, target: i64, precision: Option<u8>) -> Result<i128, RescaleError> {
        let diff = target - i64::from(self.scale);
        let factor = u32::try_from(diff.unsigned_abs()).ok().and_then(pow10).and_then(|p| i128::try_from(p).ok());
        match factor {
            _ if self.mantissa == 0 => Ok(0),
            Some(f) if diff >= 0 => (self.mantissa.checked_mul(f)).ok_or_else(|| self.overflow(target, precision)),
            None if diff >= 0 => Err(self.overflow(target, precision)),
            Some(f) if self.mantissa % f == 0 => Ok(self.mantissa / f),
            _ if target >= 0 => Err(RescaleError(format!("value {self} has more than {target} fractional digits"))),
            _ => Err(RescaleError(format!("value {self} is not a multiple of 10^{}", -target))),
        }
    }

    fn overflow(&self, scale: i64, precision: Option<u8>) -> RescaleError {
        RescaleError(match precision {
            Some(p) => format!("value {self} does not fit DECIMAL({p},{scale})"),
            None => format!("value {self} does not fit a 128-bit decimal at scale {scale}"),
        })
    }
}

/// A leading `-` or `+` and what follows it.
fn split_sign(b: &[u8]) -> (bool, &[u8]) {
    match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    }
}

/// The leading run of ASCII digits and what follows it.
fn split_digits(b: &[u8]) -> (&[u8], &[u8]) {
    b.split_at(b.iter().take_while(|c| c.is_ascii_digit()).count())
}

/// Builds the mantissa from the digit runs of parsed text and applies the exponent.
fn assemble(negative: bool, int: &[u8], frac: &[u8], exponent: i64) -> Option<Decimal> {
    let mut mag: u128 = 0;
    for &c in int.iter().chain(frac) {
        mag = mag.checked_mul(10)?.checked_add(u128::from(c - b'0'))?;
    }
    let mut scale = frac.len() as i64 - exponent;
    if scale < 0 {
        if mag != 0 {
            mag = mag.checked_mul(pow10(u32::try_from(-scale).ok()?)?)?;
        }
        scale = 0;
    }
    if mag == 0 {
        scale = scale.min(i64::from(MAX_SCALE));
    }
    // Trailing zeros of a non-zero mantissa number at most 38, so this loop is short.
    while scale > i64::from(MAX_SCALE) && mag.is_multiple_of(10) {
        mag /= 10;
        scale -= 1;
    }
    if scale > i64::from(MAX_SCALE) {
        return None;
    }
    from_parts(negative, mag, scale as u32)
}

/// A signed decimal from a sign and magnitude, `None` if it does not fit an `i128`.
fn from_parts(negative: bool, mag: u128, scale: u32) -> Option<Decimal> {
    let mantissa = if negative {
        if mag > 1u128 << 127 {
            return None;
        }
        // 2^127 wraps to i128::MIN, which negates to itself: exactly the value wanted.
        (mag as i128).wrapping_neg()
    } else {
        i128::try_from(mag).ok()?
    };
    Some(Decimal { mantissa, scale })
}

/// Applies `op` to the mantissas brought to a common scale; if that alignment overflows,
/// retries with trailing zeros dropped, which may make it fit.
fn aligned(a: Decimal, b: Decimal, op: fn(i128, i128) -> Option<i128>) -> Option<Decimal> {
    let (a, b) = (a.valid()?, b.valid()?);
    let attempt = |x: Decimal, y: Decimal| {
        let scale = x.scale.max(y.scale);
        let up = |d: Decimal| -> Option<i128> {
            if d.mantissa == 0 {
                return Some(0);
            }
            d.mantissa.checked_mul(i128::try_from(pow10(scale - d.scale)?).ok()?)
        };
        op(up(x)?, up(y)?).map(|m| Decimal::new(m, scale))
    };
    attempt(a, b).or_else(|| attempt(a.normalized(), b.normalized()))
}

/// `floor(n × 10^k / d)` for `d > 0`, with where the discarded remainder lies, or `None`
/// when the quotient does not fit a `u128`. Long division keeps every step in range even
/// when `n × 10^k` would not be.
fn div_scaled(n: u128, d: u128, k: i64) -> Option<(u128, Rest)> {
    let (q0, r0) = (n / d, n % d);
    if k < 0 {
        let Some(p) = u32::try_from(-k).ok().and_then(pow10) else {
            // q0 < 2^128 < 10^39 ≤ 10^-k: the quotient is 0 and far below one half.
            let rest = if n == 0 { Rest::Zero } else { Rest::Below };
            return Some((0, rest));
        };
        let (q, rm) = (q0 / p, q0 % p);
        // The discarded fraction is (rm + r0/d) / p, and p/2 is a whole number.
        let half = p / 2;
        let rest = match rm.cmp(&half) {
            _ if rm == 0 && r0 == 0 => Rest::Zero,
            Ordering::Less => Rest::Below,
            Ordering::Equal if r0 == 0 => Rest::Half,
            _ => Rest::Above,
        };
        return Some((q, rest));
    }
    let k = u32::try_from(k).ok()?;
    if let Some(nk) = pow10(k).and_then(|p| n.checked_mul(p)) {
        return Some((nk / d, rest_of(nk % d, d)));
    }
    let (mut q, mut r) = (q0, r0);
    for _ in 0..k {
        // floor(10·r / d) by repeated addition: r < d ≤ 2^127, so nothing overflows.
        let (mut digit, mut acc) = (0u128, 0u128);
        for _ in 0..10 {
            acc += r;
            if acc >= d {
                acc -= d;
                digit += 1;
            }
        }
        q = q.checked_mul(10)?.checked_add(digit)?;
        r = acc;
    }
    Some((q, rest_of(r, d)))
}

/// Classifies a remainder `r` of a division by `d` (`r < d ≤ 2^127`).
fn rest_of(r: u128, d: u128) -> Rest {
    if r == 0 {
        return Rest::Zero;
    }
    match (r * 2).cmp(&d) {
        Ordering::Less => Rest::Below,
        Ordering::Equal => Rest::Half,
        Ordering::Greater => Rest::Above,
    }
}

fn round_half_even(q: u128, rest: Rest) -> Option<u128> {
    match rest {
        Rest::Above => q.checked_add(1),
        Rest::Half if q % 2 == 1 => q.checked_add(1),
        _ => Some(q),
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.scale == other.scale {
            return self.mantissa.cmp(&other.mantissa);
        }
        let sign = self.mantissa.signum();
        if sign != other.mantissa.signum() {
            return sign.cmp(&other.mantissa.signum());
        }
        if sign == 0 {
            return Ordering::Equal;
        }
        let (a, b) = (self.mantissa.unsigned_abs(), other.mantissa.unsigned_abs());
        // Bring the smaller-scale side up to the larger scale. If that overflows it is at
        // least 2^128, bigger than any magnitude the other side can have at that scale.
        let magnitude = if self.scale > other.scale {
            match pow10(self.scale - other.scale).and_then(|p| b.checked_mul(p)) {
                Some(b) => a.cmp(&b),
                None => Ordering::Less,
            }
        } else {
            match pow10(other.scale - self.scale).and_then(|p| a.checked_mul(p)) {
                Some(a) => a.cmp(&b),
                None => Ordering::Greater,
            }
        };
        if sign < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal values share one normalised form, so the hash agrees with `==`.
        let n = self.normalized();
        n.mantissa.hash(state);
        n.scale.hash(state);
    }
}

impl fmt::Display for Decimal {
    /// Plain decimal text at the value's own scale, no exponent: `1.50`, `-0.05`, `5`.
    /// (A hand-built value with a scale above [`MAX_SCALE`] is written `<mantissa>e-<scale>`
    /// rather than as a string of zeros of that length.)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let text = if self.scale > MAX_SCALE {
            format!("{sign}{digits}e-{}", self.scale)
        } else if scale == 0 {
            format!("{sign}{digits}")
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        };
        f.pad(&text)
    }
}

#[cfg(test)]
#[path = "decimal_tests.rs"]
mod tests;
