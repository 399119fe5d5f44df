//! The `consthash` binary: command line, logging, process set-up, signals.
//!
//! SIGHUP (and the admin server's `POST /reload`) re-reads `--config` and `--prereg` and applies them
//! ([`Relay::reload`]); an invalid configuration is refused with every error logged, and the running one stays.
//!
//! Exit codes: 0 after a clean shutdown or a valid `--check-config`; 1 for usage or configuration errors (every
//! error printed, nothing started) and when a second SIGINT/SIGTERM cut the shutdown short; 2 when the relay could
//! not start (e.g. a listen address is in use).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use consthash::app::Relay;
use consthash::config::{self, Config, PreRegConfig};
use consthash::telemetry;

#[derive(Parser, Debug)]
#[command(
    name = "consthash",
    disable_version_flag = true,
    about = "A consistent-hashing line proxy for graphite and statsd metrics"
)]
struct Args {
    /// Main config file
    #[arg(long, default_value = "config.toml")]
    config: PathBuf,
    /// PreReg config file (optional)
    #[arg(long, default_value = "")]
    prereg: String,
    /// Log level: debug, info, warning, error, critical
    #[arg(long, default_value = "INFO")]
    loglevel: String,
    /// Print the version and exit
    #[arg(long)]
    version: bool,
    /// Load and validate both files, print every error, exit 0 if valid else 1
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print, for each KEY, where every section would send it (what the admin API's /hashcheck answers),
    /// without starting anything
    Hashcheck {
        /// Main config file
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Routing keys (the splitter's key, e.g. the graphite metric name)
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

fn main() -> ExitCode {
    if std::env::args_os().len() <= 1 {
        use clap::CommandFactory;
        eprintln!("{}", Args::command().render_help());
        return ExitCode::from(1);
    }
    let args = Args::parse();
    if args.version {
        println!("ConstHash version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(level) = telemetry::parse_level(&args.loglevel) else {
        eprintln!(
            "--loglevel: unknown level {:?}, expected one of debug, info, warning, error, critical",
            args.loglevel
        );
        return ExitCode::from(1);
    };
    telemetry::init_logging(level);
    if let Some(Command::Hashcheck { config, keys }) = &args.command {
        return hashcheck(config, keys);
    }
    let (config, prereg) = match load(&args) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(1);
        }
    };
    for w in config
        .warnings
        .iter()
        .chain(prereg.iter().flat_map(|p| p.warnings.iter()))
    {
        tracing::warn!("{w}");
    }
    if config.globals.cpu_profile {
        tracing::warn!("cpu_profile: no profiler endpoint exists (consthash served Go pprof on :6060); ignored");
    }
    if args.check_config {
        println!("configuration OK: {} section(s)", config.sections.len());
        return ExitCode::SUCCESS;
    }
    run(&args, config, prereg)
}

/// `consthash hashcheck`: one JSON document per key, as `/hashcheck?key=` answers.
fn hashcheck(path: &Path, keys: &[String]) -> ExitCode {
    let config = match read(path).and_then(|t| config::load_main(&t, &path.display().to_string()).map_err(|e| e.0)) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(1);
        }
    };
    let sections = consthash::app::build_sections(&config, None).sections;
    for key in keys {
        println!(
            "{}",
            consthash::api::hashcheck(sections.iter().map(|s| &**s), key.as_bytes())
        );
    }
    ExitCode::SUCCESS
}

fn read(path: &Path) -> Result<String, Vec<String>> {
    std::fs::read_to_string(path).map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])
}

fn load(args: &Args) -> Result<(Config, Option<PreRegConfig>), Vec<String>> {
    let name = args.config.display().to_string();
    let config = config::load_main(&read(&args.config)?, &name).map_err(|e| e.0)?;
    if args.prereg.is_empty() {
        return Ok((config, None));
    }
    let path = Path::new(&args.prereg);
    let prereg = config::load_prereg(&read(path)?, &args.prereg, &config).map_err(|e| e.0)?;
    Ok((config, Some(prereg)))
}

fn run(args: &Args, config: Config, prereg: Option<PreRegConfig>) -> ExitCode {
    if let Err((want, e)) = consthash::app::raise_nofile_limit() {
        tracing::warn!(want, error = %e, "could not raise RLIMIT_NOFILE");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if config.globals.num_procs > 0 {
        rt.worker_threads(config.globals.num_procs);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::from(2);
        }
    };
    let pid_file = config.globals.pid_file.clone();
    if let Some(p) = &pid_file {
        write_pid_file(p);
    }
    let code = rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return ExitCode::from(2);
        };
        let mut relay = match Relay::start(&config, prereg.as_ref()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(2);
            }
        };
        tracing::info!(version = env!("CARGO_PKG_VERSION"), "consthash started");
        loop {
            tokio::select! {
                biased; // a SIGHUP that came first is carried out before a SIGTERM ends the loop
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received: reloading the configuration");
                    let _ = reload(&mut relay, args).await;
                }
                Some(reply) = relay.reload_request() => {
                    tracing::info!("POST /reload: reloading the configuration");
                    let _ = reply.send(reload(&mut relay, args).await);
                }
                _ = stop(&mut int, &mut term) => break,
            }
        }
        tracing::info!("shutting down");
        tokio::select! {
            _ = relay.shutdown() => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            _ = stop(&mut int, &mut term) => {
                tracing::error!("second signal: stopped before the shutdown finished (what was queued is lost)");
                ExitCode::from(1)
            }
        }
    });
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    code
}

/// Re-reads both files and applies them; an invalid configuration is refused with every error logged, and the
/// running one stays.
async fn reload(relay: &mut Relay, args: &Args) -> Result<String, String> {
    let (config, prereg) = match load(args) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                tracing::error!("reload refused: {e}");
            }
            tracing::error!(errors = errors.len(), "reload refused: the running configuration stays");
            return Err(errors.join("\n"));
        }
    };
    for w in config
        .warnings
        .iter()
        .chain(prereg.iter().flat_map(|p| p.warnings.iter()))
    {
        tracing::warn!("{w}");
    }
    match relay.reload(&config, prereg.as_ref()).await {
        Ok(summary) => {
            tracing::info!(sections = config.sections.len(), "configuration reloaded");
            Ok(summary)
        }
        Err(e) => {
            tracing::error!("reload refused: {e}; the running configuration stays");
            Err(e.to_string())
        }
    }
}

/// The next SIGINT or SIGTERM (SIGHUP reloads instead).
async fn stop(int: &mut tokio::signal::unix::Signal, term: &mut tokio::signal::unix::Signal) {
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn write_pid_file(path: &Path) {
    if let Some(pid) = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let alive = rustix::process::Pid::from_raw(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
        if alive {
            tracing::warn!("Process {pid} is already running");
        }
    }
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the pid file");
    }
}
