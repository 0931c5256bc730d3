//! PyTorch checkpoints (zip + pickle): any bytes → a checked model configuration or an error; the
//! weights of an accepted file are read too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::Builder::new().suffix(".pt").tempfile().unwrap();
    file.write_all(data).unwrap();
    if let Ok(ck) = cmpaint::engine::model::load::Checkpoint::open(file.path(), None) {
        let _ = ck.load_tensors(&candle_core::Device::Cpu);
    }
});
