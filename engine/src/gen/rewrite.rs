//! Emitting a generated patient from a template patient: ids, references, dates and
//! quantities rewritten, everything else copied.
//!
//! All randomness comes from [`splitmix64`] keyed by the seed and the generated patient's
//! number, so a patient's bytes depend on nothing else (not on threads or block sizes).

use std::io::Write;

use chrono::{Datelike, NaiveDate};

use super::template::{CompiledLine, PatientTemplate, SlotKind};

/// Largest backwards date shift, in days (about four years). Shifts only go back, so that
/// generated data is never dated after the template.
const MAX_SHIFT_DAYS: u64 = 1461;

/// Largest relative change of a quantity value (3 %).
const JITTER: f64 = 0.03;

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit mixing function whose outputs for
/// consecutive inputs are well spread; used as a keyed hash and as a tiny PRNG.
#[must_use]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of several words, order-sensitive.
#[must_use]
pub fn hash(words: &[u64]) -> u64 {
    words.iter().fold(0x5EED, |h, w| splitmix64(h ^ splitmix64(*w)))
}

/// A uniform number in `[0, 1)` from a hash.
#[must_use]
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Domain tags, so that the different uses of a patient's key draw independent numbers.
const TAG_ID: u64 = 1;
const TAG_SHIFT: u64 = 2;
const TAG_JITTER: u64 = 3;

/// The rewriting state of one generated patient.
#[derive(Debug)]
pub struct PatientRewrite {
    key: u64,
    /// The patient's ids, `Id(n)` slot `n` at `36 * n`.
    ids: Vec<u8>,
    /// Days added to every date (≤ 0).
    shift_days: i32,
    /// PRNG state for quantity jitter.
    jitter: u64,
}

impl PatientRewrite {
    /// The rewrite of generated patient `k` (numbered from 0) for `seed`, from `template`.
    #[must_use]
    pub fn new(seed: u64, k: u64, template: &PatientTemplate) -> PatientRewrite {
        let key = hash(&[seed, k]);
        let mut ids = Vec::with_capacity(36 * template.id_count as usize);
        for n in 0..template.id_count {
            push_id(&mut ids, key, n);
        }
        let shift_days = -((hash(&[key, TAG_SHIFT]) % (MAX_SHIFT_DAYS + 1)) as i32);
        PatientRewrite { key, ids, shift_days, jitter: hash(&[key, TAG_JITTER]) }
    }

    /// The generated id of template id number `n` of generated patient `k` for `seed`, alone:
    /// what [`PatientRewrite::new`] would give, without drawing the patient's other ids (the
    /// Groups name every generated Patient, one thread, before any patient is generated).
    #[must_use]
    pub fn id_alone(seed: u64, k: u64, n: u32) -> String {
        let mut id = Vec::with_capacity(36);
        push_id(&mut id, hash(&[seed, k]), n);
        String::from_utf8(id).expect("ids are ASCII")
    }

    /// The generated id of template id number `n`.
    #[must_use]
    pub fn id(&self, n: u32) -> &str {
        let at = 36 * n as usize;
        std::str::from_utf8(&self.ids[at..at + 36]).expect("ids are ASCII")
    }

    /// The number of days added to every date (zero or negative).
    #[must_use]
    pub fn shift_days(&self) -> i32 {
        self.shift_days
    }

    /// A hash unique to this patient and `words`, for decisions such as defects.
    #[must_use]
    pub fn hash(&self, words: &[u64]) -> u64 {
        hash(&[self.key, hash(words)])
    }

    /// Appends `line`, rewritten, to `out` (without a newline).
    pub fn emit(&mut self, line: &CompiledLine, out: &mut Vec<u8>) {
        let mut pos = 0;
        for slot in &line.slots {
            out.extend_from_slice(&line.text[pos..slot.start as usize]);
            match slot.kind {
                SlotKind::Id(n) => {
                    let at = 36 * n as usize;
                    out.extend_from_slice(&self.ids[at..at + 36]);
                }
                SlotKind::Date(days) => push_date(out, days + self.shift_days),
                SlotKind::PartialDate { days, len } => {
                    // The shifted first day, cut to the template's precision: the order
                    // with the patient's other dates is kept.
                    let at = out.len();
                    push_date(out, days + self.shift_days);
                    out.truncate(at + usize::from(len));
                }
                SlotKind::Number { value, decimals } => {
                    self.jitter = splitmix64(self.jitter);
                    let factor = 1.0 + JITTER * (2.0 * unit(self.jitter) - 1.0);
                    let _ = write!(out, "{:.*}", usize::from(decimals), value * factor);
                }
            }
            pos = slot.end as usize;
        }
        out.extend_from_slice(&line.text[pos..]);
    }
}

/// Appends the id number `n` of the patient with `key`.
fn push_id(out: &mut Vec<u8>, key: u64, n: u32) {
    push_uuid(out, hash(&[key, TAG_ID, u64::from(n)]));
}

/// Appends a version-4-shaped UUID made of the 128 bits `splitmix64` draws from `h`.
pub fn push_uuid(out: &mut Vec<u8>, h: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (hi, lo) = (splitmix64(h), splitmix64(h ^ 0xA5A5_A5A5_A5A5_A5A5));
    // Version 4, variant 10xx: the bits a UUID parser checks.
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    let mut nibbles = (0..16).rev().map(|i| (hi >> (4 * i)) & 15).chain((0..16).rev().map(|i| (lo >> (4 * i)) & 15));
    for group in [8, 4, 4, 4, 12] {
        if group != 8 {
            out.push(b'-');
        }
        for _ in 0..group {
            out.push(HEX[nibbles.next().unwrap_or(0) as usize]);
        }
    }
}

/// Appends `YYYY-MM-DD` for a day count from the Common Era, clamped to the years FHIR
/// allows (1 to 9999). Clamped, not replaced by some fixed day: a template's "0001-01-01"
/// (a placeholder for an unknown date) must stay before the patient's other dates.
fn push_date(out: &mut Vec<u8>, days: i32) {
    let first = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or_default();
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or_default();
    let date = NaiveDate::from_num_days_from_ce_opt(days).map_or(first, |d| d.clamp(first, last));
    let (y, m, d) = (date.year() as u32, date.month(), date.day());
    let digit = |n: u32| b'0' + (n % 10) as u8;
    out.extend_from_slice(&[
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(d / 10),
        digit(d),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_as_iso_dates() {
        let mut out = Vec::new();
        push_date(&mut out, NaiveDate::from_ymd_opt(2011, 2, 2).unwrap().num_days_from_ce() - 33);
        assert_eq!(out, b"2010-12-31");
    }

    #[test]
    fn dates_shifted_before_year_one_stay_on_its_first_day() {
        let mut out = Vec::new();
        push_date(&mut out, NaiveDate::from_ymd_opt(1, 1, 1).unwrap().num_days_from_ce() - 400);
        assert_eq!(out, b"0001-01-01");
    }

    #[test]
    fn uuids_are_shaped_like_version_4() {
        let mut out = Vec::new();
        push_uuid(&mut out, 42);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.len(), 36);
        assert_eq!(text.as_bytes()[14], b'4');
        assert!(matches!(text.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
    }
}
