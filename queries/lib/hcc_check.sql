-- A check of queries/hcc.sql (see `@check` in engine/src/sql/analyses.rs): its rows are
-- errors, and the analysis does not run.

-- The payment year needs the model's ICD-10-CM to CC map and coefficients of that year
-- (hierarchies fall back to the latest year before, and a missing normalisation factor is
-- noted per patient, with --normalization as the way out). Without them every score is
-- null, or no diagnosis maps, and --normalization cannot help; so the error lists the
-- years each model has tables for.
-- Each table's (model, year) pairs are made distinct before the join: joined row by row,
-- the map's thousands of codes meet the year's hundreds of coefficients.
WITH supported AS (
    SELECT substr(m.model_name, length('CMS-HCC Model ') + 1) AS model, m.payment_year
    FROM (SELECT DISTINCT model_name, payment_year FROM hcc_dx_to_cc
          WHERE model_name IN ('CMS-HCC Model V24', 'CMS-HCC Model V28')) m
    JOIN (SELECT DISTINCT model_version, payment_year FROM hcc_coefficients WHERE model_domain = 'CMS-HCC') f
        ON f.payment_year = m.payment_year AND f.model_version = 'C' || substr(m.model_name, length('CMS-HCC Model V') + 1)
),
years AS (
    SELECT model, string_agg(CAST(payment_year AS VARCHAR), ', ' ORDER BY payment_year) AS years
    FROM supported GROUP BY model
)
SELECT '--payment-year ' || CAST({{payment_year}} AS VARCHAR) || ': no CMS-HCC ' || {{model}}
    || ' tables (ICD-10-CM to CC map and coefficients) for that year; the payment years with tables: '
    || (SELECT string_agg(model || ' ' || years, '; ' ORDER BY model) FROM years) AS error
WHERE NOT EXISTS (SELECT 1 FROM supported WHERE model = {{model}} AND payment_year = {{payment_year}});

-- The service window, as queries/hcc.sql computes it (a flag not given is the year before
-- the payment year): one that ends before it starts would score every patient on no
-- diagnoses without a word.
SELECT '--service-from ' || CAST(service_from AS VARCHAR)
    || CASE WHEN {{service_from}} IS NULL THEN ' (the default for the payment year)' ELSE '' END
    || ' is after --service-to ' || CAST(service_to AS VARCHAR)
    || CASE WHEN {{service_to}} IS NULL THEN ' (the default for the payment year)' ELSE '' END
    || ': the service window is empty' AS error
FROM (SELECT coalesce({{service_from}}, make_date(CAST({{payment_year}} AS INT) - 1, 1, 1)) AS service_from,
             coalesce({{service_to}}, make_date(CAST({{payment_year}} AS INT) - 1, 12, 31)) AS service_to)
WHERE service_from > service_to;
