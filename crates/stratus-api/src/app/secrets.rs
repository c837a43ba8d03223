//! Secrets the region must keep but never show: BMC credentials.
//!
//! They are sealed with XChaCha20-Poly1305 under a key that lives only in the region's data
//! directory (`secrets.key`, 0600), never in the database: a copy of the database, a backup or
//! a `db copy` export holds ciphertext alone. Each sealed value is bound to the row it belongs
//! to (the server's uid is the associated data), so ciphertext moved to another row does not
//! open. Replicas of one region share the key file as they share the database.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use stratus_core::{Error, Result};

/// The key secrets are sealed with.
#[derive(Clone)]
pub struct SecretsKey([u8; 32]);

impl SecretsKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key (a region without a data directory: tests, a throwaway region).
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The key as text (base64), as the key file holds it.
    pub fn to_text(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// The key a key file holds; `None` when it is not a base64 32-byte key.
    pub fn from_text(text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Seals `plaintext`, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let nonce: [u8; 24] = rand::random();
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| Error::internal("sealing a secret failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens what [`SecretsKey::seal`] sealed with `context`.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| Error::internal("a sealed secret is not base64"))?;
        if bytes.len() < 24 {
            return Err(Error::internal("a sealed secret is too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().expect("24 bytes");
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| {
                Error::internal(
                    "a sealed secret does not open with this region's secrets.key (was the data \
                     directory's key replaced?)",
                )
            })
    }
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(<redacted>)")
    }
}

impl Default for SecretsKey {
    fn default() -> Self {
        Self::random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let key = SecretsKey::random();
        let sealed = key.seal(b"hunter2", b"server-a").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(key.open(&sealed, b"server-a").unwrap(), b"hunter2");
        assert!(key.open(&sealed, b"server-b").is_err());
        assert!(SecretsKey::random().open(&sealed, b"server-a").is_err());
    }
}
