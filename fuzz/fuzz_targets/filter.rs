//! `?filter=` expressions (src/api/filter): any text either parses or is refused with a
//! position inside it, and a parsed filter evaluates against an entry without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost::api::filter::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Filter::parse(text) {
        Ok(filter) => {
            let entry = serde_json::json!({
                "Service": {"ID": "web-1", "Tags": ["v1"], "Meta": {"k": "v"}, "Port": 80},
                "Checks": [{"Status": "passing"}],
                "ServiceMeta": {"k": "v"},
            });
            let _ = filter.matches(&entry);
        }
        Err(e) => assert!(e.position <= text.len(), "{e}"),
    }
});
