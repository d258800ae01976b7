//! Newtypes for identifiers, so an envelope id can never be passed where an organisation id is
//! expected.

use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn parse(s: &str) -> Option<Self> {
                Uuid::parse_str(s).ok().map(Self)
            }
            pub fn as_bytes(&self) -> [u8; 16] {
                *self.0.as_bytes()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(OrgId, "An organisation (tenant); owns one KEK.");
id_type!(EnvelopeId, "An envelope; owns one DEK and its blobs.");

impl OrgId {
    /// The key-manager key id of this organisation's KEK.
    pub fn kek_id(&self) -> String {
        format!("org:{}", self.0)
    }
}

id_type!(UserId, "An account (a person in an organisation).");
id_type!(ApiKeyId, "An API key of an organisation.");
