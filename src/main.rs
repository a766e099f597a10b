//! The trackgate binary: parse the command line, load the configuration,
//! start logging, run. Exit codes: 0 after a clean shutdown, 2 for an
//! invalid configuration, 1 for any other failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trackgate::config::{Config, LoadOptions, DEV_WRITE_KEY};
use trackgate::probe::{self, ProbeArgs};
use trackgate::reload::Source;
use trackgate::server::{self, Bound};
use trackgate::tail::{self, TailArgs};

/// The hot path allocates many small, short-lived objects per event (JSON
/// keys and values); mimalloc serves those with far fewer instructions than
/// the system allocator. C libraries (librdkafka) keep the system malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "trackgate",
    version,
    about = "Tracking ingestion gateway: HTTP beacons to raw Kafka topics"
)]
struct Cli {
    /// Configuration file (TOML). Without one, trackgate starts in local
    /// development mode against an embedded in-memory broker.
    #[arg(long, short, env = "TRACKGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Overrides `server.listen`.
    #[arg(long)]
    listen: Option<String>,
    /// Overrides `server.admin_listen`.
    #[arg(long)]
    admin_listen: Option<String>,
    /// Overrides `kafka.brokers`.
    #[arg(long)]
    brokers: Option<String>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(
        long,
        env = "TRACKGATE_LOG",
        default_value = "info,librdkafka=warn",
        global = true
    )]
    log: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Print the records of topics, pretty or as JSON lines.
    Tail(TailArgs),
    /// Load and validate the configuration, then exit.
    CheckConfig,
    /// Ask a running gateway's admin listener for `/readyz`: exit 0 when it
    /// answers 200 (container health checks; no configuration is read).
    Probe(ProbeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    if let Some(Command::Probe(args)) = &cli.command {
        return match probe::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("trackgate probe: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Tail(args)) = &cli.command {
        return match tail::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("trackgate tail: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let mut overrides = Vec::new();
    for (key, value) in [
        ("server.listen", &cli.listen),
        ("server.admin_listen", &cli.admin_listen),
        ("kafka.brokers", &cli.brokers),
    ] {
        if let Some(v) = value {
            overrides.push((key.to_string(), v.clone()));
        }
    }
    let opts = LoadOptions {
        file: cli.config.clone(),
        overrides,
    };
    let loaded = match trackgate::load::load(&opts) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("trackgate: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Some(Command::CheckConfig)) {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let source = trackgate::reload::Source::of(&loaded);
    match run(loaded.config, opts, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trackgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config, opts: LoadOptions, source: Source) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dev = config.uses_embedded_broker();
    let reload = Some((opts, source));
    runtime.block_on(server::run_reloadable(
        config,
        reload,
        server::shutdown_signal(),
        |b| {
            if dev {
                print_dev_banner(b)
            }
        },
    ))?;
    Ok(())
}

fn print_dev_banner(b: &Bound) {
    eprintln!(
        r#"
  ┌───────────────────────────────────────────────────────────────────┐
  │ trackgate — LOCAL DEVELOPMENT MODE (embedded in-memory broker)    │
  │ For local use only: nothing is persisted, any origin is allowed.  │
  └───────────────────────────────────────────────────────────────────┘
  ingest:     http://{listen}/v1/batch
  admin:      http://{admin}/readyz   http://{admin}/metrics
  inspector:  {inspector}
  sdk:        {sdk}
  write key:  {key}

  try it:
    curl -u {key}: http://{listen}/v1/page \
      -H 'content-type: application/json' \
      -d '{{"anonymousId":"visitor-1","name":"Home","properties":{{"path":"/"}}}}'

  watch the events:
    cargo run --release -- tail --brokers {brokers} --topic tracking.raw.pageviews --from-beginning
"#,
        listen = b.listen,
        admin = b.admin,
        inspector = b
            .inspector
            .as_deref()
            .unwrap_or("off (inspect.enabled = false)"),
        sdk = b.sdk.as_deref().unwrap_or("off (sdk.enabled = false)"),
        key = DEV_WRITE_KEY,
        brokers = b.brokers,
    );
}
