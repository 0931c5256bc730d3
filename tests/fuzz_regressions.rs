//! Replays the fuzz targets' inputs as ordinary tests: the committed seeds (fuzz/seeds/<target>/) and
//! every failing input a fuzzing run found (tests/fixtures/fuzz/<target>/), each through the same
//! calls as its target. None may panic; the seeds must also parse.

use cmpaint::engine::model::load::Checkpoint;
use cmpaint::paint::project::Project;
use cmpaint::picture::{Resize, decode_bytes, to_model_size};
use cmpaint::recipe::read_recipe;
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("fuzz/seeds").join(target),
        root.join("tests/fixtures/fuzz").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

fn is_seed(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "seeds")
}

#[test]
fn image_import() {
    for (path, data) in inputs("image_import") {
        let decoded = decode_bytes(&data);
        if is_seed(&path) {
            assert!(decoded.is_ok(), "{}: {:?}", path.display(), decoded.err());
        }
        if let Ok(img) = decoded {
            let _ = to_model_size(img, 32, Some(Resize::Crop));
        }
    }
}

#[test]
fn pt_load() {
    let dir = tempfile::tempdir().unwrap();
    for (path, data) in inputs("pt_load") {
        let file = dir.path().join("input.pt");
        std::fs::write(&file, &data).unwrap();
        match Checkpoint::open(&file, None) {
            Ok(ck) => {
                let _ = ck.load_tensors(&candle_core::Device::Cpu);
            }
            // The seed is a state-dict fragment: it must get as far as the name check.
            Err(e) if is_seed(&path) => {
                assert!(
                    e.to_string().contains("not a consistency-model UNet"),
                    "{}: {e}",
                    path.display()
                )
            }
            Err(_) => {}
        }
    }
}

#[test]
fn safetensors_load() {
    for (path, data) in inputs("safetensors_load") {
        let result = Checkpoint::from_safetensors_bytes(&path, data);
        if let Ok(ck) = result {
            let _ = ck.load_tensors(&candle_core::Device::Cpu);
        }
    }
}

#[test]
fn recipe_png() {
    for (path, data) in inputs("recipe_png") {
        let recipe = read_recipe(&data);
        if is_seed(&path) {
            let r = recipe.as_ref().expect("the seed recipe parses");
            assert!(r.input.as_ref().unwrap().to_rgb().is_ok());
            assert!(r.mask.as_ref().unwrap().to_mask().is_ok());
        }
        if let Ok(r) = recipe {
            let _ = r.input.map(|i| i.to_rgb());
            let _ = r.mask.map(|m| m.to_mask());
        }
    }
}

#[test]
fn project_file() {
    for (path, data) in inputs("project_file") {
        let restored = Project::from_bytes(&data).and_then(|p| p.restore());
        if is_seed(&path) {
            let r = restored.as_ref().expect("the seed project restores");
            assert_eq!((r.doc.width, r.history.len()), (2, 1));
        }
    }
}

#[test]
fn pickle() {
    use cmpaint::engine::model::pickle_guard::check_pickle;
    for (path, data) in inputs("pickle") {
        let checked = check_pickle(&data);
        if path.ends_with("nested.pkl") {
            assert!(checked.is_err(), "{}", path.display());
        } else if is_seed(&path) {
            assert!(checked.is_ok(), "{}: {checked:?}", path.display());
        }
        if checked.is_ok() {
            let _ = std::panic::catch_unwind(|| {
                let mut stack = candle_core::pickle::Stack::empty();
                let _ = stack.read_loop(&mut std::io::Cursor::new(&data));
                drop(stack.finalize());
            });
        }
    }
}
