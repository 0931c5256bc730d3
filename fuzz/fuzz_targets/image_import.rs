//! Picture import: any bytes → a decoded picture or a one-line error, within the size limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = cmpaint::picture::decode_bytes(data) {
        // What the app does next with an opened picture: bring it to the model's size.
        let _ = cmpaint::picture::to_model_size(
            img,
            32,
            Some(cmpaint::picture::Resize::Crop),
        );
    }
});
