//! The `recon …` commands printed for the user to paste (resume, undo, apply hints).
//!
//! A pasted command must act where the run that printed it acted: it carries the configuration file
//! and every flag that overrode where the run went (`--pg-url`, `--es-url`, `--index`), as far as the
//! command takes them. Words are quoted for a POSIX shell; a password in a URL is masked (secrets are
//! never printed), so such a command needs the password put back, or given through the environment.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::secret::redact_url;

/// Where a run acts: its configuration file and the flags that override it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub config: PathBuf,
    pub pg_url: Option<String>,
    pub es_url: Option<String>,
    pub index: Option<String>,
    pub redis_url: Option<String>,
}

/// Which of a [`Target`]'s overrides a command takes (every command takes the config, `--es-url` and
/// `--redis-url`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Takes {
    pub pg_url: bool,
    pub index: bool,
}

impl Takes {
    /// `recon check`, `repair`, `reindex`: both models, the configured index.
    pub const ALL: Takes = Takes {
        pg_url: true,
        index: true,
    };
    /// `recon undo`: only the read model's connection (the index comes from the audit log).
    pub const READ_MODEL: Takes = Takes {
        pg_url: false,
        index: false,
    };
}

/// A command line, built a word at a time and shown quoted for a POSIX shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    words: Vec<String>,
}

impl CommandLine {
    /// `recon SUBCOMMAND`.
    pub fn recon(subcommand: &str) -> CommandLine {
        CommandLine {
            words: vec!["recon".into(), subcommand.into()],
        }
    }

    /// One word as it is (a flag, a value).
    pub fn arg(mut self, word: impl Into<String>) -> CommandLine {
        self.words.push(word.into());
        self
    }

    /// A file name as one word.
    pub fn path(self, path: &Path) -> CommandLine {
        self.arg(path.display().to_string())
    }

    /// `FLAG VALUE`.
    pub fn option(self, flag: &str, value: impl Into<String>) -> CommandLine {
        self.arg(flag).arg(value)
    }

    /// `--config FILE` and the overrides of `target` that the command takes.
    pub fn at(mut self, target: &Target, takes: Takes) -> CommandLine {
        self = self.arg("--config").path(&target.config);
        if let Some(url) = target.pg_url.as_deref().filter(|_| takes.pg_url) {
            self = self.option("--pg-url", shown_url(url));
        }
        if let Some(url) = &target.es_url {
            self = self.option("--es-url", shown_url(url));
        }
        if let Some(url) = &target.redis_url {
            self = self.option("--redis-url", shown_url(url));
        }
        if let Some(index) = target.index.as_deref().filter(|_| takes.index) {
            self = self.option("--index", index);
        }
        self
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, word) in self.words.iter().enumerate() {
            if n > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&quote(word))?;
        }
        Ok(())
    }
}

/// A URL as typed, unless it holds a secret: then with the secret masked.
fn shown_url(raw: &str) -> String {
    let redacted = redact_url(raw);
    // `redact_url` also normalises (a trailing `/`); a URL without a secret is shown as typed.
    let normalised = url::Url::parse(raw)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| raw.to_string());
    if redacted == normalised {
        raw.to_string()
    } else {
        redacted
    }
}

/// One word for a POSIX shell: as it is when it holds nothing the shell would read, else in single
/// quotes (a `'` inside becomes `'\''`).
pub fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_a_shell_would_read_them() {
        assert_eq!(quote("recon.toml"), "recon.toml");
        assert_eq!(quote("http://es:9200/"), "http://es:9200/");
        assert_eq!(quote("my config.toml"), "'my config.toml'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn a_command_carries_the_config_and_the_overrides_it_takes() {
        let target = Target {
            config: "conf dir/x.toml".into(),
            pg_url: Some("postgres://app:hunter2@db/shop".into()),
            es_url: Some("http://es-b:9200".into()),
            index: Some("orders-b".into()),
            redis_url: None,
        };
        let resume = CommandLine::recon("repair")
            .option("--resume", "audit.ndjson")
            .at(&target, Takes::ALL)
            .arg("--apply")
            .to_string();
        assert_eq!(
            resume,
            "recon repair --resume audit.ndjson --config 'conf dir/x.toml' --pg-url 'postgres://app:***@db/shop' \
             --es-url http://es-b:9200 --index orders-b --apply"
        );
        assert!(!resume.contains("hunter2"), "a secret is never printed");
        let undo = CommandLine::recon("undo")
            .path(Path::new("audit.ndjson"))
            .at(&target, Takes::READ_MODEL)
            .to_string();
        assert_eq!(
            undo,
            "recon undo audit.ndjson --config 'conf dir/x.toml' --es-url http://es-b:9200"
        );
        let plain = CommandLine::recon("undo")
            .at(
                &Target {
                    config: "recon.toml".into(),
                    ..Target::default()
                },
                Takes::ALL,
            )
            .to_string();
        assert_eq!(plain, "recon undo --config recon.toml");
        // --redis-url goes to every command, its password masked.
        let redis = Target {
            config: "recon.toml".into(),
            redis_url: Some("redis://app:hunter2@cache:6379/1".into()),
            ..Target::default()
        };
        let undo = CommandLine::recon("undo").at(&redis, Takes::READ_MODEL).to_string();
        assert_eq!(
            undo,
            "recon undo --config recon.toml --redis-url 'redis://app:***@cache:6379/1'"
        );
    }
}
