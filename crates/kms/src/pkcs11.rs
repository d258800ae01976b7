//! PKCS#11 adapter (an HSM in production, SoftHSM2 in tests).
//!
//! Each KEK version is an AES-256 secret key generated *inside* the token with
//! `CKA_TOKEN=true`, `CKA_SENSITIVE=true`, `CKA_EXTRACTABLE=false`, usable only to wrap and unwrap.
//! DEKs are wrapped with `CKM_AES_KEY_WRAP_PAD` (RFC 5649) by the token: a DEK enters the token as
//! a short-lived session object, the token wraps it, and the session object is destroyed. Unwrap
//! is the reverse. The KEK's value never crosses the PKCS#11 boundary; [`Pkcs11KeyManager::probe`]
//! asks the token to prove it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use secrecy::{ExposeSecret, SecretString};
use sigillum_crypto::{
    Dek, KekInfo, KekRef, KeyManager, KeyManagerError, SigningKeyInfo, WrappedDek, P256_SPKI_PREFIX,
};
use zeroize::Zeroizing;

/// Parsed `pkcs11:module=…;token=…` parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Config {
    pub module: PathBuf,
    pub token: String,
}

impl Pkcs11Config {
    /// Parses `module=/path/lib.so;token=label` (order free).
    pub fn parse(params: &str) -> Result<Self, KeyManagerError> {
        let mut module = None;
        let mut token = None;
        for part in params.split(';').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("module", v)) => module = Some(PathBuf::from(v)),
                Some(("token", v)) => token = Some(v.to_owned()),
                _ => return Err(KeyManagerError::Config(format!("unknown pkcs11 parameter: {part}"))),
            }
        }
        match (module, token) {
            (Some(module), Some(token)) => Ok(Self { module, token }),
            _ => Err(KeyManagerError::Config("pkcs11 needs module=… and token=…".into())),
        }
    }
}

/// What the token says about a KEK when asked to reveal it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KekProbe {
    pub sensitive: bool,
    pub extractable: bool,
    pub never_extractable: bool,
    pub value_readable: bool,
    pub wrappable_out: bool,
}

/// A PKCS#11 module may be initialised once per process; every key manager on the same module
/// shares that one context. Beside the context, the registry keeps a lease that every user of
/// the context holds a clone of, so it can tell whether anyone in the process still uses it.
struct SharedContext {
    ctx: Pkcs11,
    users: Arc<()>,
}

fn contexts() -> &'static Mutex<HashMap<PathBuf, SharedContext>> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, SharedContext>>> = OnceLock::new();
    CONTEXTS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn registry() -> Result<std::sync::MutexGuard<'static, HashMap<PathBuf, SharedContext>>, KeyManagerError> {
    contexts().lock().map_err(|_| KeyManagerError::Unavailable("pkcs11 registry".into()))
}

/// The shared context of `module` (initialised on first use) and a lease on it.
fn context(module: &PathBuf) -> Result<(Pkcs11, Arc<()>), KeyManagerError> {
    let mut map = registry()?;
    if let Some(shared) = map.get(module) {
        return Ok((shared.ctx.clone(), shared.users.clone()));
    }
    let ctx = Pkcs11::new(module).map_err(|e| KeyManagerError::Config(format!("cannot load PKCS#11 module: {e}")))?;
    match ctx.initialize(CInitializeArgs::OsThreads) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(KeyManagerError::Unavailable(format!("C_Initialize: {e}"))),
    }
    let users = Arc::new(());
    map.insert(module.clone(), SharedContext { ctx: ctx.clone(), users: users.clone() });
    Ok((ctx, users))
}

/// Forgets the shared context of `module` when nobody in the process uses it any more, so that
/// the next [`context`] finalises the module and initialises it anew. A context in use is kept:
/// finalising a module under another key manager's open session breaks that session.
fn reinitialise_if_unused(module: &PathBuf) -> Result<(), KeyManagerError> {
    let mut map = registry()?;
    let unused = map.get(module).is_none_or(|shared| Arc::strong_count(&shared.users) == 1);
    if unused {
        map.remove(module);
    }
    Ok(())
}

/// How many times [`Pkcs11KeyManager::open`] looks for its token before giving up.
const TOKEN_LOOKUPS: u32 = 5;

fn ck(what: &'static str) -> impl Fn(CkError) -> KeyManagerError {
    move |e| KeyManagerError::Unavailable(format!("pkcs11 {what}: {e}"))
}

/// The PKCS#11 key manager.
pub struct Pkcs11KeyManager {
    session: Arc<LeasedSession>,
    token: String,
}

/// A logged-in session and the lease on its module's context, which lives as long as the
/// session does (a blocking task may hold the session after its key manager is dropped).
struct LeasedSession {
    session: Mutex<Session>,
    _lease: Arc<()>,
}

const ID_PREFIX: &str = "sigillum-kek/";

fn object_id(key_id: &str, version: u32) -> Vec<u8> {
    format!("{ID_PREFIX}{key_id}/v{version}").into_bytes()
}

fn parse_object_id(id: &[u8]) -> Option<(String, u32)> {
    let s = std::str::from_utf8(id).ok()?.strip_prefix(ID_PREFIX)?;
    let (key_id, v) = s.rsplit_once("/v")?;
    Some((key_id.to_owned(), v.parse().ok()?))
}

impl Pkcs11KeyManager {
    /// Loads the module, finds the token by label, opens a session and logs in as user.
    ///
    /// A token that is missing is looked for again a few times over about three seconds, with
    /// the module initialised anew when no other key manager of this process uses it. SoftHSM2
    /// reads its token files once, at `C_Initialize`; a process that initialises while another
    /// process rewrites the token file (nodes starting together, one of them creating keys) can
    /// read it half-written and not list the token. A server opens one key manager, so at start
    /// nothing else holds the module.
    pub fn open(cfg: &Pkcs11Config, pin: &SecretString) -> Result<Self, KeyManagerError> {
        let mut lookup = 1;
        let (ctx, lease, slot) = loop {
            let (ctx, lease) = context(&cfg.module)?;
            let slots = ctx.get_slots_with_initialized_token().map_err(ck("list slots"))?;
            let found =
                slots.into_iter().find(|s| ctx.get_token_info(*s).map(|t| t.label() == cfg.token).unwrap_or(false));
            match found {
                Some(slot) => break (ctx, lease, slot),
                None if lookup < TOKEN_LOOKUPS => {
                    drop((ctx, lease));
                    reinitialise_if_unused(&cfg.module)?;
                    std::thread::sleep(std::time::Duration::from_millis(300 * u64::from(lookup)));
                    lookup += 1;
                }
                None => {
                    return Err(KeyManagerError::Config(format!("no PKCS#11 token labelled {:?}", cfg.token)));
                }
            }
        };
        let session = ctx.open_rw_session(slot).map_err(ck("open session"))?;
        let pin = cryptoki::types::AuthPin::new(pin.expose_secret().into());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(KeyManagerError::Config(format!("PKCS#11 login failed: {e}"))),
        }
        let session = LeasedSession { session: Mutex::new(session), _lease: lease };
        Ok(Self { session: Arc::new(session), token: cfg.token.clone() })
    }

    /// Runs `f` with the session on a blocking thread (PKCS#11 calls block).
    async fn with_session<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, KeyManagerError> + Send + 'static,
    ) -> Result<T, KeyManagerError> {
        self.on_token(false, f).await
    }

    /// As [`Self::with_session`], for operations that add or remove token objects: each runs
    /// alone in this process, while no other session uses the module. SoftHSM2 (the token of
    /// the tests) fails with CKR_GENERAL_ERROR, about once in twenty test runs, when a token
    /// object is created while another session creates one or looks objects up. These
    /// operations are rare (a new organisation, a rotation, an erasure), so the wait costs
    /// nothing that matters.
    async fn changing_token<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, KeyManagerError> + Send + 'static,
    ) -> Result<T, KeyManagerError> {
        self.on_token(true, f).await
    }

    async fn on_token<T: Send + 'static>(
        &self,
        exclusive: bool,
        f: impl FnOnce(&Session) -> Result<T, KeyManagerError> + Send + 'static,
    ) -> Result<T, KeyManagerError> {
        /// Shared by every use of a token in this process, taken alone by token changes.
        static TOKEN_USE: RwLock<()> = RwLock::new(());
        fn poisoned<E>(_: E) -> KeyManagerError {
            KeyManagerError::Unavailable("pkcs11 token lock".into())
        }
        let session = self.session.clone();
        tokio::task::spawn_blocking(move || {
            let guard = session.session.lock().map_err(|_| KeyManagerError::Unavailable("pkcs11 session".into()))?;
            if exclusive {
                let _alone = TOKEN_USE.write().map_err(poisoned)?;
                f(&guard)
            } else {
                let _shared = TOKEN_USE.read().map_err(poisoned)?;
                f(&guard)
            }
        })
        .await
        .map_err(|_| KeyManagerError::Unavailable("pkcs11 task failed".into()))?
    }

    /// Asks the token to reveal a KEK in every way PKCS#11 allows; a sound HSM refuses all.
    pub async fn probe(&self, kek: &KekRef) -> Result<KekProbe, KeyManagerError> {
        let kek = kek.clone();
        self.with_session(move |s| {
            let h = find_kek(s, &kek)?;
            let attrs = s
                .get_attributes(
                    h,
                    &[AttributeType::Sensitive, AttributeType::Extractable, AttributeType::NeverExtractable],
                )
                .map_err(ck("get attributes"))?;
            let flag = |t: AttributeType| {
                attrs.iter().any(|a| {
                    matches!(
                        (a, t),
                        (Attribute::Sensitive(true), AttributeType::Sensitive)
                            | (Attribute::Extractable(true), AttributeType::Extractable)
                            | (Attribute::NeverExtractable(true), AttributeType::NeverExtractable)
                    )
                })
            };
            let value_readable = matches!(
                s.get_attributes(h, &[AttributeType::Value]).as_deref(),
                Ok([Attribute::Value(v)]) if !v.is_empty()
            );
            // Try to wrap the KEK out under a fresh extractable session key we control.
            let probe_key = s
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Token(false),
                        Attribute::ValueLen(32.into()),
                        Attribute::Wrap(true),
                        Attribute::Extractable(true),
                        Attribute::Sensitive(false),
                    ],
                )
                .map_err(ck("generate probe key"))?;
            let wrappable_out = s.wrap_key(&Mechanism::AesKeyWrapPad, probe_key, h).is_ok();
            let _ = s.destroy_object(probe_key);
            Ok(KekProbe {
                sensitive: flag(AttributeType::Sensitive),
                extractable: flag(AttributeType::Extractable),
                never_extractable: flag(AttributeType::NeverExtractable),
                value_readable,
                wrappable_out,
            })
        })
        .await
    }

    /// Label of the token in use.
    pub fn token_label(&self) -> &str {
        &self.token
    }
}

fn kek_template(key_id: &str, version: u32, created_ms: i64) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Id(object_id(key_id, version)),
        Attribute::Label(format!("sigillum KEK {key_id} v{version} created={created_ms}").into_bytes()),
    ]
}

fn find_kek(s: &Session, kek: &KekRef) -> Result<ObjectHandle, KeyManagerError> {
    let found = s
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(object_id(&kek.key_id, kek.version))])
        .map_err(ck("find key"))?;
    found.first().copied().ok_or_else(|| KeyManagerError::NotFound(format!("{} v{}", kek.key_id, kek.version)))
}

struct KekObject {
    handle: ObjectHandle,
    key_id: String,
    version: u32,
    created_ms: i64,
}

fn all_keks(s: &Session) -> Result<Vec<KekObject>, KeyManagerError> {
    let handles = s
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Token(true)])
        .map_err(ck("find keys"))?;
    let mut out = Vec::new();
    for h in handles {
        let attrs = s.get_attributes(h, &[AttributeType::Id, AttributeType::Label]).map_err(ck("get attributes"))?;
        let mut parsed = None;
        let mut created_ms = 0;
        for a in attrs {
            match a {
                Attribute::Id(id) => parsed = parse_object_id(&id),
                Attribute::Label(l) => {
                    created_ms = String::from_utf8_lossy(&l)
                        .rsplit_once("created=")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0)
                }
                _ => {}
            }
        }
        if let Some((key_id, version)) = parsed {
            out.push(KekObject { handle: h, key_id, version, created_ms });
        }
    }
    Ok(out)
}

fn current_of(s: &Session, key_id: &str) -> Result<Option<KekRef>, KeyManagerError> {
    Ok(all_keks(s)?
        .into_iter()
        .filter(|k| k.key_id == key_id)
        .map(|k| k.version)
        .max()
        .map(|version| KekRef { key_id: key_id.to_owned(), version }))
}

const SIGNING_PREFIX: &str = "sigillum-sign/";
/// DER OID of the P-256 curve (prime256v1), the `CKA_EC_PARAMS` of every signing key.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn find_signing(s: &Session, key_id: &str, class: ObjectClass) -> Result<Option<ObjectHandle>, KeyManagerError> {
    let id = format!("{SIGNING_PREFIX}{key_id}").into_bytes();
    Ok(s.find_objects(&[Attribute::Class(class), Attribute::Id(id)]).map_err(ck("find key"))?.first().copied())
}

/// The public key of a signing key pair as DER SubjectPublicKeyInfo.
fn signing_info(s: &Session, key_id: &str, public: ObjectHandle) -> Result<SigningKeyInfo, KeyManagerError> {
    let attrs = s.get_attributes(public, &[AttributeType::EcPoint]).map_err(ck("read public key"))?;
    let Some(Attribute::EcPoint(point)) = attrs.into_iter().next() else {
        return Err(KeyManagerError::Unavailable("pkcs11 public key has no EC point".into()));
    };
    // CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (some tokens give it bare).
    let raw = match point.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        p if p.len() == 65 && p[0] == 0x04 => p,
        _ => return Err(KeyManagerError::Unavailable("pkcs11 public key is not an uncompressed P-256 point".into())),
    };
    let mut spki_der = P256_SPKI_PREFIX.to_vec();
    spki_der.extend_from_slice(raw);
    Ok(SigningKeyInfo { key_id: key_id.to_owned(), spki_der })
}

/// Generates a P-256 key pair inside the token: the private key is sensitive, never extractable
/// and can only sign.
fn generate_signing(s: &Session, key_id: &str) -> Result<ObjectHandle, KeyManagerError> {
    if key_id.is_empty() || key_id.len() > 200 {
        return Err(KeyManagerError::Config("invalid key id".into()));
    }
    let id = format!("{SIGNING_PREFIX}{key_id}").into_bytes();
    let label = format!("sigillum signing key {key_id}").into_bytes();
    let public = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::Id(id.clone()),
        Attribute::Label(label.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Unwrap(false),
        Attribute::Id(id),
        Attribute::Label(label),
    ];
    let (public, _private) =
        s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).map_err(ck("generate signing key"))?;
    Ok(public)
}

fn generate(s: &Session, key_id: &str) -> Result<KekRef, KeyManagerError> {
    if key_id.is_empty() || key_id.len() > 200 {
        return Err(KeyManagerError::Config("invalid key id".into()));
    }
    let version = current_of(s, key_id)?.map(|k| k.version).unwrap_or(0) + 1;
    s.generate_key(&Mechanism::AesKeyGen, &kek_template(key_id, version, crate::now_unix_ms()))
        .map_err(ck("generate key"))?;
    Ok(KekRef { key_id: key_id.to_owned(), version })
}

#[async_trait::async_trait]
impl KeyManager for Pkcs11KeyManager {
    fn backend(&self) -> &'static str {
        "pkcs11"
    }

    async fn ensure_kek(&self, key_id: &str) -> Result<KekRef, KeyManagerError> {
        let key_id = key_id.to_owned();
        // Found without the lock; created under it (and looked for again there).
        if let Some(k) = self.current_kek(&key_id).await? {
            return Ok(k);
        }
        self.changing_token(move |s| match current_of(s, &key_id)? {
            Some(k) => Ok(k),
            None => generate(s, &key_id),
        })
        .await
    }

    async fn current_kek(&self, key_id: &str) -> Result<Option<KekRef>, KeyManagerError> {
        let key_id = key_id.to_owned();
        self.with_session(move |s| current_of(s, &key_id)).await
    }

    async fn rotate_kek(&self, key_id: &str) -> Result<KekRef, KeyManagerError> {
        let key_id = key_id.to_owned();
        self.changing_token(move |s| generate(s, &key_id)).await
    }

    async fn wrap_dek(&self, kek: &KekRef, dek: &Dek) -> Result<WrappedDek, KeyManagerError> {
        let (kek, dek) = (kek.clone(), dek.clone());
        self.with_session(move |s| {
            let kh = find_kek(s, &kek)?;
            let dh = s
                .create_object(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Value(dek.expose_secret().to_vec()),
                ])
                .map_err(ck("import data key"))?;
            let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, kh, dh);
            let _ = s.destroy_object(dh);
            Ok(WrappedDek { kek, wrapped: wrapped.map_err(ck("wrap"))? })
        })
        .await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek) -> Result<Dek, KeyManagerError> {
        let wrapped = wrapped.clone();
        self.with_session(move |s| {
            let kh = find_kek(s, &wrapped.kek)?;
            let dh = s
                .unwrap_key(
                    &Mechanism::AesKeyWrapPad,
                    kh,
                    &wrapped.wrapped,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::Token(false),
                        Attribute::Sensitive(false),
                        Attribute::Extractable(true),
                    ],
                )
                .map_err(|_| KeyManagerError::Unwrap)?;
            let value = s.get_attributes(dh, &[AttributeType::Value]);
            let _ = s.destroy_object(dh);
            match value.map_err(ck("read data key"))?.into_iter().next() {
                Some(Attribute::Value(v)) => {
                    let v = Zeroizing::new(v);
                    Dek::from_bytes(&v).map_err(|_| KeyManagerError::Unwrap)
                }
                _ => Err(KeyManagerError::Unwrap),
            }
        })
        .await
    }

    async fn destroy_kek(&self, key_id: &str) -> Result<(), KeyManagerError> {
        let key_id = key_id.to_owned();
        self.changing_token(move |s| {
            for k in all_keks(s)?.into_iter().filter(|k| k.key_id == key_id) {
                s.destroy_object(k.handle).map_err(ck("destroy key"))?;
            }
            Ok(())
        })
        .await
    }

    async fn list(&self) -> Result<Vec<KekInfo>, KeyManagerError> {
        self.with_session(|s| {
            let all = all_keks(s)?;
            let mut out: Vec<KekInfo> = all
                .iter()
                .map(|k| KekInfo {
                    key_id: k.key_id.clone(),
                    version: k.version,
                    current: all.iter().filter(|o| o.key_id == k.key_id).all(|o| o.version <= k.version),
                    created_unix_ms: k.created_ms,
                })
                .collect();
            out.sort_by(|a, b| (&a.key_id, a.version).cmp(&(&b.key_id, b.version)));
            Ok(out)
        })
        .await
    }

    async fn ensure_signing_key(&self, key_id: &str) -> Result<SigningKeyInfo, KeyManagerError> {
        let key_id = key_id.to_owned();
        self.changing_token(move |s| {
            let public = match find_signing(s, &key_id, ObjectClass::PUBLIC_KEY)? {
                Some(h) => h,
                None => generate_signing(s, &key_id)?,
            };
            signing_info(s, &key_id, public)
        })
        .await
    }

    async fn sign(&self, key_id: &str, message: &[u8]) -> Result<Vec<u8>, KeyManagerError> {
        let key_id = key_id.to_owned();
        let digest = sigillum_crypto::sha256(message);
        self.with_session(move |s| {
            let private = find_signing(s, &key_id, ObjectClass::PRIVATE_KEY)?
                .ok_or_else(|| KeyManagerError::NotFound(key_id.clone()))?;
            // CKM_ECDSA signs a digest and returns r || s.
            let rs = s.sign(&Mechanism::Ecdsa, private, &digest).map_err(ck("sign"))?;
            sigillum_crypto::ecdsa::fixed_to_der(&rs)
                .map_err(|_| KeyManagerError::Unavailable("pkcs11 signature".into()))
        })
        .await
    }

    async fn health(&self) -> Result<(), KeyManagerError> {
        self.with_session(|s| s.get_session_info().map(|_| ()).map_err(ck("session info"))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_config_and_object_ids() {
        let c = Pkcs11Config::parse("module=/usr/lib/softhsm/libsofthsm2.so;token=sigillum").unwrap();
        assert_eq!(c.token, "sigillum");
        assert!(Pkcs11Config::parse("module=/x").is_err());
        assert!(Pkcs11Config::parse("module=/x;token=t;pin=1").is_err());
        assert_eq!(parse_object_id(&object_id("org:a/b", 12)), Some(("org:a/b".into(), 12)));
    }
}
