use super::*;

#[test]
fn every_shipped_analysis_binds_with_its_defaults_and_names_only_its_parameters() {
    let all = shipped().unwrap();
    let names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["care_gaps", "cms122", "cms125", "cms130", "cms131", "cms165", "hcc"]);
    for analysis in all {
        let bound = analysis.bind(&[]).unwrap();
        let scripts = bound.scripts().unwrap_or_else(|e| panic!("{}: {e:#}", analysis.name));
        assert!(scripts.iter().all(|s| !s.text.contains("{{")), "{}: a placeholder is left", analysis.name);
        // Every declared parameter is used by some file (a parameter nothing reads is a slip).
        for param in &analysis.params {
            let used =
                analysis.files().iter().any(|f| embedded(f).unwrap().contains(&format!("{{{{{}}}}}", param.name)));
            assert!(used, "{}: {} is declared but not used", analysis.name, param.name);
        }
        for result in &analysis.results {
            let defined = |kind: &str| format!("CREATE OR REPLACE {kind} {} AS", result.view);
            let found = scripts.iter().any(|s| s.text.contains(&defined("VIEW")) || s.text.contains(&defined("TABLE")));
            assert!(found, "{}: {} is not created", analysis.name, result.view);
        }
    }
}

#[test]
fn values_become_typed_literals_or_are_refused() {
    let cms122 = find("cms122").unwrap();
    let bound = cms122.bind(&[("period_start", "2026-01-01"), ("encounter_codes", "VSAC")]).unwrap();
    assert_eq!(bound.literals()["period_start"], "DATE '2026-01-01'");
    assert_eq!(bound.literals()["encounter_codes"], "'vsac'");
    let err = cms122.bind(&[("period_start", "2026-13-01")]).unwrap_err().to_string();
    assert_eq!(err, "--period-start: '2026-13-01' is not a date (YYYY-MM-DD, a year from 1900 to 2999)");
    let err = cms122.bind(&[("period_start", "2026-01-01'; DROP TABLE patient; --")]).unwrap_err().to_string();
    assert!(err.contains("is not a date"), "{err}");
    let err = cms122.bind(&[("model", "V28")]).unwrap_err().to_string();
    assert_eq!(err, "cms122 has no parameter --model; its parameters: --period-start, --encounter-codes");
    let err = cms122.bind(&[("period_start", "2026-01-01"), ("period_start", "2027-01-01")]).unwrap_err();
    assert_eq!(err.to_string(), "--period-start given twice");

    let hcc = find("hcc").unwrap();
    let bound = hcc.bind(&[("payment_year", "2025"), ("normalization", "1.045")]).unwrap();
    assert_eq!(bound.literals()["payment_year"], "2025");
    assert_eq!(bound.literals()["normalization"], "CAST(1.045 AS DOUBLE)");
    assert_eq!(bound.literals()["service_from"], "CAST(NULL AS DATE)");
    let err = hcc.bind(&[("model", "V22")]).unwrap_err().to_string();
    assert_eq!(err, "--model: 'V22' is not one of V24, V28");
    assert!(hcc.bind(&[("payment_year", "2026.5")]).is_err());
    assert!(hcc.bind(&[("coding_adjustment", "NaN")]).is_err());
}

#[test]
fn unknown_analyses_and_results_are_named_with_what_exists() {
    let err = find("cms12").unwrap_err().to_string();
    assert!(
        err.starts_with("no analysis 'cms12' (did you mean 'cms122'?); the shipped ones: care_gaps, cms122"),
        "{err}"
    );
    let hcc = find("HCC").unwrap();
    assert_eq!(hcc.result(None).unwrap().view, "hcc_summary");
    assert_eq!(hcc.result(Some("patients")).unwrap().view, "hcc_patients");
    let err = hcc.result(Some("scores")).unwrap_err().to_string();
    assert_eq!(err, "hcc has no result 'scores'; its results: summary, patients, hccs, diagnoses");
}

#[test]
fn includes_run_in_place_once_and_keep_line_numbers() {
    let care_gaps = find("care_gaps").unwrap();
    let files = care_gaps.files();
    assert_eq!(files[0], "care_gaps.sql");
    assert_eq!(files.iter().filter(|f| **f == "lib/ecqm.sql").count(), 1);
    // lib/ecqm.sql runs once, lib/ecqm_measure.sql (@repeat) after each of the five measures.
    let runs = |path: &str| care_gaps.pieces.iter().filter(|p| p.path == path && p.first_line == 0).count();
    assert_eq!(runs("lib/ecqm.sql"), 1);
    assert_eq!(runs("lib/ecqm_measure.sql"), 5);
    let bound = care_gaps.bind(&[]).unwrap();
    for script in bound.scripts().unwrap() {
        let path = script.source.strip_prefix("queries/").unwrap();
        let original: Vec<&str> = embedded(path).unwrap().lines().collect();
        for (n, line) in script.text.lines().enumerate() {
            if !line.is_empty() && !line.contains("DATE '") && !line.contains("'supplemented'") {
                assert_eq!(line, original[n], "{}:{}", script.source, n + 1);
            }
        }
    }
    let text = bound.script_text(care_gaps.result(None).unwrap()).unwrap();
    assert!(text.starts_with(
        "-- fhirhouse report care_gaps: encounter_codes = 'supplemented', period_start = DATE '2025-01-01'\n"
    ));
    assert!(text.trim_end().ends_with("SELECT * FROM care_gaps_summary ORDER BY 1, 2;"), "{text}");
}

#[test]
fn header_words_and_kinds() {
    assert_eq!(words::<2>("summary cms122_summary  One row."), Some((["summary", "cms122_summary"], "One row.")));
    assert_eq!(words::<3>("x date"), None);
    assert_eq!(ParamKind::parse("V24|V28").unwrap(), ParamKind::Choice(vec!["V24".into(), "V28".into()]));
    assert_eq!(ParamKind::Integer.literal(None).unwrap(), "CAST(NULL AS BIGINT)");
}

#[test]
fn dates_need_four_digit_years_in_a_sane_range() {
    let cms122 = find("cms122").unwrap();
    for bad in
        ["19-01-01", "-2019-01-01", "+2019-01-01", "2019-1-01", "2019-01-1", "1899-12-31", "3000-01-01", " 2019-01-01"]
    {
        let err = cms122.bind(&[("period_start", bad)]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("--period-start: '{bad}' is not a date")), "{bad}: {err}");
    }
    for good in ["1900-01-01", "2020-02-29", "2999-12-31"] {
        let bound = cms122.bind(&[("period_start", good)]).unwrap();
        assert_eq!(bound.literals()["period_start"], format!("DATE '{good}'"));
    }
    let hcc = find("hcc").unwrap();
    assert!(hcc.bind(&[("service_to", "19-12-31")]).is_err());
}

#[test]
fn decimals_are_held_to_their_declared_interval() {
    let hcc = find("hcc").unwrap();
    let normalization = |v: &str| hcc.bind(&[("normalization", v)]).map(|b| b.literals()["normalization"].clone());
    assert_eq!(normalization("0.5").unwrap(), "CAST(0.5 AS DOUBLE)");
    for bad in ["0", "-1", "-0.0"] {
        let err = normalization(bad).unwrap_err().to_string();
        assert_eq!(err, format!("--normalization: '{bad}' is out of range: it must be greater than 0"));
    }
    assert_eq!(normalization("inf").unwrap_err().to_string(), "--normalization: 'inf' is not a number");
    let adjustment = |v: &str| hcc.bind(&[("coding_adjustment", v)]).map(|_| ());
    assert!(adjustment("0").is_ok() && adjustment("0.999").is_ok());
    for bad in ["1", "2", "-0.01"] {
        let err = adjustment(bad).unwrap_err().to_string();
        assert_eq!(err, format!("--coding-adjustment: '{bad}' is out of range: it must be at least 0 and less than 1"));
    }
    assert_eq!(
        Interval::parse("(0,]"),
        Some(Interval { low: Some((0.0, false)), high: None }),
        "an empty end is open whatever its bracket"
    );
    assert_eq!(Interval::parse("[0,1)").unwrap().describe(), "at least 0 and less than 1");
    for bad in ["", "0,1", "[0;1)", "[a,1)", "[0,1"] {
        assert_eq!(Interval::parse(bad), None, "{bad}");
    }
    assert!(ParamKind::parse("decimal<0").is_err());
}

#[test]
fn checks_are_collected_from_every_file_run_once_each() {
    let hcc = find("hcc").unwrap();
    assert_eq!(hcc.checks, ["lib/check_crosswalk.sql", "lib/hcc_check.sql"]);
    for analysis in shipped().unwrap().iter().filter(|a| a.name != "hcc") {
        assert_eq!(analysis.checks, ["lib/check_crosswalk.sql"], "{}", analysis.name);
    }
}
