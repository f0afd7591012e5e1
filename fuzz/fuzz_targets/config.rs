//! Fuzz configuration loading: any text gives a configuration or an error.
//! Run: `cargo +nightly fuzz run config` from the repository root.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = switchboard::config::Config::from_toml_str(text);
    }
});
