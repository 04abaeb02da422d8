//! Keyrings sealed at rest: a subscription's signing keys are stored in
//! SQLite encrypted (ChaCha20-Poly1305, the keyring's name as associated
//! data) under a key kept in its own owner-only file beside the database,
//! `keyring.key` — not in `hookflow.db`, so a copy of the database (a
//! backup, a file attached to a bug report) does not carry the keys. (On
//! AWS the keyrings are Secrets Manager secrets, encrypted by KMS.)
//!
//! A value written before keyrings were sealed (plain JSON) is read as it
//! is and sealed when the store opens ([`super::Store::open`]).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::Error;

/// The prefix of a sealed value (then base64 of nonce ‖ ciphertext ‖ tag).
const SEALED: &str = "sealed:v1:";
/// The key file, in the data directory.
pub(crate) const KEY_FILE: &str = "keyring.key";
const KEY_LEN: usize = 32;

/// The key keyrings are sealed with.
pub(crate) struct Sealer {
    /// `None` for a store opened beside the running one before any key
    /// was made: it seals nothing and opens only plain values.
    key: Option<LessSafeKey>,
    file: PathBuf,
    rng: SystemRandom,
}

/// Whether [`Sealer::open`] may make a key when the directory has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// The store's own process, no keyring sealed yet: make one.
    Make,
    /// Keyrings are sealed, yet the key is gone: refuse (a new key would
    /// open none of them, and seal new ones beside them under another).
    Refuse { sealed: usize },
    /// A store opened beside the running one: write nothing; seal nothing.
    Absent,
}

impl Sealer {
    /// The key of the data directory `dir`; when it has none, what
    /// `missing` says.
    pub(crate) fn open(dir: &Path, missing: Missing) -> Result<Self, Error> {
        let file = dir.join(KEY_FILE);
        let rng = SystemRandom::new();
        let unusable = |e: std::io::Error| Error::Config(format!("keyring key {}: {e}", file.display()));
        let bytes = match std::fs::read(&file) {
            Ok(b) => {
                // The store's own process only: a read command beside it
                // seals nothing and needs the key only to show a keyring.
                #[cfg(unix)]
                if missing != Missing::Absent {
                    private(dir, &file)?;
                }
                b
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match missing {
                Missing::Absent => return Ok(Sealer { key: None, file, rng }),
                Missing::Refuse { sealed } => {
                    return Err(Error::Config(format!(
                        "keyring key {} is missing, and {sealed} subscription keyring(s) in hookflow.db were \
                         sealed with it: put the file back (from the backup the database came from). Without it \
                         those subscriptions cannot sign: delete them and create them again",
                        file.display()
                    )));
                }
                Missing::Make => {
                    let mut k = [0u8; KEY_LEN];
                    rng.fill(&mut k).map_err(|_| Error::Unavailable("no random bytes for the keyring key".into()))?;
                    write_new(&file, STANDARD.encode(k).as_bytes()).map_err(unusable)?;
                    // Another process may have made it first: its key is the one.
                    std::fs::read(&file).map_err(unusable)?
                }
            },
            Err(e) => return Err(unusable(e)),
        };
        let key = STANDARD
            .decode(String::from_utf8_lossy(&bytes).trim())
            .ok()
            .filter(|k| k.len() == KEY_LEN)
            .and_then(|k| UnboundKey::new(&CHACHA20_POLY1305, &k).ok())
            .ok_or_else(|| {
                Error::Config(format!(
                    "keyring key {}: not {KEY_LEN} bytes of base64; restore the file this data directory's keyrings \
                     were sealed with (without it, subscriptions need new secrets: rotate them)",
                    file.display()
                ))
            })?;
        Ok(Sealer { key: Some(LessSafeKey::new(key)), file, rng })
    }

    /// `plain` (keyring `name`'s JSON) sealed for storing.
    pub(crate) fn seal(&self, name: &str, plain: &str) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Error::Unavailable("no random bytes for a nonce".into()))?;
        let key = self.key.as_ref().ok_or_else(|| self.no_key())?;
        let mut data = plain.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name.as_bytes()), &mut data)
            .map_err(|_| Error::Unavailable(format!("keyring {name}: sealing failed")))?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(format!("{SEALED}{}", STANDARD.encode(out)))
    }

    /// The JSON of keyring `name` as `stored` (sealed, or plain from before
    /// keyrings were sealed).
    pub(crate) fn open_value(&self, name: &str, stored: &str) -> Result<String, Error> {
        let Some(b64) = stored.strip_prefix(SEALED) else { return Ok(stored.to_string()) };
        let refused = || {
            Error::Malformed(format!(
                "keyring {name}: cannot be opened with {} (a different key from the one it was sealed with?): \
                 restore that file, or rotate the subscription's secret",
                self.file.display()
            ))
        };
        let mut raw = STANDARD.decode(b64).map_err(|_| refused())?;
        if raw.len() < NONCE_LEN {
            return Err(refused());
        }
        let mut data = raw.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| refused())?;
        let key = self.key.as_ref().ok_or_else(|| self.no_key())?;
        let plain = key.open_in_place(nonce, Aad::from(name.as_bytes()), &mut data).map_err(|_| refused())?;
        String::from_utf8(plain.to_vec()).map_err(|_| refused())
    }

    fn no_key(&self) -> Error {
        Error::Config(format!(
            "keyring key {} does not exist yet: start `hookflow dev` on this data directory once",
            self.file.display()
        ))
    }

    /// Whether `stored` is sealed.
    pub(crate) fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED)
    }
}

/// Refuses a key file that others can read, or that is not owned by the
/// user who holds the data directory (its lock file's owner): its key may
/// be known, or not be this store's.
#[cfg(unix)]
fn private(dir: &Path, file: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(file).map_err(|e| Error::Config(format!("keyring key {}: {e}", file.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "keyring key {} can be read by other users (mode {mode:o}): run `chmod 600 {}`, and rotate the \
             subscriptions' secrets if someone else may have read it",
            file.display(),
            file.display()
        )));
    }
    if let Ok(lock) = std::fs::metadata(dir.join("hookflow.lock"))
        && lock.uid() != meta.uid()
    {
        return Err(Error::Config(format!(
            "keyring key {} belongs to user {}, not to the user running hookflow ({}): if it is this store's \
             key, `chown {} {}`",
            file.display(),
            meta.uid(),
            lock.uid(),
            lock.uid(),
            file.display()
        )));
    }
    Ok(())
}

/// Creates a file that must not exist yet, readable by its owner only.
fn create_owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Writes a new owner-only file whole or not at all: the bytes go to a
/// temporary file, synced, then linked to `path` (which fails if another
/// process made it first: its file stands), and the directory is synced
/// so the name survives a crash. A crash never leaves `path` empty or
/// half-written (a reader would take it for a key of the wrong length).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(".{}.{}.tmp", KEY_FILE, uuid::Uuid::now_v7().simple()));
    let written = create_owner_only(&temp).and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        // Another process made it first: its file stands.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        // A file system without hard links: the file made in place (a crash
        // while writing it can leave it short; the start then names it).
        Err(_) => match create_owner_only(path) {
            Ok(mut f) => f.write_all(bytes).and_then(|()| f.sync_all())?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        },
    }
    // The name made durable; a file system that cannot sync a directory
    // has nothing to sync.
    #[cfg(unix)]
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all())
        && !matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported)
    {
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("hookflow-sealed-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_sealed_keyring_opens_only_under_its_name_and_key() {
        let d = dir();
        let s = Sealer::open(&d, Missing::Make).unwrap();
        let sealed = s.seal("subscriptions/sub_a", r#"{"keys":["whsec_x"]}"#).unwrap();
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("whsec_x"), "{sealed}");
        assert_eq!(s.open_value("subscriptions/sub_a", &sealed).unwrap(), r#"{"keys":["whsec_x"]}"#);
        assert_ne!(sealed, s.seal("subscriptions/sub_a", r#"{"keys":["whsec_x"]}"#).unwrap(), "a nonce each");
        // Moved to another row: refused (the name is the associated data).
        assert!(s.open_value("subscriptions/sub_b", &sealed).is_err());
        // The same directory opens it again; another key does not.
        assert!(Sealer::open(&d, Missing::Make).unwrap().open_value("subscriptions/sub_a", &sealed).is_ok());
        let other = Sealer::open(&dir(), Missing::Make).unwrap();
        let err = other.open_value("subscriptions/sub_a", &sealed).unwrap_err().to_string();
        assert!(err.contains("keyring.key") && err.contains("rotate"), "{err}");
        // Plain values from before are read as they are.
        assert_eq!(s.open_value("n", r#"{"keys":[]}"#).unwrap(), r#"{"keys":[]}"#);
    }

    #[test]
    fn the_key_file_is_owner_only_and_a_damaged_one_is_named() {
        let d = dir();
        Sealer::open(&d, Missing::Make).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(d.join(KEY_FILE), "short").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(d.join(KEY_FILE), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let err = Sealer::open(&d, Missing::Make).err().unwrap().to_string();
        assert!(err.contains(KEY_FILE) && err.contains("32 bytes"), "{err}");
        // Made whole through a temporary file, which does not stay behind.
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(KEY_FILE)]);
    }

    #[test]
    fn a_missing_key_is_made_only_by_the_store_s_own_process_and_only_before_anything_was_sealed() {
        let d = dir();
        // Beside the running store: nothing written, nothing sealed.
        let beside = Sealer::open(&d, Missing::Absent).unwrap();
        assert!(!d.join(KEY_FILE).exists());
        assert!(beside.seal("n", "{}").is_err());
        assert_eq!(beside.open_value("n", "{}").unwrap(), "{}");
        let sealed = Sealer::open(&d, Missing::Make).unwrap().seal("n", "{}").unwrap();
        let err = beside.open_value("n", &sealed).unwrap_err().to_string();
        assert!(err.contains("does not exist yet"), "{err}");
        // The key lost while keyrings are sealed with it: refused, named.
        std::fs::remove_file(d.join(KEY_FILE)).unwrap();
        let err = Sealer::open(&d, Missing::Refuse { sealed: 1 }).err().unwrap().to_string();
        assert!(err.contains(KEY_FILE) && err.contains("put the file back"), "{err}");
        assert!(!d.join(KEY_FILE).exists());
    }
}
