//! TOML zone files: parse and validate (`parse`), load a folder in name order, and watch it so
//! that edits reach the registry within milliseconds while a broken file's last good version
//! keeps serving.

mod parse;
mod watch;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use parse::{line_col, parse};
pub(crate) use watch::Watcher;

use crate::model::ZoneError;
use crate::registry::{Change, RegistryError, State};

/// Returns true if `path` names a zone file: `*.toml`, not hidden (editors' swap and temp files
/// are hidden or carry other extensions).
pub(crate) fn is_zone_file(path: &Path) -> bool {
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

/// Bounds on one zone file (`[zones] max_file_bytes`, `max_instances_per_file`): a file over
/// either is refused as a whole (its last good version keeps serving), and counted in
/// `signpost_limit_hits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_file_bytes: usize,
    pub max_instances_per_file: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_file_bytes: 4 << 20, max_instances_per_file: 10_000 }
    }
}

/// Reads one zone file and says what the registry should do about it.
pub(crate) fn read(path: &Path, limits: Limits) -> Change {
    let broken = |message: String| {
        crate::metrics::limit_hit(crate::metrics::Limit::ZoneFile);
        let errors = vec![ZoneError { path: path.to_path_buf(), line: 1, col: 1, message }];
        Change::ZoneFileBroken { path: path.to_path_buf(), errors }
    };
    let (max_bytes, max_instances) = (limits.max_file_bytes, limits.max_instances_per_file);
    match read_at_most(path, max_bytes) {
        Ok(Some(text)) => match parse(path, &text) {
            Ok(file) if file.instances.len() > max_instances => broken(format!(
                "{} instances; at most {max_instances} per file are allowed ([zones] max_instances_per_file)",
                file.instances.len(),
            )),
            Ok(file) => Change::ZoneFile(file),
            Err(errors) => Change::ZoneFileBroken { path: path.to_path_buf(), errors },
        },
        Ok(None) => broken(format!("larger than {max_bytes} bytes ([zones] max_file_bytes)")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Change::ZoneFileRemoved(path.to_path_buf()),
        Err(e) => Change::ZoneFileBroken {
            path: path.to_path_buf(),
            errors: vec![ZoneError { path: path.to_path_buf(), line: 1, col: 1, message: format!("cannot read: {e}") }],
        },
    }
}

/// The file's text, or `None` if it is over `max` bytes (never reading more than one byte past).
fn read_at_most(path: &Path, max: usize) -> io::Result<Option<String>> {
    let mut text = String::new();
    std::fs::File::open(path)?.take(max as u64 + 1).read_to_string(&mut text)?;
    Ok((text.len() <= max).then_some(text))
}

/// Loads every zone file of `dir` into `state`, in name order. Returns every problem found;
/// valid files are loaded regardless of broken ones.
pub fn load_dir(state: &mut State, dir: &Path, limits: Limits) -> io::Result<Vec<ZoneError>> {
    let mut errors = Vec::new();
    for path in list(dir)? {
        let change = read(&path, limits);
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
