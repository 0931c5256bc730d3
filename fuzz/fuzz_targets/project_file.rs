//! Project files and autosaves: any bytes → a restored document or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(project) = cmpaint::paint::project::Project::from_bytes(data) {
        let _ = project.restore();
    }
});
