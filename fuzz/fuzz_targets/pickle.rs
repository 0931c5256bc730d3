//! A `.pt` checkpoint's pickle: any bytes that `pickle_guard` accepts must go through candle's pickle
//! reader without overflowing the stack or allocating without bound (what the guard is for); a
//! panic in candle's reader is caught, as cmpaint's loader catches it.
#![no_main]
use libfuzzer_sys::fuzz_target;

static CAUGHT_PANICS_ARE_ERRORS: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    CAUGHT_PANICS_ARE_ERRORS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    if cmpaint::engine::model::pickle_guard::check_pickle(data).is_ok() {
        let _ = std::panic::catch_unwind(|| {
            let mut stack = candle_core::pickle::Stack::empty();
            let _ = stack.read_loop(&mut std::io::Cursor::new(data));
            drop(stack.finalize());
        });
    }
});
