//! The fuzz corpus kept in `fuzz/corpus/`, replayed as a regression test with the checks the
//! fuzz targets run (`fuzz/fuzz_targets/checks.rs`): every input the fuzzer found interesting,
//! including any that once failed, stays checked on every run.

#[path = "../../fuzz/fuzz_targets/checks.rs"]
mod checks;
#[path = "../../fuzz/fuzz_targets/state_checks.rs"]
mod state_checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in
        std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
    {
        let path = entry.unwrap().path();
        if path.is_file() {
            check(&std::fs::read(&path).unwrap());
            inputs += 1;
        }
    }
    inputs
}

#[test]
fn the_request_body_corpus_passes() {
    assert!(replay("event_body", checks::event_body) > 0);
}

#[test]
fn the_log_record_corpus_passes() {
    assert!(replay("log_record", checks::log_record) > 0);
}

#[test]
fn the_state_record_corpus_passes() {
    assert!(replay("state_record", state_checks::state_record) > 0);
}
