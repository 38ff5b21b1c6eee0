-- A check (see `@check` in engine/src/sql/analyses.rs): its rows are errors, and the
-- analysis does not run.
--
-- The analyses read the crosswalk columns of Conditions (`icd10cm_code`, `icd10cm_codes`,
-- ...), which a warehouse loaded with --no-crosswalk lacks (a load crosswalks all its tables
-- or none): without this check the first statement that reads one fails with a column
-- error from inside a shared file. A warehouse without a condition table passes (the
-- analysis runs and says what it could not read).
SELECT 'the analyses need a warehouse loaded with the crosswalks (they read '
    || string_agg(n.table_name || '.' || n.column_name, ', ' ORDER BY n.column_name)
    || '); this one was loaded with --no-crosswalk: load it again without it' AS error
FROM (VALUES ('condition', 'icd10cm_code'), ('condition', 'icd10cm_codes')) AS n(table_name, column_name)
JOIN information_schema.tables t ON t.table_schema = 'public' AND t.table_name = n.table_name
LEFT JOIN information_schema.columns c
    ON c.table_schema = 'public' AND c.table_name = n.table_name AND c.column_name = n.column_name
WHERE c.column_name IS NULL
HAVING count(*) > 0;
