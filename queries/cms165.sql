-- CMS165: Controlling High Blood Pressure. The eCQM's CQL:
-- ControllingHighBloodPressureFHIR 0.1.000 (QI-Core 4.1.1).
--
-- @title Controlling high blood pressure: most recent reading < 140/90 (CMS165)
-- @param period_start date 2025-01-01 First day of the measurement period, which lasts one year.
-- @param encounter_codes vsac|supplemented supplemented Qualifying visits: the shipped VSAC value sets only (no CPT), or with the SNOMED CT stand-ins for the removed CPT visit codes.
-- @result summary cms165_summary One row: initial population, denominator, exclusions, numerator, performance rate, care gaps.
-- @result patients cms165_patients One row per patient: the populations, exclusion reasons, evidence resource ids, the deciding readings.
--
-- Initial population (= denominator): aged 18 to 85 at the end of the period, essential
-- hypertension whose prevalence overlaps the first six months of the period, and a
-- qualifying outpatient visit in the period (AdultOutpatientEncounters).
-- Exclusions: hospice; pregnancy, end-stage renal disease, kidney transplant recipient or
-- CKD stage 5 overlapping the period; a kidney transplant or dialysis ending on or before
-- its end; an ESRD monthly outpatient service starting on or before its end; aged 66 to 80
-- with advanced illness and frailty, or 81 and over with frailty; 66 and over living long
-- term in a nursing home; palliative care.
-- Numerator: on the most recent day in the period with a blood pressure reading, the
-- lowest systolic is < 140 mmHg and the lowest diastolic < 90 mmHg. Several readings on
-- that day: the lowest systolic and the lowest diastolic are taken separately (they may
-- come from different readings), as the CQL does. A reading counts when it is a final
-- blood pressure observation not taken in an emergency, inpatient, acute, non-acute,
-- pre-admission or short-stay encounter (encounter class EMER, IMP, ACUTE, NONAC, PRENC,
-- SS).
--
-- Simplifications and readings of the CQL (besides those of lib/ecqm.sql):
-- * A blood pressure observation is one coded 85354-9 (the observation-bp profile's code),
--   its systolic and diastolic the components 8480-6 and 8462-4 (LOINC, after the
--   crosswalk's normalisation of the system). Values are compared as mmHg.
-- * A reading whose encounter is not in the warehouse, or that names none, counts (the
--   CQL's class test is then `null in {...}`, which is false, and not false is true).
-- * "sort asc" puts a missing value first (CQL sorts nulls first): when a reading on the
--   most recent day lacks its systolic (or diastolic) value, that day's lowest is
--   unknown and the patient is not in the numerator.
-- * Both CQL lists of readings are the same observations, so "Blood Pressure Days" (the
--   intersection of their days) is every day with a qualifying reading.

-- @include lib/ecqm.sql

CREATE OR REPLACE VIEW cms165_reading AS
SELECT o.patient_id, 'Observation/' || o.id AS evidence, o.day, c.systolic, c.diastolic
FROM ecqm_observation o
CROSS JOIN ecqm_period d
LEFT JOIN (SELECT observation_id,
                  min(value_quantity) FILTER (WHERE loinc_code = '8480-6') AS systolic,
                  min(value_quantity) FILTER (WHERE loinc_code = '8462-4') AS diastolic
           FROM observation_component WHERE loinc_code IN ('8480-6', '8462-4')
           GROUP BY observation_id) c ON c.observation_id = o.id
LEFT JOIN encounter e ON e.id = o.encounter_id
WHERE o.valueset = 'Blood pressure panel' AND o.status IN ('final', 'amended', 'corrected')
  AND (e.class_code IS NULL OR e.class_code NOT IN ('EMER', 'IMP', 'ACUTE', 'NONAC', 'PRENC', 'SS'))
  AND o.day BETWEEN d.period_start AND d.period_end;

-- The most recent day's lowest systolic and diastolic; null when a reading of that day
-- lacks one (nulls sort first).
CREATE OR REPLACE VIEW cms165_most_recent_day AS
SELECT r.patient_id, r.day,
    CASE WHEN count(r.systolic) = count(*) THEN min(r.systolic) END AS systolic,
    CASE WHEN count(r.diastolic) = count(*) THEN min(r.diastolic) END AS diastolic,
    array_sort(array_agg(r.evidence)) AS evidence
FROM cms165_reading r
JOIN (SELECT patient_id, max(day) AS day FROM cms165_reading GROUP BY patient_id) last_day
  ON last_day.patient_id = r.patient_id AND last_day.day = r.day
GROUP BY r.patient_id, r.day;

CREATE OR REPLACE VIEW measure_info AS
SELECT 'CMS165' AS measure, 'Controlling High Blood Pressure' AS title, false AS inverse,
    'hospice orders (ServiceRequest) and frailty device orders (DeviceRequest): no table' AS not_evaluated;

CREATE OR REPLACE TABLE measure_criteria AS
WITH hypertension AS (
    SELECT c.patient_id, 'Condition/' || c.id AS evidence
    FROM ecqm_condition c CROSS JOIN ecqm_period d
    WHERE c.valueset = 'Essential Hypertension'
      AND (c.onset_day IS NULL OR c.onset_day < CAST(d.period_start + INTERVAL '6 months' AS DATE))
      AND (c.abatement_day >= d.period_start OR c.ongoing OR (c.end_unknown AND c.onset_day >= d.period_start))
),
population AS (
    SELECT p.patient_id FROM ecqm_patient p
    WHERE p.age BETWEEN 18 AND 85
      AND p.patient_id IN (SELECT h.patient_id FROM hypertension h)
      AND p.patient_id IN (SELECT e.patient_id FROM ecqm_adult_outpatient_encounter e)
),
exclusion AS (
    SELECT patient_id, 'pregnancy_or_renal_diagnosis' AS reason, evidence FROM ecqm_condition_in_period
    WHERE valueset IN ('Pregnancy', 'End Stage Renal Disease', 'Kidney Transplant Recipient',
                       'Chronic Kidney Disease, Stage 5')
    UNION ALL
    SELECT p.patient_id, 'esrd_procedure', 'Procedure/' || p.id
    FROM ecqm_procedure p CROSS JOIN ecqm_period d
    WHERE p.valueset IN ('Kidney Transplant', 'Dialysis Services') AND p.completed AND p.end_day <= d.period_end
    UNION ALL
    SELECT e.patient_id, 'esrd_encounter', 'Encounter/' || e.id
    FROM ecqm_encounter e CROSS JOIN ecqm_period d
    WHERE e.valueset = 'ESRD Monthly Outpatient Services' AND e.performed AND e.start_day <= d.period_end
    UNION ALL
    -- "Is Age 66 to 80 with Advanced Illness and Frailty or Is Age 81 or Older with Frailty"
    SELECT patient_id, 'advanced_illness_and_frailty', evidence FROM ecqm_frailty_with_illness WHERE age BETWEEN 66 AND 80
    UNION ALL
    SELECT c.patient_id, 'frailty', c.evidence
    FROM ecqm_criterion c JOIN ecqm_patient p ON p.patient_id = c.patient_id
    WHERE c.criterion = 'frailty' AND p.age >= 81
)
SELECT 'CMS165' AS measure, x.patient_id, 'population' AS part, CAST(NULL AS VARCHAR) AS reason, x.evidence,
    CAST(NULL AS VARCHAR) AS detail
FROM (SELECT patient_id, evidence FROM hypertension
      UNION ALL SELECT patient_id, evidence FROM ecqm_adult_outpatient_encounter) x
WHERE x.patient_id IN (SELECT patient_id FROM population)
UNION ALL
SELECT 'CMS165', patient_id, 'exclusion', reason, evidence, NULL FROM exclusion
UNION ALL
SELECT 'CMS165', r.patient_id, CASE WHEN r.systolic < 140 AND r.diastolic < 90 THEN 'numerator' ELSE 'detail' END,
    NULL, unnest(r.evidence),
    'most recent blood pressure day ' || CAST(r.day AS VARCHAR) || ': lowest '
        || coalesce(CAST(CAST(r.systolic AS DOUBLE) AS VARCHAR), 'unknown') || '/'
        || coalesce(CAST(CAST(r.diastolic AS DOUBLE) AS VARCHAR), 'unknown') || ' mmHg'
FROM cms165_most_recent_day r;

-- @include lib/ecqm_measure.sql

CREATE OR REPLACE VIEW cms165_patients AS SELECT * FROM measure_patients ORDER BY patient_id;
CREATE OR REPLACE VIEW cms165_summary AS SELECT * FROM measure_summary;
