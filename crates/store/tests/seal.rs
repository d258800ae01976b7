//! The PAdES seal, judged by independent validators: pyHanko (trusting only our root), poppler's
//! `pdfsig` and `qpdf --check`, on sealed output of several kinds of input PDF, with the seal and
//! TSA keys in the local keyring and in a PKCS#11 token (SoftHSM2). A byte flipped inside the
//! signed range makes every validator fail the file.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use sigillum_core::pki::Pki;
use sigillum_core::ports::SystemClock;
use sigillum_core::seal::{SealRequest, Sealer};
use sigillum_pdf::verify::{self, PadesLevel};

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out =
        Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd} not found ({e}): run scripts/test.sh"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

struct Judgement {
    pyhanko: (bool, String),
    pdfsig: (bool, String),
    qpdf: (bool, String),
}

fn judge(file: &Path, root_pem: &Path) -> Judgement {
    let f = file.to_str().unwrap();
    // AdES-style validation: uses the file's own validation data (DSS, document timestamp).
    let pyhanko = run("pyhanko", &["sign", "adesverify", "--trust-replace", "--trust", root_pem.to_str().unwrap(), f]);
    let pdfsig = run("pdfsig", &[f]);
    let qpdf = run("qpdf", &["--check", f]);
    Judgement { pyhanko, pdfsig, qpdf }
}

fn qpdf_object_streams(input: &[u8], dir: &Path) -> Vec<u8> {
    let (i, o) = (dir.join("plain.pdf"), dir.join("objstm.pdf"));
    std::fs::write(&i, input).unwrap();
    let (ok, text) =
        run("qpdf", &["--object-streams=generate", "--compress-streams=y", i.to_str().unwrap(), o.to_str().unwrap()]);
    assert!(ok, "{text}");
    let bytes = std::fs::read(&o).unwrap();
    assert!(bytes.windows(9).any(|w| w == b"/Type /XR" || w == b"/Type/XRe"), "qpdf wrote no xref stream");
    bytes
}

async fn seal_and_judge(keys: Arc<dyn sigillum_crypto::KeyManager>, repo: Arc<sigillum_store::SqlRepository>) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::new(keys, repo, Arc::new(SystemClock), "https://localhost:8443"));
    let sealer = Sealer::new(pki.clone(), pki.clone());
    let root_pem = dir.path().join("root.pem");
    let root = pki.certificates().await.unwrap().root.clone();
    std::fs::write(&root_pem, root.pem()).unwrap();

    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("one-page", sigillum_testkit::pdf::pdf(1)),
        ("thirty-pages", sigillum_testkit::pdf::pdf(30)),
        ("incremental", sigillum_testkit::pdf::with_incremental_update(&sigillum_testkit::pdf::pdf(2))),
        ("object-streams", qpdf_object_streams(&sigillum_testkit::pdf::pdf(3), dir.path())),
        ("form-fields", sigillum_testkit::pdf::pdf_with_form()),
    ];
    for (name, input) in inputs {
        let req = SealRequest { reason: "Signed with Sigillum".into(), signing_time_unix: now_s() };
        let sealed = sealer.seal(input.clone(), &req).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(sealed.starts_with(&input), "{name}: the seal is an incremental update");
        let path = dir.path().join(format!("{name}.pdf"));
        std::fs::write(&path, &sealed).unwrap();
        if let Ok(keep) = std::env::var("SIGILLUM_TEST_KEEP") {
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::copy(&path, Path::new(&keep).join(format!("{name}.pdf"))).unwrap();
            std::fs::copy(&root_pem, Path::new(&keep).join("root.pem")).unwrap();
        }
        let j = judge(&path, &root_pem);
        let (ok, text) = &j.pyhanko;
        assert!(*ok, "{name}: pyHanko failed:\n{text}");
        assert!(
            text.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,EXTENDED_WITH_LTA_UPDATES"),
            "{name}: pyHanko:\n{text}"
        );
        // poppler (Debian 12) validates the CAdES signature; it cannot validate an RFC 3161
        // document timestamp and says so.
        let (_, text) = &j.pdfsig;
        assert_eq!(text.matches("Signature Validation: Signature is Valid.").count(), 1, "{name}: pdfsig:\n{text}");
        assert!(text.contains("Signature Type: ETSI.CAdES.detached"), "{name}: pdfsig:\n{text}");
        assert!(text.contains("Total document signed"), "{name}: pdfsig:\n{text}");
        // Our own verifier agrees, and names the level.
        let report = verify::verify(&sealed, std::slice::from_ref(&root), now_s() as u64).unwrap();
        assert!(report.valid, "{name}: sigillum verify: {report:#?}");
        assert_eq!(report.level, Some(PadesLevel::BLta), "{name}");
        let (ok, text) = &j.qpdf;
        assert!(*ok && text.contains("No syntax or stream encoding errors"), "{name}: qpdf --check:\n{text}");

        // One byte changed inside the signed range: every validator refuses.
        let mut tampered = sealed.clone();
        let at = input.len() / 2;
        tampered[at] = if tampered[at] == b'7' { b'8' } else { b'7' };
        let path = dir.path().join(format!("{name}-tampered.pdf"));
        std::fs::write(&path, &tampered).unwrap();
        let j = judge(&path, &root_pem);
        assert!(!j.pyhanko.0, "{name}: pyHanko accepted a tampered file:\n{}", j.pyhanko.1);
        assert!(!j.pdfsig.1.contains("Signature is Valid"), "{name}: pdfsig accepted a tampered file:\n{}", j.pdfsig.1);
        let report = verify::verify(&tampered, std::slice::from_ref(&root), now_s() as u64).unwrap();
        assert!(!report.valid, "{name}: sigillum verify accepted a tampered file");
        assert!(report.signatures.iter().all(|s| !s.digest_ok), "{name}: {report:#?}");
    }
}

/// A self-signed P-256 certificate made by OpenSSL (a CA one when `ca`).
fn self_signed(key: &str, cert: &str, subject: &str, ca: bool) {
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-subj",
        subject,
        "-days",
        "30",
    ];
    if ca {
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }
    let (ok, text) = run("openssl", &args);
    assert!(ok, "{text}");
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn seal_validates_with_keys_in_the_local_keyring() {
    let s = common::local_stack().await;
    seal_and_judge(s.vault.key_manager().clone(), s.repo.clone()).await;
}

#[tokio::test]
async fn seal_validates_with_keys_in_a_pkcs11_token() {
    let s = common::server_stack().await;
    seal_and_judge(s.vault.key_manager().clone(), s.repo.clone()).await;
}

/// Production with its own CA: `seal_csr` makes a PKCS#10 request for the seal key (OpenSSL
/// checks its signature), OpenSSL's CA certifies it, and documents sealed with the imported
/// certificate verify against that CA (the timestamps still come from the internal TSA).
#[tokio::test]
async fn seal_with_a_certificate_from_an_outside_ca() {
    let s = common::local_stack().await;
    let dir = tempfile::tempdir().unwrap();
    let f = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let keys = s.vault.key_manager().clone();
    let internal = Pki::new(keys.clone(), s.repo.clone(), Arc::new(SystemClock), "https://localhost:8443");
    std::fs::write(f("csr.pem"), internal.seal_csr("CN=Example AG Document Seal,O=Example AG,C=CH").await.unwrap())
        .unwrap();
    let (ok, text) = run("openssl", &["req", "-in", &f("csr.pem"), "-verify", "-noout", "-subject"]);
    assert!(ok && text.contains("verify OK") && text.contains("Example AG Document Seal"), "{text}");

    self_signed(&f("ca.key"), &f("ca.pem"), "/CN=Example Issuing CA/O=Example AG", true);
    std::fs::write(
        f("ext.cnf"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n",
    )
    .unwrap();
    let (ok, text) = run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &f("csr.pem"),
            "-CA",
            &f("ca.pem"),
            "-CAkey",
            &f("ca.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            &f("ext.cnf"),
            "-out",
            &f("seal.pem"),
        ],
    );
    assert!(ok, "{text}");
    let mut chain_pem = std::fs::read(f("seal.pem")).unwrap();
    chain_pem.extend(std::fs::read(f("ca.pem")).unwrap());
    let chain = sigillum_pdf::pki::parse_certificates(&chain_pem).unwrap();
    let ca = chain[1].clone();

    let pki = Arc::new(
        Pki::new(keys, s.repo.clone(), Arc::new(SystemClock), "https://localhost:8443").with_imported_seal_chain(chain),
    );
    let internal_root = pki.certificates().await.unwrap().root.clone();
    assert!(pki.certificates().await.unwrap().seal.pem().contains("BEGIN CERTIFICATE"));
    let sealer = Sealer::new(pki.clone(), pki.clone());
    let req = SealRequest { reason: "Signed".into(), signing_time_unix: now_s() };
    let sealed = sealer.seal(sigillum_testkit::pdf::pdf(2), &req).await.unwrap();

    let report = verify::verify(&sealed, &[ca.clone(), internal_root.clone()], now_s() as u64).unwrap();
    assert!(report.valid, "{report:#?}");
    assert_eq!(report.signatures[0].signer.as_deref(), Some("CN=Example AG Document Seal,O=Example AG,C=CH"));
    // Only our root trusted: the seal's chain does not end there.
    let report = verify::verify(&sealed, std::slice::from_ref(&internal_root), now_s() as u64).unwrap();
    assert!(!report.valid);

    std::fs::write(f("sealed.pdf"), &sealed).unwrap();
    std::fs::write(f("root.pem"), internal_root.pem()).unwrap();
    let (ok, text) = run(
        "pyhanko",
        &[
            "sign",
            "validate",
            "--no-revocation-check",
            "--trust-replace",
            "--trust",
            &f("ca.pem"),
            "--trust",
            &f("root.pem"),
            &f("sealed.pdf"),
        ],
    );
    assert!(ok && text.contains("INTACT:TRUSTED"), "pyHanko: {text}");

    // A certificate for another key is refused at start.
    self_signed(&f("other.key"), &f("other.pem"), "/CN=Someone Else", false);
    let other = sigillum_pdf::pki::parse_certificates(&std::fs::read(f("other.pem")).unwrap()).unwrap();
    let wrong = Pki::new(s.vault.key_manager().clone(), s.repo.clone(), Arc::new(SystemClock), "https://x")
        .with_imported_seal_chain(other);
    assert!(matches!(wrong.certificates().await, Err(sigillum_core::pki::PkiServiceError::Config(_))));
}

/// The outside CA of the tests below: an RSA root run by `openssl ca` (its database records
/// revocations), publishing its CRL at `{base}/root.crl`, answering OCSP at `{base}/ocsp`, and
/// running a timestamp authority (OpenSSL's, with an RSA key) at `{base}/tsa`.
struct OutsideCa {
    dir: std::path::PathBuf,
}

impl OutsideCa {
    fn new(dir: &Path, base: &str) -> Self {
        let d = dir.display();
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = own\n[own]\ndir = {d}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\n\
                 certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\nserial = $dir/serial\ncrlnumber = $dir/crlnumber\n\
                 default_md = sha256\ndefault_days = 30\ndefault_crl_days = 7\npolicy = any\nunique_subject = no\n\
                 [any]\ncommonName = supplied\norganizationName = optional\ncountryName = optional\n\
                 [seal_crl]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,nonRepudiation\n\
                 crlDistributionPoints = URI:{base}/root.crl\n\
                 [seal_ocsp]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,nonRepudiation\n\
                 authorityInfoAccess = OCSP;URI:{base}/ocsp\n\
                 [responder]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
                 extendedKeyUsage = critical,OCSPSigning\nnoCheck = ignored\n\
                 [tsa]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
                 extendedKeyUsage = critical,timeStamping\ncrlDistributionPoints = URI:{base}/root.crl\n\
                 [tsa_service]\ndefault_tsa = ts\n[ts]\ndir = {d}\nserial = $dir/tsaserial\nsigner_cert = $dir/tsa.pem\n\
                 signer_key = $dir/tsa.key\ncerts = $dir/ca.pem\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.32473.1\n\
                 digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = yes\ness_cert_id_alg = sha1\n"
            ),
        )
        .unwrap();
        let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
        let (ok, text) = run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:3072",
                "-nodes",
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.pem"),
                "-subj",
                "/CN=Example Root CA/O=Example AG",
                "-days",
                "30",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        assert!(ok, "{text}");
        let ca = Self { dir: dir.to_owned() };
        // The timestamp authority's RSA key, certified by the CA.
        let (ok, text) = run(
            "openssl",
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &p("tsa.key"),
                "-out",
                &p("tsa.csr"),
                "-subj",
                "/CN=Example Timestamp Authority/O=Example AG",
            ],
        );
        assert!(ok, "{text}");
        ca.certify(&p("tsa.csr"), "tsa", &p("tsa.pem"));
        std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
        // A responder certificate the CA delegates OCSP signing to (RFC 6960 §4.2.2.2).
        let (ok, text) = run(
            "openssl",
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-nodes",
                "-keyout",
                &p("ocsp.key"),
                "-out",
                &p("ocsp.csr"),
                "-subj",
                "/CN=Example OCSP Responder/O=Example AG",
            ],
        );
        assert!(ok, "{text}");
        ca.certify(&p("ocsp.csr"), "responder", &p("ocsp.pem"));
        ca.publish_crl();
        ca
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    fn certify(&self, csr: &str, extensions: &str, out: &str) {
        let cnf = self.path("ca.cnf");
        let (ok, text) = run(
            "openssl",
            &[
                "ca",
                "-batch",
                "-config",
                &cnf,
                "-extensions",
                extensions,
                "-preserveDN",
                "-notext",
                "-in",
                csr,
                "-out",
                out,
            ],
        );
        assert!(ok, "{text}");
    }

    /// Writes the current CRL (PEM, as `openssl ca` does; the sealer embeds its DER).
    fn publish_crl(&self) {
        let (ok, text) =
            run("openssl", &["ca", "-config", &self.path("ca.cnf"), "-gencrl", "-out", &self.path("root.crl")]);
        assert!(ok, "{text}");
    }

    fn revoke(&self, cert: &str) {
        let (ok, text) = run("openssl", &["ca", "-config", &self.path("ca.cnf"), "-revoke", cert]);
        assert!(ok, "{text}");
        self.publish_crl();
    }

    /// Runs `openssl` on one request written to a file and returns the response it wrote.
    fn answer(&self, request: &[u8], args: impl FnOnce(&str, &str) -> Vec<String>) -> Vec<u8> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let id = N.fetch_add(1, Ordering::Relaxed);
        let (q, r) = (self.path(&format!("q{id}.der")), self.path(&format!("r{id}.der")));
        std::fs::write(&q, request).unwrap();
        let args = args(&q, &r);
        let (ok, text) = run("openssl", &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{text}");
        std::fs::read(&r).unwrap()
    }

    /// Answers one RFC 3161 request with `openssl ts -reply` (RSA key, ESS signing-certificate v1).
    fn timestamp(&self, request: &[u8]) -> Vec<u8> {
        let cnf = self.path("ca.cnf");
        self.answer(request, |q, r| {
            ["ts", "-reply", "-config", &cnf, "-section", "ts", "-queryfile", q, "-out", r].map(String::from).to_vec()
        })
    }

    /// Answers one OCSP request with `openssl ocsp` from the CA's database, signed by the
    /// delegated responder (P-384), whose certificate goes with the answer.
    fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        let (index, ca) = (self.path("index.txt"), self.path("ca.pem"));
        let (signer, key) = (self.path("ocsp.pem"), self.path("ocsp.key"));
        self.answer(request, |q, r| {
            [
                "ocsp", "-index", &index, "-CA", &ca, "-rsigner", &signer, "-rkey", &key, "-ndays", "1", "-reqin", q,
                "-respout", r,
            ]
            .map(String::from)
            .to_vec()
        })
    }
}

/// How often the outside CA's server was asked for its CRL and for OCSP answers.
#[derive(Default)]
struct Asked {
    crl: std::sync::atomic::AtomicUsize,
    ocsp: std::sync::atomic::AtomicUsize,
}

impl Asked {
    fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.crl.load(SeqCst), self.ocsp.load(SeqCst))
    }
}

/// The CA's web server on loopback: CRL, OCSP responder and TSA.
fn serve_outside_ca(
    listener: tokio::net::TcpListener,
    ca: Arc<OutsideCa>,
    asked: Arc<Asked>,
) -> tokio::task::JoinHandle<()> {
    use axum::routing::{get, post};
    use std::sync::atomic::Ordering::SeqCst;
    let (crl_ca, crl_asked, ocsp_ca, ocsp_asked) = (ca.clone(), asked.clone(), ca.clone(), asked);
    let app = axum::Router::new()
        .route(
            "/root.crl",
            get(move || {
                crl_asked.crl.fetch_add(1, SeqCst);
                let body = std::fs::read(crl_ca.path("root.crl")).unwrap();
                async move { body }
            }),
        )
        .route(
            "/ocsp",
            post(move |body: axum::body::Bytes| {
                ocsp_asked.ocsp.fetch_add(1, SeqCst);
                let ca = ocsp_ca.clone();
                async move {
                    let reply = tokio::task::spawn_blocking(move || ca.ocsp(&body)).await.unwrap();
                    ([("content-type", "application/ocsp-response")], reply)
                }
            }),
        )
        .route(
            "/tsa",
            post(move |body: axum::body::Bytes| {
                let ca = ca.clone();
                async move {
                    let reply = tokio::task::spawn_blocking(move || ca.timestamp(&body)).await.unwrap();
                    ([("content-type", "application/timestamp-reply")], reply)
                }
            }),
        );
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

/// Production with its own CA (OpenSSL, RSA) and that CA's timestamp authority: the seal key's
/// certificate is issued from `seal_csr` with `extensions` (`seal_crl` or `seal_ocsp`).
struct OutsideDeployment {
    stack: common::Stack,
    dir: tempfile::TempDir,
    ca: Arc<OutsideCa>,
    base: String,
    asked: Arc<Asked>,
    server: tokio::task::JoinHandle<()>,
    chain: Vec<sigillum_pdf::pki::CertInfo>,
}

impl OutsideDeployment {
    async fn start(extensions: &str) -> Self {
        let stack = common::local_stack().await;
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let ca = Arc::new(OutsideCa::new(&dir.path().join("ca"), &base));
        let asked = Arc::new(Asked::default());
        let server = serve_outside_ca(listener, ca.clone(), asked.clone());
        let internal =
            Pki::new(stack.vault.key_manager().clone(), stack.repo.clone(), Arc::new(SystemClock), "https://x");
        let csr = internal.seal_csr("CN=Example AG Document Seal,O=Example AG,C=CH").await.unwrap();
        std::fs::write(ca.path("seal.csr"), csr).unwrap();
        ca.certify(&ca.path("seal.csr"), extensions, &ca.path("seal.pem"));
        let mut chain_pem = std::fs::read(ca.path("seal.pem")).unwrap();
        chain_pem.extend(std::fs::read(ca.path("ca.pem")).unwrap());
        let chain = sigillum_pdf::pki::parse_certificates(&chain_pem).unwrap();
        Self { stack, dir, ca, base, asked, server, chain }
    }

    fn root(&self) -> sigillum_pdf::pki::CertInfo {
        self.chain[1].clone()
    }

    fn pki(&self) -> Arc<Pki> {
        let keys = self.stack.vault.key_manager().clone();
        Arc::new(
            Pki::new(keys, self.stack.repo.clone(), Arc::new(SystemClock), "https://localhost:8443")
                .with_imported_seal_chain(self.chain.clone()),
        )
    }

    /// A fresh sealer (empty revocation cache) with the CA's TSA, or the internal one.
    fn sealer(&self, outside_tsa: bool) -> Sealer {
        let pki = self.pki();
        let tsa: Arc<dyn sigillum_core::pki::TimestampAuthority> = if outside_tsa {
            Arc::new(sigillum_web::pki::HttpTimestampAuthority::new(&format!("{}/tsa", self.base)).unwrap())
        } else {
            pki.clone()
        };
        Sealer::new(pki, tsa).with_revocation_source(Arc::new(sigillum_web::pki::HttpRevocationSource::new().unwrap()))
    }

    /// The sealing, revocation and validation story both kinds of outside certificate share:
    /// sealed documents carry the revocation data (fetched once for several seals), verify at
    /// B-LTA with our verifier, pyHanko, pdfsig and qpdf once the CA's server is gone; a revoked
    /// seal certificate stops sealing, and so does revocation data that cannot be had.
    async fn prove(mut self, asked_per_seal: (usize, usize)) {
        use sigillum_core::seal::SealServiceError;
        let req = SealRequest { reason: "Signed".into(), signing_time_unix: now_s() };
        let first = self.sealer(true);
        let sealed = first.seal(sigillum_testkit::pdf::pdf(2), &req).await.unwrap();
        assert_eq!(self.asked.counts(), asked_per_seal, "(CRL, OCSP) asked for the first seal");
        first.seal(sigillum_testkit::pdf::pdf(1), &req).await.unwrap();
        assert_eq!(self.asked.counts(), asked_per_seal, "current revocation data is kept, not fetched per seal");

        // Our verifier: trusted to the outside root alone, revocation checked from the DSS.
        let report = verify::verify(&sealed, &[self.root()], now_s() as u64).unwrap();
        assert!(report.valid, "{report:#?}");
        assert_eq!(report.level, Some(PadesLevel::BLta), "{report:#?}");
        assert_eq!(report.dss_ocsp_responses, asked_per_seal.1, "{report:#?}");
        let chain_report = report.signatures[0].chain.as_ref().unwrap();
        assert!(chain_report.revocation_checked && !chain_report.revoked, "{report:#?}");

        // The seal certificate is revoked: no more seals with it.
        self.ca.revoke(&self.ca.path("seal.pem"));
        let err = self.sealer(true).seal(sigillum_testkit::pdf::pdf(1), &req).await.unwrap_err();
        assert!(matches!(err, SealServiceError::Revoked { .. }), "{err}");

        // The CA's server is gone: a new seal (internal TSA) is refused rather than made without
        // revocation data, and the earlier document still validates from what it carries.
        self.server.abort();
        let _ = (&mut self.server).await;
        let err = self.sealer(false).seal(sigillum_testkit::pdf::pdf(1), &req).await.unwrap_err();
        assert!(matches!(err, SealServiceError::RevocationUnavailable { .. }), "{err}");
        let file = self.dir.path().join("sealed.pdf");
        std::fs::write(&file, &sealed).unwrap();
        let j = judge(&file, Path::new(&self.ca.path("ca.pem")));
        let (ok, text) = &j.pyhanko;
        assert!(
            *ok && text.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,EXTENDED_WITH_LTA_UPDATES"),
            "pyHanko:\n{text}"
        );
        let pdfsig = &j.pdfsig.1;
        assert_eq!(pdfsig.matches("Signature Validation: Signature is Valid.").count(), 1, "pdfsig:\n{pdfsig}");
        assert!(j.qpdf.0, "qpdf:\n{}", j.qpdf.1);
    }
}

/// The seal certificate and the TSA's name a CRL distribution point: one CRL covers both.
#[tokio::test]
async fn seal_with_an_outside_ca_and_tsa_embeds_their_crls() {
    OutsideDeployment::start("seal_crl").await.prove((1, 0)).await;
}

/// The seal certificate names only an OCSP responder (the TSA's a CRL): the seal carries the
/// answer of the responder the CA delegated to (a P-384 key).
#[tokio::test]
async fn seal_with_an_outside_certificate_checked_by_ocsp_embeds_the_response() {
    OutsideDeployment::start("seal_ocsp").await.prove((1, 1)).await;
}

/// The internal PKI renews its certificates for the same keys when they near their end: the seal
/// and TSA certificates 90 days before, the root a year before. Two nodes on one database agree
/// on each renewal, and documents sealed after it verify against the old root certificate as
/// well as the new one.
#[tokio::test]
async fn internal_certificates_are_renewed_before_they_end() {
    use sigillum_core::pki::RENEW_BEFORE_S;
    use sigillum_core::ports::Clock;
    const YEAR_MS: i64 = 365 * 86_400_000;
    let s = common::local_stack().await;
    let clock = Arc::new(common::ManualClock::at(1_800_000_000_000));
    let node = |clock: &Arc<common::ManualClock>| {
        Arc::new(Pki::new(s.vault.key_manager().clone(), s.repo.clone(), clock.clone(), "https://localhost:8443"))
    };
    let (a, b) = (node(&clock), node(&clock));
    let first = a.certificates().await.unwrap();
    assert_eq!(b.certificates().await.unwrap().seal.der, first.seal.der, "one seal certificate for both nodes");
    let end = |c: &sigillum_pdf::pki::CertInfo| c.cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs();

    let sealed_at = |pki: &Arc<Pki>, clock: &common::ManualClock| {
        let (pki, now) = (pki.clone(), clock.now_unix_ms() / 1000);
        async move {
            let req = SealRequest { reason: "Signed".into(), signing_time_unix: now };
            (Sealer::new(pki.clone(), pki).seal(sigillum_testkit::pdf::pdf(1), &req).await.unwrap(), now as u64)
        }
    };

    // Ten years on, 80 days before the seal and TSA certificates end: both are renewed (same
    // keys, later ends); the root, with ten years left, is not.
    clock.advance(10 * YEAR_MS - 80 * 86_400_000);
    assert!(end(&first.seal) < (clock.now_unix_ms() / 1000) as u64 + RENEW_BEFORE_S);
    let renewed = a.certificates().await.unwrap();
    assert_ne!(renewed.seal.der, first.seal.der);
    assert_ne!(renewed.tsa.der, first.tsa.der);
    assert_eq!(renewed.seal.spki_der().unwrap(), first.seal.spki_der().unwrap(), "the same seal key");
    assert!(end(&renewed.seal) > end(&first.seal) + 9 * 365 * 86_400);
    assert_eq!(renewed.root.der, first.root.der);
    assert_eq!(b.certificates().await.unwrap().seal.der, renewed.seal.der, "the other node takes the same renewal");
    let (doc, t) = sealed_at(&a, &clock).await;
    let report = verify::verify(&doc, std::slice::from_ref(&first.root), t).unwrap();
    assert!(report.valid, "{report:#?}");
    assert_eq!(report.level, Some(PadesLevel::BLta));

    // Nineteen years and a bit on: the root is renewed for the same key; a document sealed now
    // verifies against the old root certificate and the new one.
    clock.advance(9 * YEAR_MS + 120 * 86_400_000);
    let later = a.certificates().await.unwrap();
    assert_ne!(later.root.der, first.root.der);
    assert_eq!(later.root.spki_der().unwrap(), first.root.spki_der().unwrap(), "the same root key");
    assert!(end(&later.root) > end(&first.root));
    let (doc, t) = sealed_at(&a, &clock).await;
    for root in [&first.root, &later.root] {
        let report = verify::verify(&doc, std::slice::from_ref(root), t).unwrap();
        assert!(report.valid, "{report:#?}");
    }
}
