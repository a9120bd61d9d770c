//! What a stream can show: colour, and redrawn progress bars. Decided here only, so every output agrees
//! (clig.dev: colour only on a terminal, never with `NO_COLOR` or `TERM=dumb`).

use std::io::IsTerminal;

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

fn dumb(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("TERM").is_some_and(|t| t == "dumb")
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::colour;

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
}
