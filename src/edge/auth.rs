//! The server password (`--requirepass`), kept and compared as Redis does: as a SHA-256 digest.
//!
//! Only the digest travels to the proxy process (its environment, which hydro_deploy prints
//! with `--verbose`) and lives in its memory; the plain password stays with the process that
//! was given it (the `kvs-zoo` driver, which logs in to its own server to see it is ready). A password a client offers is hashed too, and the
//! two digests are compared in constant time, so the time a wrong guess takes says nothing
//! about how close it was.

use sha2::{Digest, Sha256};

/// A password, as its SHA-256 digest (and, where it was typed in, the password itself).
#[derive(Clone)]
pub struct Password {
    digest: [u8; 32],
    plain: Option<Vec<u8>>,
}

impl Password {
    /// The password `plain`.
    pub fn new(plain: &[u8]) -> Self {
        Self {
            digest: Sha256::digest(plain).into(),
            plain: Some(plain.to_vec()),
        }
    }

    /// The password itself, to log in with; `None` where only the digest is known.
    pub fn plain(&self) -> Option<&[u8]> {
        self.plain.as_deref()
    }

    /// True when `given` is this password.
    pub fn matches(&self, given: &[u8]) -> bool {
        let given = Sha256::digest(given);
        // No early exit: every byte is compared whatever the first difference.
        let diff = self
            .digest
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }

    /// The digest in hexadecimal, to pass to another process.
    pub fn to_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a digest [`Password::to_hex`] wrote (the password itself stays unknown).
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self {
            digest,
            plain: None,
        })
    }
}

/// Two passwords are equal when their digests are.
impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for Password {}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_password_matches() {
        let p = Password::new(b"s3cret");
        assert!(p.matches(b"s3cret"));
        for wrong in [&b""[..], b"s3cre", b"s3cret ", b"S3cret", b"\0s3cret"] {
            assert!(!p.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn the_digest_travels_as_hex_and_is_never_shown() {
        let p = Password::new("pä ss".as_bytes());
        let back = Password::from_hex(&p.to_hex()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.plain(), None);
        assert_eq!(p.plain(), Some("pä ss".as_bytes()));
        assert!(!p.to_hex().contains("ss"));
        assert_eq!(format!("{p:?}"), "Password(…)");
        for bad in ["", "zz", &"g".repeat(64), &"é".repeat(32)] {
            assert_eq!(Password::from_hex(bad), None, "{bad}");
        }
    }
}
