//! FHIR R4 JSON sources: ConceptMap (`group[].element[].target[]`) as crosswalk rows, and
//! ValueSet expansions (`expansion.contains[]`, nested `contains` included) as value set
//! members.
//!
//! A ConceptMap element without targets, or a target with equivalence `unmatched`, is an
//! unmatched row; its reason is the target's `comment` (or "no target in ConceptMap `<url>`").
//! R5's `not-related-to` with a target code is read as R4's `disjoint` ("not this code"),
//! which the index never uses as a mapping. Every target needs an equivalence (R4) or a
//! relationship (R5), and `group`, `element`, `target` and `contains` must be arrays: read
//! as empty, a misshapen one would silently drop rows.
//! `group.unmapped` (what to do with codes the map does not list) is not applied: such codes
//! are simply unmapped. A ValueSet without an expansion is read from
//! `compose.include[].concept[]`, less the enumerated `compose.exclude[]` (an exclude with a
//! system alone drops that system's codes); an include of a whole system, or one with a
//! `filter` or `valueSet`, needs an expansion and is an error, as is an expansion with fewer
//! codes than its `total` (a paged one).

use serde_json::Value;

use super::index::Relationship;
use super::tables::MapRow;
use super::MappingError;

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// The array at `key` (empty when absent). Anything else there is an error naming `at`:
/// read as empty, a `"target": {...}` would silently turn a mapped element into an
/// unmatched one, and a `"contains": {...}` would empty a value set.
fn array_at<'a>(v: &'a Value, key: &str, file: &str, at: &str) -> Result<&'a [Value], MappingError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => {
            let kind = match other {
                Value::Object(_) => "an object",
                Value::String(_) => "a string",
                _ => "a scalar",
            };
            let place = if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") };
            Err(MappingError::at(file, 0, format!("{place} must be an array, found {kind}")))
        }
    }
}

fn parse_resource(bytes: &[u8], file: &str, resource_type: &str) -> Result<Value, MappingError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| MappingError::at(file, e.line() as u64, e))?;
    match str_at(&value, "resourceType") {
        Some(t) if t == resource_type => Ok(value),
        other => Err(MappingError::at(file, 0, format!("expected a {resource_type}, found resourceType {other:?}"))),
    }
}

/// Reads a ConceptMap's rows. `line` of a row is its element's position (1-based) across
/// groups, for errors.
///
/// # Errors
///
/// Not JSON, not a ConceptMap, a group without source or target system, an element without
/// a code, an unknown equivalence.
pub fn read_concept_map(bytes: &[u8], file: &str) -> Result<Vec<MapRow>, MappingError> {
    let map = parse_resource(bytes, file, "ConceptMap")?;
    let url = str_at(&map, "url").unwrap_or("(no url)");
    let mut rows = Vec::new();
    let mut position = 0;
    for (g, group) in array_at(&map, "group", file, "")?.iter().enumerate() {
        let (Some(source), Some(target)) = (str_at(group, "source"), str_at(group, "target")) else {
            return Err(MappingError::at(file, 0, format!("group[{g}]: source and target systems are required")));
        };
        for (e, element) in array_at(group, "element", file, &format!("group[{g}]"))?.iter().enumerate() {
            position += 1;
            let at = |m: String| MappingError::at(file, 0, format!("group[{g}].element[{e}]: {m}"));
            let code = str_at(element, "code").ok_or_else(|| at("no code".into()))?;
            let base = MapRow {
                line: position,
                source_system: source.to_owned(),
                source_code: code.to_owned(),
                source_display: str_at(element, "display").map(str::to_owned),
                target_system: target.to_owned(),
                target_code: None,
                target_display: None,
                relationship: Relationship::Unmatched,
                note: Some(format!("no target in ConceptMap {url}")),
            };
            let targets = array_at(element, "target", file, &format!("group[{g}].element[{e}]"))?;
            if targets.is_empty() {
                rows.push(base);
                continue;
            }
            for (t, target) in targets.iter().enumerate() {
                // Both are required (R4 equivalence, R5 relationship): a misspelt key must
                // not quietly make every target "equivalent".
                let code = str_at(target, "equivalence")
                    .or_else(|| str_at(target, "relationship"))
                    .ok_or_else(|| at(format!("target[{t}]: no equivalence (R4) or relationship (R5)")))?;
                let relationship = Relationship::parse_for(code, str_at(target, "code").is_some())
                    .ok_or_else(|| at(format!("target[{t}]: unknown equivalence {code:?}")))?;
                let row = MapRow {
                    target_code: str_at(target, "code").map(str::to_owned),
                    target_display: str_at(target, "display").map(str::to_owned),
                    relationship,
                    note: str_at(target, "comment")
                        .map(str::to_owned)
                        .or(base.note.clone().filter(|_| relationship == Relationship::Unmatched)),
                    ..base.clone()
                };
                row.validate(file).map_err(|e| at(format!("target[{t}]: {}", e.message)))?;
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// One code of a value set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueSetMember {
    /// The value set's canonical URL.
    pub valueset_url: String,
    /// Its version.
    pub valueset_version: Option<String>,
    /// Its name (title, else name).
    pub valueset_name: Option<String>,
    /// The code's system.
    pub system: String,
    /// The code.
    pub code: String,
    /// Its display.
    pub display: Option<String>,
}

/// Reads a ValueSet's members from its expansion (or its enumerated compose).
///
/// # Errors
///
/// Not JSON, not a ValueSet, no url, a member without system or code, a compose that needs
/// an expansion.
pub fn read_value_set(bytes: &[u8], file: &str) -> Result<Vec<ValueSetMember>, MappingError> {
    let vs = parse_resource(bytes, file, "ValueSet")?;
    let url = str_at(&vs, "url").ok_or_else(|| MappingError::at(file, 0, "the ValueSet has no url"))?;
    let member = |system: Option<&str>, code: Option<&str>, display: Option<&str>, at: &str| {
        let (Some(system), Some(code)) = (system, code) else {
            return Err(MappingError::at(file, 0, format!("{at}: system and code are required")));
        };
        Ok(ValueSetMember {
            valueset_url: url.to_owned(),
            valueset_version: str_at(&vs, "version").map(str::to_owned),
            valueset_name: str_at(&vs, "title").or_else(|| str_at(&vs, "name")).map(str::to_owned),
            system: system.to_owned(),
            code: code.to_owned(),
            display: display.map(str::to_owned),
        })
    };
    let mut members = Vec::new();
    if let Some(expansion) = vs.get("expansion") {
        let mut stack: Vec<(String, &Value)> = array_at(expansion, "contains", file, "expansion")?
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("expansion.contains[{i}]"), c))
            .collect();
        stack.reverse();
        let mut groups = 0;
        while let Some((at, c)) = stack.pop() {
            // Abstract entries group their children and are not members themselves.
            let is_abstract = c.get("abstract").and_then(Value::as_bool) == Some(true);
            if !is_abstract && (c.get("code").is_some() || c.get("contains").is_none()) {
                members.push(member(str_at(c, "system"), str_at(c, "code"), str_at(c, "display"), &at)?);
            } else {
                groups += 1;
            }
            let children = array_at(c, "contains", file, &at)?;
            stack.extend(children.iter().enumerate().rev().map(|(i, child)| (format!("{at}.contains[{i}]"), child)));
        }
        // A paged or truncated expansion (a server's first page) would silently lose codes.
        if let Some(total) = expansion.get("total").and_then(Value::as_u64) {
            if total > (members.len() + groups) as u64 {
                return Err(MappingError::at(
                    file,
                    0,
                    format!(
                        "the expansion lists {} codes but its total is {total}: expand it completely",
                        members.len()
                    ),
                ));
            }
        }
        return Ok(members);
    }
    let compose =
        vs.get("compose").ok_or_else(|| MappingError::at(file, 0, "the ValueSet has neither expansion nor compose"))?;
    for (i, include) in array_at(compose, "include", file, "compose")?.iter().enumerate() {
        let at = format!("compose.include[{i}]");
        for (j, concept) in enumerated(include, file, &at)?.iter().enumerate() {
            let at = format!("{at}.concept[{j}]");
            members.push(member(str_at(include, "system"), str_at(concept, "code"), str_at(concept, "display"), &at)?);
        }
    }
    // Enumerated excludes are applied (an exclude of a whole system drops its codes); an
    // exclude left out would leave codes in the set that its author took out.
    for (i, exclude) in array_at(compose, "exclude", file, "compose")?.iter().enumerate() {
        let at = format!("compose.exclude[{i}]");
        let system = str_at(exclude, "system");
        let concepts = array_at(exclude, "concept", file, &at)?;
        if exclude.get("filter").is_some() || exclude.get("valueSet").is_some() || system.is_none() {
            return Err(MappingError::at(
                file,
                0,
                format!("{at} needs a system and no filter or value set: supply an expansion"),
            ));
        }
        let codes: Vec<&str> = concepts.iter().filter_map(|c| str_at(c, "code")).collect();
        members.retain(|m| {
            Some(m.system.as_str()) != system || !(concepts.is_empty() || codes.contains(&m.code.as_str()))
        });
    }
    Ok(members)
}

/// The `concept` list of a compose include, which must enumerate its codes: an include of a
/// whole system, by filter or by another value set needs a terminology server to expand.
fn enumerated<'a>(include: &'a Value, file: &str, at: &str) -> Result<&'a [Value], MappingError> {
    let concepts = array_at(include, "concept", file, at)?;
    let why = if include.get("filter").is_some() || include.get("valueSet").is_some() {
        Some("uses a filter or value set".to_owned())
    } else if concepts.is_empty() {
        Some(format!("includes every code of {}", str_at(include, "system").unwrap_or("its system")))
    } else {
        None
    };
    match why {
        Some(why) => Err(MappingError::at(file, 0, format!("{at} {why}: supply an expansion"))),
        None => Ok(concepts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concept_map_rows_with_several_targets_and_unmatched_elements() {
        let json = br#"{"resourceType": "ConceptMap", "url": "http://example.org/cm",
          "group": [{"source": "http://example.org/local-lab", "target": "http://loinc.org",
            "element": [
              {"code": "GLU", "display": "Glucose", "target": [{"code": "2345-7", "display": "Glucose SerPl", "equivalence": "equivalent"}]},
              {"code": "PANEL", "target": [{"equivalence": "unmatched", "comment": "an order code"}]},
              {"code": "OLD"},
              {"code": "K", "target": [{"code": "2823-3", "relationship": "source-is-broader-than-target"}, {"code": "6298-4", "equivalence": "narrower"}]}
            ]}]}"#;
        let rows = read_concept_map(json, "cm.json").unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!((rows[0].source_code.as_str(), rows[0].target_code.as_deref()), ("GLU", Some("2345-7")));
        assert_eq!(rows[0].relationship, Relationship::Equivalent);
        assert_eq!((rows[1].relationship, rows[1].note.as_deref()), (Relationship::Unmatched, Some("an order code")));
        assert_eq!(rows[2].relationship, Relationship::Unmatched);
        assert!(rows[2].note.as_deref().unwrap().contains("http://example.org/cm"));
        assert_eq!(rows[3].relationship, Relationship::Narrower);
        assert_eq!(rows[4].target_code.as_deref(), Some("6298-4"));
    }

    #[test]
    fn concept_map_errors_name_the_element() {
        let err = read_concept_map(br#"{"resourceType": "ValueSet"}"#, "cm.json").unwrap_err().to_string();
        assert!(err.contains("cm.json") && err.contains("expected a ConceptMap"), "{err}");
        let json = br#"{"resourceType": "ConceptMap", "group": [{"source": "a", "target": "b", "element": [{"code": "1", "target": [{"code": "2", "equivalence": "same"}]}]}]}"#;
        let err = read_concept_map(json, "cm.json").unwrap_err().to_string();
        assert!(err.contains("group[0].element[0]: target[0]: unknown equivalence"), "{err}");
        let err = read_concept_map(b"{", "cm.json").unwrap_err().to_string();
        assert!(err.starts_with("cm.json:1:"), "{err}");
    }

    #[test]
    fn value_set_expansions_nested_and_composed() {
        let json = br#"{"resourceType": "ValueSet", "url": "http://example.org/vs", "version": "1", "title": "Diabetes",
          "expansion": {"contains": [
            {"system": "http://snomed.info/sct", "code": "44054006", "display": "T2DM"},
            {"abstract": true, "display": "group", "contains": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}]}}"#;
        let members = read_value_set(json, "vs.json").unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].code, "E11.9");
        assert_eq!(members[0].valueset_name.as_deref(), Some("Diabetes"));

        let json = br#"{"resourceType": "ValueSet", "url": "http://example.org/vs2",
          "compose": {"include": [{"system": "http://loinc.org", "concept": [{"code": "4548-4"}]}]}}"#;
        assert_eq!(read_value_set(json, "vs2.json").unwrap()[0].system, "http://loinc.org");
        let json = br#"{"resourceType": "ValueSet", "url": "http://example.org/vs3",
          "compose": {"include": [{"system": "http://loinc.org", "filter": [{"property": "x"}]}]}}"#;
        assert!(read_value_set(json, "vs3.json").unwrap_err().to_string().contains("supply an expansion"));
        let json = br#"{"resourceType": "ValueSet", "url": "u", "expansion": {"contains": [{"code": "1"}]}}"#;
        assert!(read_value_set(json, "vs4.json")
            .unwrap_err()
            .to_string()
            .contains("expansion.contains[0]: system and code"));
    }

    #[test]
    fn misshapen_json_is_an_error_not_an_empty_list() {
        let map = |group: &str| format!(r#"{{"resourceType": "ConceptMap", "url": "u", "group": {group}}}"#);
        let cases = [
            (map(r#"{"source": "a", "target": "b"}"#), "group must be an array, found an object"),
            (
                map(
                    r#"[{"source": "a", "target": "b", "element": [{"code": "1", "target": {"code": "2", "equivalence": "equivalent"}}]}]"#,
                ),
                "group[0].element[0].target must be an array, found an object",
            ),
            (
                map(
                    r#"[{"source": "a", "target": "b", "element": [{"code": "1", "target": [{"code": "2", "equivalance": "wider"}]}]}]"#,
                ),
                "group[0].element[0]: target[0]: no equivalence (R4) or relationship (R5)",
            ),
        ];
        for (json, expect) in cases {
            let err = read_concept_map(json.as_bytes(), "cm.json").unwrap_err().to_string();
            assert!(err.starts_with("cm.json: ") && err.ends_with(expect), "{err}");
        }
        let json =
            br#"{"resourceType": "ValueSet", "url": "u", "expansion": {"contains": {"system": "s", "code": "1"}}}"#;
        let err = read_value_set(json, "vs.json").unwrap_err().to_string();
        assert_eq!(err, "vs.json: expansion.contains must be an array, found an object");
    }

    #[test]
    fn r5_not_related_to_with_a_target_is_disjoint() {
        let json = br#"{"resourceType": "ConceptMap", "url": "u", "group": [{"source": "a", "target": "b", "element": [
            {"code": "1", "target": [{"code": "2", "relationship": "not-related-to"}]},
            {"code": "3", "target": [{"relationship": "not-related-to", "comment": "none"}]}]}]}"#;
        let rows = read_concept_map(json, "cm.json").unwrap();
        assert_eq!((rows[0].relationship, rows[0].target_code.as_deref()), (Relationship::Disjoint, Some("2")));
        assert_eq!((rows[1].relationship, rows[1].note.as_deref()), (Relationship::Unmatched, Some("none")));
    }

    #[test]
    fn value_sets_that_are_incomplete_are_errors_and_excludes_apply() {
        let vs = |body: &str| format!(r#"{{"resourceType": "ValueSet", "url": "u", {body}}}"#);
        let whole = vs(r#""compose": {"include": [{"system": "http://loinc.org"}]}"#);
        let err = read_value_set(whole.as_bytes(), "vs.json").unwrap_err().to_string();
        assert_eq!(err, "vs.json: compose.include[0] includes every code of http://loinc.org: supply an expansion");
        let paged = vs(r#""expansion": {"total": 3, "contains": [{"system": "s", "code": "1"}]}"#);
        let err = read_value_set(paged.as_bytes(), "vs.json").unwrap_err().to_string();
        assert!(err.contains("lists 1 codes but its total is 3"), "{err}");
        let grouped = vs(
            r#""expansion": {"total": 2, "contains": [{"abstract": true, "contains": [{"system": "s", "code": "1"}]}]}"#,
        );
        assert_eq!(read_value_set(grouped.as_bytes(), "vs.json").unwrap().len(), 1);
        let excluded = vs(r#""compose": {
            "include": [{"system": "s", "concept": [{"code": "1"}, {"code": "2"}]}, {"system": "t", "concept": [{"code": "9"}]}],
            "exclude": [{"system": "s", "concept": [{"code": "2"}]}, {"system": "t"}]}"#);
        let codes: Vec<String> =
            read_value_set(excluded.as_bytes(), "vs.json").unwrap().into_iter().map(|m| m.code).collect();
        assert_eq!(codes, ["1"]);
        let filtered = vs(
            r#""compose": {"include": [{"system": "s", "concept": [{"code": "1"}]}], "exclude": [{"system": "s", "filter": []}]}"#,
        );
        assert!(read_value_set(filtered.as_bytes(), "vs.json").unwrap_err().to_string().contains("compose.exclude[0]"));
    }
}
