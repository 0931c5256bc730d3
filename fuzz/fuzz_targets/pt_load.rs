//! PyTorch checkpoints (zip + pickle): any bytes → a checked model configuration or an error; the
//! weights of an accepted file are read too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

/// cmpaint catches the panics of candle's pickle reader on purpose and reports them as errors
/// (`guarded` in src/engine/model/load.rs); libfuzzer-sys's panic hook would abort on those even so.
/// A panic that escapes cmpaint still ends the run: the harness aborts on any unwind reaching it.
static CAUGHT_PANICS_ARE_ERRORS: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    CAUGHT_PANICS_ARE_ERRORS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let mut file = tempfile::Builder::new().suffix(".pt").tempfile().unwrap();
    file.write_all(data).unwrap();
    if let Ok(ck) = cmpaint::engine::model::load::Checkpoint::open(file.path(), None) {
        let _ = ck.load_tensors(&candle_core::Device::Cpu);
    }
});
