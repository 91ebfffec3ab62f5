#![no_main]

mod state_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| state_checks::state_record(data));
