-- The eCQM building blocks shared by CMS122, CMS125, CMS130, CMS131 and CMS165: the
-- measurement period, the value sets, the resources that match them, and the CQL libraries
-- the five measures include: AdultOutpatientEncounters ("Qualifying Encounters"), Hospice
-- ("Has Hospice Services"), PalliativeCare, AdvancedIllnessandFrailty and Status (the
-- status filters: isEncounterPerformed, isLaboratoryTestPerformed, ...).
-- CQL: ../shared/terminology/ecqm-measures/cql (ecqm-content-qicore-2024).
--
-- Uses the parameters period_start (the measurement period's first day) and
-- encounter_codes (vsac or supplemented) that each measure declares, and the crosswalk
-- columns of Conditions (checked before anything runs):
-- @check lib/check_crosswalk.sql
--
-- How CQL reads here
-- * Time: the measurement period is [period_start, the day before the same date a year
--   later] (from 2020-02-29, which has no such date, to 2021-02-28), and the
--   CQL's "during/overlaps/ends ... day of" compare calendar dates. Timestamps are stored
--   in UTC, so a date is the UTC date of the instant (a visit at 23:30-05:00 falls on the
--   next day).
-- * Value sets: a resource is "in" a value set when any coding of its code (the view's
--   `codings`, system|code as written) is in the set's expansion. ICD-10-CM codes are
--   also matched in normal form (E11.9 = E119) through the crosswalk's `icd10cm_code` when
--   the code is already ICD-10-CM (`icd10cm_source = 'standard'`); codes only crosswalked
--   from SNOMED CT are not matched (the CQL sees the codes on the resource).
-- * CPT: the shipped value sets have no CPT codes (AMA licence). Office Visit, Preventive
--   Care Established/Initial 18 and Up and Virtual Encounter are mostly CPT (the two
--   Preventive Care sets have no other codes), so with the VSAC codes alone almost no
--   outpatient visit qualifies: the initial populations would be nearly empty. Unless
--   --encounter-codes vsac, the SNOMED CT stand-ins of mappings/valuesets/ecqm-supplement
--   (the encounter types Synthea writes for office visits, check-ups and home visits) are
--   added to the sets they stand in for. Data coded with CPT needs the full VSAC
--   expansions (a UMLS licence) in place of the shipped ones.
-- * Prevalence (QICoreCommon.prevalenceInterval): [onset, abatement]; an active (or
--   recurrence/relapse) condition without abatement is ongoing; any other condition without
--   abatement has an unknown end, so it overlaps a period only if its onset lies inside
--   it. A condition without onset starts at the beginning of time. The view keeps onset
--   and abatement given as dateTime or Period (not as Age, Range or string).
-- * Encounter periods (FHIRHelpers.ToInterval): a period without end lasts for ever (it is
--   never "during" the measurement period); one without start has an unknown start.
-- * Procedure.performed: the view gives a start and, for a Period, an end; a performed
--   without end is taken as the instant of its start (a Period left open is read as a
--   point, not as lasting for ever).
-- * Observation.effective: the view gives effectiveDateTime, effectiveInstant or the start
--   of effectivePeriod, so latest() and toInterval() are that instant.
-- * Categories: the observation view keeps the first category code; Status' "exists
--   category ~ laboratory" reads that one.
-- * Not evaluated (fhirhouse has no table for these resources): Hospice's ServiceRequest
--   ("Hospice Care Ambulatory" orders) and AdvancedIllnessandFrailty's DeviceRequest
--   ("Frailty Device" orders). Medication given as a reference to a Medication resource
--   (not a code) is not matched.

-- The measurement period.
CREATE OR REPLACE TABLE ecqm_period AS
-- A year after 29 February is 28 February (DataFusion clamps the day), and a day less
-- would end the period on the 27th: the period ends the day before 1 March instead.
SELECT {{period_start}} AS period_start,
       CASE WHEN date_part('month', {{period_start}}) = 2 AND date_part('day', {{period_start}}) = 29
            THEN make_date(CAST(date_part('year', {{period_start}}) AS INT) + 1, 2, 28)
            ELSE CAST({{period_start}} + INTERVAL '1 year' - INTERVAL '1 day' AS DATE) END AS period_end;

-- Every code the measures look for: the shipped value sets (with the encounter supplement
-- unless --encounter-codes vsac) and the single codes the CQL names, as system|code.
CREATE OR REPLACE TABLE ecqm_codes AS
SELECT valueset_name AS valueset, system || '|' || code AS coding
FROM valueset
WHERE collection = 'ecqm' OR (collection = 'ecqm_supplement' AND {{encounter_codes}} = 'supplemented')
UNION ALL
SELECT valueset, coding FROM (VALUES
    ('Glucose management indicator', 'http://loinc.org|97506-0'),
    ('Hospice care [Minimum Data Set]', 'http://loinc.org|45755-6'),
    ('Functional Assessment of Chronic Illness Therapy - Palliative Care Questionnaire (FACIT-Pal)', 'http://loinc.org|71007-9'),
    ('Housing status', 'http://loinc.org|71802-3'),
    ('Medical equipment used', 'http://loinc.org|98181-1'),
    -- The observation-bp profile's code (the FHIR vital signs blood pressure panel).
    ('Blood pressure panel', 'http://loinc.org|85354-9')
) AS single_codes(valueset, coding);

-- The resources in a value set the measures use, one row per (resource, value set), with
-- the dates the CQL compares. Like every step here, a table: computed once per run, as
-- every measure reads it.
CREATE OR REPLACE TABLE ecqm_encounter AS
SELECT DISTINCT e.id, e.patient_id, k.valueset, e.class_code, e.discharge_disposition_code,
    e.status IN ('finished', 'arrived', 'triaged', 'in-progress', 'onleave') AS performed,
    CAST(e.period_start AS DATE) AS start_day, CAST(e.period_end AS DATE) AS end_day
FROM (SELECT id, patient_id, class_code, discharge_disposition_code, status, period_start, period_end,
             unnest(codings) AS coding
      FROM encounter) e
JOIN ecqm_codes k ON k.coding = e.coding;

CREATE OR REPLACE TABLE ecqm_condition AS
WITH matched AS (
    SELECT c.id, k.valueset
    FROM (SELECT id, unnest(codings) AS coding FROM condition) c
    JOIN ecqm_codes k ON k.coding = c.coding
    UNION
    SELECT c.id, k.valueset
    FROM condition c
    JOIN ecqm_codes k ON k.coding = c.icd10cm_system || '|' || c.icd10cm_code
    WHERE c.icd10cm_source = 'standard'
)
SELECT c.id, c.patient_id, m.valueset, c.body_site_code,
    CAST(c.onset_datetime AS DATE) AS onset_day,
    CAST(c.abatement_datetime AS DATE) AS abatement_day,
    -- prevalenceInterval's end: ongoing, or unknown, when there is no abatement.
    c.abatement_datetime IS NULL AND c.clinical_status IN ('active', 'recurrence', 'relapse') AS ongoing,
    c.abatement_datetime IS NULL AND c.clinical_status NOT IN ('active', 'recurrence', 'relapse')
        OR c.abatement_datetime IS NULL AND c.clinical_status IS NULL AS end_unknown
FROM condition c JOIN matched m ON m.id = c.id;

CREATE OR REPLACE TABLE ecqm_observation AS
SELECT DISTINCT o.id, o.patient_id, o.encounter_id, k.valueset, o.status, o.category,
    CAST(o.effective_datetime AS DATE) AS day, o.effective_datetime AS effective,
    o.value_quantity, o.value_ucum, o.value_code_system, o.value_code, o.value_string, o.value_boolean,
    -- A value of any type: what the CQL's `value is not null` asks.
    o.value_quantity IS NOT NULL OR o.value_code IS NOT NULL OR o.value_string IS NOT NULL
        OR o.value_boolean IS NOT NULL OR o.value_integer IS NOT NULL AS has_value
FROM (SELECT id, patient_id, encounter_id, status, category, effective_datetime, value_quantity, value_ucum,
             value_code_system, value_code, value_string, value_boolean, value_integer, unnest(codings) AS coding
      FROM observation) o
JOIN ecqm_codes k ON k.coding = o.coding;

CREATE OR REPLACE TABLE ecqm_procedure AS
SELECT DISTINCT p.id, p.patient_id, k.valueset, p.status = 'completed' AS completed,
    CAST(p.performed_start AS DATE) AS start_day,
    -- FHIRHelpers.ToInterval gives a period without an end Interval[start, null], closed:
    -- it lasts for ever (overlaps every later period, never ends on or before one).
    CASE WHEN p.performed_open_ended THEN DATE '9999-12-31'
         ELSE CAST(coalesce(p.performed_end, p.performed_start) AS DATE) END AS end_day
FROM (SELECT id, patient_id, status, performed_start, performed_end, performed_open_ended, unnest(codings) AS coding
      FROM procedure) p
JOIN ecqm_codes k ON k.coding = p.coding;

-- CumulativeMedicationDuration.medicationRequestPeriod: from authoredOn for the days
-- supplied (expectedSupplyDuration, else quantity / (dose x doses a day)) times 1 + refills.
-- The view has no timing.repeat.bounds or timeOfDay: doses a day come from frequency and
-- period only (none without a frequency, as Count(timeOfDay) = 0 in the CQL).
CREATE OR REPLACE TABLE ecqm_medication AS
WITH matched AS (
    SELECT DISTINCT m.id, m.patient_id, k.valueset, m.status = 'active' AND m.intent = 'order' AS active,
        CAST(m.authored_on AS DATE) AS start_day,
        CAST(m.days_supply AS DOUBLE) * CASE coalesce(m.days_supply_unit, 'd')
            WHEN 'd' THEN 1 WHEN 'wk' THEN 7 WHEN 'mo' THEN 30 WHEN 'a' THEN 365 WHEN 'h' THEN 1.0 / 24 END AS supply_days,
        CAST(m.dispense_quantity AS DOUBLE) AS quantity, CAST(m.dose_quantity AS DOUBLE) AS dose,
        CASE WHEN m.frequency IS NULL THEN 0
             ELSE m.frequency / CAST(m.period AS DOUBLE) * CASE m.period_unit
                 WHEN 's' THEN 86400 WHEN 'min' THEN 1440 WHEN 'h' THEN 24 WHEN 'd' THEN 1
                 WHEN 'wk' THEN 1.0 / 7 WHEN 'mo' THEN 1.0 / 30 WHEN 'a' THEN 1.0 / 365 END
        END AS doses_per_day,
        coalesce(m.refills, 0) AS refills
    FROM (SELECT id, patient_id, status, intent, authored_on, days_supply, days_supply_unit, dispense_quantity,
                 dose_quantity, frequency, period, period_unit, refills, unnest(codings) AS coding
          FROM medication_request) m
    JOIN ecqm_codes k ON k.coding = m.coding
)
SELECT id, patient_id, valueset, active, start_day,
    coalesce(supply_days, quantity / nullif(dose * doses_per_day, 0)) * (1 + refills) AS total_days
FROM matched;

-- Patients with their age at the end of the period (AgeInYearsAt(date from end of
-- "Measurement Period")).
CREATE OR REPLACE TABLE ecqm_patient AS
SELECT p.id AS patient_id, p.gender, p.birth_date, age_in_years(p.birth_date, d.period_end) AS age
FROM patient p CROSS JOIN ecqm_period d;

-- Encounters performed during the measurement period, by value set: the measures'
-- "Qualifying Encounters" choose their value sets from these.
CREATE OR REPLACE TABLE ecqm_encounter_in_period AS
SELECT e.patient_id, e.valueset, 'Encounter/' || e.id AS evidence
FROM ecqm_encounter e CROSS JOIN ecqm_period d
WHERE e.performed AND e.start_day >= d.period_start AND e.end_day <= d.period_end;

-- AdultOutpatientEncounters."Qualifying Encounters".
CREATE OR REPLACE VIEW ecqm_adult_outpatient_encounter AS
SELECT patient_id, evidence FROM ecqm_encounter_in_period
WHERE valueset IN ('Office Visit', 'Annual Wellness Visit',
    'Preventive Care Services Established Office Visit, 18 and Up',
    'Preventive Care Services Initial Office Visit, 18 and Up',
    'Home Healthcare Services', 'Virtual Encounter', 'Telephone Visits');

-- Conditions whose prevalence period overlaps the measurement period, by value set.
CREATE OR REPLACE TABLE ecqm_condition_in_period AS
SELECT c.patient_id, c.valueset, 'Condition/' || c.id AS evidence
FROM ecqm_condition c CROSS JOIN ecqm_period d
WHERE (c.onset_day IS NULL OR c.onset_day <= d.period_end)
  AND (c.abatement_day >= d.period_start OR c.ongoing OR (c.end_unknown AND c.onset_day >= d.period_start));

-- Encounters and procedures overlapping the period. `resource` says which: the CQL
-- retrieves each value set from one resource type ([Encounter: "Hospice Encounter"],
-- [Procedure: "Hospice Care Ambulatory"]), so a procedure coded from an encounter value set
-- (a Procedure "Admission to hospice") does not count, nor the other way round.
CREATE OR REPLACE TABLE ecqm_event_in_period AS
SELECT e.patient_id, e.valueset, 'Encounter' AS resource, 'Encounter/' || e.id AS evidence, e.performed AS done
FROM ecqm_encounter e CROSS JOIN ecqm_period d
WHERE CASE WHEN e.start_day IS NULL THEN e.end_day BETWEEN d.period_start AND d.period_end
           ELSE e.start_day <= d.period_end AND (e.end_day IS NULL OR e.end_day >= d.period_start) END
UNION ALL
SELECT p.patient_id, p.valueset, 'Procedure', 'Procedure/' || p.id, p.completed
FROM ecqm_procedure p CROSS JOIN ecqm_period d
WHERE p.start_day <= d.period_end AND p.end_day >= d.period_start;

-- The criteria of the exclusion libraries, one row per piece of evidence:
-- hospice (Hospice."Has Hospice Services"), palliative_care (PalliativeCare), and from
-- AdvancedIllnessandFrailty: frailty ("Has Criteria Indicating Frailty"), advanced_illness
-- (in the year before or during the period), dementia_medication (likewise) and
-- nursing_home (the last housing status on or before the period's end).
CREATE OR REPLACE TABLE ecqm_criterion AS
-- Hospice: an inpatient stay discharged to hospice, ending in the period ...
SELECT e.patient_id, 'hospice' AS criterion, 'Encounter/' || e.id AS evidence
FROM ecqm_encounter e CROSS JOIN ecqm_period d
WHERE e.valueset = 'Encounter Inpatient' AND e.performed
  AND e.discharge_disposition_code IN ('428361000124107', '428371000124100')
  AND e.end_day BETWEEN d.period_start AND d.period_end
UNION ALL
-- ... a hospice encounter, a hospice procedure, a hospice diagnosis overlapping it ...
SELECT patient_id, 'hospice', evidence FROM ecqm_event_in_period
WHERE done AND ((resource = 'Encounter' AND valueset = 'Hospice Encounter')
             OR (resource = 'Procedure' AND valueset = 'Hospice Care Ambulatory'))
UNION ALL
SELECT patient_id, 'hospice', evidence FROM ecqm_condition_in_period WHERE valueset = 'Hospice Diagnosis'
UNION ALL
-- ... or a hospice assessment answered Yes (an assessment: a final survey observation).
SELECT o.patient_id, 'hospice', 'Observation/' || o.id
FROM ecqm_observation o CROSS JOIN ecqm_period d
WHERE o.valueset = 'Hospice care [Minimum Data Set]' AND o.status IN ('final', 'amended', 'corrected')
  AND o.category = 'survey' AND o.value_code_system = 'http://snomed.info/sct' AND o.value_code = '373066001'
  AND o.day BETWEEN d.period_start AND d.period_end
UNION ALL
-- Palliative care: an assessment, a diagnosis, an encounter or an intervention overlapping the period.
SELECT o.patient_id, 'palliative_care', 'Observation/' || o.id
FROM ecqm_observation o CROSS JOIN ecqm_period d
WHERE o.valueset = 'Functional Assessment of Chronic Illness Therapy - Palliative Care Questionnaire (FACIT-Pal)'
  AND o.status IN ('final', 'amended', 'corrected') AND o.category = 'survey'
  AND o.day BETWEEN d.period_start AND d.period_end
UNION ALL
SELECT patient_id, 'palliative_care', evidence FROM ecqm_condition_in_period WHERE valueset = 'Palliative Care Diagnosis'
UNION ALL
SELECT patient_id, 'palliative_care', evidence FROM ecqm_event_in_period
WHERE done AND ((resource = 'Encounter' AND valueset = 'Palliative Care Encounter')
             OR (resource = 'Procedure' AND valueset = 'Palliative Care Intervention'))
UNION ALL
-- Frailty: medical equipment used that is a frailty device (an assessment ending in the period) ...
SELECT o.patient_id, 'frailty', 'Observation/' || o.id
FROM ecqm_observation o CROSS JOIN ecqm_period d
WHERE o.valueset = 'Medical equipment used' AND o.status IN ('final', 'amended', 'corrected') AND o.category = 'survey'
  AND o.value_code_system || '|' || o.value_code IN (SELECT coding FROM ecqm_codes WHERE valueset = 'Frailty Device')
  AND o.day BETWEEN d.period_start AND d.period_end
UNION ALL
-- ... a frailty diagnosis or encounter overlapping the period ...
SELECT patient_id, 'frailty', evidence FROM ecqm_condition_in_period WHERE valueset = 'Frailty Diagnosis'
UNION ALL
SELECT patient_id, 'frailty', evidence FROM ecqm_event_in_period
WHERE done AND resource = 'Encounter' AND valueset = 'Frailty Encounter'
UNION ALL
-- ... or a frailty symptom (a preliminary or final observation) in it.
SELECT o.patient_id, 'frailty', 'Observation/' || o.id
FROM ecqm_observation o CROSS JOIN ecqm_period d
WHERE o.valueset = 'Frailty Symptom' AND o.status IN ('preliminary', 'final', 'amended', 'corrected')
  AND o.day BETWEEN d.period_start AND d.period_end
UNION ALL
-- Advanced illness: a diagnosis whose prevalence starts in the year before or during the period.
SELECT c.patient_id, 'advanced_illness', 'Condition/' || c.id
FROM ecqm_condition c CROSS JOIN ecqm_period d
WHERE c.valueset = 'Advanced Illness'
  AND c.onset_day BETWEEN CAST(d.period_start - INTERVAL '1 year' AS DATE) AND d.period_end
UNION ALL
-- Dementia medication: an active order whose medication period overlaps that same span
-- (days counted from 1970-01-01 so that a fractional supply compares as the CQL's does).
SELECT m.patient_id, 'dementia_medication', 'MedicationRequest/' || m.id
FROM ecqm_medication m CROSS JOIN ecqm_period d
WHERE m.valueset = 'Dementia Medications' AND m.active
  AND m.start_day <= d.period_end
  AND CAST(m.start_day AS INT) + m.total_days - 1 >= CAST(CAST(d.period_start - INTERVAL '1 year' AS DATE) AS INT)
UNION ALL
-- Nursing home: the last housing status assessment on or before the period's end says
-- "Lives in a nursing home". Last is by the instant (the CQL sorts by the end of the
-- effective time, not its day): of two on the last day, the later one decides; of several
-- at the very same instant, any one saying so counts.
SELECT o.patient_id, 'nursing_home', 'Observation/' || o.id
FROM ecqm_observation o
JOIN (SELECT h.patient_id, max(h.effective) AS effective
      FROM ecqm_observation h CROSS JOIN ecqm_period d
      WHERE h.valueset = 'Housing status' AND h.status IN ('final', 'amended', 'corrected') AND h.category = 'survey'
        AND h.day <= d.period_end
      GROUP BY h.patient_id) last_status ON last_status.patient_id = o.patient_id AND last_status.effective = o.effective
WHERE o.valueset = 'Housing status' AND o.status IN ('final', 'amended', 'corrected') AND o.category = 'survey'
  AND o.value_code_system = 'http://snomed.info/sct' AND o.value_code = '160734000';

-- The exclusions every measure has, with their age limits, as (patient_id, reason,
-- evidence): hospice, palliative_care, nursing_home (66 and over), and
-- advanced_illness_and_frailty ("Is Age 66 or Older with Advanced Illness and Frailty":
-- frailty and either an advanced illness or a dementia medication; CMS165 has its own).
CREATE OR REPLACE TABLE ecqm_common_exclusion AS
SELECT c.patient_id, c.criterion AS reason, c.evidence
FROM ecqm_criterion c JOIN ecqm_patient p ON p.patient_id = c.patient_id
WHERE c.criterion IN ('hospice', 'palliative_care') OR (c.criterion = 'nursing_home' AND p.age >= 66);

CREATE OR REPLACE TABLE ecqm_frailty_with_illness AS
SELECT c.patient_id, p.age, c.evidence
FROM ecqm_criterion c JOIN ecqm_patient p ON p.patient_id = c.patient_id
WHERE c.criterion IN ('frailty', 'advanced_illness', 'dementia_medication')
  AND c.patient_id IN (SELECT patient_id FROM ecqm_criterion WHERE criterion = 'frailty')
  AND c.patient_id IN (SELECT patient_id FROM ecqm_criterion WHERE criterion IN ('advanced_illness', 'dementia_medication'));

CREATE OR REPLACE TABLE ecqm_advanced_illness_frailty AS
SELECT patient_id, 'advanced_illness_and_frailty' AS reason, evidence FROM ecqm_frailty_with_illness WHERE age >= 66;
