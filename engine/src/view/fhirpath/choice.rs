//! Which element names are choice elements (`value[x]`) in FHIR R4.
//!
//! In JSON a choice element appears under its name plus a type suffix (`valueQuantity`,
//! `onsetDateTime`), and FHIRPath reaches it by the bare name (`Observation.value`). The
//! evaluator has no model of each resource's elements, so it falls back from a missing name
//! to `name` + a type suffix. Doing that for *every* name finds keys that are not choices:
//! Coverage's `subscriber` (a Reference) would find `subscriberId` (a string) when the
//! resource has no subscriber, and ExplanationOfBenefit's `preAuthRef` would find
//! `preAuthRefPeriod`. So the fallback is kept to the names below: the last segment of every
//! element of R4 resources and data types that is declared `[x]` (from the R4 specification,
//! `profiles-resources.json` and `profiles-types.json`, elements whose path ends in `[x]`).
//! A name that is a choice somewhere and a plain element elsewhere (`value`: Observation's
//! choice, Identifier's string) is harmless: the exact key is always tried first, and a
//! plain element has no typed siblings.

/// The base names of R4's choice elements, sorted (for the binary search).
const CHOICE_ELEMENTS: &[&str] = &[
    "abatement",
    "additive",
    "age",
    "allowed",
    "amount",
    "answer",
    "asNeeded",
    "author",
    "born",
    "bounds",
    "characteristic",
    "chargeItem",
    "code",
    "collected",
    "content",
    "created",
    "date",
    "deceased",
    "defaultValue",
    "definingSubstance",
    "definition",
    "detail",
    "diagnosis",
    "dose",
    "doseNumber",
    "due",
    "effective",
    "entity",
    "event",
    "example",
    "fastingStatus",
    "fixed",
    "identified",
    "indication",
    "item",
    "legallyBinding",
    "location",
    "manufacturer",
    "maxValue",
    "medication",
    "minValue",
    "minimumVolume",
    "module",
    "multipleBirth",
    "name",
    "occurred",
    "occurrence",
    "offset",
    "onset",
    "participantEffective",
    "pattern",
    "performed",
    "probability",
    "procedure",
    "product",
    "quantity",
    "rate",
    "reported",
    "scheduled",
    "seriesDoses",
    "serviced",
    "source",
    "start",
    "statusReason",
    "studyEffective",
    "subject",
    "substance",
    "target",
    "time",
    "timing",
    "topic",
    "used",
    "value",
    "when",
];

/// Whether `name` is the base name of a choice element somewhere in R4, so that a missing
/// `name` may be found as `name` + a type suffix.
#[must_use]
pub fn is_choice_element(name: &str) -> bool {
    CHOICE_ELEMENTS.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_distinct() {
        assert!(CHOICE_ELEMENTS.windows(2).all(|w| w[0] < w[1]), "sort CHOICE_ELEMENTS (byte order)");
    }

    #[test]
    fn choice_elements_and_plain_ones() {
        for name in ["value", "onset", "deceased", "effective", "multipleBirth", "medication", "performed"] {
            assert!(is_choice_element(name), "{name}");
        }
        for name in ["subscriber", "preAuthRef", "status", "valueSet", "values", ""] {
            assert!(!is_choice_element(name), "{name}");
        }
    }
}
