-- @repeat
-- A measure's results from its criteria: a measure file defines two views (or tables),
-- then includes this file (which runs at every include) and keeps what it makes,
-- measure_patients and measure_summary, under its own names (a view keeps the table it
-- was made from, even when the next measure replaces that name).
--
--   measure_info(measure, title, inverse, not_evaluated)  one row; inverse: the numerator
--       is the gap (CMS122: poor control), not the goal
--   measure_criteria(measure, patient_id, part, reason, evidence, detail)  one row per
--       piece of evidence: part 'population' (initial population = denominator: every
--       patient with population rows), 'exclusion' (reason says which), 'numerator'
--       (evidence may be null, e.g. "no test at all"), or 'detail' (only `detail`: what the
--       numerator was decided on, shown for every patient of the population)
--
-- The exclusions all five measures share (lib/ecqm.sql's ecqm_common_exclusion: hospice,
-- palliative care, 66 and over in a nursing home) are added here.
--
-- measure_patients: one row per patient of the warehouse, with the populations as the
-- eCQM counts them: the numerator and the care gap only among the denominator less its
-- exclusions.
CREATE OR REPLACE TABLE measure_patients AS
WITH per_patient AS (
    SELECT patient_id,
        bool_or(part = 'population') AS in_population,
        bool_or(part = 'exclusion') AS excluded,
        bool_or(part = 'numerator') AS meets_numerator,
        array_sort(array_agg(DISTINCT reason) FILTER (WHERE part = 'exclusion')) AS exclusion_reasons,
        array_sort(array_agg(DISTINCT evidence) FILTER (WHERE part = 'population')) AS population_evidence,
        array_sort(array_agg(DISTINCT evidence) FILTER (WHERE part = 'exclusion')) AS exclusion_evidence,
        array_sort(array_agg(DISTINCT evidence) FILTER (WHERE part = 'numerator' AND evidence IS NOT NULL)) AS numerator_evidence,
        string_agg(DISTINCT detail, '; ') FILTER (WHERE part IN ('numerator', 'detail')) AS detail
    FROM (SELECT * FROM measure_criteria
          UNION ALL
          SELECT i.measure, x.patient_id, 'exclusion', x.reason, x.evidence, NULL
          FROM ecqm_common_exclusion x CROSS JOIN measure_info i) criteria
    GROUP BY patient_id
)
SELECT i.measure, p.patient_id, p.age, p.gender,
    coalesce(c.in_population, false) AS initial_population,
    coalesce(c.in_population, false) AS denominator,
    coalesce(c.in_population AND c.excluded, false) AS denominator_exclusion,
    CASE WHEN c.in_population AND c.excluded THEN c.exclusion_reasons END AS exclusion_reasons,
    coalesce(c.in_population AND NOT coalesce(c.excluded, false) AND c.meets_numerator, false) AS numerator,
    coalesce(c.in_population AND NOT coalesce(c.excluded, false)
        AND coalesce(c.meets_numerator, false) = i.inverse, false) AS care_gap,
    CASE WHEN c.in_population THEN c.population_evidence END AS population_evidence,
    CASE WHEN c.in_population AND c.excluded THEN c.exclusion_evidence END AS exclusion_evidence,
    CASE WHEN c.in_population AND NOT coalesce(c.excluded, false) THEN c.numerator_evidence END AS numerator_evidence,
    CASE WHEN c.in_population AND NOT coalesce(c.excluded, false) THEN c.detail END AS detail
FROM ecqm_patient p
CROSS JOIN measure_info i
LEFT JOIN per_patient c ON c.patient_id = p.patient_id;

-- measure_summary: the counts and the performance rate, numerator / (denominator -
-- exclusions), as a fraction rounded to 4 places (null when nobody is left).
CREATE OR REPLACE VIEW measure_summary AS
SELECT i.measure, i.title, d.period_start, d.period_end,
    count(m.patient_id) FILTER (WHERE m.initial_population) AS initial_population,
    count(m.patient_id) FILTER (WHERE m.denominator) AS denominator,
    count(m.patient_id) FILTER (WHERE m.denominator_exclusion) AS denominator_exclusions,
    count(m.patient_id) FILTER (WHERE m.numerator) AS numerator,
    round(CAST(count(m.patient_id) FILTER (WHERE m.numerator) AS DOUBLE)
        / nullif(count(m.patient_id) FILTER (WHERE m.denominator AND NOT m.denominator_exclusion), 0), 4)
        AS performance_rate,
    count(m.patient_id) FILTER (WHERE m.care_gap) AS care_gaps,
    i.not_evaluated
FROM measure_info i
CROSS JOIN ecqm_period d
LEFT JOIN measure_patients m ON m.measure = i.measure
GROUP BY i.measure, i.title, d.period_start, d.period_end, i.not_evaluated;
