//! The internal PKI as relying parties meet it: `/pki/ca.pem` and `/pki/crl` (checked with
//! OpenSSL), the built-in RFC 3161 TSA at `POST /tsa` (requests made and replies verified by
//! `openssl ts`), and `sigillum verify`'s exit codes (0 valid, 1 invalid, 2 error) on a document
//! the server sealed.

use std::path::Path;
use std::process::Command;

use sigillum_testkit::server::{embedded_env, Server};

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().expect("openssl (scripts/deps.sh)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn verify_cli(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(sigillum_testkit::sigillum_bin()).arg("verify").args(args).output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn ca_crl_and_timestamp_authority_check_out_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&embedded_env(&dir.path().join("data")), &[]);
    let client = server.client();
    let files = dir.path();

    // The root: a self-signed CA certificate.
    let ca = client.get(server.url("/pki/ca.pem")).send().await.unwrap();
    assert_eq!(ca.status(), 200);
    assert_eq!(ca.headers()["content-type"], "application/x-pem-file");
    std::fs::write(files.join("ca.pem"), ca.bytes().await.unwrap()).unwrap();
    let (ok, text) = openssl(&["x509", "-in", p(&files.join("ca.pem")), "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("CA:TRUE") && text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("ecdsa-with-SHA256"), "{text}");

    // The CRL: signed by the root, current.
    let crl = client.get(server.url("/pki/crl")).send().await.unwrap();
    assert_eq!(crl.status(), 200);
    assert_eq!(crl.headers()["content-type"], "application/pkix-crl");
    std::fs::write(files.join("root.crl"), crl.bytes().await.unwrap()).unwrap();
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&files.join("root.crl")),
        "-CAfile",
        p(&files.join("ca.pem")),
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // The TSA: OpenSSL makes the request and verifies the reply against the root.
    std::fs::write(files.join("data.txt"), b"a contract").unwrap();
    let (ok, text) = openssl(&[
        "ts",
        "-query",
        "-data",
        p(&files.join("data.txt")),
        "-sha256",
        "-cert",
        "-out",
        p(&files.join("req.tsq")),
    ]);
    assert!(ok, "{text}");
    let reply = client
        .post(server.url("/tsa"))
        .header("content-type", "application/timestamp-query")
        .body(std::fs::read(files.join("req.tsq")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "application/timestamp-reply");
    std::fs::write(files.join("reply.tsr"), reply.bytes().await.unwrap()).unwrap();
    let (ok, text) = openssl(&[
        "ts",
        "-verify",
        "-in",
        p(&files.join("reply.tsr")),
        "-queryfile",
        p(&files.join("req.tsq")),
        "-CAfile",
        p(&files.join("ca.pem")),
    ]);
    assert!(ok && text.contains("Verification: OK"), "openssl ts -verify: {text}");
    let (ok, text) = openssl(&["ts", "-reply", "-in", p(&files.join("reply.tsr")), "-text"]);
    assert!(ok && text.contains("Status: Granted") && text.contains("Hash Algorithm: sha256"), "{text}");
    // A reply for other data does not verify.
    std::fs::write(files.join("other.txt"), b"another contract").unwrap();
    let (ok, _) = openssl(&[
        "ts",
        "-verify",
        "-in",
        p(&files.join("reply.tsr")),
        "-data",
        p(&files.join("other.txt")),
        "-CAfile",
        p(&files.join("ca.pem")),
    ]);
    assert!(!ok, "a timestamp verified for data it does not cover");

    // SHA-1 requests are refused with a rejection status, not an HTTP error; garbage too.
    let (ok, text) =
        openssl(&["ts", "-query", "-data", p(&files.join("data.txt")), "-sha1", "-out", p(&files.join("sha1.tsq"))]);
    assert!(ok, "{text}");
    for body in [std::fs::read(files.join("sha1.tsq")).unwrap(), b"not DER".to_vec()] {
        let r = client
            .post(server.url("/tsa"))
            .header("content-type", "application/timestamp-query")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        std::fs::write(files.join("rejected.tsr"), r.bytes().await.unwrap()).unwrap();
        let (ok, text) = openssl(&["ts", "-reply", "-in", p(&files.join("rejected.tsr")), "-text"]);
        assert!(ok && text.contains("Status: Rejected"), "{text}");
    }
    // Wrong media type and oversized bodies: JSON errors.
    let r = client.post(server.url("/tsa")).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let r = client
        .post(server.url("/tsa"))
        .header("content-type", "application/timestamp-query")
        .body(vec![0u8; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(client.get(server.url("/healthz")).send().await.unwrap().status(), 200);
}

#[test]
fn verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path();
    // Not a PDF, and a missing file: errors (2).
    std::fs::write(files.join("junk.pdf"), b"hello").unwrap();
    let (code, text) = verify_cli(&[p(&files.join("junk.pdf"))]);
    assert_eq!(code, Some(2), "{text}");
    let (code, text) = verify_cli(&[p(&files.join("missing.pdf"))]);
    assert_eq!(code, Some(2), "{text}");
    // An unsigned PDF is not valid (1).
    std::fs::write(files.join("plain.pdf"), sigillum_testkit::pdf::pdf(1)).unwrap();
    let (code, text) = verify_cli(&[p(&files.join("plain.pdf"))]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no signature"), "{text}");
}

#[test]
fn seal_csr_command_prints_a_request_openssl_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(sigillum_testkit::sigillum_bin())
        .args(["keys", "seal-csr", "--subject", "CN=Example AG Document Seal,O=Example AG,C=CH"])
        .env("SIGILLUM_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{pem}");
    std::fs::write(dir.path().join("csr.pem"), &pem).unwrap();
    let (ok, text) = openssl(&["req", "-in", p(&dir.path().join("csr.pem")), "-verify", "-noout", "-text"]);
    assert!(ok && text.contains("verify OK") && text.contains("Example AG Document Seal"), "{text}");
    assert!(text.contains("prime256v1") || text.contains("P-256"), "{text}");
}
