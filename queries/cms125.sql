-- CMS125: Breast Cancer Screening. The eCQM's CQL: BreastCancerScreeningFHIR 0.0.001
-- (QI-Core 4.1.1).
--
-- @title Breast cancer screening: a mammogram since 1 October two years before (CMS125)
-- @param period_start date 2025-01-01 First day of the measurement period, which lasts one year.
-- @param encounter_codes vsac|supplemented supplemented Qualifying visits: the shipped VSAC value sets only (no CPT), or with the SNOMED CT stand-ins for the removed CPT visit codes.
-- @result summary cms125_summary One row: initial population, denominator, exclusions, numerator, performance rate, care gaps.
-- @result patients cms125_patients One row per patient: the populations, exclusion reasons, evidence resource ids.
--
-- Initial population (= denominator): women (Patient.gender female) aged 52 to 74 at the
-- end of the period with a qualifying outpatient visit in it (AdultOutpatientEncounters).
-- Exclusions: hospice; a right and a left mastectomy (each a status-post diagnosis, a
-- unilateral mastectomy diagnosis with that body site, or a unilateral mastectomy
-- procedure of that side), or a bilateral mastectomy (history diagnosis or procedure), on
-- or before the end of the period; 66 and over with advanced illness and frailty; 66 and
-- over living long term in a nursing home; palliative care.
-- Numerator: a mammography observation (final, amended or corrected) from 1 October two
-- years before the period to its end.
--
-- Simplifications and readings of the CQL (besides those of lib/ecqm.sql):
-- * The body site of a "Unilateral Mastectomy, Unspecified Laterality" diagnosis is the
--   code of its first bodySite coding (Right 24028007, Left 7771000), system not checked.
-- * Mammography is looked for as an Observation, as the CQL does ([Observation:
--   "Mammography"], LOINC report codes); a mammogram recorded only as a Procedure or an
--   ImagingStudy does not count.

-- @include lib/ecqm.sql

CREATE OR REPLACE VIEW cms125_mastectomy AS
SELECT c.patient_id,
    -- The side comes from the value set; the body site only for the unspecified-laterality
    -- set (a status-post-left or bilateral history diagnosis with a Right body site is still
    -- left or bilateral, as the CQL reads it).
    CASE c.valueset WHEN 'Status Post Right Mastectomy' THEN 'right'
         WHEN 'Status Post Left Mastectomy' THEN 'left'
         WHEN 'History of bilateral mastectomy' THEN 'bilateral'
         ELSE CASE c.body_site_code WHEN '24028007' THEN 'right' WHEN '7771000' THEN 'left' END END AS side,
    'Condition/' || c.id AS evidence
FROM ecqm_condition c CROSS JOIN ecqm_period d
WHERE (c.onset_day IS NULL OR c.onset_day <= d.period_end)
  AND (c.valueset IN ('Status Post Right Mastectomy', 'Status Post Left Mastectomy', 'History of bilateral mastectomy')
       OR (c.valueset = 'Unilateral Mastectomy, Unspecified Laterality' AND c.body_site_code IN ('24028007', '7771000')))
UNION ALL
SELECT p.patient_id,
    CASE p.valueset WHEN 'Unilateral Mastectomy Right' THEN 'right' WHEN 'Unilateral Mastectomy Left' THEN 'left'
         ELSE 'bilateral' END,
    'Procedure/' || p.id
FROM ecqm_procedure p CROSS JOIN ecqm_period d
WHERE p.valueset IN ('Unilateral Mastectomy Right', 'Unilateral Mastectomy Left', 'Bilateral Mastectomy')
  AND p.completed AND p.end_day <= d.period_end;

CREATE OR REPLACE VIEW measure_info AS
SELECT 'CMS125' AS measure, 'Breast Cancer Screening' AS title, false AS inverse,
    'hospice orders (ServiceRequest) and frailty device orders (DeviceRequest): no table' AS not_evaluated;

CREATE OR REPLACE TABLE measure_criteria AS
WITH population AS (
    SELECT p.patient_id FROM ecqm_patient p
    WHERE p.age BETWEEN 52 AND 74 AND p.gender = 'female'
      AND p.patient_id IN (SELECT e.patient_id FROM ecqm_adult_outpatient_encounter e)
),
mastectomy AS (
    SELECT m.patient_id, m.evidence FROM cms125_mastectomy m
    WHERE m.side = 'bilateral'
       OR (m.patient_id IN (SELECT r.patient_id FROM cms125_mastectomy r WHERE r.side = 'right')
           AND m.patient_id IN (SELECT l.patient_id FROM cms125_mastectomy l WHERE l.side = 'left'))
)
SELECT 'CMS125' AS measure, e.patient_id, 'population' AS part, CAST(NULL AS VARCHAR) AS reason, e.evidence,
    CAST(NULL AS VARCHAR) AS detail
FROM ecqm_adult_outpatient_encounter e
WHERE e.patient_id IN (SELECT patient_id FROM population)
UNION ALL
SELECT 'CMS125', x.patient_id, 'exclusion', x.reason, x.evidence, NULL
FROM (SELECT * FROM ecqm_advanced_illness_frailty UNION ALL SELECT patient_id, 'mastectomy', evidence FROM mastectomy) x
UNION ALL
SELECT 'CMS125', o.patient_id, 'numerator', NULL, 'Observation/' || o.id, 'mammography ' || CAST(o.day AS VARCHAR)
FROM ecqm_observation o CROSS JOIN ecqm_period d
WHERE o.valueset = 'Mammography' AND o.status IN ('final', 'amended', 'corrected')
  AND o.day BETWEEN make_date(CAST(date_part('year', d.period_start) AS INT) - 2, 10, 1) AND d.period_end;

-- @include lib/ecqm_measure.sql

CREATE OR REPLACE VIEW cms125_patients AS SELECT * FROM measure_patients ORDER BY patient_id;
CREATE OR REPLACE VIEW cms125_summary AS SELECT * FROM measure_summary;
