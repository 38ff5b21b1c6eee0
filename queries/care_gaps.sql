-- The five care-gap measures at once, over one measurement period: CMS122, CMS125, CMS130,
-- CMS131 and CMS165 (each file says what it computes and how it reads its CQL). The shared
-- part (lib/ecqm.sql: the value set matches and exclusion criteria) runs once.
--
-- @title All five care-gap measures (CMS122, CMS125, CMS130, CMS131, CMS165) for one period
-- @param period_start date 2025-01-01 First day of the measurement period, which lasts one year.
-- @param encounter_codes vsac|supplemented supplemented Qualifying visits: the shipped VSAC value sets only (no CPT), or with the SNOMED CT stand-ins for the removed CPT visit codes.
-- @result summary care_gaps_summary One row per measure: initial population, denominator, exclusions, numerator, performance rate, care gaps.
-- @result patients care_gaps_patients One row per measure and patient (the columns of each measure's patients result).
-- @result gaps care_gaps_open One row per open care gap: measure, patient, the evidence seen.

-- @include cms122.sql
-- @include cms125.sql
-- @include cms130.sql
-- @include cms131.sql
-- @include cms165.sql

CREATE OR REPLACE VIEW care_gaps_summary AS
SELECT * FROM (
    SELECT * FROM cms122_summary UNION ALL SELECT * FROM cms125_summary UNION ALL SELECT * FROM cms130_summary
    UNION ALL SELECT * FROM cms131_summary UNION ALL SELECT * FROM cms165_summary
) all_measures ORDER BY measure;

CREATE OR REPLACE VIEW care_gaps_patients AS
SELECT * FROM (
    SELECT * FROM cms122_patients UNION ALL SELECT * FROM cms125_patients UNION ALL SELECT * FROM cms130_patients
    UNION ALL SELECT * FROM cms131_patients UNION ALL SELECT * FROM cms165_patients
) all_measures ORDER BY measure, patient_id;

CREATE OR REPLACE VIEW care_gaps_open AS
SELECT measure, patient_id, age, gender, population_evidence, numerator_evidence, detail
FROM care_gaps_patients WHERE care_gap ORDER BY measure, patient_id;
