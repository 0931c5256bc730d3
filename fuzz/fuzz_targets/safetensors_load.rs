//! Safetensors weights (openai names or the project format): any bytes → a checked model or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = std::path::Path::new("fuzz.safetensors");
    if let Ok(ck) = cmpaint::engine::model::load::Checkpoint::from_safetensors_bytes(name, data.to_vec()) {
        let _ = ck.load_tensors(&candle_core::Device::Cpu);
    }
});
