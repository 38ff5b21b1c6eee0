//! Code systems: the aliases and OIDs of each system mapped to its canonical URI, and the
//! code normalisation each system's codes get before lookup (`mappings/systems.json`).
//!
//! Which system uses which code form is data; the forms themselves (plain, ICD-10, NDC)
//! are the only code here.

use std::collections::HashMap;

use serde::Deserialize;

use super::MappingError;

/// Index of a system in a [`Systems`] registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SystemId(pub(crate) u16);

/// How a system's codes are normalised before lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeForm {
    /// Surrounding white space removed.
    Plain,
    /// ICD-10 and ICD-10-CM: upper case without the dot (`e11.9` → `E119`), the form of
    /// claims, the CMS code lists and the HCC tables.
    Icd10,
    /// NDC: the 11-digit form. Hyphenated NDC-10 (4-4-2, 5-3-2, 5-4-1) gets its zero in
    /// the short segment; hyphenated NDC-11 loses its hyphens. An unhyphenated 10-digit
    /// code is ambiguous and is kept as it is.
    Ndc,
}

/// One code system.
#[derive(Debug, Clone)]
pub struct SystemDef {
    /// The canonical URI.
    pub canonical: String,
    /// A human name.
    pub name: String,
    /// How codes are normalised.
    pub form: CodeForm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemsFile {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    systems: Vec<SystemEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemEntry {
    canonical: String,
    name: String,
    code_form: CodeForm,
    #[serde(default)]
    aliases: Vec<String>,
}

/// The registry of known code systems. Lookups ignore case and a trailing slash.
#[derive(Debug, Clone, Default)]
pub struct Systems {
    defs: Vec<SystemDef>,
    by_alias: HashMap<Box<str>, SystemId>,
}

impl Systems {
    /// Reads `systems.json`; `origin` names the file in errors.
    ///
    /// # Errors
    ///
    /// Invalid JSON, an unknown code form, or one alias given to two systems.
    pub fn from_json(text: &[u8], origin: &str) -> Result<Systems, MappingError> {
        let file: SystemsFile = serde_json::from_slice(text).map_err(|e| MappingError::at(origin, 0, e))?;
        let mut systems = Systems::default();
        for entry in file.systems {
            if systems.resolve(&entry.canonical).is_some() {
                return Err(MappingError::at(origin, 0, format!("system {} is listed twice", entry.canonical)));
            }
            let id = systems.push(SystemDef { canonical: entry.canonical, name: entry.name, form: entry.code_form });
            for alias in entry.aliases {
                if let Some(other) = systems.resolve(&alias).filter(|o| *o != id) {
                    let other = &systems.defs[usize::from(other.0)].canonical;
                    return Err(MappingError::at(
                        origin,
                        0,
                        format!("alias {alias:?} names both {other} and {}", systems.canonical(id)),
                    ));
                }
                systems.by_alias.insert(fold(&alias).into(), id);
            }
        }
        Ok(systems)
    }

    fn push(&mut self, def: SystemDef) -> SystemId {
        let id = SystemId(u16::try_from(self.defs.len()).expect("fewer than 65536 code systems"));
        self.by_alias.insert(fold(&def.canonical).into(), id);
        self.defs.push(def);
        id
    }

    /// The system `raw` names (a canonical URI or an alias), if known.
    #[must_use]
    pub fn resolve(&self, raw: &str) -> Option<SystemId> {
        let trimmed = raw.trim().trim_end_matches('/');
        if let Some(id) = self.by_alias.get(trimmed) {
            return Some(*id);
        }
        if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.by_alias.get(fold(trimmed).as_str()).copied();
        }
        None
    }

    /// The system `raw` names, registering it (plain codes, `raw` as canonical URI) when
    /// unknown: tables may map codes of systems `systems.json` does not list.
    pub fn intern(&mut self, raw: &str) -> SystemId {
        match self.resolve(raw) {
            Some(id) => id,
            None => {
                let canonical = raw.trim().trim_end_matches('/').to_owned();
                self.push(SystemDef { name: canonical.clone(), canonical, form: CodeForm::Plain })
            }
        }
    }

    /// The canonical URI of `id`.
    #[must_use]
    pub fn canonical(&self, id: SystemId) -> &str {
        &self.defs[usize::from(id.0)].canonical
    }

    /// Every system, in registry order.
    #[must_use]
    pub fn defs(&self) -> &[SystemDef] {
        &self.defs
    }

    /// `code` of system `id` in normal form: borrowed when already normal, else written to
    /// `scratch` (reused by the caller, so no allocation per code).
    #[must_use]
    pub fn normalise<'a>(&self, id: SystemId, code: &'a str, scratch: &'a mut String) -> &'a str {
        normalise_code(self.defs[usize::from(id.0)].form, code, scratch)
    }
}

/// Lower case, without surrounding space or a trailing slash.
fn fold(system: &str) -> String {
    system.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `code` in the normal form of `form`; see [`CodeForm`].
#[must_use]
pub fn normalise_code<'a>(form: CodeForm, code: &'a str, scratch: &'a mut String) -> &'a str {
    let code = code.trim();
    match form {
        CodeForm::Plain => code,
        CodeForm::Icd10 => {
            if !code.bytes().any(|b| b == b'.' || b.is_ascii_lowercase()) {
                return code;
            }
            scratch.clear();
            scratch.extend(code.chars().filter(|c| *c != '.').map(|c| c.to_ascii_uppercase()));
            scratch
        }
        CodeForm::Ndc => {
            if !code.contains('-') {
                return code;
            }
            let mut parts = code.split('-');
            let (Some(a), Some(b), Some(c), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                return code;
            };
            if !(a.bytes().chain(b.bytes()).chain(c.bytes())).all(|d| d.is_ascii_digit()) {
                return code;
            }
            let padded = match (a.len(), b.len(), c.len()) {
                (5, 4, 2) => [a, "", b, "", c],
                (4, 4, 2) => ["0", a, b, "", c],
                (5, 3, 2) => [a, "0", b, "", c],
                (5, 4, 1) => [a, "", b, "0", c],
                _ => return code,
            };
            scratch.clear();
            padded.iter().for_each(|s| scratch.push_str(s));
            scratch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(form: CodeForm, code: &str) -> String {
        let mut scratch = String::new();
        normalise_code(form, code, &mut scratch).to_owned()
    }

    #[test]
    fn icd10_codes_lose_the_dot_and_gain_upper_case() {
        assert_eq!(norm(CodeForm::Icd10, "E11.9"), "E119");
        assert_eq!(norm(CodeForm::Icd10, "e119"), "E119");
        assert_eq!(norm(CodeForm::Icd10, " S06.9XAA "), "S069XAA");
        assert_eq!(norm(CodeForm::Icd10, "I10"), "I10");
    }

    #[test]
    fn ndc_10_hyphenated_forms_become_ndc_11() {
        assert_eq!(norm(CodeForm::Ndc, "1234-5678-90"), "01234567890");
        assert_eq!(norm(CodeForm::Ndc, "12345-678-90"), "12345067890");
        assert_eq!(norm(CodeForm::Ndc, "12345-6789-0"), "12345678900");
        assert_eq!(norm(CodeForm::Ndc, "12345-6789-01"), "12345678901");
        assert_eq!(norm(CodeForm::Ndc, "12345678901"), "12345678901");
        // Ambiguous or malformed codes stay as they are (and simply do not match).
        assert_eq!(norm(CodeForm::Ndc, "1234567890"), "1234567890");
        assert_eq!(norm(CodeForm::Ndc, "12-34"), "12-34");
        assert_eq!(norm(CodeForm::Ndc, "1234a-678-90"), "1234a-678-90");
    }

    #[test]
    fn aliases_resolve_ignoring_case_and_trailing_slash() {
        let json = br#"{"systems": [
            {"canonical": "http://snomed.info/sct", "name": "SNOMED CT", "code_form": "plain",
             "aliases": ["urn:oid:2.16.840.1.113883.6.96", "SNOMED", "SCT"]}]}"#;
        let systems = Systems::from_json(json, "systems.json").unwrap();
        let sct = systems.resolve("http://snomed.info/sct").unwrap();
        for alias in ["urn:oid:2.16.840.1.113883.6.96", "SNOMED", "sct", "Sct", "http://snomed.info/sct/", " SNOMED "] {
            assert_eq!(systems.resolve(alias), Some(sct), "{alias}");
        }
        assert_eq!(systems.resolve("http://loinc.org"), None);
    }

    #[test]
    fn an_alias_of_two_systems_is_an_error() {
        let json = br#"{"systems": [
            {"canonical": "http://a", "name": "A", "code_form": "plain", "aliases": ["X"]},
            {"canonical": "http://b", "name": "B", "code_form": "plain", "aliases": ["x"]}]}"#;
        let err = Systems::from_json(json, "systems.json").unwrap_err().to_string();
        assert!(err.contains("systems.json") && err.contains("names both"), "{err}");
        let bad = br#"{"systems": [{"canonical": "http://a", "name": "A", "code_form": "roman"}]}"#;
        assert!(Systems::from_json(bad, "s.json").unwrap_err().to_string().contains("s.json"));
    }

    #[test]
    fn unknown_systems_are_interned_as_plain() {
        let mut systems = Systems::default();
        let a = systems.intern("http://example.org/local");
        assert_eq!(systems.intern("http://example.org/local/"), a);
        assert_eq!(systems.canonical(a), "http://example.org/local");
    }
}
