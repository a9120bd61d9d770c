//! The one logging layer: every message on stderr is a `tracing` event, filtered by level (`-q`, `-v`,
//! `-vv`, `RECON_LOG`) and written in one of three shapes. On a terminal a message reads as it always
//! has (`recon: …`, `recon: warning: …`, `recon: error: …`); when stderr is not a terminal (cron mail, a
//! log file) each line starts with an RFC 3339 UTC timestamp; `--log-format json` writes one JSON object
//! per line for a log pipeline. Lines are written through the progress bars when they are drawn, so a
//! message never tears a bar.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::MultiProgress;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How messages are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `recon: …` lines; each with a timestamp in front when stderr is not a terminal.
    #[default]
    Text,
    /// `recon: …` lines, never a timestamp (journald and the like stamp every line themselves).
    Plain,
    /// One JSON object per line: timestamp, level, target, message and the event's fields.
    Json,
}

/// What the command line and the environment say about logging, resolved once in `main`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSettings {
    /// `-v` (debug) or `-vv` (trace) for recon's own messages.
    pub verbosity: u8,
    /// `-q`: warnings and errors only (and, elsewhere, no progress). With `-v`, `-v` says the level.
    pub quiet: bool,
    pub format: LogFormat,
}

/// Installs the logging layer for the process. `env` reads `RECON_LOG` (or, unset, `RUST_LOG`).
pub fn init(settings: LogSettings, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    let filter = filter(settings, env)?;
    let stamped = match settings.format {
        LogFormat::Text => !std::io::stderr().is_terminal(),
        LogFormat::Plain | LogFormat::Json => false,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(StderrLines)
        .with_ansi(false);
    let installed = match settings.format {
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
        LogFormat::Text | LogFormat::Plain => builder.event_format(HumanLines { stamped }).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// Whether [`init`] has run: before it (a usage error) messages are written directly.
pub fn ready() -> bool {
    tracing::dispatcher::has_been_set()
}

/// The filter: recon's own messages at info (debug with `-v`, trace with `-vv`, warnings and errors only
/// with `-q` alone), every dependency's at warn so that sqlx or hyper never flood; then `RECON_LOG` (or
/// `RUST_LOG`), where a bare level (`debug`) means recon's own messages and `target=level` any target
/// (`recon::source=debug`, `sqlx=info`); then `-v`/`-q` again, as flags beat the environment.
fn filter(settings: LogSettings, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<EnvFilter> {
    let own = match (settings.quiet, settings.verbosity) {
        (_, 1) => "debug",
        (_, 2..) => "trace",
        (true, 0) => "warn",
        (false, 0) => "info",
    };
    let mut directives: Vec<(String, String)> = Vec::new();
    let mut set = |target: &str, level: &str| {
        directives.retain(|(t, _)| t != target);
        directives.push((target.to_string(), level.to_string()));
    };
    set("", "warn");
    // lapin logs every broken AMQP connection as an error of its own, which recon retries and, when it
    // must give up, reports itself: its lines would read as recon's errors. RECON_LOG=lapin=debug shows them.
    set("lapin", "off");
    set("recon", own);
    let (name, spec) = match env("RECON_LOG").filter(|v| !v.trim().is_empty()) {
        Some(spec) => ("RECON_LOG", spec),
        None => ("RUST_LOG", env("RUST_LOG").unwrap_or_default()),
    };
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive.rsplit_once('=') {
            Some((target, level)) => set(target, level),
            None if is_level(directive) => set("recon", directive),
            // A bare target (`sqlx`) enables all of its messages.
            None => set(directive, "trace"),
        }
    }
    if settings.quiet || settings.verbosity > 0 {
        set("recon", own);
    }
    let text = directives
        .iter()
        .map(|(target, level)| match target.is_empty() {
            true => level.clone(),
            false => format!("{target}={level}"),
        })
        .collect::<Vec<_>>()
        .join(",");
    EnvFilter::builder().parse(&text).map_err(|e| {
        anyhow::anyhow!(
            "{name}={spec:?} is not a log filter: {e} (e.g. {name}=debug or {name}=recon::source=debug,sqlx=info)"
        )
    })
}

fn is_level(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "off" | "error" | "warn" | "info" | "debug" | "trace"
    )
}

/// What a `note!` says, by the prefix its text starts with.
pub enum Said<'a> {
    Error(&'a str),
    Warn(&'a str),
    Info(&'a str),
    /// Not a `recon: ` message (the demo's narration, a plan printed before a question): written as it
    /// is, at info.
    Verbatim(&'a str),
}

impl Said<'_> {
    pub fn of(text: &str) -> Said<'_> {
        match text.strip_prefix("recon: ") {
            Some(rest) => match (rest.strip_prefix("error: "), rest.strip_prefix("warning: ")) {
                (Some(message), _) => Said::Error(message),
                (_, Some(message)) => Said::Warn(message),
                _ => Said::Info(rest),
            },
            None => Said::Verbatim(text),
        }
    }
}

/// A message on stderr, at the level its text says: `recon: error: …` is an error, `recon: warning: …`
/// a warning, any other `recon: …` info. The `recon: ` and level words are the formatter's to write
/// (the JSON form holds the bare message).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        let text = ::std::format!($($arg)*);
        match $crate::logging::Said::of(&text) {
            $crate::logging::Said::Error(m) => ::tracing::error!(target: module_path!(), "{}", m),
            $crate::logging::Said::Warn(m) => ::tracing::warn!(target: module_path!(), "{}", m),
            $crate::logging::Said::Info(m) => ::tracing::info!(target: module_path!(), "{}", m),
            $crate::logging::Said::Verbatim(m) => {
                ::tracing::info!(target: module_path!(), verbatim = true, "{}", m)
            }
        }
    }};
}

/// The progress bars being drawn, if any: log lines are written while they are hidden.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Keeps log lines from tearing `bars` while it lives.
pub struct BarsShown(());

impl BarsShown {
    pub fn new(bars: &MultiProgress) -> BarsShown {
        *BARS.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bars.clone());
        BarsShown(())
    }
}

impl Drop for BarsShown {
    fn drop(&mut self) {
        *BARS.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// Writes `bytes` on stderr, above the progress bars when they are drawn. What cannot be written is
/// dropped: a closed stderr (`recon check 2>&1 | head`) must not turn a run into a crash.
pub fn write_stderr(bytes: &[u8]) {
    let write = || {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(bytes);
        let _ = err.flush();
    };
    let bars = BARS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    match bars {
        Some(bars) => bars.suspend(write),
        None => write(),
    }
}

/// The writer of every event (the formatter hands it a whole event in one `write`).
struct StderrLines;

impl Write for StderrLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_stderr(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for StderrLines {
    type Writer = StderrLines;

    fn make_writer(&'a self) -> StderrLines {
        StderrLines
    }
}

/// `2026-01-31T02:00:00.123Z`: RFC 3339, UTC, milliseconds.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The message and the other fields of an event.
#[derive(Default)]
struct Fields {
    message: String,
    verbatim: bool,
    rest: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => {
                self.rest.insert(name.to_string(), Value::String(format!("{value:?}")));
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            name => {
                self.rest.insert(name.to_string(), Value::String(value.to_string()));
            }
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "verbatim" => self.verbatim = value,
            name => {
                self.rest.insert(name.to_string(), Value::Bool(value));
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_string(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_string(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rest.insert(field.name().to_string(), Value::from(value));
    }
}

/// `recon: message`, `recon: warning: message`, `recon: error: message`, `recon: debug: message`; a
/// dependency's message names its target (`recon: warning: sqlx::pool: …`). Stamped: the same after a
/// timestamp and a space.
struct HumanLines {
    stamped: bool,
}

impl<S, N> FormatEvent<S, N> for HumanLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if self.stamped {
            write!(writer, "{} ", now())?;
        }
        if !fields.verbatim {
            let meta = event.metadata();
            let level = match *meta.level() {
                Level::ERROR => "error: ",
                Level::WARN => "warning: ",
                Level::INFO => "",
                Level::DEBUG => "debug: ",
                Level::TRACE => "trace: ",
            };
            write!(writer, "recon: {level}")?;
            let target = meta.target();
            if target != "recon" && !target.starts_with("recon::") {
                write!(writer, "{target}: ")?;
            }
        }
        writeln!(writer, "{}", fields.message)
    }
}

/// `{"timestamp":…,"level":"warn","target":…,"message":…, fields…}` on one line.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::String(now()));
        line.insert(
            "level".into(),
            Value::String(meta.level().as_str().to_ascii_lowercase()),
        );
        line.insert("target".into(), Value::String(meta.target().to_string()));
        line.insert("message".into(), Value::String(fields.message));
        for (name, value) in fields.rest {
            line.entry(name).or_insert(value);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    fn shown(settings: LogSettings, vars: &'static [(&'static str, &'static str)]) -> String {
        filter(settings, &with(vars)).unwrap().to_string()
    }

    #[test]
    fn note_prefixes_pick_the_level() {
        assert!(matches!(Said::of("recon: error: boom"), Said::Error("boom")));
        assert!(matches!(Said::of("recon: warning: careful"), Said::Warn("careful")));
        assert!(matches!(
            Said::of("recon: 3 key ranges to scan"),
            Said::Info("3 key ranges to scan")
        ));
        assert!(matches!(Said::of("    url = x"), Said::Verbatim("    url = x")));
    }

    #[test]
    fn recon_at_info_and_dependencies_at_warn_by_default() {
        let quiet = LogSettings {
            quiet: true,
            ..LogSettings::default()
        };
        let verbose = |n| LogSettings {
            verbosity: n,
            ..LogSettings::default()
        };
        let plain = shown(LogSettings::default(), &[]);
        assert!(plain.contains("recon=info") && plain.contains("warn"), "{plain}");
        assert!(shown(quiet, &[]).contains("recon=warn"));
        assert!(shown(verbose(1), &[]).contains("recon=debug"));
        assert!(shown(verbose(2), &[]).contains("recon=trace"));
        assert!(!shown(verbose(2), &[]).contains("sqlx"), "dependencies stay at warn");
    }

    #[test]
    fn recon_log_beats_rust_log_and_a_bare_level_means_recon() {
        let debug = shown(LogSettings::default(), &[("RECON_LOG", "debug"), ("RUST_LOG", "trace")]);
        assert!(debug.contains("recon=debug") && !debug.contains("trace"), "{debug}");
        let rust = shown(LogSettings::default(), &[("RUST_LOG", "recon::source=debug,sqlx=info")]);
        assert!(
            rust.contains("recon::source=debug") && rust.contains("sqlx=info") && rust.contains("recon=info"),
            "{rust}"
        );
        // Flags beat the environment.
        let quiet = LogSettings {
            quiet: true,
            ..LogSettings::default()
        };
        let q = shown(quiet, &[("RECON_LOG", "debug")]);
        assert!(q.contains("recon=warn") && !q.contains("recon=debug"), "{q}");
        let both = LogSettings {
            quiet: true,
            verbosity: 1,
            ..LogSettings::default()
        };
        assert!(
            shown(both, &[]).contains("recon=debug"),
            "-q -v: no progress, debug lines"
        );
        let bad = filter(LogSettings::default(), &with(&[("RECON_LOG", "recon=loud")])).unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("RECON_LOG=\"recon=loud\" is not a log filter"),
            "{bad}"
        );
    }
}
