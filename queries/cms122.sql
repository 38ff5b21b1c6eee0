-- CMS122: Diabetes: Glycemic Status Assessment Greater Than 9% (an inverse measure: the
-- numerator is poor control, so a patient in it has a care gap). The eCQM's CQL:
-- DiabetesGlycemicStatusAssessmentGreaterThan9PercentFHIR 0.1.002 (QI-Core 4.1.1).
--
-- @title Diabetes: glycemic status (HbA1c or GMI) > 9% or not assessed (CMS122, inverse)
-- @param period_start date 2025-01-01 First day of the measurement period, which lasts one year.
-- @param encounter_codes vsac|supplemented supplemented Qualifying visits: the shipped VSAC value sets only (no CPT), or with the SNOMED CT stand-ins for the removed CPT visit codes.
-- @result summary cms122_summary One row: initial population, denominator, exclusions, numerator, performance rate, care gaps.
-- @result patients cms122_patients One row per patient: the populations, exclusion reasons, evidence resource ids, the deciding reading.
--
-- Initial population (= denominator): aged 18 to 75 at the end of the period, a
-- qualifying outpatient visit in it (AdultOutpatientEncounters) and diabetes whose
-- prevalence overlaps it.
-- Exclusions: hospice, palliative care, 66 and over living long term in a nursing home,
-- 66 and over with advanced illness and frailty (lib/ecqm.sql).
-- Numerator: the most recent glycemic status assessment in the period (an HbA1c test or a
-- glucose management indicator, final and of category laboratory): on its day, the lowest
-- reading, which is > 9 % or has no result; or no assessment in the period at all.
--
-- Simplifications and readings of the CQL (besides those of lib/ecqm.sql):
-- * The value is compared in % as the CQL's UCUM arithmetic does (value as Quantity > 9 '%'):
--   a value in % or without a unit as is, one in mmol/mol divided by 10 (UCUM: 1 mmol/mol =
--   0.1 %; this is not the IFCC-to-NGSP conversion, 75 mmol/mol is 7.5 % here as in the CQL),
--   one in any other unit is not comparable (never > 9 %).
-- * "sort by value" sorts by the value as a Quantity with nulls first (CQL sorts nulls
--   first), so a reading without a numeric value on the most recent day is that day's
--   lowest. It is "without result" (the patient is in the numerator) only when it has no
--   value at all; a coded, string or boolean value is a result that is not > 9 %, so the
--   patient is not in the numerator (the CQL tests the Observation's value for null, and
--   compares only a Quantity).

-- @include lib/ecqm.sql

CREATE OR REPLACE VIEW cms122_assessment AS
SELECT o.patient_id, 'Observation/' || o.id AS evidence, o.day, o.value_quantity, o.value_ucum,
    -- the value as a number of % (null: no quantity, or a unit that does not convert)
    CASE WHEN o.value_ucum IS NULL OR o.value_ucum = '%' THEN o.value_quantity
         WHEN o.value_ucum = 'mmol/mol' THEN o.value_quantity / 10 END AS percent,
    NOT o.has_value AS no_result
FROM ecqm_observation o CROSS JOIN ecqm_period d
WHERE o.valueset IN ('HbA1c Laboratory Test', 'Glucose management indicator')
  AND o.status IN ('final', 'amended', 'corrected') AND o.category = 'laboratory'
  AND o.day BETWEEN d.period_start AND d.period_end;

-- The lowest reading of the most recent day, one without a value in % first.
CREATE OR REPLACE VIEW cms122_deciding_reading AS
SELECT patient_id, evidence, day, value_quantity, value_ucum, percent, no_result FROM (
    SELECT a.*, row_number() OVER (PARTITION BY a.patient_id ORDER BY a.percent ASC NULLS FIRST, a.evidence) AS rank
    FROM cms122_assessment a
    JOIN (SELECT patient_id, max(day) AS day FROM cms122_assessment GROUP BY patient_id) last_day
      ON last_day.patient_id = a.patient_id AND last_day.day = a.day
) ranked WHERE rank = 1;

CREATE OR REPLACE VIEW measure_info AS
SELECT 'CMS122' AS measure,
    'Diabetes: Glycemic Status Assessment Greater Than 9%' AS title,
    true AS inverse,
    'hospice orders (ServiceRequest) and frailty device orders (DeviceRequest): no table' AS not_evaluated;

CREATE OR REPLACE TABLE measure_criteria AS
WITH population AS (
    SELECT p.patient_id FROM ecqm_patient p
    WHERE p.age BETWEEN 18 AND 75
      AND p.patient_id IN (SELECT patient_id FROM ecqm_adult_outpatient_encounter)
      AND p.patient_id IN (SELECT patient_id FROM ecqm_condition_in_period WHERE valueset = 'Diabetes')
)
SELECT 'CMS122' AS measure, patient_id, 'population' AS part, CAST(NULL AS VARCHAR) AS reason, evidence,
    CAST(NULL AS VARCHAR) AS detail
FROM (SELECT patient_id, evidence FROM ecqm_adult_outpatient_encounter
      UNION ALL SELECT patient_id, evidence FROM ecqm_condition_in_period WHERE valueset = 'Diabetes') e
WHERE e.patient_id IN (SELECT patient_id FROM population)
UNION ALL
SELECT 'CMS122', patient_id, 'exclusion', reason, evidence, NULL FROM ecqm_advanced_illness_frailty
UNION ALL
SELECT 'CMS122', patient_id, CASE WHEN no_result OR percent > 9 THEN 'numerator' ELSE 'detail' END, NULL,
    CASE WHEN no_result OR percent > 9 THEN evidence END,
    'most recent assessment ' || CAST(day AS VARCHAR) || ': '
        || CASE WHEN no_result THEN 'no result'
                WHEN value_quantity IS NULL THEN 'a result that is not a quantity'
                ELSE CAST(CAST(value_quantity AS DOUBLE) AS VARCHAR) || coalesce(' ' || value_ucum, '') END
FROM cms122_deciding_reading
UNION ALL
SELECT 'CMS122', patient_id, 'numerator', NULL, NULL, 'no glycemic status assessment in the period'
FROM ecqm_patient p
WHERE p.patient_id NOT IN (SELECT a.patient_id FROM cms122_assessment a);

-- @include lib/ecqm_measure.sql

CREATE OR REPLACE VIEW cms122_patients AS SELECT * FROM measure_patients ORDER BY patient_id;
CREATE OR REPLACE VIEW cms122_summary AS SELECT * FROM measure_summary;
