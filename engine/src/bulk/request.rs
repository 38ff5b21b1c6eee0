//! What an export asks for: the level (system, patient, group) and the `$export`
//! parameters, as the kick-off URL.

use url::Url;

use super::BulkError;

/// Whose data: the export level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// `[base]/$export`: everything.
    System,
    /// `[base]/Patient/$export`: every patient's compartment.
    Patient,
    /// `[base]/Group/<id>/$export`: the group's members.
    Group(String),
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The FHIR base URL.
    pub server: Url,
    /// The level.
    pub level: Level,
    /// `_type`: resource types, all when empty.
    pub types: Vec<String>,
    /// `_since`: only resources changed after this instant (FHIR instant).
    pub since: Option<String>,
    /// `_typeFilter`: FHIR searches such as `Observation?status=final`.
    pub type_filters: Vec<String>,
    /// `_elements`: only these elements (mandatory ones are kept by the server).
    pub elements: Vec<String>,
}

impl ExportRequest {
    /// A system-level export of everything from `server`.
    #[must_use]
    pub fn new(server: Url) -> ExportRequest {
        ExportRequest {
            server,
            level: Level::System,
            types: Vec::new(),
            since: None,
            type_filters: Vec::new(),
            elements: Vec::new(),
        }
    }

    /// The kick-off URL.
    ///
    /// # Errors
    ///
    /// [`BulkError::Invalid`] for a group id that does not fit in a URL path segment.
    pub fn kickoff_url(&self) -> Result<Url, BulkError> {
        let path = match &self.level {
            Level::System => "$export".to_owned(),
            Level::Patient => "Patient/$export".to_owned(),
            Level::Group(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)) => {
                format!("Group/{id}/$export")
            }
            Level::Group(id) => {
                return Err(BulkError::Invalid(format!("{id:?} is not a FHIR id (A-Z, a-z, 0-9, - and .)")))
            }
        };
        let mut url = join(&self.server, &path)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("_outputFormat", "application/fhir+ndjson");
            if !self.types.is_empty() {
                query.append_pair("_type", &self.types.join(","));
            }
            if let Some(since) = &self.since {
                query.append_pair("_since", since);
            }
            for filter in &self.type_filters {
                query.append_pair("_typeFilter", filter);
            }
            if !self.elements.is_empty() {
                query.append_pair("_elements", &self.elements.join(","));
            }
        }
        Ok(url)
    }
}

/// `base/relative`, whether or not the base ends in a slash.
pub(crate) fn join(base: &Url, relative: &str) -> Result<Url, BulkError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(relative).map_err(|e| BulkError::Invalid(format!("{base}{relative}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kickoff_urls_carry_the_level_and_parameters() {
        let mut request = ExportRequest::new(Url::parse("https://fhir.example/r4").unwrap());
        assert_eq!(
            request.kickoff_url().unwrap().as_str(),
            "https://fhir.example/r4/$export?_outputFormat=application%2Ffhir%2Bndjson"
        );
        request.level = Level::Group("g-1".into());
        request.types = vec!["Patient".into(), "Observation".into()];
        request.since = Some("2024-01-01T00:00:00Z".into());
        request.type_filters = vec!["Observation?status=final&category=laboratory".into()];
        request.elements = vec!["id".into(), "code".into()];
        let url = request.kickoff_url().unwrap();
        assert_eq!(url.path(), "/r4/Group/g-1/$export");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("_type".into(), "Patient,Observation".into())));
        assert!(pairs.contains(&("_since".into(), "2024-01-01T00:00:00Z".into())));
        assert!(pairs.contains(&("_typeFilter".into(), "Observation?status=final&category=laboratory".into())));
        assert!(pairs.contains(&("_elements".into(), "id,code".into())));
        request.level = Level::Patient;
        assert_eq!(request.kickoff_url().unwrap().path(), "/r4/Patient/$export");
        request.level = Level::Group("../x".into());
        assert!(request.kickoff_url().is_err());
    }
}
