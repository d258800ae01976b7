//! Data residency: every store and service a node uses is either on the node itself (the
//! embedded defaults: the SQLite file, the blob directory, the local keyring, the mail outbox,
//! the built-in timestamp authority), and so wherever the node runs, or an external endpoint
//! whose country the operator declares (`SIGILLUM_<ENDPOINT>_LOCATION`, ISO 3166-1 alpha-2).
//! A node refuses to start when one is declared outside `SIGILLUM_JURISDICTION`; `/readyz`
//! reports the jurisdiction and each endpoint's location, undeclared ones included.

use serde_json::{json, Value};

/// Where one endpoint is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Embedded: on the node, in the jurisdiction the node is declared to run in.
    ThisNode,
    /// External, declared by the operator.
    Declared(String),
    /// External, and nobody said where.
    Undeclared,
}

/// One store or service of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `database`, `blob_store`, `key_manager`, `mail`, `tsa`.
    pub name: &'static str,
    /// The configuration key of its declared location (`database_location`, …).
    pub key: &'static str,
    pub location: Location,
}

/// A node's jurisdiction and endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Residency {
    pub jurisdiction: String,
    pub endpoints: Vec<Endpoint>,
}

/// Whether `code` looks like an ISO 3166-1 alpha-2 country code.
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

impl Residency {
    /// The endpoints of a configuration: `(name, location key, external?, declared location)`.
    pub fn new(jurisdiction: &str, endpoints: &[(&'static str, &'static str, bool, Option<String>)]) -> Self {
        let endpoints = endpoints
            .iter()
            .map(|(name, key, external, declared)| Endpoint {
                name,
                key,
                location: match (declared, external) {
                    (Some(code), _) => Location::Declared(code.clone()),
                    (None, false) => Location::ThisNode,
                    (None, true) => Location::Undeclared,
                },
            })
            .collect();
        Self { jurisdiction: jurisdiction.to_owned(), endpoints }
    }

    /// Refuses an endpoint declared outside the jurisdiction (or with a malformed code).
    pub fn check(&self) -> Result<(), String> {
        for e in &self.endpoints {
            if let Location::Declared(code) = &e.location {
                let var = format!("SIGILLUM_{}", e.key.to_ascii_uppercase());
                if !is_country_code(code) {
                    return Err(format!("{var} must be an ISO 3166-1 alpha-2 code such as CH, not {code:?}"));
                }
                if *code != self.jurisdiction {
                    return Err(format!(
                        "{var} is {code}, outside SIGILLUM_JURISDICTION {}: every store and service must be in the \
                         jurisdiction, so this node does not start",
                        self.jurisdiction
                    ));
                }
            }
        }
        Ok(())
    }

    /// What `/readyz` shows.
    pub fn report(&self) -> Value {
        let mut endpoints = serde_json::Map::new();
        for e in &self.endpoints {
            let v = match &e.location {
                Location::ThisNode => json!({ "location": self.jurisdiction, "declared": "on this node" }),
                Location::Declared(code) => json!({ "location": code, "declared": "by the operator" }),
                Location::Undeclared => json!({ "location": null, "declared": "not declared" }),
            };
            endpoints.insert(e.name.to_owned(), v);
        }
        json!({ "jurisdiction": self.jurisdiction, "endpoints": endpoints })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn residency(blob: Option<&str>) -> Residency {
        Residency::new(
            "CH",
            &[
                ("database", "database_location", true, Some("CH".into())),
                ("blob_store", "blob_location", true, blob.map(str::to_owned)),
                ("key_manager", "kms_location", false, None),
            ],
        )
    }

    #[test]
    fn endpoints_outside_the_jurisdiction_are_refused() {
        assert_eq!(residency(Some("CH")).check(), Ok(()));
        assert_eq!(residency(None).check(), Ok(()), "undeclared is reported, not refused");
        let err = residency(Some("DE")).check().unwrap_err();
        assert!(err.contains("SIGILLUM_BLOB_LOCATION is DE, outside SIGILLUM_JURISDICTION CH"), "{err}");
        assert!(residency(Some("ch")).check().unwrap_err().contains("ISO 3166-1 alpha-2"));
    }

    #[test]
    fn the_report_names_every_endpoint() {
        let r = residency(None).report();
        assert_eq!(r["jurisdiction"], "CH");
        assert_eq!(r["endpoints"]["database"], json!({"location": "CH", "declared": "by the operator"}));
        assert_eq!(r["endpoints"]["blob_store"], json!({"location": null, "declared": "not declared"}));
        assert_eq!(r["endpoints"]["key_manager"], json!({"location": "CH", "declared": "on this node"}));
    }
}
