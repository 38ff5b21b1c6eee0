-- CMS131: Diabetes: Eye Exam. The eCQM's CQL: DiabetesEyeExamFHIR 0.0.002 (QI-Core 4.1.1).
--
-- @title Diabetes: retinal or dilated eye exam (CMS131)
-- @param period_start date 2025-01-01 First day of the measurement period, which lasts one year.
-- @param encounter_codes vsac|supplemented supplemented Qualifying visits: the shipped VSAC value sets only (no CPT), or with the SNOMED CT stand-ins for the removed CPT visit codes.
-- @result summary cms131_summary One row: initial population, denominator, exclusions, numerator, performance rate, care gaps.
-- @result patients cms131_patients One row per patient: the populations, exclusion reasons, evidence resource ids.
--
-- Initial population (= denominator): aged 18 to 75 at the end of the period, a
-- qualifying visit in it (the measure's own list: office, annual wellness, preventive
-- care, home health, ophthalmological services or telephone visits; no virtual
-- encounters) and diabetes whose prevalence overlaps it.
-- Exclusions: hospice; 66 and over with advanced illness and frailty; 66 and over living
-- long term in a nursing home; palliative care.
-- Numerator: with diabetic retinopathy overlapping the period, a retinal or dilated eye
-- exam in the period; without, such an exam in the period or the year before. An exam is
-- a physical exam observation (final, amended or corrected; category exam).

-- @include lib/ecqm.sql

CREATE OR REPLACE VIEW measure_info AS
SELECT 'CMS131' AS measure, 'Diabetes: Eye Exam' AS title, false AS inverse,
    'hospice orders (ServiceRequest) and frailty device orders (DeviceRequest): no table' AS not_evaluated;

CREATE OR REPLACE TABLE measure_criteria AS
WITH qualifying AS (
    SELECT patient_id, evidence FROM ecqm_encounter_in_period
    WHERE valueset IN ('Office Visit', 'Annual Wellness Visit',
        'Preventive Care Services Established Office Visit, 18 and Up',
        'Preventive Care Services Initial Office Visit, 18 and Up',
        'Home Healthcare Services', 'Ophthalmological Services', 'Telephone Visits')
),
population AS (
    SELECT p.patient_id FROM ecqm_patient p
    WHERE p.age BETWEEN 18 AND 75
      AND p.patient_id IN (SELECT q.patient_id FROM qualifying q)
      AND p.patient_id IN (SELECT c.patient_id FROM ecqm_condition_in_period c WHERE c.valueset = 'Diabetes')
),
retinopathy AS (
    SELECT patient_id, evidence FROM ecqm_condition_in_period WHERE valueset = 'Diabetic Retinopathy'
),
exam AS (
    SELECT o.patient_id, 'Observation/' || o.id AS evidence, o.day, o.day >= d.period_start AS in_period
    FROM ecqm_observation o CROSS JOIN ecqm_period d
    WHERE o.valueset = 'Retinal or Dilated Eye Exam' AND o.status IN ('final', 'amended', 'corrected')
      AND o.category = 'exam'
      AND o.day BETWEEN CAST(d.period_start - INTERVAL '1 year' AS DATE) AND d.period_end
)
SELECT 'CMS131' AS measure, x.patient_id, 'population' AS part, CAST(NULL AS VARCHAR) AS reason, x.evidence,
    CAST(NULL AS VARCHAR) AS detail
FROM (SELECT patient_id, evidence FROM qualifying
      UNION ALL SELECT patient_id, evidence FROM ecqm_condition_in_period WHERE valueset = 'Diabetes') x
WHERE x.patient_id IN (SELECT patient_id FROM population)
UNION ALL
SELECT 'CMS131', x.patient_id, 'exclusion', x.reason, x.evidence, NULL FROM ecqm_advanced_illness_frailty x
UNION ALL
SELECT 'CMS131', e.patient_id, 'numerator', NULL, e.evidence,
    'eye exam ' || CAST(e.day AS VARCHAR) || CASE WHEN r.patient_id IS NULL THEN '' ELSE ' (with retinopathy)' END
FROM exam e
LEFT JOIN (SELECT DISTINCT patient_id FROM retinopathy) r ON r.patient_id = e.patient_id
WHERE e.in_period OR r.patient_id IS NULL
UNION ALL
SELECT 'CMS131', r.patient_id, 'detail', NULL, NULL, 'diabetic retinopathy: an exam in the period is needed'
FROM (SELECT DISTINCT patient_id FROM retinopathy) r;

-- @include lib/ecqm_measure.sql

CREATE OR REPLACE VIEW cms131_patients AS SELECT * FROM measure_patients ORDER BY patient_id;
CREATE OR REPLACE VIEW cms131_summary AS SELECT * FROM measure_summary;
