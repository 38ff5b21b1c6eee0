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
-- * The value is compared as a number of %: a value in another unit (mmol/mol) is not
--   converted.
-- * "sort by value" puts a reading without a value first (CQL sorts nulls first), so a
--   reading without result on the most recent day makes that day's lowest reading "without
--   result": the patient is in the numerator.

-- @include lib/ecqm.sql

CREATE OR REPLACE VIEW cms122_assessment AS
SELECT o.patient_id, 'Observation/' || o.id AS evidence, o.day, o.value_quantity, o.value_ucum
FROM ecqm_observation o CROSS JOIN ecqm_period d
WHERE o.valueset IN ('HbA1c Laboratory Test', 'Glucose management indicator')
  AND o.status IN ('final', 'amended', 'corrected') AND o.category = 'laboratory'
  AND o.day BETWEEN d.period_start AND d.period_end;

-- The lowest reading of the most recent day, a missing value first.
CREATE OR REPLACE VIEW cms122_deciding_reading AS
SELECT patient_id, evidence, day, value_quantity, value_ucum FROM (
    SELECT a.*, row_number() OVER (PARTITION BY a.patient_id ORDER BY a.value_quantity ASC NULLS FIRST, a.evidence) AS rank
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
SELECT 'CMS122', patient_id, 'numerator', NULL, evidence,
    CASE WHEN value_quantity IS NULL THEN 'most recent assessment ' || CAST(day AS VARCHAR) || ': no result'
         ELSE 'most recent assessment ' || CAST(day AS VARCHAR) || ': ' || CAST(CAST(value_quantity AS DOUBLE) AS VARCHAR)
              || coalesce(' ' || value_ucum, '') END
FROM cms122_deciding_reading
WHERE value_quantity IS NULL OR value_quantity > 9
UNION ALL
SELECT 'CMS122', patient_id, 'detail', NULL, NULL,
    'most recent assessment ' || CAST(day AS VARCHAR) || ': ' || CAST(CAST(value_quantity AS DOUBLE) AS VARCHAR) || coalesce(' ' || value_ucum, '')
FROM cms122_deciding_reading
WHERE value_quantity <= 9
UNION ALL
SELECT 'CMS122', patient_id, 'numerator', NULL, NULL, 'no glycemic status assessment in the period'
FROM ecqm_patient p
WHERE p.patient_id NOT IN (SELECT a.patient_id FROM cms122_assessment a);

-- @include lib/ecqm_measure.sql

CREATE OR REPLACE VIEW cms122_patients AS SELECT * FROM measure_patients ORDER BY patient_id;
CREATE OR REPLACE VIEW cms122_summary AS SELECT * FROM measure_summary;
