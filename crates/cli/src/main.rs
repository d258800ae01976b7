//! `sigillum`: the self-hostable, security-first e-signature server and its tools.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sigillum::config::{Config, LogFormat};

/// mimalloc: many threads allocate and free each other's buffers (requests, audit events, SQL
/// rows); it holds up better than the system allocator there (bench-audit).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sigillum", version, about = "Sigillum: security-first electronic signatures")]
struct Cli {
    /// TOML configuration file; SIGILLUM_* environment variables override it.
    #[arg(long, global = true, env = "SIGILLUM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTPS server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check a sealed PDF offline: signatures, chain to the trust anchors, timestamps, PAdES
    /// level, nothing changed after sealing. Exit 0 valid, 1 invalid, 2 error.
    Verify {
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Trusted root certificates, PEM (repeatable); e.g. the server's `/pki/ca.pem`.
        #[arg(long)]
        trust: Vec<PathBuf>,
    },
    /// The audit log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Encrypted backups of the database with a manifest of the (already encrypted) blobs.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Write a consistent, encrypted snapshot of the database and the blob manifest to FILE
    /// (created with mode 0600; never overwrites).
    Create { file: PathBuf },
    /// Load FILE into the configured database, which must be new, after checking the configured
    /// blob store holds every blob it names.
    Restore { file: PathBuf },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Recompute the whole tree from the stored events and check every checkpoint.
    /// Exit 0 valid, 1 invalid, 2 error.
    Verify {
        /// Verifier key to trust instead of the one stored in the database (text or @file).
        #[arg(long)]
        key: Option<String>,
        /// A checkpoint note kept outside (repeatable); it must match the stored log.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the latest signed checkpoint.
    Checkpoint,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// KEK versions and how many data keys each wraps.
    Status,
    /// Create a new KEK version (one organisation, or all).
    Rotate {
        #[arg(long)]
        org: Option<String>,
    },
    /// Rewrap every data key under its organisation's newest KEK version.
    Rewrap,
    /// Print a PKCS#10 certificate request (PEM) for the document-seal key, for your CA; then
    /// point SIGILLUM_SEAL_CERT_CHAIN at the issued certificate and its chain.
    SealCsr {
        /// Subject of the certificate, e.g. "CN=Example AG Document Seal,O=Example AG,C=CH".
        #[arg(long)]
        subject: String,
    },
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGILLUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
        LogFormat::Text => builder.init(),
    }
}

fn verify(file: &std::path::Path, json: bool, trust: &[PathBuf]) -> ExitCode {
    match sigillum::verify::verify_file(file, trust) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{}", sigillum::verify::render(file, &report, trust.len()));
            }
            if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) if matches!(e.downcast_ref(), Some(sigillum_pdf::verify::VerifyError::Unsigned)) => {
            println!("{}: NOT VALID: the PDF carries no signature", file.display());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Verify { file, json, trust } = &cli.command {
        return Ok(verify(file, *json, trust));
    }
    let cfg = Config::load(cli.config.as_deref())?;
    init_tracing(cfg.log_format);
    match cli.command {
        Command::Serve => sigillum::serve::run(cfg).await?,
        Command::Verify { .. } => {}
        Command::Migrate => {
            sigillum::app::App::open(&cfg).await?;
            println!("database is at the newest schema");
        }
        Command::Keys { command: KeysCommand::SealCsr { subject } } => {
            let app = sigillum::app::App::open(&cfg).await?;
            print!("{}", app.pki.seal_csr(&subject).await?);
        }
        Command::Keys { command } => {
            let app = sigillum::app::App::open(&cfg).await?;
            let out = match command {
                KeysCommand::Status => sigillum::keys::status(&app).await?,
                KeysCommand::Rotate { org } => sigillum::keys::rotate(&app, org.as_deref()).await?,
                KeysCommand::Rewrap => sigillum::keys::rewrap(&app).await?,
                // Printed as PEM above.
                KeysCommand::SealCsr { .. } => serde_json::Value::Null,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Backup { command } => {
            let summary = match command {
                BackupCommand::Create { file } => sigillum::backup::create(&cfg, &file).await?,
                BackupCommand::Restore { file } => sigillum::backup::restore(&cfg, &file).await?,
            };
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Command::Log { command: LogCommand::Checkpoint } => print!("{}", sigillum::log::checkpoint(&cfg).await?),
        Command::Log { command: LogCommand::Verify { key, checkpoints, json } } => {
            let key = match key {
                Some(k) if k.starts_with('@') => Some(std::fs::read_to_string(&k[1..])?),
                k => k,
            };
            let report = sigillum::log::verify(&cfg, key, &checkpoints).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.ok {
                println!(
                    "audit log valid: {} events, {} checkpoints checked, root {}",
                    report.leaves, report.checkpoints_checked, report.root
                );
            } else {
                println!("audit log INVALID ({} events read):", report.leaves);
                for p in &report.problems {
                    println!("  - {p}");
                }
            }
            return Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
