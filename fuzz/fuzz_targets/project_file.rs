//! Project files and autosaves: any bytes → a restored document or an error; every result then
//! applies where its placement says (or is refused), as History's Apply does.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(project) = cmpaint::paint::project::Project::from_bytes(data)
        && let Ok(mut restored) = project.restore()
    {
        for (image, _, placement, _) in &restored.history {
            if let Some(p) = placement
                && let Some(frame) = p.frame_in(&restored.doc)
            {
                restored.doc.paste(frame, image, &p.paste, None);
            }
        }
    }
});
