//! The fence around libmodsecurity: the one module of the workspace that contains `unsafe`.
//!
//! Everything that touches a raw pointer of the C API (libmodsecurity 3.0.x as Debian 12 ships
//! it, 3.0.9; declared in [`sys`] below, linked by `build.rs`) lives here, behind two owned types: [`Engine`] (the ModSecurity
//! instance plus one loaded rule set, freed on drop) and a private per-request `Transaction`
//! (freed on drop, on every path). Strings the library allocates (`strdup` of parser errors and
//! intervention texts) are copied and handed back to `free`. The log callback writes into a
//! per-request Rust buffer that outlives the transaction; the borrow checker enforces that the
//! buffer is read only after the transaction is gone.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::{Mutex, PoisonError};

/// The part of libmodsecurity's C API we call, declared from its headers
/// (`/usr/include/modsecurity/{modsecurity,transaction,rules_set,intervention}.h`, identical
/// across 3.0.x). Declared here rather than through a `-sys` crate so that our build script is
/// the one that looks for the library, and a machine without it gets the command that fixes it.
mod sys {
    use std::ffi::{c_char, c_int, c_uchar, c_void};

    /// `struct ModSecurity_t` (opaque).
    #[repr(C)]
    pub struct ModSecurity {
        _private: [u8; 0],
    }
    /// `struct Rules_t`, typedef'd `RulesSet` (opaque).
    #[repr(C)]
    pub struct RulesSet {
        _private: [u8; 0],
    }
    /// `struct Transaction_t` (opaque).
    #[repr(C)]
    pub struct Transaction {
        _private: [u8; 0],
    }

    /// `struct ModSecurityIntervention_t` (intervention.h).
    #[repr(C)]
    pub struct ModSecurityIntervention {
        pub status: c_int,
        pub pause: c_int,
        pub url: *mut c_char,
        pub log: *mut c_char,
        pub disruptive: c_int,
    }

    /// `ModSecLogCb`: `void (*)(void *, const void *)`.
    pub type ModSecLogCb = Option<unsafe extern "C" fn(*mut c_void, *const c_void)>;

    // SAFETY: each declaration matches its prototype in the 3.0.x headers named above (pointer,
    // `int` and `size_t` arguments, same order); callers below uphold each function's contract.
    extern "C" {
        pub fn msc_init() -> *mut ModSecurity;
        pub fn msc_set_connector_info(msc: *mut ModSecurity, connector: *const c_char);
        pub fn msc_set_log_cb(msc: *mut ModSecurity, cb: ModSecLogCb);
        pub fn msc_cleanup(msc: *mut ModSecurity);

        pub fn msc_create_rules_set() -> *mut RulesSet;
        pub fn msc_rules_add(rules: *mut RulesSet, plain_rules: *const c_char, error: *mut *const c_char) -> c_int;
        pub fn msc_rules_cleanup(rules: *mut RulesSet) -> c_int;

        pub fn msc_new_transaction(
            ms: *mut ModSecurity,
            rules: *mut RulesSet,
            log_cb_data: *mut c_void,
        ) -> *mut Transaction;
        pub fn msc_process_connection(
            transaction: *mut Transaction,
            client: *const c_char,
            c_port: c_int,
            server: *const c_char,
            s_port: c_int,
        ) -> c_int;
        pub fn msc_process_uri(
            transaction: *mut Transaction,
            uri: *const c_char,
            protocol: *const c_char,
            http_version: *const c_char,
        ) -> c_int;
        pub fn msc_add_n_request_header(
            transaction: *mut Transaction,
            key: *const c_uchar,
            len_key: usize,
            value: *const c_uchar,
            len_value: usize,
        ) -> c_int;
        pub fn msc_process_request_headers(transaction: *mut Transaction) -> c_int;
        pub fn msc_append_request_body(transaction: *mut Transaction, body: *const c_uchar, size: usize) -> c_int;
        pub fn msc_process_request_body(transaction: *mut Transaction) -> c_int;
        pub fn msc_intervention(transaction: *mut Transaction, it: *mut ModSecurityIntervention) -> c_int;
        pub fn msc_transaction_cleanup(transaction: *mut Transaction);
    }
}

use super::messages::LogSink;
use super::{WafError, WafRequest};

/// What the engine said about one request, before it is turned into a [`super::Verdict`].
pub(super) struct Outcome {
    /// `Some` when the engine asked for a disruptive action (a refusal in `SecRuleEngine On`).
    pub(super) intervention: Option<Intervention>,
    pub(super) log: LogSink,
}

pub(super) struct Intervention {
    pub(super) status: c_int,
    /// The engine's message for the disruptive rule (`[id "949110"]` …).
    pub(super) log: Option<String>,
}

/// Held while an engine is created, loaded or freed: libmodsecurity's rule parser keeps global
/// state (loading two rule sets at once from two threads corrupts the heap), so these happen one
/// at a time. Evaluating requests needs no lock.
static LIFECYCLE: Mutex<()> = Mutex::new(());

/// A ModSecurity instance with one loaded rule set, shared by every request and thread.
pub(super) struct Engine {
    modsec: NonNull<sys::ModSecurity>,
    rules: NonNull<sys::RulesSet>,
}

// SAFETY: after `Engine::load` returns, neither pointer is used to change anything. The rule set
// is only read by transactions (libmodsecurity's connectors share one rule set between worker
// threads the same way); the ModSecurity instance only supplies the log callback, set once during
// `load`, and the persistent collections (global/ip), which libmodsecurity guards with its own
// mutex and which CRS writes only with IP reputation or DoS protection enabled (both off). Each
// transaction is created, driven and freed by the one thread that calls `Engine::evaluate`, and
// its log buffer belongs to that call. The only write to a shared rule set during evaluation in
// libmodsecurity 3.0.x's source is a debug-log counter of rules skipped inside a SecMarker, whose
// value only appears in debug-log text (no debug log is configured). Creating, loading and freeing
// engines, where the rule parser's global state is involved, is serialised by `LIFECYCLE`; an
// engine is freed only when the last `Arc` goes, so no transaction can be running then.
unsafe impl Send for Engine {}
// SAFETY: see the `Send` impl above; `evaluate` takes `&self` and shares nothing mutable.
unsafe impl Sync for Engine {}

impl Engine {
    /// Creates the engine and loads `config` (SecLang text; `Include` lines are read from disk).
    pub(super) fn load(config: &str) -> Result<Self, WafError> {
        let text =
            CString::new(config).map_err(|_| WafError::Config("the configuration contains a NUL byte".into()))?;
        let _one_at_a_time = LIFECYCLE.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: msc_init has no preconditions; it returns an owned instance or null.
        let modsec = NonNull::new(unsafe { sys::msc_init() }).ok_or(WafError::Init)?;
        // SAFETY: msc_create_rules_set has no preconditions; it returns an owned set or null.
        let Some(rules) = NonNull::new(unsafe { sys::msc_create_rules_set() }) else {
            // SAFETY: `modsec` came from msc_init above and is not used afterwards.
            unsafe { sys::msc_cleanup(modsec.as_ptr()) };
            return Err(WafError::Init);
        };
        // SAFETY: `modsec` and `rules` are the live handles created above, owned by this call.
        match unsafe { configure(modsec, rules, &text) } {
            // Built only now, so that the error path below frees the handles under the lock
            // already held (`Drop` takes it itself).
            Ok(()) => Ok(Self { modsec, rules }),
            Err(error) => {
                // SAFETY: the handles are not used after this.
                unsafe { free(modsec, rules) };
                Err(error)
            }
        }
    }

    /// Runs one request through the connection, URI, header and body phases (1 and 2),
    /// stopping at the first disruptive intervention. Responses are never evaluated.
    pub(super) fn evaluate(&self, req: &WafRequest<'_>) -> Result<Outcome, WafError> {
        let client = CString::new(req.client_ip.to_string()).map_err(|_| WafError::Input("client address"))?;
        let uri = CString::new(req.uri).map_err(|_| WafError::Input("URI"))?;
        let method = CString::new(req.method).map_err(|_| WafError::Input("method"))?;
        let version = CString::new(req.http_version).map_err(|_| WafError::Input("HTTP version"))?;

        let mut log = LogSink::default();
        let intervention = {
            let tx = Transaction::new(self, &mut log)?;
            tx.run(&client, req, &uri, &method, &version)
            // `tx` is freed here, before `log` is read.
        };
        Ok(Outcome { intervention, log })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _one_at_a_time = LIFECYCLE.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: both pointers are owned by this engine and no transaction can be alive (they
        // borrow the engine).
        unsafe { free(self.modsec, self.rules) };
    }
}

/// Sets the log callback and loads the rules.
///
/// # Safety
/// `modsec` and `rules` must be live handles owned by the caller, with no transaction yet.
unsafe fn configure(
    modsec: NonNull<sys::ModSecurity>,
    rules: NonNull<sys::RulesSet>,
    text: &CStr,
) -> Result<(), WafError> {
    // SAFETY: `modsec` is live (caller); the connector string is a NUL-terminated literal that
    // the library copies.
    unsafe { sys::msc_set_connector_info(modsec.as_ptr(), c"sigillum-edge".as_ptr()) };
    // SAFETY: `modsec` is live and `log_callback` matches ModSecLogCb; it is set before any
    // transaction exists and never changed afterwards.
    unsafe { sys::msc_set_log_cb(modsec.as_ptr(), Some(log_callback)) };
    let mut error: *const c_char = ptr::null();
    // SAFETY: `rules` is live (caller), `text` is NUL-terminated and outlives the call, and
    // `error` is a valid out-pointer that the library sets only on failure.
    let loaded = unsafe { sys::msc_rules_add(rules.as_ptr(), text.as_ptr(), &mut error) };
    // SAFETY: `error` is null or a string the library allocated with strdup for us.
    let message = unsafe { take_c_string(error.cast_mut()) };
    if loaded < 0 {
        return Err(WafError::Rules(message.unwrap_or_else(|| "unknown error".to_owned())));
    }
    if loaded == 0 {
        return Err(WafError::Rules("no rules were loaded".to_owned()));
    }
    Ok(())
}

/// Frees a rule set and its ModSecurity instance (the rule set first, as the connectors do).
///
/// # Safety
/// Both handles must be live, owned by the caller, unused afterwards, with no transaction alive;
/// the caller holds `LIFECYCLE`.
unsafe fn free(modsec: NonNull<sys::ModSecurity>, rules: NonNull<sys::RulesSet>) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        sys::msc_rules_cleanup(rules.as_ptr());
        sys::msc_cleanup(modsec.as_ptr());
    }
}

/// One libmodsecurity transaction, owned by the calling thread and freed on drop. It holds the
/// mutable borrow of the log buffer its callback writes to, so the buffer outlives it.
struct Transaction<'a> {
    raw: NonNull<sys::Transaction>,
    _engine: PhantomData<&'a Engine>,
    _log: PhantomData<&'a mut LogSink>,
}

impl<'a> Transaction<'a> {
    fn new(engine: &'a Engine, log: &'a mut LogSink) -> Result<Self, WafError> {
        let data: *mut LogSink = log;
        // SAFETY: engine pointers are live for 'a; `data` points to a LogSink that is mutably
        // borrowed for 'a, so nothing else touches it while the transaction (and its callback)
        // can run.
        let raw = unsafe { sys::msc_new_transaction(engine.modsec.as_ptr(), engine.rules.as_ptr(), data.cast()) };
        let raw = NonNull::new(raw).ok_or(WafError::Engine("msc_new_transaction"))?;
        Ok(Self { raw, _engine: PhantomData, _log: PhantomData })
    }

    fn run(
        &self,
        client: &CStr,
        req: &WafRequest<'_>,
        uri: &CStr,
        method: &CStr,
        version: &CStr,
    ) -> Option<Intervention> {
        let tx = self.raw.as_ptr();
        // Return values of the msc_process_* calls only say whether the phase ran; what matters
        // is the intervention checked after each step, as in the reference connectors.
        // SAFETY (all calls below): `tx` is the live transaction owned by `self`; every string is
        // NUL-terminated and outlives the call; byte slices are passed with their exact length
        // and the library copies what it keeps.
        unsafe {
            sys::msc_process_connection(
                tx,
                client.as_ptr(),
                c_int::from(req.client_port),
                c"127.0.0.1".as_ptr(),
                c_int::from(req.server_port),
            )
        };
        if let Some(i) = self.intervention() {
            return Some(i);
        }
        // SAFETY: as above.
        unsafe { sys::msc_process_uri(tx, uri.as_ptr(), method.as_ptr(), version.as_ptr()) };
        if let Some(i) = self.intervention() {
            return Some(i);
        }
        for (name, value) in req.headers {
            // SAFETY: as above.
            unsafe { sys::msc_add_n_request_header(tx, name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
        }
        // SAFETY: as above.
        unsafe { sys::msc_process_request_headers(tx) };
        if let Some(i) = self.intervention() {
            return Some(i);
        }
        if let Some(body) = req.body.filter(|b| !b.is_empty()) {
            // SAFETY: as above.
            unsafe { sys::msc_append_request_body(tx, body.as_ptr(), body.len()) };
            if let Some(i) = self.intervention() {
                return Some(i);
            }
        }
        // Phase 2 runs even without a body: most CRS rules on ARGS and headers live there.
        // SAFETY: as above.
        unsafe { sys::msc_process_request_body(tx) };
        self.intervention()
    }

    /// Asks the engine whether it wants to intervene, taking ownership of the strings it copied.
    fn intervention(&self) -> Option<Intervention> {
        let mut it = sys::ModSecurityIntervention {
            status: 200,
            pause: 0,
            url: ptr::null_mut(),
            log: ptr::null_mut(),
            disruptive: 0,
        };
        // SAFETY: `self.raw` is the live transaction and `it` a valid, initialised struct that the
        // library fills in (strdup'ing `url` and `log` when it sets them).
        let disruptive = unsafe { sys::msc_intervention(self.raw.as_ptr(), &mut it) };
        // SAFETY: each pointer is null or a string the library allocated with strdup for us; we
        // reset nothing else in `it` and never read the pointers again.
        let (log, _url) = unsafe { (take_c_string(it.log), take_c_string(it.url)) };
        (disruptive != 0 || it.disruptive != 0).then_some(Intervention { status: it.status, log })
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` is owned by this transaction and freed exactly once, here.
        unsafe { sys::msc_transaction_cleanup(self.raw.as_ptr()) };
    }
}

/// Called by libmodsecurity, on the thread that drives the transaction, for every rule match it
/// logs (TextLogProperty: `msg` is a NUL-terminated text valid for the duration of the call).
unsafe extern "C" fn log_callback(data: *mut c_void, msg: *const c_void) {
    if data.is_null() || msg.is_null() {
        return;
    }
    // SAFETY: `data` is the logCbData given to msc_new_transaction: a `LogSink` that the running
    // transaction borrows mutably (see `Transaction::new`), and only this thread touches it.
    let sink = unsafe { &mut *data.cast::<LogSink>() };
    // SAFETY: with TextLogProperty the library passes a NUL-terminated string that stays valid
    // until the callback returns; it is copied before returning.
    let text = unsafe { CStr::from_ptr(msg.cast::<c_char>()) };
    sink.push(&text.to_string_lossy());
}

/// Copies and frees a string that libmodsecurity allocated with `strdup`.
///
/// # Safety
/// `p` must be null or a pointer returned by the C allocator that nobody else will use or free.
unsafe fn take_c_string(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `p` is a live NUL-terminated allocation.
    let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: the caller guarantees `p` came from malloc (strdup) and is not used again.
    unsafe { libc::free(p.cast()) };
    Some(text)
}
