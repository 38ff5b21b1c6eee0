//! The ViewDefinition resource as JSON, read strictly.
//!
//! Loading walks the JSON by hand rather than through `serde` derive so that every error
//! names the element it is about (`select[0].column[2].name: ...`), which is what a person
//! fixing a view needs. Only structure is checked here; FHIRPath and column consistency are
//! checked when the view is compiled ([`super::plan`]).

use serde_json::{Map, Value};

use super::plan::ViewError;
use super::types::{check_column_type, check_resource_type};

/// A SQL on FHIR v2 ViewDefinition (<https://build.fhir.org/ig/FHIR/sql-on-fhir-v2/StructureDefinition-ViewDefinition.html>).
#[derive(Debug, Clone, PartialEq)]
pub struct ViewDefinition {
    /// `name`: the table name; optional in the spec.
    pub name: Option<String>,
    /// `resource`: the FHIR resource type the view reads.
    pub resource: String,
    /// `constant[]`: named values usable as `%name` in any path.
    pub constants: Vec<ConstantDef>,
    /// `select[]`: the row-producing tree.
    pub select: Vec<SelectDef>,
    /// `where[].path`: filters every resource must pass.
    pub where_paths: Vec<String>,
}

/// One `constant` entry: a name and exactly one `value[x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantDef {
    /// The constant's name, used as `%name`.
    pub name: String,
    /// The `value[x]` suffix, e.g. `String`, `Integer`, `Date`.
    pub value_type: String,
    /// The JSON value as written.
    pub value: Value,
}

/// One `select` element (also used for `unionAll` branches).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectDef {
    /// Where this element sits in the view, e.g. `select[0].unionAll[1]`.
    pub location: String,
    /// `column[]`
    pub column: Vec<ColumnDef>,
    /// Nested `select[]`, cross-joined with this element's columns.
    pub select: Vec<SelectDef>,
    /// `forEach`, `forEachOrNull` or `repeat`, whichever is present.
    pub iteration: Iteration,
    /// `unionAll[]` branches.
    pub union_all: Vec<SelectDef>,
}

/// How a `select` element iterates.
#[derive(Debug, Clone, PartialEq)]
pub enum Iteration {
    /// No iteration: one row per parent row.
    None,
    /// `forEach`: one row per item; no item, no row.
    ForEach(String),
    /// `forEachOrNull`: one row per item; no item, one row of nulls.
    ForEachOrNull(String),
    /// `repeat`: one row per node reached by following the paths recursively.
    Repeat(Vec<String>),
}

/// One `column` element.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Where this column sits in the view, e.g. `select[0].column[1]`.
    pub location: String,
    /// `name`: the output column name.
    pub name: String,
    /// `path`: the FHIRPath expression.
    pub path: String,
    /// `type`: the FHIR type of the values, if declared.
    pub type_name: Option<String>,
    /// `collection`: whether the column holds a list.
    pub collection: bool,
    /// `description`
    pub description: Option<String>,
    /// `tag[]` as (name, value) pairs, e.g. (`ansi/type`, `DECIMAL(10,2)`).
    pub tags: Vec<(String, String)>,
}

const SELECT_KEYS: &[&str] = &["column", "select", "forEach", "forEachOrNull", "repeat", "unionAll", "extension", "id"];
const COLUMN_KEYS: &[&str] = &["name", "path", "type", "collection", "description", "tag", "extension", "id"];

impl ViewDefinition {
    /// Reads a ViewDefinition from JSON, checking its structure.
    ///
    /// ```
    /// use fhirhouse::view::definition::ViewDefinition;
    /// let json = serde_json::json!({"resource": "Patient", "select": [{"forEach": 1}]});
    /// let err = ViewDefinition::from_json(&json).unwrap_err();
    /// assert_eq!(err.to_string(), "select[0].forEach: must be a FHIRPath string, found 1");
    /// ```
    pub fn from_json(json: &Value) -> Result<ViewDefinition, ViewError> {
        // A file of several views (an array, a Bundle) is a likely first try: say what to do.
        const ONE_PER_FILE: &str = "one ViewDefinition per file: put each view in a file of its own";
        let root = json.as_object().ok_or_else(|| match json {
            Value::Array(_) => {
                err("", format!("a ViewDefinition must be a JSON object, found an array ({ONE_PER_FILE})"))
            }
            _ => err("", "a ViewDefinition must be a JSON object"),
        })?;
        if let Some(rt) = root.get("resourceType") {
            if rt == "Bundle" {
                return Err(err(
                    "resourceType",
                    format!("must be \"ViewDefinition\", found \"Bundle\" ({ONE_PER_FILE})"),
                ));
            }
            if rt != "ViewDefinition" {
                return Err(err("resourceType", format!("must be \"ViewDefinition\", found {rt}")));
            }
        }
        let resource = match root.get("resource") {
            None => {
                return Err(err(
                    "resource",
                    "is required: name the FHIR resource type the view reads, e.g. \"Patient\"",
                ))
            }
            // A misspelt type would read no resource and make an empty table without a word.
            Some(Value::String(s)) => {
                check_resource_type(s).map_err(|e| err("resource", e))?;
                s.clone()
            }
            Some(other) => {
                return Err(err("resource", format!("must be a FHIR resource type such as \"Patient\", found {other}")))
            }
        };
        let name = optional_string(root, "name", "name")?;
        if let Some(n) = &name {
            if !is_column_name(n) {
                return Err(err(
                    "name",
                    format!("'{n}' is not a valid table name (letters, digits and _, starting with a letter)"),
                ));
            }
        }
        let constants = array(root, "constant", "constant")?
            .iter()
            .enumerate()
            .map(|(i, c)| constant(c, &format!("constant[{i}]")))
            .collect::<Result<Vec<ConstantDef>, _>>()?;
        for (i, c) in constants.iter().enumerate() {
            if let Some(first) = constants[..i].iter().position(|earlier| earlier.name == c.name) {
                return Err(err(
                    &format!("constant[{i}].name"),
                    format!("%{} is already defined by constant[{first}]", c.name),
                ));
            }
        }
        let select = array(root, "select", "select")?;
        if select.is_empty() {
            return Err(err("select", "is required and must hold at least one select element"));
        }
        let select = select
            .iter()
            .enumerate()
            .map(|(i, s)| select_def(s, &format!("select[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let where_paths = array(root, "where", "where")?
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let loc = format!("where[{i}]");
                let obj = w.as_object().ok_or_else(|| err(&loc, "must be an object with a path"))?;
                required_string(obj, "path", &format!("{loc}.path"), "a FHIRPath string")
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ViewDefinition { name, resource, constants, select, where_paths })
    }
}

fn err(location: &str, message: impl Into<String>) -> ViewError {
    ViewError::at(location, message)
}

/// Column and table names must be usable unquoted in SQL (the spec's `^[A-Za-z][A-Za-z0-9_]*$`).
pub fn is_column_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn array<'v>(obj: &'v Map<String, Value>, key: &str, loc: &str) -> Result<&'v [Value], ViewError> {
    match obj.get(key) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(err(loc, format!("must be an array, found {other}"))),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str, loc: &str) -> Result<Option<String>, ViewError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(err(loc, format!("must be a string, found {other}"))),
    }
}

fn required_string(obj: &Map<String, Value>, key: &str, loc: &str, what: &str) -> Result<String, ViewError> {
    match obj.get(key) {
        None => Err(err(loc, format!("is required ({what})"))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(err(loc, format!("must be {what}, found {other}"))),
    }
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], loc: &str) -> Result<(), ViewError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(err(
            &format!("{loc}.{k}"),
            format!("is not a ViewDefinition element here (expected one of: {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn constant(value: &Value, loc: &str) -> Result<ConstantDef, ViewError> {
    let obj = value.as_object().ok_or_else(|| err(loc, "must be an object with a name and a value[x]"))?;
    let name = required_string(obj, "name", &format!("{loc}.name"), "a string")?;
    if !is_column_name(&name) {
        return Err(err(&format!("{loc}.name"), format!("'{name}' is not a valid constant name")));
    }
    let values: Vec<(&String, &Value)> = obj.iter().filter(|(k, _)| k.starts_with("value")).collect();
    match values.as_slice() {
        [(key, v)] => Ok(ConstantDef { name, value_type: key["value".len()..].to_string(), value: (*v).clone() }),
        [] => Err(err(loc, format!("constant %{name} has no value[x] (e.g. \"valueString\")"))),
        _ => Err(err(loc, format!("constant %{name} has more than one value[x]"))),
    }
}

fn select_def(value: &Value, loc: &str) -> Result<SelectDef, ViewError> {
    let obj = value.as_object().ok_or_else(|| err(loc, "must be an object"))?;
    check_keys(obj, SELECT_KEYS, loc)?;
    let path_of = |key: &str| -> Result<Option<String>, ViewError> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(err(&format!("{loc}.{key}"), format!("must be a FHIRPath string, found {other}"))),
        }
    };
    let for_each = path_of("forEach")?;
    let for_each_or_null = path_of("forEachOrNull")?;
    let repeat = match obj.get("repeat") {
        None => None,
        Some(Value::Array(paths)) if !paths.is_empty() => Some(
            paths
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    p.as_str().map(str::to_string).ok_or_else(|| {
                        err(&format!("{loc}.repeat[{i}]"), format!("must be a FHIRPath string, found {p}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(err(
                &format!("{loc}.repeat"),
                format!("must be a non-empty array of FHIRPath strings, found {other}"),
            ))
        }
    };
    let iteration = match (for_each, for_each_or_null, repeat) {
        (None, None, None) => Iteration::None,
        (Some(p), None, None) => Iteration::ForEach(p),
        (None, Some(p), None) => Iteration::ForEachOrNull(p),
        (None, None, Some(paths)) => Iteration::Repeat(paths),
        _ => return Err(err(loc, "may have only one of forEach, forEachOrNull and repeat")),
    };
    let column = array(obj, "column", &format!("{loc}.column"))?
        .iter()
        .enumerate()
        .map(|(i, c)| column_def(c, &format!("{loc}.column[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let select = array(obj, "select", &format!("{loc}.select"))?
        .iter()
        .enumerate()
        .map(|(i, s)| select_def(s, &format!("{loc}.select[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let union_all = array(obj, "unionAll", &format!("{loc}.unionAll"))?
        .iter()
        .enumerate()
        .map(|(i, s)| select_def(s, &format!("{loc}.unionAll[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SelectDef { location: loc.to_string(), column, select, iteration, union_all })
}

fn column_def(value: &Value, loc: &str) -> Result<ColumnDef, ViewError> {
    let obj = value.as_object().ok_or_else(|| err(loc, "must be an object with a name and a path"))?;
    check_keys(obj, COLUMN_KEYS, loc)?;
    let name = required_string(obj, "name", &format!("{loc}.name"), "a column name string")?;
    if !is_column_name(&name) {
        return Err(err(
            &format!("{loc}.name"),
            format!("'{name}' is not a valid column name (letters, digits and _, starting with a letter)"),
        ));
    }
    let path = required_string(obj, "path", &format!("{loc}.path"), "a FHIRPath string")?;
    let type_name = optional_string(obj, "type", &format!("{loc}.type"))?;
    if let Some(t) = &type_name {
        check_column_type(t).map_err(|e| err(&format!("{loc}.type"), e))?;
    }
    let collection = match obj.get("collection") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(err(&format!("{loc}.collection"), format!("must be true or false, found {other}"))),
    };
    let description = optional_string(obj, "description", &format!("{loc}.description"))?;
    let tags = array(obj, "tag", &format!("{loc}.tag"))?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let tloc = format!("{loc}.tag[{i}]");
            let t = t.as_object().ok_or_else(|| err(&tloc, "must be an object with name and value"))?;
            Ok((
                required_string(t, "name", &format!("{tloc}.name"), "a string")?,
                required_string(t, "value", &format!("{tloc}.value"), "a string")?,
            ))
        })
        .collect::<Result<Vec<_>, ViewError>>()?;
    Ok(ColumnDef { location: loc.to_string(), name, path, type_name, collection, description, tags })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(v: Value) -> Result<ViewDefinition, String> {
        ViewDefinition::from_json(&v).map_err(|e| e.to_string())
    }

    #[test]
    fn errors_name_the_offending_element() {
        assert_eq!(
            load(json!({})).unwrap_err(),
            "resource: is required: name the FHIR resource type the view reads, e.g. \"Patient\""
        );
        assert!(load(json!({"resource": "Patient"})).unwrap_err().starts_with("select:"));
        let e = load(json!({"resource": "Patient", "select": [{"column": [{"name": "id"}]}]})).unwrap_err();
        assert_eq!(e, "select[0].column[0].path: is required (a FHIRPath string)");
        let e = load(
            json!({"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id", "colection": true}]}]}),
        )
        .unwrap_err();
        assert!(e.starts_with("select[0].column[0].colection: is not a ViewDefinition element"), "{e}");
        let e = load(json!({"resource": "Patient", "constant": [{"name": "x"}], "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap_err();
        assert_eq!(e, "constant[0]: constant %x has no value[x] (e.g. \"valueString\")");
        let e = load(json!({"resource": "Patient", "select": [{"forEach": "a", "repeat": ["b"], "column": [{"name": "id", "path": "id"}]}]})).unwrap_err();
        assert_eq!(e, "select[0]: may have only one of forEach, forEachOrNull and repeat");
        let e =
            load(json!({"resource": "Pationt", "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap_err();
        assert_eq!(e, "resource: 'Pationt' is not a FHIR R4 resource type; did you mean 'Patient'?");
        let e =
            load(json!({"resource": "Pateint", "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap_err();
        assert!(e.ends_with("did you mean 'Patient'?"), "{e}");
        let e = load(json!({"resource": "Zebra", "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap_err();
        assert!(e.starts_with("resource: 'Zebra' is not a FHIR R4 resource type (they are case-sensitive"), "{e}");
        let e =
            load(json!({"resource": "patient", "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap_err();
        assert_eq!(e, "resource: 'patient' is not a FHIR R4 resource type; did you mean 'Patient'?");
        let e = load(json!({"resource": "Patient", "constant": [{"name": "n", "valueInteger": 1}, {"name": "n", "valueInteger": 2}],
                            "select": [{"column": [{"name": "id", "path": "%n"}]}]}))
        .unwrap_err();
        assert_eq!(e, "constant[1].name: %n is already defined by constant[0]");
        let view = json!({"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}]}]});
        let e = load(json!([view])).unwrap_err();
        assert!(e.ends_with("found an array (one ViewDefinition per file: put each view in a file of its own)"), "{e}");
        let e = load(json!({"resourceType": "Bundle", "entry": [{"resource": view}]})).unwrap_err();
        assert!(
            e.starts_with("resourceType: must be \"ViewDefinition\", found \"Bundle\" (one ViewDefinition per file"),
            "{e}"
        );
    }

    #[test]
    fn column_types_must_be_fhir_types() {
        let with_type = |t: &str| {
            load(json!({"resource": "Patient", "select": [{"column": [
                {"name": "id", "path": "id"}, {"name": "a", "path": "active", "type": t}]}]}))
        };
        assert_eq!(
            with_type("interger").unwrap_err(),
            "select[0].column[1].type: 'interger' is not a FHIR type; did you mean 'integer'?"
        );
        assert!(with_type("Boolean").unwrap_err().ends_with("did you mean 'boolean'?"));
        assert!(with_type("Date").unwrap_err().ends_with("did you mean 'date'?"));
        assert!(with_type("datetime").unwrap_err().ends_with("did you mean 'dateTime'?"));
        assert!(with_type("codeableConcept").unwrap_err().ends_with("did you mean 'CodeableConcept'?"));
        let e = with_type("blob").unwrap_err();
        assert!(e.starts_with("select[0].column[1].type: 'blob' is not a FHIR type (use a primitive type"), "{e}");
        let e = with_type("http://example.org/StructureDefinition/boolean").unwrap_err();
        assert!(e.contains("is not a FHIR type"), "{e}");
        for ok in ["boolean", "integer64", "xhtml", "CodeableConcept", "MoneyQuantity", "Patient", "BackboneElement"] {
            assert!(with_type(ok).is_ok(), "{ok}");
        }
        assert!(with_type("http://hl7.org/fhir/StructureDefinition/dateTime").is_ok());
    }

    #[test]
    fn reads_a_full_view() {
        let v = load(json!({
            "resourceType": "ViewDefinition", "name": "patient_names", "resource": "Patient", "status": "active",
            "constant": [{"name": "use", "valueCode": "official"}],
            "where": [{"path": "active"}],
            "select": [{"column": [{"name": "id", "path": "getResourceKey()", "type": "id", "tag": [{"name": "ansi/type", "value": "VARCHAR"}]}]},
                       {"forEachOrNull": "name", "column": [{"name": "given", "path": "given", "collection": true}]}]
        }))
        .unwrap();
        assert_eq!(v.name.as_deref(), Some("patient_names"));
        assert_eq!(v.constants[0].value_type, "Code");
        assert_eq!(v.where_paths, vec!["active".to_string()]);
        assert_eq!(v.select[1].iteration, Iteration::ForEachOrNull("name".into()));
        assert!(v.select[1].column[0].collection);
        assert_eq!(v.select[0].column[0].tags, vec![("ansi/type".to_string(), "VARCHAR".to_string())]);
    }
}
