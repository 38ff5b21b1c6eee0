//! The client's private key for SMART Backend Services: a PEM file or a JWKS file.
//!
//! SMART asks for RS384 or ES384 client assertions. A key is read from
//!
//! - PEM: `-----BEGIN PRIVATE KEY-----` (PKCS#8, RSA or EC P-384), `BEGIN RSA PRIVATE KEY`
//!   (PKCS#1) or `BEGIN EC PRIVATE KEY` (SEC1, P-384); the key id comes from `--kid`, since
//!   a PEM file does not carry one;
//! - a JWKS (`{"keys": [...]}`) or a single JWK with its private members (`d`, and for RSA
//!   `p`, `q`): the key is chosen by `kid`, or is the only private RS384/ES384 key in the set.
//!
//! The algorithm follows the key: RSA signs RS384, P-384 signs ES384. The key is tried once
//! when loaded, so a key that cannot sign fails before any request.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use p384::pkcs8::EncodePrivateKey as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;

use super::BulkError;

/// A private key that signs client assertions, with its algorithm and key id.
#[derive(Clone)]
pub struct SigningKey {
    /// RS384 or ES384.
    pub algorithm: Algorithm,
    /// The `kid` of the matching public key in the client's registered JWKS.
    pub kid: String,
    pub(crate) key: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("algorithm", &self.algorithm).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads the key in `path` (PEM, JWKS or JWK; see the module docs). `kid` names the key:
    /// required for PEM, a choice among several for a JWKS.
    ///
    /// # Errors
    ///
    /// [`BulkError::Key`] naming the file and what is wrong: unreadable, not a private key,
    /// not RSA or P-384, no or several candidate keys, a key that cannot sign.
    pub fn load(path: &Path, kid: Option<&str>) -> Result<SigningKey, BulkError> {
        let error = |reason: String| BulkError::Key { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
        let key = if text.trim_start().starts_with('{') {
            from_jwks(&text, kid).map_err(error)?
        } else {
            let kid = kid.ok_or_else(|| {
                error(
                    "a PEM key has no key id: give the kid of its public key (registered with the server) with --kid"
                        .into(),
                )
            })?;
            from_pem(&text, kid).map_err(error)?
        };
        key.check().map_err(error)?;
        Ok(key)
    }

    /// Signs a throw-away token, so that a key that cannot sign is reported when loaded.
    fn check(&self) -> Result<(), String> {
        let header = jsonwebtoken::Header::new(self.algorithm);
        jsonwebtoken::encode(&header, &serde_json::json!({"check": true}), &self.key)
            .map(drop)
            .map_err(|e| format!("cannot sign {:?} with this key: {e}", self.algorithm))
    }
}

fn from_pem(text: &str, kid: &str) -> Result<SigningKey, String> {
    let kid = kid.to_owned();
    let rsa = |key| SigningKey { algorithm: Algorithm::RS384, kid: kid.clone(), key };
    let ec = |key| SigningKey { algorithm: Algorithm::ES384, kid: kid.clone(), key };
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return EncodingKey::from_rsa_pem(text.as_bytes()).map(rsa).map_err(|e| format!("not an RSA private key: {e}"));
    }
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        let secret =
            p384::SecretKey::from_sec1_pem(text).map_err(|e| format!("not a P-384 EC private key (SEC1): {e}"))?;
        return pkcs8_of(&secret).map(ec);
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        if let Ok(secret) = p384::pkcs8::DecodePrivateKey::from_pkcs8_pem(text) {
            return pkcs8_of(&secret).map(ec);
        }
        return EncodingKey::from_rsa_pem(text.as_bytes())
            .map(rsa)
            .map_err(|_| "a PKCS#8 key that is neither RSA nor EC P-384 (SMART asks for RS384 or ES384)".to_owned());
    }
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err("an encrypted private key: decrypt it first (openssl pkcs8 -in KEY -out PLAIN)".to_owned());
    }
    Err("not a PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) nor a JWKS".to_owned())
}

fn pkcs8_of(secret: &p384::SecretKey) -> Result<EncodingKey, String> {
    let der = secret.to_pkcs8_der().map_err(|e| format!("cannot encode the EC key: {e}"))?;
    Ok(EncodingKey::from_ec_der(der.as_bytes()))
}

fn from_jwks(text: &str, kid: Option<&str>) -> Result<SigningKey, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let keys: Vec<&serde_json::Value> = match value["keys"].as_array() {
        Some(keys) => keys.iter().collect(),
        None if value.get("kty").is_some() => vec![&value],
        None => return Err("neither a JWKS ({\"keys\": [...]}) nor a JWK".to_owned()),
    };
    let private: Vec<&serde_json::Value> = keys
        .into_iter()
        .filter(|k| k.get("d").is_some())
        .filter(|k| matches!(k["alg"].as_str(), None | Some("RS384" | "ES384")))
        .filter(|k| k["kty"] == "RSA" || (k["kty"] == "EC" && k["crv"] == "P-384"))
        .collect();
    let kids = || private.iter().map(|k| k["kid"].as_str().unwrap_or("(no kid)")).collect::<Vec<_>>().join(", ");
    let chosen = match kid {
        Some(kid) => private
            .iter()
            .find(|k| k["kid"].as_str() == Some(kid))
            .ok_or_else(|| format!("no private RS384/ES384 key with kid {kid:?} (private keys here: {})", kids()))?,
        None => match private.as_slice() {
            [one] => one,
            [] => return Err("no private RSA or EC P-384 key (a JWK with \"d\") in the set".to_owned()),
            _ => return Err(format!("several private keys; choose one with --kid: {}", kids())),
        },
    };
    let kid = match (kid, chosen["kid"].as_str()) {
        (Some(kid), _) | (None, Some(kid)) => kid.to_owned(),
        (None, None) => return Err("the key has no \"kid\"; give one with --kid".to_owned()),
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let text = chosen[name].as_str().ok_or_else(|| format!("the key has no \"{name}\""))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("\"{name}\" is not base64url: {e}"))
    };
    if chosen["kty"] == "EC" {
        let secret = p384::SecretKey::from_slice(&bytes("d")?).map_err(|e| format!("\"d\" is not a P-384 key: {e}"))?;
        return Ok(SigningKey { algorithm: Algorithm::ES384, kid, key: pkcs8_of(&secret)? });
    }
    let number = |name: &str| bytes(name).map(|b| rsa::BoxedUint::from_be_slice_vartime(&b));
    let primes = match (chosen.get("p"), chosen.get("q")) {
        (Some(_), Some(_)) => vec![number("p")?, number("q")?],
        _ => Vec::new(),
    };
    let key = rsa::PrivateKey::from_components(number("n")?, number("e")?, number("d")?, primes)
        .map_err(|e| format!("not a valid RSA private key: {e}"))?;
    let der = key.to_pkcs1_der().map_err(|e| format!("cannot encode the RSA key: {e}"))?;
    Ok(SigningKey { algorithm: Algorithm::RS384, kid, key: EncodingKey::from_rsa_der(der.as_bytes()) })
}
