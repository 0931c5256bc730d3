//! The recipe inside an exported PNG: any bytes → a recipe (whose embedded pictures decode or fail
//! cleanly) or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(recipe) = cmpaint::recipe::read_recipe(data) {
        if let Some(input) = &recipe.input {
            let _ = input.to_rgb();
        }
        if let Some(mask) = &recipe.mask {
            let _ = mask.to_mask();
        }
    }
});
