//! Zone-file parsing and validation: any text either becomes a zone file the registry accepts
//! or is a list of errors with line and column inside the text, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use signpost::registry::{Change, State};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match signpost::zones::parse(Path::new("fuzz.toml"), text) {
        Ok(file) => {
            // Validation against the registry: ids, names, regions.
            let mut state = State::new();
            let _ = state.apply(Change::ZoneFile(file));
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a rejected file names at least one error");
            let lines = text.lines().count().max(1);
            for e in errors {
                assert!(e.line >= 1 && e.line <= lines + 1, "line {} of {lines}: {e}", e.line);
            }
        }
    }
});
