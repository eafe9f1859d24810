//! The manual, made from what it describes so that it cannot drift: a man page per command from
//! the clap definitions (clap_mangen; the same text as `--help`), signpost.toml(5) and the
//! sample configuration from the table of configuration keys (`config::keys`), and shell
//! completions (clap_complete). `signpost man DIR` writes the pages a package installs.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use roff::{Roff, bold, italic, roman};

use crate::cli::Cli;
use crate::config::keys::{KEYS, SECTIONS};

/// Writes signpost(1), one page per subcommand (signpost-serve(1), ...) and signpost.toml(5)
/// into `dir`; returns the files written.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    let config = dir.join("signpost.toml.5");
    std::fs::write(&config, config_page())?;
    let mut written: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_page(p)).collect();
    written.sort();
    Ok(written)
}

fn is_page(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("1" | "5"))
}

/// Completions of every command and flag for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "signpost", &mut out);
    out
}

/// signpost.toml(5): every section and key with its default, flag and variable.
pub fn config_page() -> String {
    let mut page = Roff::new();
    let version = env!("CARGO_PKG_VERSION");
    page.control("TH", ["SIGNPOST.TOML", "5", "", &format!("signpost {version}"), "File formats"]);
    page.control("SH", ["NAME"]).text([roman("signpost.toml - the configuration file of signpost(1)")]);
    page.control("SH", ["DESCRIPTION"]).text([roman(
        "A TOML file named by signpost serve --config. Every key is optional; an unknown key is an \
         error naming its file, line and column. A flag beats its SIGNPOST_* environment variable, \
         which beats the file, which beats the default. signpost config-sample prints this file \
         with every key commented out at its default. SIGHUP (systemctl reload) reads it again: \
         some keys apply at once, the others are logged as waiting for a restart.",
    )]);
    for (section, about) in SECTIONS {
        let header = if section.contains('.') { format!("[[{section}]]") } else { format!("[{section}]") };
        page.control("SH", [header.as_str()]).text([roman(*about)]);
        for k in KEYS.iter().filter(|k| k.section == *section) {
            page.control("TP", [] as [&str; 0]);
            let mut term = vec![bold(k.name)];
            match (k.default, k.example) {
                (Some(d), _) => term.extend([roman(" = "), roman(d)]),
                (None, Some(e)) => term.extend([roman(" (unset; e.g. "), roman(e), roman(")")]),
                (None, None) => {}
            }
            page.text(term);
            let mut body = vec![roman(k.doc)];
            if let (Some(flag), Some(env)) = (k.flag, k.env) {
                body.extend([roman(" Flag: "), bold(flag), roman("; variable: "), italic(env), roman(".")]);
            } else if let Some(env) = k.env {
                body.extend([roman(" Variable: "), italic(env), roman(".")]);
            }
            page.text(body);
        }
    }
    page.control("SH", ["SEE ALSO"]).text([roman("signpost(1), signpost-serve(1)")]);
    page.render()
}
