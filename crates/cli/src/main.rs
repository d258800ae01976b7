//! `sigillum`: the self-hostable, security-first e-signature server and its tools.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sigillum::config::{Config, LogFormat};

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
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGILLUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = Config::load(cli.config.as_deref())?;
    init_tracing(cfg.log_format);
    match cli.command {
        Command::Serve => sigillum::serve::run(cfg).await,
        Command::Migrate => {
            sigillum::app::App::open(&cfg).await?;
            println!("database is at the newest schema");
            Ok(())
        }
        Command::Keys { command } => {
            let app = sigillum::app::App::open(&cfg).await?;
            let out = match command {
                KeysCommand::Status => sigillum::keys::status(&app).await?,
                KeysCommand::Rotate { org } => sigillum::keys::rotate(&app, org.as_deref()).await?,
                KeysCommand::Rewrap => sigillum::keys::rewrap(&app).await?,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
