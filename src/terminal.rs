//! What a stream can show: colour, and redrawn progress bars. Decided here only, so every output agrees
//! (clig.dev: colour only on a terminal, never with `NO_COLOR` or `TERM=dumb`). And the one y/N
//! question recon asks before it writes, which needs someone at a terminal to answer it.

use std::io::{BufRead, IsTerminal, Write};

/// Whether to colour what is written to stdout.
pub fn colour_stdout() -> bool {
    colour(std::io::stdout().is_terminal(), &env)
}

/// Whether to colour what is written to stderr.
pub fn colour_stderr() -> bool {
    colour(std::io::stderr().is_terminal(), &env)
}

/// Whether stderr can show bars redrawn in place (a terminal that is not `TERM=dumb`); colour aside.
pub fn redraw_stderr() -> bool {
    std::io::stderr().is_terminal() && !dumb(&env)
}

/// Colour only on a terminal, unless `NO_COLOR` is set to anything but "" (no-color.org) or the terminal
/// is `TERM=dumb`.
pub fn colour(is_terminal: bool, env: &dyn Fn(&str) -> Option<String>) -> bool {
    is_terminal && env("NO_COLOR").is_none_or(|v| v.is_empty()) && !dumb(env)
}

/// Asks `question [y/N]` on stderr and reads the answer from stdin, unless `yes` (`--yes`) answered it
/// already. Without a terminal on stdin there is nobody to ask: the answer is the caller's `refusal`,
/// the error saying that `--yes` is needed, so a cron job never writes by accident. Only `y` and `yes`
/// (any case) say yes.
pub fn confirm(question: &str, yes: bool, refusal: impl FnOnce() -> anyhow::Error) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    confirm_on(question, terminal, &mut stdin.lock(), &mut std::io::stderr(), refusal)
}

fn confirm_on(
    question: &str,
    terminal: bool,
    input: &mut impl BufRead,
    prompt: &mut impl Write,
    refusal: impl FnOnce() -> anyhow::Error,
) -> anyhow::Result<bool> {
    if !terminal {
        return Err(refusal());
    }
    write!(prompt, "{question} [y/N] ")?;
    prompt.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn dumb(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("TERM").is_some_and(|t| t == "dumb")
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::{colour, confirm, confirm_on};

    fn with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn colour_needs_a_terminal_that_is_not_dumb_and_no_no_color() {
        assert!(colour(true, &with(&[("TERM", "xterm-256color")])));
        assert!(colour(true, &with(&[])));
        assert!(!colour(false, &with(&[("TERM", "xterm-256color")])));
        assert!(!colour(true, &with(&[("TERM", "dumb")])));
        assert!(!colour(true, &with(&[("NO_COLOR", "1")])));
        assert!(
            colour(true, &with(&[("NO_COLOR", "")])),
            "an empty NO_COLOR does not count"
        );
    }

    fn ask(terminal: bool, answer: &str) -> (anyhow::Result<bool>, String) {
        let mut prompt = Vec::new();
        let refusal = || anyhow::anyhow!("--apply without a terminal needs --yes; nothing was written");
        let said = confirm_on(
            "Apply 2 changes?",
            terminal,
            &mut answer.as_bytes(),
            &mut prompt,
            refusal,
        );
        (said, String::from_utf8(prompt).unwrap())
    }

    #[test]
    fn confirm_asks_on_a_terminal_and_only_yes_says_yes() {
        for answer in ["y\n", "yes\n", " YES \n", "Y"] {
            let (said, prompt) = ask(true, answer);
            assert!(said.unwrap(), "{answer:?}");
            assert_eq!(prompt, "Apply 2 changes? [y/N] ");
        }
        for answer in ["\n", "n\n", "no\n", "yess\n", ""] {
            assert!(!ask(true, answer).0.unwrap(), "{answer:?}");
        }
    }

    #[test]
    fn confirm_without_a_terminal_refuses_with_the_callers_message_and_asks_nothing() {
        let (said, prompt) = ask(false, "y\n");
        assert_eq!(
            said.unwrap_err().to_string(),
            "--apply without a terminal needs --yes; nothing was written"
        );
        assert_eq!(prompt, "", "nobody is asked");
        // --yes answers without a terminal and without reading.
        assert!(confirm("Apply?", true, || unreachable!("--yes needs no terminal")).unwrap());
    }
}
