//! API tokens: `tsk_<id>_<secret>`, shown once; only an Argon2id hash of
//! the secret is stored, in a file sealed (ChaCha20-Poly1305) under a key
//! the caller derives from the device key, so a copied or edited file is
//! refused rather than trusted.
//!
//! Argon2id costs tens of milliseconds by design; a running server
//! verifies a token once and then remembers a SHA-256 of its secret,
//! compared in constant time, so each request costs microseconds.

use crate::error::ApiError;
use crate::sealed;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use twinshield_shield_macros::diversify;
use zeroize::{Zeroize, Zeroizing};

/// What a token may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads state, history and alarms.
    Viewer,
    /// Also acknowledges alarms.
    Operator,
    /// Also sees the shield's status and the audit log.
    Admin,
}

#[diversify]
impl Role {
    /// The role's name as the command line and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[diversify]
impl std::str::FromStr for Role {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(ApiError::BadRole(s.chars().take(32).collect())),
        }
    }
}

/// One stored token: everything but its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Public identifier: 8 lower-case hex digits.
    pub id: String,
    /// What the token may do.
    pub role: Role,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Expiry, seconds since the Unix epoch; `None` never expires.
    pub expires: Option<u64>,
    /// Argon2id hash of the secret (PHC string).
    hash: String,
}

#[diversify]
impl TokenRecord {
    /// Whether the token has expired at `now` (seconds since the epoch).
    pub fn expired_at(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

/// A token as printed once to its owner. Zeroized on drop, never printed
/// by `Debug`.
pub struct IssuedToken(Zeroizing<String>);

#[diversify]
impl IssuedToken {
    /// The whole token, to hand to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[diversify]
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedToken(..)")
    }
}

/// Who a request speaks for, once its token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id.
    pub token_id: String,
    /// Its role.
    pub role: Role,
}

/// Why a presented token was refused (for the audit log; the client only
/// ever sees a generic 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// No `Authorization: Bearer` header.
    #[error("no token")]
    Missing,
    /// Not of the form `tsk_<id>_<secret>`.
    #[error("malformed token")]
    Malformed,
    /// No token with that id (never issued, or revoked).
    #[error("unknown token id")]
    Unknown,
    /// The secret does not match the stored hash.
    #[error("wrong secret")]
    WrongSecret,
    /// The token has expired.
    #[error("expired token")]
    Expired,
    /// A wrong secret for this id less than a second ago: not checked.
    #[error("wrong secret too recently for this token id")]
    Throttled,
}

const PREFIX: &str = "tsk_";
const FILE_MAGIC: &[u8; 8] = b"TSTOKEN1";

#[diversify]
fn argon2() -> Argon2<'static> {
    // OWASP's Argon2id minimum: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[diversify]
fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Splits `tsk_<id>_<secret>` into its id and secret, refusing anything
/// else (lengths and alphabets are exact).
#[diversify]
pub fn parse_token(token: &str) -> Result<(&str, &str), TokenRefusal> {
    let rest = token.strip_prefix(PREFIX).ok_or(TokenRefusal::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(TokenRefusal::Malformed)?;
    let id_ok = id.len() == 8 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if id_ok && secret_ok {
        Ok((id, secret))
    } else {
        Err(TokenRefusal::Malformed)
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<TokenRecord>,
}

/// The sealed token file of one twin.
pub struct TokenStore {
    path: PathBuf,
    /// Kept masked: the key is whole only inside one seal or open.
    key: twinshield_atrest::AeadKey,
}

#[diversify]
impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenStore({})", self.path.display())
    }
}

#[diversify]
impl TokenStore {
    /// The token file at `path`, sealed under `key`. Nothing is read or
    /// written until asked.
    pub fn new(path: &Path, key: Zeroizing<[u8; 32]>) -> Self {
        TokenStore {
            path: path.to_path_buf(),
            key: twinshield_atrest::AeadKey::new(&key),
        }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<TokenFile, ApiError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TokenFile::default()),
            Err(e) => return Err(ApiError::io(&self.path, e)),
        };
        let refused = || ApiError::TokenFile(self.path.display().to_string());
        let plain = sealed::open(&self.key, FILE_MAGIC, &bytes).ok_or_else(refused)?;
        serde_json::from_slice(&plain).map_err(|_| refused())
    }

    fn save(&self, file: &TokenFile) -> Result<(), ApiError> {
        let plain = Zeroizing::new(serde_json::to_vec(file).map_err(ApiError::TokenEncode)?);
        let out = sealed::seal(&self.key, FILE_MAGIC, &plain).map_err(ApiError::TokenSeal)?;
        sealed::write_private(&self.path, &out)
    }

    /// Issues a token with `role`, expiring after `expires_days` (if
    /// given). Returns its record and the token itself, which exists only
    /// in the returned value.
    pub fn issue(
        &self,
        role: Role,
        expires_days: Option<u32>,
    ) -> Result<(TokenRecord, IssuedToken), ApiError> {
        if expires_days == Some(0) {
            return Err(ApiError::BadExpiry);
        }
        let mut file = self.load()?;
        let rand_err = ApiError::Random;
        let id = loop {
            let mut raw = [0u8; 4];
            getrandom::fill(&mut raw).map_err(rand_err)?;
            let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            if file.tokens.iter().all(|t| t.id != id) {
                break id;
            }
        };
        let mut secret_bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret_bytes.as_mut()).map_err(rand_err)?;
        let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret_bytes.as_ref()));
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(rand_err)?;
        let hash = argon2()
            .hash_password_with_salt(secret.as_bytes(), &salt)
            .map_err(ApiError::Hash)?
            .to_string();
        let created = now_unix();
        let record = TokenRecord {
            id: id.clone(),
            role,
            created,
            expires: expires_days.map(|d| created + u64::from(d) * 86_400),
            hash,
        };
        file.tokens.push(record.clone());
        self.save(&file)?;
        let token = IssuedToken(Zeroizing::new(format!("{PREFIX}{id}_{}", secret.as_str())));
        Ok((record, token))
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>, ApiError> {
        Ok(self.load()?.tokens)
    }

    /// Revokes the token `id`; an unknown id is an error.
    pub fn revoke(&self, id: &str) -> Result<TokenRecord, ApiError> {
        let mut file = self.load()?;
        let at = file
            .tokens
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| ApiError::NoSuchToken(id.chars().take(16).collect()))?;
        let gone = file.tokens.remove(at);
        self.save(&file)?;
        Ok(gone)
    }

    fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }
}

/// A token a running server has verified once: a digest of its secret.
struct Verified {
    digest: [u8; 32],
    role: Role,
    expires: Option<u64>,
}

#[diversify]
impl Drop for Verified {
    fn drop(&mut self) {
        self.digest.zeroize();
    }
}

struct Snapshot {
    records: HashMap<String, TokenRecord>,
    loaded_at: Instant,
    modified: Option<SystemTime>,
}

/// How often a running server looks at the token file again: a revoked
/// token stops working within this time.
const RELOAD_EVERY: Duration = Duration::from_millis(500);

/// Checks presented tokens for a running server: the token file, reloaded
/// when it changes, and the cache of already verified secrets.
pub struct TokenCheck {
    store: TokenStore,
    snapshot: RwLock<Snapshot>,
    verified: Mutex<HashMap<String, Verified>>,
    /// When each id last failed its Argon2id check.
    failed: Mutex<HashMap<String, Instant>>,
}

#[diversify]
impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCheck({:?})", self.store)
    }
}

#[diversify]
impl TokenCheck {
    /// A checker over `store`; fails if the file exists but cannot be
    /// opened (another device's file, or edited).
    pub fn new(store: TokenStore) -> Result<Self, ApiError> {
        let records = store.load()?.tokens;
        let modified = store.modified();
        Ok(TokenCheck {
            snapshot: RwLock::new(Snapshot {
                records: records.into_iter().map(|r| (r.id.clone(), r)).collect(),
                loaded_at: Instant::now(),
                modified,
            }),
            store,
            verified: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        })
    }

    /// Whether any token exists (a server with none can only say 401).
    pub fn any(&self) -> bool {
        self.refresh();
        self.snapshot.read().is_ok_and(|s| !s.records.is_empty())
    }

    fn refresh(&self) {
        let stale = self
            .snapshot
            .read()
            .map_or(true, |s| s.loaded_at.elapsed() >= RELOAD_EVERY);
        if !stale {
            return;
        }
        let Ok(mut snap) = self.snapshot.write() else {
            return;
        };
        if snap.loaded_at.elapsed() < RELOAD_EVERY {
            return;
        }
        snap.loaded_at = Instant::now();
        let modified = self.store.modified();
        if modified == snap.modified {
            return;
        }
        match self.store.load() {
            Ok(file) => {
                snap.records = file.tokens.into_iter().map(|r| (r.id.clone(), r)).collect();
                snap.modified = modified;
                if let Ok(mut v) = self.verified.lock() {
                    v.retain(|id, _| snap.records.contains_key(id));
                }
            }
            Err(e) => {
                // Fail closed: a file that no longer opens admits no one.
                tracing::warn!(error = %e, "token file cannot be read; refusing every token");
                snap.records.clear();
                snap.modified = modified;
                if let Ok(mut v) = self.verified.lock() {
                    v.clear();
                }
            }
        }
    }

    /// Whether the token `id`, checked earlier, still stands (not revoked,
    /// not expired): long-lived streams ask this as they go.
    pub fn still_valid(&self, id: &str) -> bool {
        self.refresh();
        let now = now_unix();
        self.snapshot
            .read()
            .is_ok_and(|s| s.records.get(id).is_some_and(|r| !r.expired_at(now)))
    }

    /// Checks a presented token as far as it can without hashing: `None`
    /// when only the Argon2id check can decide (a token not verified since
    /// start-up), which [`TokenCheck::check`] does; call that off the
    /// async workers, it takes tens of milliseconds.
    pub fn check_cached(&self, presented: &str) -> Option<Result<Principal, TokenRefusal>> {
        let (id, secret) = match parse_token(presented) {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        self.refresh();
        let now = now_unix();
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        if let Ok(v) = self.verified.lock()
            && let Some(known) = v.get(id)
        {
            if !bool::from(known.digest.ct_eq(&digest)) {
                return Some(Err(TokenRefusal::WrongSecret));
            }
            if known.expires.is_some_and(|e| now >= e) {
                return Some(Err(TokenRefusal::Expired));
            }
            return Some(Ok(Principal {
                token_id: id.to_owned(),
                role: known.role,
            }));
        }
        let known = self
            .snapshot
            .read()
            .is_ok_and(|s| s.records.contains_key(id));
        if !known {
            return Some(Err(TokenRefusal::Unknown));
        }
        None
    }

    /// Checks a presented token, with the Argon2id check when needed. A
    /// wrong secret for an id makes that id's next Argon2id check wait a
    /// second (refused until then), so guessing cannot keep the CPU busy.
    pub fn check(&self, presented: &str) -> Result<Principal, TokenRefusal> {
        if let Some(done) = self.check_cached(presented) {
            return done;
        }
        let (id, secret) = parse_token(presented)?;
        if let Ok(f) = self.failed.lock()
            && f.get(id).is_some_and(|at| at.elapsed() < FAILED_PAUSE)
        {
            return Err(TokenRefusal::Throttled);
        }
        let record = self
            .snapshot
            .read()
            .ok()
            .and_then(|s| s.records.get(id).cloned())
            .ok_or(TokenRefusal::Unknown)?;
        let hash = PasswordHash::new(&record.hash).map_err(|_| TokenRefusal::Unknown)?;
        if argon2().verify_password(secret.as_bytes(), &hash).is_err() {
            if let Ok(mut f) = self.failed.lock() {
                if f.len() >= 10_000 {
                    f.retain(|_, at| at.elapsed() < FAILED_PAUSE);
                }
                f.insert(id.to_owned(), Instant::now());
            }
            return Err(TokenRefusal::WrongSecret);
        }
        if record.expired_at(now_unix()) {
            return Err(TokenRefusal::Expired);
        }
        if let Ok(mut v) = self.verified.lock() {
            v.insert(
                id.to_owned(),
                Verified {
                    digest: Sha256::digest(secret.as_bytes()).into(),
                    role: record.role,
                    expires: record.expires,
                },
            );
        }
        Ok(Principal {
            token_id: id.to_owned(),
            role: record.role,
        })
    }
}

/// How long an id waits for its next Argon2id check after a wrong secret.
const FAILED_PAUSE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> TokenStore {
        TokenStore::new(&dir.join("tokens"), Zeroizing::new([7u8; 32]))
    }

    #[test]
    fn an_issued_token_checks_out_with_its_role_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, token) = store(dir.path()).issue(Role::Operator, Some(3)).unwrap();
        let check = TokenCheck::new(store(dir.path())).unwrap();
        let p = check.check(token.expose()).unwrap();
        assert_eq!(p.role, Role::Operator);
        assert_eq!(p.token_id, rec.id);
        // Twice: the second answer comes from the verified cache.
        assert_eq!(check.check(token.expose()).unwrap(), p);
        let (_, secret) = parse_token(token.expose()).unwrap();
        let file = std::fs::read(dir.path().join("tokens")).unwrap();
        assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert!(
            !file.windows(8).any(|w| w == rec.id.as_bytes()),
            "the file is sealed"
        );
    }

    #[test]
    fn wrong_secrets_unknown_ids_and_malformed_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, token) = store(dir.path()).issue(Role::Viewer, None).unwrap();
        let check = TokenCheck::new(store(dir.path())).unwrap();
        let mut wrong = token.expose().to_owned();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        // The right secret first: the wrong one is then refused by digest.
        check.check(token.expose()).unwrap();
        assert_eq!(
            check.check(&wrong),
            Err(TokenRefusal::WrongSecret),
            "cached path"
        );
        let other_id = token.expose().replacen(&rec.id, "00000000", 1);
        let expect = if rec.id == "00000000" {
            TokenRefusal::WrongSecret
        } else {
            TokenRefusal::Unknown
        };
        assert_eq!(check.check(&other_id), Err(expect));
        for bad in [
            "",
            "tsk_",
            "Bearer x",
            "tsk_0000000g_x",
            &token.expose()[1..],
        ] {
            assert_eq!(check.check(bad), Err(TokenRefusal::Malformed), "{bad}");
        }
    }

    #[test]
    fn guessing_a_secret_pauses_its_id_and_never_admits_a_wrong_one() {
        let dir = tempfile::tempdir().unwrap();
        let (_, token) = store(dir.path()).issue(Role::Viewer, None).unwrap();
        let check = TokenCheck::new(store(dir.path())).unwrap();
        let mut wrong = token.expose().to_owned();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(check.check_cached(&wrong), None, "only Argon2id can tell");
        assert_eq!(check.check(&wrong), Err(TokenRefusal::WrongSecret));
        assert_eq!(check.check(&wrong), Err(TokenRefusal::Throttled));
        assert_eq!(check.check(token.expose()), Err(TokenRefusal::Throttled));
        std::thread::sleep(FAILED_PAUSE + Duration::from_millis(50));
        assert_eq!(check.check(token.expose()).unwrap().role, Role::Viewer);
        assert!(
            check
                .check_cached(token.expose())
                .is_some_and(|r| r.is_ok())
        );
    }

    #[test]
    fn a_revoked_token_stops_working_in_a_running_checker() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, token) = store(dir.path()).issue(Role::Admin, None).unwrap();
        let check = TokenCheck::new(store(dir.path())).unwrap();
        check.check(token.expose()).unwrap();
        // Make sure the file's modification time moves.
        std::thread::sleep(Duration::from_millis(20));
        store(dir.path()).revoke(&rec.id).unwrap();
        std::thread::sleep(RELOAD_EVERY + Duration::from_millis(50));
        assert_eq!(check.check(token.expose()), Err(TokenRefusal::Unknown));
        assert!(store(dir.path()).revoke(&rec.id).is_err());
    }

    #[test]
    fn a_file_under_another_key_or_edited_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path()).issue(Role::Viewer, None).unwrap();
        let other = TokenStore::new(&dir.path().join("tokens"), Zeroizing::new([8u8; 32]));
        assert!(matches!(other.list(), Err(ApiError::TokenFile(_))));
        let path = dir.path().join("tokens");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            store(dir.path()).list(),
            Err(ApiError::TokenFile(_))
        ));
        assert!(TokenCheck::new(store(dir.path())).is_err());
    }

    #[test]
    fn a_missing_file_is_empty_and_an_unreadable_one_is_an_io_error_with_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        assert!(store(dir.path()).list().unwrap().is_empty());
        // A directory where the file should be: not missing, not corrupt.
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        let e = store(dir.path()).list().unwrap_err();
        let ApiError::Io { path, source } = &e else {
            panic!("not an I/O error: {e:?}");
        };
        assert_eq!(path, &dir.path().join("tokens"));
        assert_ne!(source.kind(), std::io::ErrorKind::NotFound);
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.to_string(), format!("{}: {source}", path.display()));
    }

    #[test]
    fn zero_days_is_refused_and_expired_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            store(dir.path()).issue(Role::Viewer, Some(0)),
            Err(ApiError::BadExpiry)
        ));
        let rec = TokenRecord {
            id: "0".into(),
            role: Role::Viewer,
            created: 0,
            expires: Some(10),
            hash: String::new(),
        };
        assert!(rec.expired_at(10));
        assert!(!rec.expired_at(9));
    }
}
