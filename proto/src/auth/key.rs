//! The shared secret: made from the OS's random source, kept as hex in a 0600 file.

use hmac::KeyInit;
use std::fmt;
use std::path::Path;

use super::{HmacSha256, KEY_LEN};
use crate::private_file::{self, PrivateFileError};

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file failed the private-file checks or could not be read.
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// The key text is not 64 hex digits.
    #[error(
        "{0}: a warren key is 64 hex digits (32 bytes); make one with `warren-hub --new-key-file PATH`"
    )]
    Malformed(String),
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// A 32-byte secret shared by the hub and everyone allowed to call it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Parses 64 hex digits (surrounding white space is ignored).
    pub fn from_hex(text: &str, origin: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| KeyError::Malformed(origin.to_owned()))?;
        Ok(Self(bytes))
    }

    /// Reads a key file: hex text in a file of mode 0600 owned by the current user.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = private_file::read(path)?;
        Self::from_hex(&text, &path.display().to_string())
    }

    /// Writes the key as hex to a new file of mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        private_file::write(path, format!("{}\n", self.to_hex()).as_bytes())?;
        Ok(())
    }

    /// The key as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(super) fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}
