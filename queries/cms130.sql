-- CMS130: Colorectal Cancer Screening. The eCQM's CQL: ColonCancerScreeningFHIR 0.1.000
-- (QI-Core 4.1.1).
--
-- @title Colorectal cancer screening: FOBT, stool DNA, sigmoidoscopy, CT colonography or colonoscopy (CMS130)
-- @param period_start date 2025-01-01 First day of the measurement period, which lasts one year.
-- @param encounter_codes vsac|supplemented supplemented Qualifying visits: the shipped VSAC value sets only (no CPT), or with the SNOMED CT stand-ins for the removed CPT visit codes.
-- @result summary cms130_summary One row: initial population, denominator, exclusions, numerator, performance rate, care gaps.
-- @result patients cms130_patients One row per patient: the populations, exclusion reasons, evidence resource ids, the screening found.
--
-- Initial population (= denominator): aged 46 to 75 at the end of the period with a
-- qualifying outpatient visit in it (AdultOutpatientEncounters).
-- Exclusions: hospice; malignant neoplasm of the colon starting on or before the end of
-- the period; a total colectomy ending on or before it; 66 and over with advanced illness
-- and frailty; 66 and over living long term in a nursing home; palliative care.
-- Numerator, any of: a fecal occult blood test with a result in the period; a stool DNA
-- with FIT test with a result in it or the two years before; a flexible sigmoidoscopy or
-- a CT colonography ending in it or the four years before; a colonoscopy ending in it or
-- the nine years before. Tests are final laboratory observations, CT colonography a final
-- observation, the others completed procedures.
--
-- Simplifications and readings of the CQL (besides those of lib/ecqm.sql):
-- * "value is not null": the observation has a quantity, coded, string or boolean value
--   (the view's value columns; other value types are not seen).
-- * Stratifications 1 (46-49) and 2 (50-75) are not reported separately; the patients
--   result has the age to split on.

-- @include lib/ecqm.sql

CREATE OR REPLACE VIEW measure_info AS
SELECT 'CMS130' AS measure, 'Colorectal Cancer Screening' AS title, false AS inverse,
    'hospice orders (ServiceRequest) and frailty device orders (DeviceRequest): no table' AS not_evaluated;

CREATE OR REPLACE TABLE measure_criteria AS
WITH population AS (
    SELECT p.patient_id FROM ecqm_patient p
    WHERE p.age BETWEEN 46 AND 75
      AND p.patient_id IN (SELECT e.patient_id FROM ecqm_adult_outpatient_encounter e)
),
screening AS (
    SELECT o.patient_id, 'Observation/' || o.id AS evidence,
        CASE o.valueset WHEN 'Fecal Occult Blood Test (FOBT)' THEN 'FOBT' WHEN 'sDNA FIT Test' THEN 'stool DNA with FIT'
             ELSE 'CT colonography' END || ' ' || CAST(o.day AS VARCHAR) AS detail
    FROM ecqm_observation o CROSS JOIN ecqm_period d
    WHERE o.status IN ('final', 'amended', 'corrected')
      AND ((o.valueset = 'Fecal Occult Blood Test (FOBT)' AND o.category = 'laboratory'
            AND o.day BETWEEN d.period_start AND d.period_end)
        OR (o.valueset = 'sDNA FIT Test' AND o.category = 'laboratory'
            AND o.day BETWEEN CAST(d.period_start - INTERVAL '2 years' AS DATE) AND d.period_end)
        OR (o.valueset = 'CT Colonography'
            AND o.day BETWEEN CAST(d.period_start - INTERVAL '4 years' AS DATE) AND d.period_end))
      AND (o.valueset = 'CT Colonography' OR o.has_value)
    UNION ALL
    SELECT p.patient_id, 'Procedure/' || p.id,
        lower(p.valueset) || ' ' || CAST(p.end_day AS VARCHAR)
    FROM ecqm_procedure p CROSS JOIN ecqm_period d
    WHERE p.completed AND p.end_day <= d.period_end
      AND ((p.valueset = 'Flexible Sigmoidoscopy' AND p.end_day >= CAST(d.period_start - INTERVAL '4 years' AS DATE))
        OR (p.valueset = 'Colonoscopy' AND p.end_day >= CAST(d.period_start - INTERVAL '9 years' AS DATE)))
)
SELECT 'CMS130' AS measure, e.patient_id, 'population' AS part, CAST(NULL AS VARCHAR) AS reason, e.evidence,
    CAST(NULL AS VARCHAR) AS detail
FROM ecqm_adult_outpatient_encounter e
WHERE e.patient_id IN (SELECT patient_id FROM population)
UNION ALL
SELECT 'CMS130', x.patient_id, 'exclusion', x.reason, x.evidence, NULL
FROM (SELECT * FROM ecqm_advanced_illness_frailty
      UNION ALL
      SELECT c.patient_id, 'malignant_neoplasm', 'Condition/' || c.id
      FROM ecqm_condition c CROSS JOIN ecqm_period d
      WHERE c.valueset = 'Malignant Neoplasm of Colon' AND (c.onset_day IS NULL OR c.onset_day <= d.period_end)
      UNION ALL
      SELECT p.patient_id, 'total_colectomy', 'Procedure/' || p.id
      FROM ecqm_procedure p CROSS JOIN ecqm_period d
      WHERE p.valueset = 'Total Colectomy' AND p.completed AND p.end_day <= d.period_end) x
UNION ALL
SELECT 'CMS130', s.patient_id, 'numerator', NULL, s.evidence, s.detail FROM screening s;

-- @include lib/ecqm_measure.sql

CREATE OR REPLACE VIEW cms130_patients AS SELECT * FROM measure_patients ORDER BY patient_id;
CREATE OR REPLACE VIEW cms130_summary AS SELECT * FROM measure_summary;
