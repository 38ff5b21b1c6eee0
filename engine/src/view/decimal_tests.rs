//! Tests for [`super::Decimal`]: parsing, exact arithmetic, value semantics, column
//! rescaling and the FHIRPath boundary functions.

use super::*;
use std::collections::hash_map::DefaultHasher;

fn d(text: &str) -> Decimal {
    Decimal::parse(text).unwrap_or_else(|| panic!("{text:?} should parse"))
}

fn parts(x: Decimal) -> (i128, u32) {
    (x.mantissa, x.scale)
}

fn hash_of(x: Decimal) -> u64 {
    let mut h = DefaultHasher::new();
    x.hash(&mut h);
    h.finish()
}

#[test]
fn parse_keeps_written_scale() {
    assert_eq!(parts(d("-12.340")), (-12340, 3));
    assert_eq!(parts(d("1.50")), (150, 2));
    assert_eq!(parts(d("0.0")), (0, 1));
    assert_eq!(parts(d("0")), (0, 0));
    assert_eq!(parts(d("-0")), (0, 0));
    assert_eq!(parts(d("42")), (42, 0));
    assert_eq!(parts(d("+7.25")), (725, 2));
    assert_eq!(parts(d("007")), (7, 0));
}

#[test]
fn parse_exponents() {
    assert_eq!(parts(d("1e3")), (1000, 0));
    assert_eq!(parts(d("1E+3")), (1000, 0));
    assert_eq!(parts(d("1.5E-2")), (15, 3));
    assert_eq!(parts(d("1.50e1")), (150, 1));
    assert_eq!(parts(d("-2.5e-1")), (-25, 2));
    assert_eq!(parts(d("0e999999999999")), (0, 0));
    assert_eq!(parts(d("0e-999999")), (0, MAX_SCALE));
    assert_eq!(parts(d("1e-38")), (1, 38));
}

#[test]
fn parse_rejects_malformed_and_out_of_range() {
    for bad in [
        "", "-", "+", ".5", "5.", "1.2.3", "1e", "1e+", "e3", " 1", "1 ", "1,5", "--1", "0x10", "NaN", "inf", "1_000",
        "1.5f", "١",
    ] {
        assert_eq!(Decimal::parse(bad), None, "{bad:?}");
    }
    // More than 128 bits, or more than 38 significant fractional digits.
    assert_eq!(Decimal::parse("1e39"), None);
    assert_eq!(Decimal::parse("1e-39"), None);
    assert_eq!(Decimal::parse(&"9".repeat(40)), None);
    // i128 extremes.
    assert_eq!(d("170141183460469231731687303715884105727").mantissa, i128::MAX);
    assert_eq!(d("-170141183460469231731687303715884105728").mantissa, i128::MIN);
    assert_eq!(Decimal::parse("170141183460469231731687303715884105728"), None);
}

#[test]
fn parse_drops_trailing_zeros_only_when_needed() {
    let long = format!("1.{}", "0".repeat(60));
    assert_eq!(parts(d(&long)), (1, 0));
    let tiny = format!("0.{}1{}", "0".repeat(37), "0".repeat(10));
    assert_eq!(parts(d(&tiny)), (1, 38));
}

#[test]
fn from_f64_uses_shortest_round_trip() {
    let f = |v: f64, frac: bool| Decimal::from_f64(v, frac).map(parts);
    assert_eq!(f(181.2, true), Some((1812, 1)));
    assert_eq!(f(1.0, true), Some((10, 1)));
    assert_eq!(f(1.0, false), Some((1, 0)));
    assert_eq!(f(1.5, true), Some((15, 1)));
    assert_eq!(f(0.1 + 0.2, true), Some((30000000000000004, 17)));
    assert_eq!(f(-0.05, true), Some((-5, 2)));
    assert_eq!(f(-0.0, true), Some((0, 1)));
    assert_eq!(f(1e20, false), Some((100_000_000_000_000_000_000, 0)));
    assert_eq!(f(1e3, true), Some((10000, 1)));
    assert_eq!(f(f64::NAN, true), None);
    assert_eq!(f(f64::INFINITY, false), None);
    assert_eq!(f(f64::NEG_INFINITY, false), None);
    assert_eq!(f(1e300, true), None);
    assert_eq!(f(5e-324, true), None);
}

#[test]
fn display_is_plain_text_at_own_scale() {
    for text in ["1.50", "-0.05", "5", "0.0", "0", "-12.340", "0.001", "-1"] {
        assert_eq!(d(text).to_string(), text);
    }
    assert_eq!(d("1e3").to_string(), "1000");
    assert_eq!(d("1.5E-2").to_string(), "0.015");
    assert_eq!(Decimal::new(i128::MIN, 38).to_string(), "-1.70141183460469231731687303715884105728");
    assert_eq!(format!("{:>6}", d("1.5")), "   1.5");
    // Out-of-contract scale: exponent form instead of a huge run of zeros.
    assert_eq!(Decimal::new(-123, 4_000_000_000).to_string(), "-123e-4000000000");
}

#[test]
fn precision_normalized_and_integers() {
    assert_eq!(d("1.587").precision(), 3);
    assert_eq!(d("1.58700").precision(), 5);
    assert_eq!(d("100").precision(), 0);
    assert_eq!(parts(d("1.500").normalized()), (15, 1));
    assert_eq!(parts(d("2.000").normalized()), (2, 0));
    assert_eq!(parts(d("100").normalized()), (100, 0));
    assert_eq!(parts(d("0.000").normalized()), (0, 0));
    assert_eq!(d("3.00").to_i64(), Some(3));
    assert_eq!(d("3.5").to_i64(), None);
    assert_eq!(d("1e30").to_i64(), None);
    assert!(d("0.00").is_zero());
    assert_eq!(Decimal::from_i64(i64::MIN).to_i64(), Some(i64::MIN));
}

#[test]
fn as_f64_is_nearest() {
    assert_eq!(d("181.2").as_f64(), 181.2);
    assert_eq!(d("-0.05").as_f64(), -0.05);
    assert_eq!(d("1e30").as_f64(), 1e30);
}

#[test]
fn add_sub_are_exact() {
    assert_eq!(d("1.5").checked_add(d("0.25")).unwrap().to_string(), "1.75");
    assert_eq!(d("0.1").checked_add(d("0.2")).unwrap().to_string(), "0.3");
    assert_eq!(d("1.50").checked_add(d("1")).unwrap().to_string(), "2.50");
    assert_eq!(d("1").checked_sub(d("1.000")).unwrap().to_string(), "0.000");
    assert_eq!(d("-3").checked_sub(d("0.5")).unwrap().to_string(), "-3.5");
    // SQL-on-FHIR fhirpath_numbers: 2 + 3, 3 - 2.
    assert_eq!(d("2").checked_add(d("3")).unwrap(), d("5"));
    assert_eq!(d("3").checked_sub(d("2")).unwrap(), d("1"));
    let max = Decimal::new(i128::MAX, 0);
    assert_eq!(max.checked_add(d("1")), None);
    assert_eq!(Decimal::new(i128::MIN, 0).checked_sub(d("1")), None);
    // Alignment overflows at scale 38 but not once trailing zeros go.
    let big = Decimal::new(10i128.pow(30), 0);
    let small = Decimal::new(5 * 10i128.pow(37), 38); // 0.5 written to 38 digits
    assert_eq!(big.checked_add(small).unwrap().to_string(), format!("1{}.5", "0".repeat(30)));
}

#[test]
fn mul_is_exact_and_limited_to_28_digits() {
    assert_eq!(d("1.5").checked_mul(d("1.50")).unwrap().to_string(), "2.250");
    assert_eq!(d("2").checked_mul(d("3")).unwrap().to_string(), "6");
    assert_eq!(d("-0.1").checked_mul(d("0.1")).unwrap().to_string(), "-0.01");
    // 30 digits of trailing zeros: trimmed back to 28.
    let a = Decimal::new(10i128.pow(15), 15); // 1.000000000000000
    assert_eq!(parts(a.checked_mul(a).unwrap()), (10i128.pow(28), 28));
    // Non-zero digits beyond 28: rounded half to even at 28.
    let e = d("0.000000000000001"); // 1e-15
    assert_eq!(parts(e.checked_mul(e).unwrap()), (0, 28));
    let x = d("0.000000000000015"); // 1.5e-14 × 1e-14 = 1.5e-28 → 2e-28 (half to even)
    assert_eq!(parts(x.checked_mul(d("0.00000000000001")).unwrap()), (2, 28));
    let y = d("0.000000000000025"); // 2.5e-28 → 2e-28
    assert_eq!(parts(y.checked_mul(d("0.00000000000001")).unwrap()), (2, 28));
    assert_eq!(Decimal::new(i128::MAX, 0).checked_mul(d("2")), None);
    // Overflows as written, fits once trailing zeros are dropped.
    let wide = Decimal::new(10i128.pow(37), 37);
    assert_eq!(wide.checked_mul(wide).unwrap(), d("1"));
}

#[test]
fn div_follows_fhirpath() {
    // SQL-on-FHIR fhirpath_numbers: 3 / 2 = 1.5.
    assert_eq!(d("3").checked_div(d("2")).unwrap().to_string(), "1.5");
    assert_eq!(d("6").checked_div(d("2")).unwrap().to_string(), "3");
    // FHIRPath spec: 5.5 / 0.5 → 11.
    assert_eq!(d("5.5").checked_div(d("0.5")).unwrap().to_string(), "11");
    assert_eq!(d("1").checked_div(d("3")).unwrap().to_string(), "0.3333333333333333333333333333");
    assert_eq!(d("2").checked_div(d("3")).unwrap().to_string(), "0.6666666666666666666666666667");
    assert_eq!(d("-2").checked_div(d("3")).unwrap().to_string(), "-0.6666666666666666666666666667");
    assert_eq!(d("1.000").checked_div(d("8")).unwrap().to_string(), "0.125");
    assert_eq!(d("0.0001").checked_div(d("0.01")).unwrap().to_string(), "0.01");
    assert_eq!(d("0").checked_div(d("7")).unwrap().to_string(), "0");
    assert_eq!(d("1").checked_div(d("0")), None);
    assert_eq!(d("1").checked_div(d("0.000")), None);
    // Half to even at digit 28: 1e-28 / 2 = 0.5e-28 → 0; 3e-28 / 2 = 1.5e-28 → 2e-28.
    let unit = Decimal::new(1, 28);
    assert_eq!(unit.checked_div(d("2")).unwrap(), d("0"));
    assert_eq!(Decimal::new(3, 28).checked_div(d("2")).unwrap(), Decimal::new(2, 28));
}

#[test]
fn div_uses_fewer_digits_for_large_quotients() {
    // 10^25 / 3 has 25 integer digits: 13 fractional digits still fit in 128 bits.
    let q = Decimal::new(10i128.pow(25), 0).checked_div(d("3")).unwrap();
    assert!((MIN_DIVISION_SCALE..MAX_RESULT_SCALE).contains(&q.scale), "{q}");
    assert!(q.to_string().starts_with("3333333333333333333333333.33333"));
    // 10^35 / 3 would leave fewer than 8 fractional digits.
    assert_eq!(Decimal::new(10i128.pow(35), 0).checked_div(d("3")), None);
    // Huge divisor and tiny dividend: long-division path.
    let tiny = Decimal::new(1, 38);
    let huge = Decimal::new(i128::MAX, 0);
    assert_eq!(tiny.checked_div(huge).unwrap(), d("0"));
    assert_eq!(huge.checked_div(huge).unwrap(), d("1"));
    assert_eq!(Decimal::new(i128::MIN, 0).checked_div(Decimal::new(i128::MIN, 0)).unwrap(), d("1"));
    let q = Decimal::new(i128::MAX - 1, 0).checked_div(Decimal::new(i128::MAX, 0)).unwrap();
    assert_eq!(q.to_string(), "1");
    let q = Decimal::new(i128::MAX / 2, 0).checked_div(Decimal::new(i128::MAX, 0)).unwrap();
    assert_eq!(q.to_string(), "0.5");
}

#[test]
fn rem_and_int_div_truncate() {
    // FHIRPath spec: 5 mod 2 → 1, 5.5 mod 0.7 → 0.6, 5 mod 0 → empty.
    assert_eq!(d("5").checked_rem(d("2")).unwrap().to_string(), "1");
    assert_eq!(d("5.5").checked_rem(d("0.7")).unwrap().to_string(), "0.6");
    assert_eq!(d("5").checked_rem(d("0")), None);
    assert_eq!(d("-5.5").checked_rem(d("0.7")).unwrap().to_string(), "-0.6");
    // FHIRPath spec: 5 div 2 → 2, 5.5 div 0.7 → 7, 5 div 0 → empty.
    assert_eq!(d("5").int_div(d("2")).unwrap().to_string(), "2");
    assert_eq!(d("5.5").int_div(d("0.7")).unwrap().to_string(), "7");
    assert_eq!(d("5").int_div(d("0")), None);
    assert_eq!(d("-7").int_div(d("2")).unwrap().to_string(), "-3");
    assert_eq!(d("7").int_div(d("-0.25")).unwrap().to_string(), "-28");
    assert_eq!(d("0.001").int_div(d("1000")).unwrap().to_string(), "0");
    assert_eq!(Decimal::new(i128::MIN, 0).int_div(d("-1")), None);
    assert_eq!(Decimal::new(i128::MIN, 0).int_div(d("1")).unwrap().mantissa, i128::MIN);
    assert_eq!(Decimal::new(1, 0).int_div(Decimal::new(1, 38)).unwrap(), d("1e38"));
    assert_eq!(Decimal::new(2, 0).int_div(Decimal::new(1, 38)), None);
}

#[test]
fn neg_abs() {
    assert_eq!(d("1.5").checked_neg().unwrap().to_string(), "-1.5");
    assert_eq!(d("-1.50").checked_abs().unwrap().to_string(), "1.50");
    assert_eq!(Decimal::new(i128::MIN, 0).checked_neg(), None);
    assert_eq!(Decimal::new(i128::MIN, 0).checked_abs(), None);
}

#[test]
fn eq_ord_hash_by_value() {
    assert_eq!(d("1.0"), d("1.00"));
    assert_eq!(d("1.0"), d("1"));
    assert_eq!(d("0.000"), d("-0"));
    assert_eq!(hash_of(d("1.0")), hash_of(d("1.00")));
    assert_eq!(hash_of(d("0.000")), hash_of(d("0")));
    assert_ne!(d("1.01"), d("1.1"));
    assert!(d("1.01") < d("1.1"));
    assert!(d("-1.1") < d("-1.01"));
    assert!(d("-0.5") < d("0"));
    assert!(d("2") > d("1.99999"));
    // SQL-on-FHIR fhirpath_numbers: 3 > 2, 3 >= 2, !(3 < 2), !(3 = 2).
    let (three, two) = (d("3"), d("2"));
    assert_eq!(three.cmp(&two), Ordering::Greater);
    assert!(three >= two);
    assert_ne!(three, two);
    // Scales so far apart that alignment overflows.
    let huge = Decimal::new(i128::MAX, 0);
    let tiny = Decimal::new(1, 38);
    assert_eq!(huge.cmp(&tiny), Ordering::Greater);
    assert_eq!(tiny.cmp(&huge), Ordering::Less);
    assert!(Decimal::new(-i128::MAX, 0) < Decimal::new(-1, 38));
    assert_eq!(Decimal::new(5, 0).cmp(&Decimal::new(5, 200)), Ordering::Greater);
    let mut v = [d("1.10"), d("-2"), d("1.1"), d("0.5"), d("1e1")];
    v.sort();
    let sorted: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    assert_eq!(sorted, ["-2", "0.5", "1.10", "1.1", "10"]);
}

#[test]
fn rescale_never_rounds() {
    assert_eq!(d("1.5").rescale(3), Ok(1500));
    assert_eq!(d("1.500").rescale(1), Ok(15));
    assert_eq!(d("-2").rescale(0), Ok(-2));
    assert_eq!(d("0.000000").rescale(0), Ok(0));
    let err = d("1.2345").rescale(2).unwrap_err();
    assert_eq!(err.to_string(), "value 1.2345 has more than 2 fractional digits");
    let err = Decimal::new(i128::MAX, 0).rescale(1).unwrap_err();
    assert_eq!(err.to_string(), format!("value {} does not fit a 128-bit decimal at scale 1", i128::MAX));
    assert!(d("1").rescale(39).is_err());
    assert_eq!(d("0").rescale(400), Ok(0));
}

#[test]
fn to_decimal128_checks_precision_and_type() {
    assert_eq!(d("123.45").to_decimal128(5, 2), Ok(12345));
    assert_eq!(d("-123.4").to_decimal128(5, 2), Ok(-12340));
    assert_eq!(d("999.99").to_decimal128(5, 2), Ok(99999));
    let err = d("1000").to_decimal128(5, 2).unwrap_err();
    assert_eq!(err.to_string(), "value 1000 does not fit DECIMAL(5,2)");
    let err = d("1.2345").to_decimal128(10, 2).unwrap_err();
    assert_eq!(err.to_string(), "value 1.2345 has more than 2 fractional digits");
    let big = d("1e30");
    assert_eq!(
        big.to_decimal128(38, 9).unwrap_err().to_string(),
        "value 1000000000000000000000000000000 does not fit DECIMAL(38,9)"
    );
    assert_eq!(d("1e28").to_decimal128(38, 9), Ok(10i128.pow(37)));
    // Negative scale: multiples of 100.
    assert_eq!(d("1500").to_decimal128(5, -2), Ok(15));
    assert_eq!(d("150").to_decimal128(5, -2).unwrap_err().to_string(), "value 150 is not a multiple of 10^2");
    for (p, s) in [(0u8, 0i8), (39, 2), (5, 6), (38, 39)] {
        let err = d("1").to_decimal128(p, s).unwrap_err().to_string();
        assert!(err.starts_with(&format!("DECIMAL({p},{s}) is not a valid")), "{err}");
    }
}

/// The worked examples and the official FHIRPath test cases (LowBoundary*/HighBoundary*)
/// from <http://hl7.org/fhirpath/N1/#lowboundaryprecision-integer-decimal--date--datetime--time>.
#[test]
fn boundaries_match_the_fhirpath_examples() {
    let low = |v: &str, p: Option<u32>| d(v).low_boundary(p).map(|x| x.to_string());
    let high = |v: &str, p: Option<u32>| d(v).high_boundary(p).map(|x| x.to_string());
    let s = |x: &str| Some(x.to_string());
    assert_eq!(low("1.587", None), s("1.58650000"));
    assert_eq!(low("1.587", Some(6)), s("1.586500"));
    assert_eq!(low("1.587", Some(2)), s("1.58"));
    assert_eq!(low("1.587", Some(0)), s("1"));
    assert_eq!(low("-1.587", None), s("-1.58750000"));
    assert_eq!(low("-1.587", Some(6)), s("-1.587500"));
    assert_eq!(low("-1.587", Some(2)), s("-1.59"));
    assert_eq!(low("-1.587", Some(0)), s("-2"));
    assert_eq!(low("1", None), s("0.50000000"));
    assert_eq!(low("1", Some(0)), s("0"));
    assert_eq!(low("1", Some(5)), s("0.50000"));
    assert_eq!(low("12.587", Some(2)), s("12.58"));
    assert_eq!(low("12.500", Some(4)), s("12.4995"));
    assert_eq!(low("120", Some(2)), s("119.50"));
    assert_eq!(low("-120", Some(2)), s("-120.50"));
    assert_eq!(low("0.0034", Some(1)), s("0.0"));
    // The suite expects "-0.0" here, which is above the value; floor gives the real bound.
    assert_eq!(low("-0.0034", Some(1)), s("-0.1"));
    assert_eq!(low("1.587", Some(32)), None);
    assert_eq!(low("1.587", Some(39)), None);

    assert_eq!(high("1.587", None), s("1.58750000"));
    assert_eq!(high("1.587", Some(6)), s("1.587500"));
    assert_eq!(high("1.587", Some(2)), s("1.59"));
    assert_eq!(high("1.587", Some(0)), s("2"));
    assert_eq!(high("-1.587", None), s("-1.58650000"));
    assert_eq!(high("-1.587", Some(2)), s("-1.58"));
    assert_eq!(high("-1.587", Some(0)), s("-1"));
    assert_eq!(high("1", None), s("1.50000000"));
    assert_eq!(high("1", Some(0)), s("2"));
    assert_eq!(high("120", Some(2)), s("120.50"));
    assert_eq!(high("-120", Some(2)), s("-119.50"));
    assert_eq!(high("0.0034", Some(1)), s("0.1"));
    assert_eq!(high("-0.0034", Some(1)), s("0.0"));
    assert_eq!(high("1.587", Some(29)), None);
}

/// `fn_boundary.json` in the SQL-on-FHIR v2 suite: valueQuantity 1.0 → 0.95 / 1.05.
#[test]
fn boundaries_match_the_sql_on_fhir_suite() {
    assert_eq!(d("1.0").low_boundary(None).unwrap().to_string(), "0.95000000");
    assert_eq!(d("1.0").high_boundary(None).unwrap().to_string(), "1.05000000");
    assert_eq!(d("1.0").low_boundary(None).unwrap(), d("0.95"));
    assert_eq!(d("-1.0").low_boundary(None).unwrap().to_string(), "-1.05000000");
    assert_eq!(d("-1.0").high_boundary(None).unwrap().to_string(), "-0.95000000");
}

#[test]
fn boundary_default_precision_grows_with_scale() {
    let v = d("1.123456789");
    assert_eq!(v.low_boundary(None).unwrap().to_string(), "1.1234567885");
    assert_eq!(v.high_boundary(None).unwrap().to_string(), "1.1234567895");
    assert_eq!(v.low_boundary(Some(8)).unwrap().to_string(), "1.12345678");
    // At the 28-digit cap the exact boundary no longer fits and is rounded outward.
    let w = Decimal::new(123, 28);
    assert_eq!(w.low_boundary(None).unwrap(), Decimal::new(122, 28));
    assert_eq!(w.high_boundary(None).unwrap(), Decimal::new(124, 28));
    let far = Decimal::new(1, 38);
    assert_eq!(far.low_boundary(Some(0)).unwrap().to_string(), "0");
    assert_eq!(far.high_boundary(Some(0)).unwrap().to_string(), "1");
    assert_eq!(far.checked_neg().unwrap().low_boundary(Some(0)).unwrap().to_string(), "-1");
    assert_eq!(Decimal::new(i128::MAX, 0).low_boundary(None), None);
}

/// Deterministic xorshift so the property tests need no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn decimal(&mut self) -> Decimal {
        let mantissa = match self.below(4) {
            0 => (self.next() as i64 % 1000) as i128,
            1 => (u128::from(self.next()) << 64 | u128::from(self.next())) as i128,
            2 => [i128::MIN, i128::MAX, 0, 1, -1][self.below(5) as usize],
            _ => self.next() as i64 as i128,
        };
        Decimal::new(mantissa, self.below(45) as u32)
    }
}

#[test]
fn random_text_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"0123456789+-.eE \x00\xff9";
    for _ in 0..20_000 {
        let len = rng.below(24) as usize;
        let bytes: Vec<u8> =
            (0..len)
                .map(|_| {
                    if rng.below(4) == 0 {
                        rng.next() as u8
                    } else {
                        alphabet[rng.below(alphabet.len() as u64) as usize]
                    }
                })
                .collect();
        let text = String::from_utf8_lossy(&bytes);
        if let Some(x) = Decimal::parse(&text) {
            // Whatever parses writes back as a number that parses to the same value.
            let back = Decimal::parse(&x.to_string()).expect("display re-parses");
            assert_eq!(back, x, "{text:?}");
            assert_eq!((back.mantissa, back.scale), (x.mantissa, x.scale), "{text:?}");
        }
    }
}

#[test]
fn random_arithmetic_never_panics_and_agrees() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    for _ in 0..20_000 {
        let (a, b) = (rng.decimal(), rng.decimal());
        let sum = a.checked_add(b);
        let diff = a.checked_sub(b);
        let _ = a.checked_mul(b);
        let q = a.checked_div(b);
        let _ = a.checked_rem(b);
        let _ = a.int_div(b);
        let _ = a.low_boundary(Some(rng.below(30) as u32));
        let _ = a.high_boundary(None);
        let _ = a.rescale(rng.below(40) as u32);
        let _ = a.to_decimal128(rng.below(40) as u8, rng.below(80) as i8 - 40);
        let _ = (a.to_string(), a.as_f64(), a.normalized(), a.to_i64(), a.cmp(&b));
        // (a + b) - b == a whenever it fits; a - b has the sign of a.cmp(b).
        if let Some(back) = sum.and_then(|s| s.checked_sub(b)) {
            assert_eq!(back, a, "{a:?} + {b:?}");
        }
        if let Some(diff) = diff {
            assert_eq!(diff.cmp(&Decimal::ZERO), a.cmp(&b), "{a:?} - {b:?}");
        }
        assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        // The same value written with one more digit is equal and hashes the same.
        if let (Some(m), true) = (a.mantissa.checked_mul(10), a.scale < MAX_SCALE) {
            let wider = Decimal::new(m, a.scale + 1);
            assert_eq!(wider, a);
            assert_eq!(hash_of(wider), hash_of(a));
        }
        if let (Some(q), false) = (q, b.is_zero()) {
            assert!(q.scale <= MAX_RESULT_SCALE);
        }
    }
}

#[test]
fn from_f64_fast_path_agrees_with_formatting() {
    // Values as JSON numbers arrive: decimal text parsed to f64. The fast path must give the
    // same decimal as formatting the f64 would.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..50_000 {
        let digits = (next() % 12) as u32 + 1;
        let scale = (next() % 10) as u32;
        let mantissa = (next() % 10u64.pow(digits)) as i64 * if next() % 2 == 0 { 1 } else { -1 };
        let text = Decimal::new(mantissa as i128, scale).to_string();
        let value: f64 = text.parse().unwrap();
        let via_format = Decimal::parse(&format!("{value:e}")).unwrap();
        let got = Decimal::from_f64(value, false).unwrap();
        assert_eq!((got.mantissa, got.scale), (via_format.mantissa, via_format.scale), "{text}");
    }
    for value in [0.1 + 0.2, 1e-12, 123_456_789.123_456_79, 1e20, -0.0, 181.2] {
        let via_format = Decimal::parse(&format!("{value:e}")).unwrap();
        let got = Decimal::from_f64(value, false).unwrap();
        assert_eq!((got.mantissa, got.scale), (via_format.mantissa, via_format.scale), "{value}");
    }
}
