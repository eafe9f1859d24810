//! The registration JSON decoder (`PUT /v1/agent/service/register`) and the check-update one:
//! any body is an instance or a one-line error naming a field, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let client = std::net::IpAddr::from([192, 0, 2, 7]);
    if let Err(e) = signpost::api::decode_registration(data, client) {
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
});
