//! TOML zone files: parse and validate (`parse`), load a folder in name order, and watch it so
//! that edits reach the registry within milliseconds while a broken file's last good version
//! keeps serving.

mod parse;
mod watch;

use std::io;
use std::path::{Path, PathBuf};

pub use parse::{ParsedInstance, ZoneError, ZoneFile, line_col, parse};
pub use watch::Watcher;

use crate::registry::{Change, RegistryError, State};

/// Returns true if `path` names a zone file: `*.toml`, not hidden (editors' swap and temp files
/// are hidden or carry other extensions).
pub fn is_zone_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'))
}

/// The zone files in `dir`, in name order (which decides who keeps an id claimed twice).
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_zone_file(p)).collect();
    files.sort();
    Ok(files)
}

/// Reads one zone file and says what the registry should do about it.
pub fn read(path: &Path) -> Change {
    match std::fs::read_to_string(path) {
        Ok(text) => match parse(path, &text) {
            Ok(file) => Change::ZoneFile(file),
            Err(errors) => Change::ZoneFileBroken { path: path.to_path_buf(), errors },
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Change::ZoneFileRemoved(path.to_path_buf()),
        Err(e) => Change::ZoneFileBroken {
            path: path.to_path_buf(),
            errors: vec![ZoneError { path: path.to_path_buf(), line: 1, col: 1, message: format!("cannot read: {e}") }],
        },
    }
}

/// Loads every zone file of `dir` into `state`, in name order. Returns every problem found;
/// valid files are loaded regardless of broken ones.
pub fn load_dir(state: &mut State, dir: &Path) -> io::Result<Vec<ZoneError>> {
    let mut errors = Vec::new();
    for path in list(dir)? {
        let change = read(&path);
        if let Change::ZoneFileBroken { errors: e, .. } = &change {
            errors.extend(e.iter().cloned());
        }
        match state.apply(change) {
            Ok(_) => {}
            Err(RegistryError::Zone(e)) => errors.push(e),
            Err(e) => unreachable!("zone changes fail only with zone errors: {e}"),
        }
    }
    Ok(errors)
}
