use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use recon::cli::{Cli, Command};
use recon::commands::{self, Outcome, EXIT_BROKEN_PIPE, EXIT_ERROR};

/// glibc's allocator spent about 40% of `recon check`'s CPU (perf: consolidating and unlinking chunks freed
/// by other threads, as pages and documents move between the reader tasks and the joiner).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the same value in mimalloc 2 and 3; libmimalloc-sys names no
/// constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Hand freed memory back to the system after 10 ms instead of this build's default of a second: a scan
/// frees a page's documents continuously, and with the long delay the peak RSS crept up with the table's
/// size (1M orders 70-75 MB, 4M 86 MB); with 10 ms it stays near 50 MB, at no measurable cost in time.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads options at each purge decision.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    if let Err(e) = recon::logging::init(log_settings(&cli), &|name| std::env::var(name).ok()) {
        return fail(&e);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code() as u8),
        Err(e) => fail(&e),
    };
    record_peak_rss();
    code
}

/// `--help` and `--version` on stdout (exit 0); a usage error on stderr as `recon: error: …` (exit 2), like
/// every other error, with clap's usage lines and hint after it.
fn usage_error(e: &clap::Error) -> ExitCode {
    if !e.use_stderr() {
        // --help, --version: data the user asked for.
        let _ = e.print();
        return ExitCode::from(e.exit_code() as u8);
    }
    let text = if recon::terminal::colour_stderr() {
        e.render().ansi().to_string()
    } else {
        e.render().to_string()
    };
    // `recon` alone prints the help on stderr: no error to prefix.
    let prefix = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        ""
    } else {
        "recon: "
    };
    // Before logging is set up (its flags are what failed to parse): written as it is.
    recon::logging::write_stderr(format!("{prefix}{}\n", text.trim_end()).as_bytes());
    ExitCode::from(e.exit_code() as u8)
}

/// `-v`/`-vv`, `-q` and `--log-format` of whichever command runs.
fn log_settings(cli: &Cli) -> recon::logging::LogSettings {
    let (verbosity, quiet) = match &cli.command {
        Command::Check(a) => (a.verbose, a.quiet),
        Command::Repair(a) => (a.verbose, a.quiet),
        Command::Reindex(a) => (a.verbose, a.quiet),
        Command::Undo(a) => (a.verbose, false),
        Command::Explain(a) => (a.verbose, false),
        Command::Demo(a) => (0, a.quiet),
        Command::Report(_)
        | Command::Man { .. }
        | Command::Completions { .. }
        | Command::Doctor(_)
        | Command::Init(_) => (0, false),
    };
    recon::logging::LogSettings {
        verbosity,
        quiet,
        format: cli.log_format.into(),
    }
}

/// For benchmarks: `RECON_PEAK_RSS_FILE=path` receives this process's peak RSS (VmHWM, kB). A parent's
/// wait4/getrusage cannot tell it: a child inherits its parent's high-water mark through fork and exec.
fn record_peak_rss() {
    let Some(path) = std::env::var_os("RECON_PEAK_RSS_FILE") else {
        return;
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
        let kib = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim();
        let _ = std::fs::write(path, kib);
    }
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Check(args) => commands::check::run(args).await,
        Command::Explain(args) => commands::explain::run(args).await,
        Command::Demo(args) => commands::demo::run(args).await,
        Command::Repair(args) => commands::repair::run(args).await,
        Command::Undo(args) => commands::undo::run(args).await,
        Command::Reindex(args) => commands::reindex::run(args).await,
        Command::Doctor(args) => commands::doctor::run(args).await,
        Command::Init(args) => commands::init::run(args).await,
        Command::Report(recon::cli::ReportCommand::Merge(args)) => commands::report_merge::run(args),
        Command::Man { command } => {
            let mut out = std::io::stdout().lock();
            out.write_all(&commands::man::page(command.as_deref())?)?;
            out.flush()?;
            Ok(Outcome::InSync)
        }
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            commands::completions::generate(shell, &mut out);
            out.flush()?;
            Ok(Outcome::InSync)
        }
    }
}

/// `recon: error: …` with the cause chain. A closed stdout (`recon check | head`) exits quietly, but not
/// with success: the run could not deliver its report, whatever it found.
fn fail(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::from(EXIT_BROKEN_PIPE as u8);
    }
    let mut message = format!("recon: error: {e}");
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(&format!("\n  caused by: {text}"));
        }
    }
    if recon::logging::ready() {
        recon::note!("{message}");
    } else {
        recon::logging::write_stderr(format!("{message}\n").as_bytes());
    }
    ExitCode::from(EXIT_ERROR as u8)
}
