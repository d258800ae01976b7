//! The web UI in a real browser: `e2e/run.mjs` (playwright-core driving Debian's Chromium, both
//! installed by `scripts/deps.sh`) against a fresh server on loopback with a capturing SMTP server.
//! Screenshots of every step land in `target/e2e/<scenario>/`.

use std::path::PathBuf;
use std::process::Command;

use sigillum_testkit::server::{embedded_env, Server};
use sigillum_testkit::smtp::{free_port, SmtpCapture};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs one scenario of `e2e/run.mjs`; returns its output directory.
fn run(scenario: &str) -> PathBuf {
    let root = workspace();
    assert!(
        root.join("e2e/node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Chromium and playwright-core: run scripts/deps.sh"
    );
    let smtp = SmtpCapture::start();
    let dir = tempfile::tempdir().unwrap();
    // The browser's origin must be the public URL (the cross-site check compares them).
    let port = free_port();
    let mut env = embedded_env(&dir.path().join("data"));
    env.retain(|(k, _)| k != "SIGILLUM_LISTEN");
    env.push(("SIGILLUM_LISTEN".into(), format!("127.0.0.1:{port}")));
    env.push(("SIGILLUM_PUBLIC_URL".into(), format!("https://localhost:{port}")));
    env.push(("SIGILLUM_SMTP_URL".into(), smtp.url()));
    let server = Server::start(&env, &[]);

    let pdf = dir.path().join("contract.pdf");
    std::fs::write(&pdf, sigillum_testkit::pdf::pdf(2)).unwrap();
    let out_dir = root.join("target/e2e").join(scenario);
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new("node")
        .arg(root.join("e2e/run.mjs"))
        .env("SCENARIO", scenario)
        .env("BASE_URL", format!("https://localhost:{port}"))
        .env("MAILDIR", &smtp.maildir)
        .env("PDF_PATH", &pdf)
        .env("OUT_DIR", &out_dir)
        .output()
        .expect("node (Debian's nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{scenario} failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.stderr().lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    if scenario == "flow" {
        // The final PDF the sender downloaded in the browser is sealed and verifies.
        let ca = dir.path().join("ca.pem");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let pem = rt.block_on(async {
            server.client().get(server.url("/pki/ca.pem")).send().await.unwrap().bytes().await.unwrap()
        });
        std::fs::write(&ca, pem).unwrap();
        for file in ["final.pdf", "final-from-signer.pdf"] {
            let pdf = out_dir.join(file);
            let v = Command::new(sigillum_testkit::sigillum_bin())
                .args(["verify", pdf.to_str().unwrap(), "--trust", ca.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(v.status.success(), "sigillum verify {file}: {}", String::from_utf8_lossy(&v.stdout));
        }
        let a = std::fs::read(out_dir.join("final.pdf")).unwrap();
        let b = std::fs::read(out_dir.join("final-from-signer.pdf")).unwrap();
        assert_eq!(a, b, "sender and signer download the same final document");
    }
    if scenario == "pages" {
        // Sue typed her signature in Kaushan Script: poppler finds that face embedded.
        let fonts = Command::new("pdffonts").arg(out_dir.join("typed-final.pdf")).output().unwrap();
        let fonts = String::from_utf8_lossy(&fonts.stdout);
        assert!(
            fonts.lines().any(|l| l.starts_with("KaushanScript") && l.contains(" yes ")),
            "the chosen script face is not embedded:\n{fonts}"
        );
    }
    server.terminate();
    out_dir
}

#[test]
fn a_sender_and_two_signers_complete_an_envelope_in_chromium() {
    let out = run("flow");
    assert!(out.join("final.pdf").exists());
}

#[test]
fn every_page_in_every_language_loads_without_console_errors_or_csp_violations() {
    run("pages");
}
