//! A store's admin credential, read from the Kubernetes Secret its spec references.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;

use super::edgegrid::ClientCredential;

/// A secret value. `Debug` and `Display` never show it; [`SecretString::expose`] is the
/// single, greppable way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Secret keys of each provider's credential, as DESIGN §1 and the store types document.
pub mod keys {
    use crate::upstream::{Api, provider_api};

    pub const AKAMAI_HOST: &str = "host";
    pub const AKAMAI_CLIENT_TOKEN: &str = "client_token";
    pub const AKAMAI_CLIENT_SECRET: &str = "client_secret";
    pub const AKAMAI_ACCESS_TOKEN: &str = "access_token";
    pub const PREFACTOR_TOKEN: &str = "token";
    pub const TREND_MICRO_API_SECRET_KEY: &str = "apiSecretKey";
    pub const ZENML_API_KEY: &str = "apiKey";
    pub const ZENML_USERNAME: &str = "username";
    pub const ZENML_PASSWORD: &str = "password";

    /// Where a provider's credential is read from, as a person reads it: "key `token`",
    /// "keys `host`, …", or the two ZenML alternatives.
    pub fn wanted(provider: &crate::api::Provider) -> String {
        if provider_api(provider) == Some(Api::Zenml) {
            return format!(
                "key `{ZENML_API_KEY}` (a service account's API key, for servers with RBAC) or keys \
                 `{ZENML_USERNAME}` and `{ZENML_PASSWORD}` (an admin user, for open-source servers)"
            );
        }
        let quoted: Vec<String> = of(provider).iter().map(|k| format!("`{k}`")).collect();
        match quoted.len() {
            1 => format!("key {}", quoted[0]),
            _ => format!("keys {}", quoted.join(", ")),
        }
    }

    /// The keys a provider's credential Secret must hold (ZenML: the API-key form).
    pub fn of(provider: &crate::api::Provider) -> &'static [&'static str] {
        match provider_api(provider) {
            Some(Api::Akamai) => &[
                AKAMAI_HOST,
                AKAMAI_CLIENT_TOKEN,
                AKAMAI_CLIENT_SECRET,
                AKAMAI_ACCESS_TOKEN,
            ],
            Some(Api::Prefactor) => &[PREFACTOR_TOKEN],
            Some(Api::TrendMicro) => &[TREND_MICRO_API_SECRET_KEY],
            Some(Api::Zenml) => &[ZENML_API_KEY],
            None => &[],
        }
    }
}

/// What a ZenML store logs in with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZenmlCredential {
    /// A service account's `ZENKEY_…` API key: able to manage keys only where the server
    /// enforces RBAC (ZenML Pro), since a service account is never an admin.
    ApiKey(SecretString),
    /// An admin user: what an open-source server (no RBAC) lets manage keys.
    User {
        username: String,
        password: SecretString,
    },
}

/// An Akamai store's `.edgerc` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgercSection {
    /// Where the API lives unless the store sets `url`.
    pub host: String,
    pub credential: ClientCredential,
}

/// Why a credential Secret cannot be used. Names keys, never values.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("credential Secret has no key `{key}`")]
    MissingKey { key: &'static str },
    #[error("credential Secret key `{key}` is empty")]
    EmptyKey { key: &'static str },
    #[error("credential Secret key `{key}` is not UTF-8 text")]
    NotText { key: &'static str },
    /// A line break or other control character inside the value: it could not be sent in
    /// an HTTP header, so the upstream would only ever see a mangled credential.
    #[error(
        "credential Secret key `{key}` contains a line break or other control character inside the value"
    )]
    ControlCharacter { key: &'static str },
    /// Two credentials where one is read: which one was meant cannot be guessed.
    #[error("credential Secret holds both key `{first}` and key `{second}`; keep only one credential")]
    Ambiguous {
        first: &'static str,
        second: &'static str,
    },
}

/// Reads the keys a provider needs from a Secret's `data`.
pub struct SecretData<'a>(pub &'a BTreeMap<String, ByteString>);

impl SecretData<'_> {
    /// The value of `key`, with surrounding whitespace (a trailing newline from
    /// `kubectl create secret --from-file`) removed.
    fn text(&self, key: &'static str) -> Result<String, CredentialError> {
        let bytes = self.0.get(key).ok_or(CredentialError::MissingKey { key })?;
        let text = std::str::from_utf8(&bytes.0).map_err(|_| CredentialError::NotText { key })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(CredentialError::EmptyKey { key });
        }
        if text.chars().any(char::is_control) {
            return Err(CredentialError::ControlCharacter { key });
        }
        Ok(text.to_owned())
    }

    pub fn akamai(&self) -> Result<EdgercSection, CredentialError> {
        Ok(EdgercSection {
            host: self.text(keys::AKAMAI_HOST)?,
            credential: ClientCredential {
                client_token: self.text(keys::AKAMAI_CLIENT_TOKEN)?,
                client_secret: self.text(keys::AKAMAI_CLIENT_SECRET)?,
                access_token: self.text(keys::AKAMAI_ACCESS_TOKEN)?,
            },
        })
    }

    pub fn prefactor_token(&self) -> Result<SecretString, CredentialError> {
        self.text(keys::PREFACTOR_TOKEN).map(SecretString::from)
    }

    pub fn trend_micro_api_secret_key(&self) -> Result<SecretString, CredentialError> {
        self.text(keys::TREND_MICRO_API_SECRET_KEY)
            .map(SecretString::from)
    }

    /// The API key when the Secret holds `apiKey`, else the admin user in `username` and
    /// `password`; a Secret with neither is reported as missing `apiKey`.
    pub fn zenml(&self) -> Result<ZenmlCredential, CredentialError> {
        let has = |key: &str| self.0.contains_key(key);
        match (has(keys::ZENML_API_KEY), has(keys::ZENML_USERNAME)) {
            (true, true) => Err(CredentialError::Ambiguous {
                first: keys::ZENML_API_KEY,
                second: keys::ZENML_USERNAME,
            }),
            (false, true) => Ok(ZenmlCredential::User {
                username: self.text(keys::ZENML_USERNAME)?,
                password: self.text(keys::ZENML_PASSWORD)?.into(),
            }),
            _ => self
                .text(keys::ZENML_API_KEY)
                .map(|key| ZenmlCredential::ApiKey(key.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(entries: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), ByteString(value.to_vec())))
            .collect()
    }

    #[test]
    fn reads_each_provider_shape_and_trims_newlines() {
        let secret = data(&[
            ("host", b"akab-h.luna.akamaiapis.net\n"),
            ("client_token", b"akab-ct"),
            ("client_secret", b"cs=="),
            ("access_token", b"akab-at"),
        ]);
        let EdgercSection { host, credential } = SecretData(&secret).akamai().unwrap();
        assert_eq!(host, "akab-h.luna.akamaiapis.net");
        assert_eq!(credential.client_secret, "cs==");

        let secret = data(&[("token", b"tok\n")]);
        assert_eq!(SecretData(&secret).prefactor_token().unwrap().expose(), "tok");
        let secret = data(&[("apiSecretKey", b"k")]);
        assert!(SecretData(&secret).trend_micro_api_secret_key().is_ok());
        let secret = data(&[("apiKey", b"ZENKEY_x")]);
        assert!(matches!(
            SecretData(&secret).zenml(),
            Ok(ZenmlCredential::ApiKey(_))
        ));
        let secret = data(&[("username", b"admin\n"), ("password", b"pw")]);
        assert_eq!(
            SecretData(&secret).zenml(),
            Ok(ZenmlCredential::User {
                username: "admin".into(),
                password: "pw".to_owned().into()
            })
        );
    }

    #[test]
    fn problems_name_the_key_not_the_value() {
        let secret = data(&[
            ("token", b" \n"),
            ("apiKey", b"\xff\xfe"),
            ("apiSecretKey", b"half\nof-it"),
        ]);
        assert_eq!(
            SecretData(&secret).prefactor_token(),
            Err(CredentialError::EmptyKey { key: "token" })
        );
        assert_eq!(
            SecretData(&secret).zenml().unwrap_err().to_string(),
            "credential Secret key `apiKey` is not UTF-8 text"
        );
        assert_eq!(
            SecretData(&secret)
                .trend_micro_api_secret_key()
                .unwrap_err()
                .to_string(),
            "credential Secret key `apiSecretKey` contains a line break or other control character inside the value"
        );
        assert_eq!(
            SecretData(&data(&[])).akamai(),
            Err(CredentialError::MissingKey { key: "host" })
        );
    }

    #[test]
    fn a_zenml_secret_holds_one_credential_of_two_kinds() {
        let both = data(&[
            ("apiKey", b"ZENKEY_x"),
            ("username", b"admin"),
            ("password", b"pw"),
        ]);
        assert_eq!(
            SecretData(&both).zenml().unwrap_err().to_string(),
            "credential Secret holds both key `apiKey` and key `username`; keep only one credential"
        );
        let no_password = data(&[("username", b"admin")]);
        assert_eq!(
            SecretData(&no_password).zenml(),
            Err(CredentialError::MissingKey { key: "password" })
        );
        assert_eq!(
            SecretData(&data(&[])).zenml(),
            Err(CredentialError::MissingKey { key: "apiKey" })
        );
    }

    #[test]
    fn debug_output_hides_secret_values() {
        let token = SecretString::new("pf_live_secret");
        assert!(!format!("{token:?}").contains("pf_live_secret"));
    }
}
