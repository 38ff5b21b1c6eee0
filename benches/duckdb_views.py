"""The six shipped views of the DuckDB comparison, written by hand for DuckDB.

`benches/e2e.py` times DuckDB doing the flattening that fhirhouse's `patient`, `condition`,
`observation`, `observation_component`, `medication_request` and `encounter` views do: one
`read_ndjson` with explicit columns and one `COPY ... TO` zstd Parquet per table. Each query
below yields every column of its ViewDefinition under the same name and type, written the
way a DuckDB user would (`coding[1]` where the view says `coding.first()`, `coalesce` over a
choice type's members, `list_filter` for a `where`), so that both tools do the same work.
The crosswalk columns fhirhouse adds (`loinc_*`, `icd10cm_*`, `rxnorm_*`) have no
counterpart here: they are extra work on fhirhouse's side only.

`e2e.py` checks the result: the same row count per table, the same column names, and the
rows of the two outputs compared value for value (`EXCEPT ALL`, both ways).
"""

import json
import sys
from pathlib import Path

CODING = "STRUCT(system VARCHAR, code VARCHAR, display VARCHAR)"
CONCEPT = f"STRUCT(coding {CODING}[], text VARCHAR)"
REF = "STRUCT(reference VARCHAR)"
QUANTITY = "STRUCT(value DECIMAL(38,9), unit VARCHAR, code VARCHAR)"
PERIOD = 'STRUCT(start TIMESTAMPTZ, "end" TIMESTAMPTZ)'
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"

# getReferenceKey(Type) for the `Type/id` references of a bulk export, and the `codings`
# column every view carries: `coding.where(system.exists() and code.exists()).select(system & '|' & code)`,
# an empty list (as fhirhouse writes an empty collection) when there is no coding at all.
MACROS = """
CREATE OR REPLACE MACRO ref_key(r, t) AS
    CASE WHEN starts_with(r.reference, t || '/') THEN split_part(r.reference, '/', 2) END;
CREATE OR REPLACE MACRO codings(cs) AS
    coalesce(list_transform(list_filter(cs, c -> c.system IS NOT NULL AND c.code IS NOT NULL),
                            c -> c.system || '|' || c.code), []);
"""


def _extension(url):
    return f"list_filter(extension, e -> e.url = '{US_CORE}{url}')[1]"


# The name the patient view reads, `(name.where(use = 'official') | name).first()`: the official one, else the first.
_OFFICIAL_NAME = "coalesce(list_filter(name, n -> n.use = 'official')[1], name[1])"


# The CodeableConcept the medication_request view's code columns read: medicationCodeableConcept,
# or else the code of the Medication contained in the resource that medicationReference names as
# `#id` (`contained.ofType(Medication).where(('#' + id) = %resource.medication.ofType(Reference)
# .reference).first().code`); a reference to a Medication outside the resource gives no code.
# (`json_extract_string` rather than `->>`: inside a lambda DuckDB 1.1 takes `->` for the
# arrow; `json_transform`, unlike a cast, reads a coding without `system` or `code`.)
_MEDICATION = ("coalesce(medicationCodeableConcept, json_transform(json_extract(list_filter(contained, "
               "c -> json_extract_string(c, 'resourceType') = 'Medication' "
               "AND '#' || json_extract_string(c, 'id') = medicationReference.reference)[1], 'code'), "
               """'{"coding": [{"system": "VARCHAR", "code": "VARCHAR", "display": "VARCHAR"}], "text": "VARCHAR"}'))""")


def _omb_category(url):
    return f"list_filter({_extension(url)}.extension, e -> e.url = 'ombCategory')[1].valueCoding.code"


# (resource type, columns to read, SELECT list, FROM suffix) per table.
TABLES = {
    "patient": ("Patient", {
        "id": "VARCHAR", "identifier": f"STRUCT(type {CONCEPT}, value VARCHAR)[]", "active": "BOOLEAN",
        "gender": "VARCHAR", "birthDate": "DATE", "deceasedDateTime": "TIMESTAMPTZ", "deceasedBoolean": "BOOLEAN",
        "name": 'STRUCT("use" VARCHAR, family VARCHAR, given VARCHAR[])[]',
        "extension": f"STRUCT(url VARCHAR, valueCode VARCHAR, extension STRUCT(url VARCHAR, valueCoding {CODING})[])[]",
        "maritalStatus": CONCEPT, "communication": f"STRUCT(language {CONCEPT})[]",
        "address": "STRUCT(line VARCHAR[], city VARCHAR, state VARCHAR, postalCode VARCHAR, country VARCHAR)[]",
        "meta": "STRUCT(lastUpdated TIMESTAMPTZ)"},
        f"""id,
        list_filter(identifier, i -> list_contains(list_transform(i.type.coding, c -> c.code), 'MR'))[1].value AS mrn,
        active, gender, birthDate AS birth_date,
        CASE WHEN deceasedDateTime IS NOT NULL THEN true ELSE coalesce(deceasedBoolean, false) END AS deceased,
        deceasedDateTime AS deceased_datetime,
        {_OFFICIAL_NAME}.family AS family_name,
        array_to_string({_OFFICIAL_NAME}.given, ' ') AS given_names,
        {_extension('birthsex')}.valueCode AS birth_sex,
        {_omb_category('race')} AS race_code,
        {_omb_category('ethnicity')} AS ethnicity_code,
        maritalStatus.coding[1].code AS marital_status,
        communication[1].language.coding[1].code AS language,
        array_to_string(address[1].line, ', ') AS address_line,
        address[1].city AS city, address[1].state AS state, address[1].postalCode AS postal_code,
        address[1].country AS country, meta.lastUpdated AS last_updated""", ""),
    "condition": ("Condition", {
        "id": "VARCHAR", "subject": REF, "encounter": REF, "clinicalStatus": CONCEPT,
        "verificationStatus": CONCEPT, "category": f"{CONCEPT}[]", "severity": CONCEPT, "code": CONCEPT,
        "bodySite": f"{CONCEPT}[]", "onsetDateTime": "TIMESTAMPTZ", "onsetPeriod": PERIOD,
        "abatementDateTime": "TIMESTAMPTZ", "abatementPeriod": PERIOD, "recordedDate": "TIMESTAMPTZ",
        "recorder": REF, "asserter": REF},
        """id, ref_key(subject, 'Patient') AS patient_id, ref_key(encounter, 'Encounter') AS encounter_id,
        clinicalStatus.coding[1].code AS clinical_status, verificationStatus.coding[1].code AS verification_status,
        category[1].coding[1].code AS category, severity.coding[1].code AS severity,
        code.coding[1].system AS code_system, code.coding[1].code AS code, code.coding[1].display AS code_display,
        code.text AS code_text, codings(code.coding) AS codings, bodySite[1].coding[1].code AS body_site_code,
        coalesce(onsetDateTime, onsetPeriod.start) AS onset_datetime,
        coalesce(abatementDateTime, abatementPeriod."end") AS abatement_datetime, recordedDate AS recorded_date,
        ref_key(recorder, 'Practitioner') AS recorder_id, ref_key(asserter, 'Practitioner') AS asserter_id""", ""),
    "observation": ("Observation", {
        "id": "VARCHAR", "status": "VARCHAR", "category": f"{CONCEPT}[]", "code": CONCEPT, "subject": REF,
        "encounter": REF, "effectiveDateTime": "TIMESTAMPTZ", "effectivePeriod": PERIOD,
        "effectiveInstant": "TIMESTAMPTZ", "issued": "TIMESTAMPTZ", "valueQuantity": QUANTITY,
        "valueCodeableConcept": CONCEPT, "valueString": "VARCHAR", "valueBoolean": "BOOLEAN",
        "valueInteger": "INTEGER", "dataAbsentReason": CONCEPT, "interpretation": f"{CONCEPT}[]",
        "component": "JSON[]"},
        """id, ref_key(subject, 'Patient') AS patient_id, ref_key(encounter, 'Encounter') AS encounter_id, status,
        category[1].coding[1].code AS category, code.coding[1].system AS code_system, code.coding[1].code AS code,
        code.coding[1].display AS code_display, code.text AS code_text, codings(code.coding) AS codings,
        coalesce(effectiveDateTime, effectivePeriod.start, effectiveInstant) AS effective_datetime, issued,
        valueQuantity.value AS value_quantity, valueQuantity.unit AS value_unit, valueQuantity.code AS value_ucum,
        valueCodeableConcept.coding[1].system AS value_code_system, valueCodeableConcept.coding[1].code AS value_code,
        valueCodeableConcept.coding[1].display AS value_code_display, valueString AS value_string,
        valueBoolean AS value_boolean, valueInteger AS value_integer,
        dataAbsentReason.coding[1].code AS data_absent_reason, interpretation[1].coding[1].code AS interpretation,
        coalesce(len(component), 0)::INTEGER AS component_count""", ""),
    "observation_component": ("Observation", {
        "id": "VARCHAR", "status": "VARCHAR", "code": CONCEPT, "subject": REF, "encounter": REF,
        "effectiveDateTime": "TIMESTAMPTZ", "effectivePeriod": PERIOD, "effectiveInstant": "TIMESTAMPTZ",
        "component": f"STRUCT(code {CONCEPT}, valueQuantity {QUANTITY}, valueCodeableConcept {CONCEPT}, "
                     f"valueString VARCHAR, valueBoolean BOOLEAN, valueInteger INTEGER, dataAbsentReason {CONCEPT}, "
                     f"interpretation {CONCEPT}[])[]"},
        # Observations without components are dropped before the `unnest`: DuckDB 1.1's
        # unnest over 270,000 lists, nine in ten of them empty, took 3 s without the filter and
        # 0.3 s with it (the output is the same).
        """observation_id, patient_id, encounter_id, status, effective_datetime, observation_code,
        c.code.coding[1].system AS code_system, c.code.coding[1].code AS code,
        c.code.coding[1].display AS code_display, c.code.text AS code_text, codings(c.code.coding) AS codings,
        c.valueQuantity.value AS value_quantity, c.valueQuantity.unit AS value_unit,
        c.valueQuantity.code AS value_ucum, c.valueCodeableConcept.coding[1].system AS value_code_system,
        c.valueCodeableConcept.coding[1].code AS value_code,
        c.valueCodeableConcept.coding[1].display AS value_code_display, c.valueString AS value_string,
        c.valueBoolean AS value_boolean, c.valueInteger AS value_integer,
        c.dataAbsentReason.coding[1].code AS data_absent_reason,
        c.interpretation[1].coding[1].code AS interpretation FROM (SELECT id AS observation_id,
        ref_key(subject, 'Patient') AS patient_id, ref_key(encounter, 'Encounter') AS encounter_id, status,
        coalesce(effectiveDateTime, effectivePeriod.start, effectiveInstant) AS effective_datetime,
        code.coding[1].code AS observation_code, unnest(component) AS c""",
        " WHERE len(component) > 0)"),
    "medication_request": ("MedicationRequest", {
        "id": "VARCHAR", "status": "VARCHAR", "intent": "VARCHAR", "category": f"{CONCEPT}[]",
        "contained": "JSON[]", "medicationCodeableConcept": CONCEPT, "medicationReference": REF, "subject": REF,
        "encounter": REF,
        "authoredOn": "TIMESTAMPTZ", "requester": REF, "reasonCode": f"{CONCEPT}[]", "reasonReference": f"{REF}[]",
        "dosageInstruction": f"STRUCT(text VARCHAR, asNeededBoolean BOOLEAN, asNeededCodeableConcept {CONCEPT}, "
                             f"doseAndRate STRUCT(doseQuantity "
                             f"{QUANTITY})[], timing STRUCT(\"repeat\" STRUCT(frequency INTEGER, "
                             f"period DECIMAL(38,9), periodUnit VARCHAR)))[]",
        "dispenseRequest": "STRUCT(quantity STRUCT(value DECIMAL(38,9), unit VARCHAR), expectedSupplyDuration "
                           "STRUCT(value DECIMAL(38,9), code VARCHAR), numberOfRepeatsAllowed INTEGER)"},
        f"""id, ref_key(subject, 'Patient') AS patient_id, ref_key(encounter, 'Encounter') AS encounter_id, status,
        intent, category[1].coding[1].code AS category,
        medication.coding[1].system AS code_system, medication.coding[1].code AS code,
        medication.coding[1].display AS code_display, medication.text AS code_text,
        codings(medication.coding) AS codings,
        ref_key(medicationReference, 'Medication') AS medication_id, authoredOn AS authored_on,
        ref_key(requester, 'Practitioner') AS requester_id, reasonCode[1].coding[1].system AS reason_code_system,
        reasonCode[1].coding[1].code AS reason_code, reasonCode[1].coding[1].display AS reason_code_display,
        ref_key(reasonReference[1], 'Condition') AS reason_condition_id,
        dosageInstruction[1].text AS dosage_text,
        list_filter(list_transform(dosageInstruction, d -> CASE WHEN d.asNeededCodeableConcept IS NOT NULL
            THEN true ELSE d.asNeededBoolean END), x -> x IS NOT NULL)[1] AS as_needed,
        dosageInstruction[1].doseAndRate[1].doseQuantity.value AS dose_quantity,
        dosageInstruction[1].doseAndRate[1].doseQuantity.unit AS dose_unit,
        dosageInstruction[1].timing."repeat".frequency AS frequency,
        dosageInstruction[1].timing."repeat".period AS period,
        dosageInstruction[1].timing."repeat".periodUnit AS period_unit,
        dispenseRequest.quantity.value AS dispense_quantity, dispenseRequest.quantity.unit AS dispense_unit,
        dispenseRequest.expectedSupplyDuration.value AS days_supply,
        dispenseRequest.expectedSupplyDuration.code AS days_supply_unit,
        dispenseRequest.numberOfRepeatsAllowed AS refills FROM (SELECT *, {_MEDICATION} AS medication""", ")"),
    "encounter": ("Encounter", {
        "id": "VARCHAR", "status": "VARCHAR", "class": "STRUCT(system VARCHAR, code VARCHAR)",
        "type": f"{CONCEPT}[]", "serviceType": CONCEPT, "priority": CONCEPT, "subject": REF,
        "participant": f"STRUCT(type {CONCEPT}[], individual {REF})[]", "period": PERIOD,
        "reasonCode": f"{CONCEPT}[]", "reasonReference": f"{REF}[]", "serviceProvider": REF,
        "location": f"STRUCT(location {REF})[]",
        "hospitalization": f"STRUCT(admitSource {CONCEPT}, dischargeDisposition {CONCEPT})"},
        """id, ref_key(subject, 'Patient') AS patient_id, status, class.system AS class_system,
        class.code AS class_code, type[1].coding[1].system AS code_system, type[1].coding[1].code AS code,
        type[1].coding[1].display AS code_display, type[1].text AS code_text,
        codings(flatten(list_transform(type, t -> t.coding))) AS codings,
        serviceType.coding[1].code AS service_type_code, priority.coding[1].code AS priority_code,
        period.start AS period_start, period."end" AS period_end,
        reasonCode[1].coding[1].system AS reason_code_system, reasonCode[1].coding[1].code AS reason_code,
        reasonCode[1].coding[1].display AS reason_code_display,
        ref_key(reasonReference[1], 'Condition') AS reason_condition_id,
        ref_key(coalesce(list_filter(participant, p -> list_contains(flatten(list_transform(p.type,
            t -> list_transform(t.coding, c -> c.code))), 'PPRF'))[1], participant[1]).individual,
            'Practitioner') AS practitioner_id,
        ref_key(serviceProvider, 'Organization') AS service_provider_id,
        ref_key(location[1].location, 'Location') AS location_id,
        hospitalization.admitSource.coding[1].code AS admit_source_code,
        hospitalization.dischargeDisposition.coding[1].code AS discharge_disposition_code,
        hospitalization.dischargeDisposition.coding[1].display AS discharge_disposition_display""", ""),
}


def duckdb_sql(export, out, threads):
    """The statements that write the six tables of `export` to `out/<table>.parquet`."""
    statements = [f"SET threads = {threads};", "SET enable_progress_bar = false;", MACROS]
    for table, (resource_type, columns, select, joins) in TABLES.items():
        spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
        source = (f"read_ndjson('{export}/{resource_type}.*ndjson*', columns={{{spec}}}, "
                  "format='newline_delimited')")
        statements.append(f"COPY (SELECT {select} FROM {source}{joins}) TO '{out}/{table}.parquet' "
                          "(FORMAT parquet, COMPRESSION zstd);")
    return "\n".join(statements)


def view_columns(view):
    """The column names of a ViewDefinition, in the order its table has them."""
    names = []

    def walk(selects):
        for select in selects:
            names.extend(column["name"] for column in select.get("column", []))
            walk(select.get("select", []))
            # Every branch of a unionAll has the same columns: the first one names them.
            walk(select.get("unionAll", [])[:1])

    walk(view["select"])
    return names


def compare(warehouse, duckdb_out, views):
    """Compares fhirhouse's tables in `warehouse` with DuckDB's in `duckdb_out`, table by
    table, over the columns of the views in the folder `views`: whether DuckDB wrote those
    columns, in order, and how many rows either side has that the other lacks (`EXCEPT
    ALL` over the columns both have, values compared as text). Runs under the venv's
    Python, which has `duckdb`."""
    import duckdb

    con = duckdb.connect()

    def count(query):
        return con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]

    report = {}
    for table in TABLES:
        columns = view_columns(json.loads((Path(views) / f"{table}.json").read_text()))
        theirs_file = f"'{duckdb_out}/{table}.parquet'"
        theirs_columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {theirs_file}").fetchall()]
        as_text = ", ".join(f'"{c}"::VARCHAR' for c in columns if c in theirs_columns)
        ours = f"SELECT {as_text} FROM read_parquet('{warehouse}/{table}/**/*.parquet', hive_partitioning = false)"
        theirs = f"SELECT {as_text} FROM {theirs_file}"
        report[table] = {"rows": count(ours), "columns_equal": theirs_columns == columns,
                         "only_fhirhouse": count(f"{ours} EXCEPT ALL {theirs}"),
                         "only_duckdb": count(f"{theirs} EXCEPT ALL {ours}")}
    return report


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "compare":
        sys.exit("usage: duckdb_views.py compare <fhirhouse warehouse> <duckdb output> <views folder>")
    print(json.dumps(compare(*sys.argv[2:])))
