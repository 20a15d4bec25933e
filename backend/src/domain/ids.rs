//! Identifiers that arrive as text at the edges (OCPI), parsed once: never empty, bounded in
//! length. Row ids, group ids and charge-point ids are plain integers (see the glossary in
//! `DESIGN.md`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest identifier accepted (OCPI's longest id field is 255 characters, most are 36).
const MAX_ID_LEN: usize = 255;

fn valid_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_ID_LEN && !text.chars().any(char::is_control)
}

/// An OCPI EVSE uid: unique within one CPO party (OCPI 2.2.1 `EVSE.uid`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EvseUid(String);

impl EvseUid {
    /// Parses an EVSE uid (non-empty, at most 255 characters, no control characters).
    pub fn parse(text: impl Into<String>) -> Result<Self, String> {
        let text = text.into();
        if valid_id(&text) {
            Ok(Self(text))
        } else {
            Err(format!("invalid EVSE uid {text:?}"))
        }
    }

    /// The uid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EvseUid {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<EvseUid> for String {
    fn from(value: EvseUid) -> Self {
        value.0
    }
}

impl fmt::Display for EvseUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An OCPI party: ISO 3166 alpha-2 country code and a three-character party id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartyKey {
    /// ISO 3166-1 alpha-2 country code (`NL`).
    pub country_code: String,
    /// Party id (`EXA`).
    pub party_id: String,
}

impl PartyKey {
    /// Parses a party key: a two-letter country code and a three-character party id, both
    /// alphanumeric ASCII (OCPI 2.2.1 `CiString(2)` and `CiString(3)`).
    pub fn parse(country_code: &str, party_id: &str) -> Result<Self, String> {
        let ok = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok(country_code, 2) {
            return Err(format!(
                "country_code must be 2 characters, got {country_code:?}"
            ));
        }
        if !ok(party_id, 3) {
            return Err(format!("party_id must be 3 characters, got {party_id:?}"));
        }
        Ok(Self {
            country_code: country_code.to_ascii_uppercase(),
            party_id: party_id.to_ascii_uppercase(),
        })
    }
}

impl fmt::Display for PartyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}*{}", self.country_code, self.party_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evse_uid_rejects_empty_long_and_control_characters() {
        assert!(EvseUid::parse("3256").is_ok());
        assert!(EvseUid::parse("").is_err());
        assert!(EvseUid::parse("a".repeat(256)).is_err());
        assert!(EvseUid::parse("a\nb").is_err());
        assert!(serde_json::from_str::<EvseUid>("\"\"").is_err());
        assert_eq!(
            serde_json::from_str::<EvseUid>("\"x\"").unwrap().as_str(),
            "x"
        );
    }

    #[test]
    fn party_key_is_normalised_to_upper_case() {
        let key = PartyKey::parse("nl", "exa").unwrap();
        assert_eq!(key.to_string(), "NL*EXA");
        assert!(PartyKey::parse("NLD", "EXA").is_err());
        assert!(PartyKey::parse("NL", "EX").is_err());
        assert!(PartyKey::parse("N!", "EXA").is_err());
    }
}
