//! `recon man [COMMAND]`: the man pages committed under man/ come from here (one for recon, one per
//! command), and a test fails when they are stale.

use clap::CommandFactory;

use crate::cli::Cli;

/// Every page: (file name under man/, roff text), recon's own first.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let recon = Cli::command();
    let mut pages = vec![("recon.1".to_string(), render(recon.clone()))];
    for sub in recon.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("recon-{}", sub.get_name());
        let page = sub.clone().name(name.clone());
        pages.push((format!("{name}.1"), render(page)));
    }
    pages
}

/// The page of `command` (None: recon's own).
pub fn page(command: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let file = match command {
        None => "recon.1".to_string(),
        Some(name) => format!("recon-{name}.1"),
    };
    let known: Vec<String> = pages().into_iter().map(|(f, _)| f).collect();
    pages()
        .into_iter()
        .find(|(f, _)| *f == file)
        .map(|(_, text)| text)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no man page for {:?}; there are: {}",
                command.unwrap_or_default(),
                known.join(", ")
            )
        })
}

/// The page of `command`, dated by the package's version alone (not the commit `--version` names), so the
/// committed pages change only with what they say.
fn render(command: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command.version(env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .expect("rendering into memory cannot fail");
    out
}
