//! The resource types of FHIR R4 (4.0.1): to tell a resource no view reads from a typo, and
//! to read the type of a file from its name.

/// Every concrete resource type of FHIR R4, sorted.
pub const R4_RESOURCE_TYPES: [&str; 146] = [
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// Whether `name` is a FHIR R4 resource type.
#[must_use]
pub fn is_r4_resource_type(name: &str) -> bool {
    R4_RESOURCE_TYPES.binary_search(&name).is_ok()
}

/// The resource type a data file's name declares: the one dot-separated part of the name
/// that is a FHIR R4 resource type, as Bulk Data servers and clients name their files
/// (`Patient.000.ndjson`, `1.Observation.ndjson.gz`, `Condition.ndjson`). `None` when no
/// part is one, or when two different types are.
///
/// An export found in a folder or under an object-store prefix has no manifest to declare
/// its files' types; the name stands in for it, so that a load whose views do not read a
/// type need not parse its files (the Bulk Data specification puts one type in each file).
///
/// ```
/// use fhirhouse::source::type_from_name;
/// assert_eq!(type_from_name("Patient.000.ndjson"), Some("Patient"));
/// assert_eq!(type_from_name("1.Observation.ndjson.gz"), Some("Observation"));
/// assert_eq!(type_from_name("PatientExtra.ndjson"), None);
/// assert_eq!(type_from_name("patient.ndjson"), None, "type names are case-sensitive");
/// assert_eq!(type_from_name("Patient.Group.ndjson"), None, "two types: no declaration");
/// ```
#[must_use]
pub fn type_from_name(name: &str) -> Option<&str> {
    let mut types = name.split('.').filter(|part| is_r4_resource_type(part));
    let first = types.next()?;
    types.all(|other| other == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_for_binary_search_and_case_sensitive() {
        assert!(R4_RESOURCE_TYPES.windows(2).all(|w| w[0] < w[1]));
        assert!(is_r4_resource_type("Patient") && is_r4_resource_type("VisionPrescription"));
        assert!(!is_r4_resource_type("patient") && !is_r4_resource_type("Patients"));
    }
}
