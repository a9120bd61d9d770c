//! `recon completions <shell>`: the scripts committed under completions/ come from here, and a test
//! fails when they are stale.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Writes the completion script for `shell`.
pub fn generate(shell: Shell, out: &mut dyn Write) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "recon", out);
}

/// The file name each shell's script is committed under in completions/.
pub fn file_name(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => "recon.bash",
        Shell::Zsh => "_recon",
        Shell::Fish => "recon.fish",
        Shell::PowerShell => "_recon.ps1",
        Shell::Elvish => "recon.elv",
        _ => "recon.unknown",
    }
}

pub const SHELLS: [Shell; 5] = [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell, Shell::Elvish];
