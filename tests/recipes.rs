//! Recipes from the command line: every PNG the CLI writes carries its recipe, `cmpaint rerun`
//! makes the same pixels from it, `cmpaint info PICTURE` prints it, and the CLI and the app (the job
//! layer the worker runs) plan one request the same way.

mod common;

use cmpaint::job::{ModelSource, Steps, load_any, plan, run_recipe};
use cmpaint::picture::{decode, to_rgb8};
use cmpaint::recipe::{Operation, read_grid, read_recipe};
use common::{builtin_with, cmpaint, flat_png, s, write_noise};
use std::path::{Path, PathBuf};

fn builtin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/emoji32.safetensors")
}

fn pixels(path: &Path) -> Vec<u8> {
    to_rgb8(&decode(path).unwrap()).pixels
}

/// Reruns `picture` and checks the new picture has exactly its pixels.
fn rerun_same(picture: &Path, extra: &[&str]) {
    let again = picture.with_file_name("again.png");
    let mut args = vec!["rerun", s(picture), "-o", s(&again), "--device", "cpu"];
    args.extend(extra);
    let (ok, _, err) = cmpaint(&args);
    assert!(ok, "{err}");
    assert!(err.contains("the same pixels"), "{err}");
    assert_eq!(pixels(picture), pixels(&again));
}

#[test]
fn a_generated_grid_reruns_to_the_same_pixels_and_info_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grid.png");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--batch",
        "4",
        "--seed",
        "5",
        "--multistep",
        "--scale",
        "2",
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let grid = read_grid(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(grid.cells.len(), 4);
    assert_eq!(grid.scale, 2);
    let seeds: Vec<u64> = grid.recipes().iter().map(|r| r.seed).collect();
    assert_eq!(seeds, [5, 6, 7, 8]);
    assert!(grid.recipes().iter().all(|r| r.class.is_some()));
    rerun_same(&out, &[]);

    let (ok, stdout, err) = cmpaint(&["info", s(&out)]);
    assert!(ok, "{err}");
    assert!(stdout.contains("4 images, each enlarged ×2"), "{stdout}");
    assert!(stdout.contains("generate · seed 7"), "{stdout}");
}

#[test]
fn a_single_picture_carries_a_plain_recipe_the_app_opens() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("one.png");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--seed",
        "9",
        "--class",
        "smileys",
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    // the app's Open recipe reads the same chunk
    let recipe = read_recipe(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((recipe.seed, recipe.class), (9, Some(7)));
    assert_eq!(recipe.operation, Operation::Generate);
    rerun_same(&out, &[]);
}

#[test]
fn separate_pictures_each_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sep.png");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--batch",
        "2",
        "--separate",
        "--seed",
        "1",
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    for i in 0..2 {
        let one = dir.path().join(format!("sep_{i:03}.png"));
        assert_eq!(
            read_recipe(&std::fs::read(&one).unwrap()).unwrap().seed,
            1 + i
        );
        rerun_same(&one, &[]);
    }
}

#[test]
fn an_edit_reruns_from_its_embedded_picture() {
    let dir = tempfile::tempdir().unwrap();
    let picture = flat_png(dir.path(), "flat.png", 32, 200);
    let out = dir.path().join("edit.png");
    let (ok, _, err) = cmpaint(&[
        "edit",
        "sdedit",
        "--image",
        s(&picture),
        "--strength",
        "0.5",
        "--batch",
        "2",
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    std::fs::remove_file(&picture).unwrap(); // the recipe holds the picture itself
    rerun_same(&out, &[]);
}

/// `edit sdedit --fill-outlines`: a closed blue outline is given to the network filled (the same
/// pixels as the filled square drawn by hand), the recipe says so, and it reruns to the same pixels.
#[test]
fn a_filled_outline_sketch_is_the_filled_shape_and_its_recipe_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let blue = [40, 120, 230];
    let square = |filled: bool| cmpaint::picture::Rgb8 {
        width: 32,
        height: 32,
        pixels: (0..32 * 32)
            .flat_map(|i| {
                let (x, y) = (i % 32, i / 32);
                let inside = (8..=23).contains(&x) && (8..=23).contains(&y);
                let edge = inside && (x == 8 || x == 23 || y == 8 || y == 23);
                if edge || (inside && filled) {
                    blue
                } else {
                    [255; 3]
                }
            })
            .collect(),
    };
    let (outline, filled) = (
        dir.path().join("outline.png"),
        dir.path().join("filled.png"),
    );
    cmpaint::picture::write_png(&outline, &square(false)).unwrap();
    cmpaint::picture::write_png(&filled, &square(true)).unwrap();
    let sdedit = |picture: &Path, fill: bool, out: &str| {
        let out = dir.path().join(out);
        let mut args = vec!["edit", "sdedit", "--image", s(picture), "--strength", "0.4"];
        args.extend(["--seed", "3", "--device", "cpu", "-o", s(&out)]);
        if fill {
            args.push("--fill-outlines");
        }
        let (ok, _, err) = cmpaint(&args);
        assert!(ok, "{err}");
        out
    };
    let from_outline = sdedit(&outline, true, "a.png");
    assert_eq!(
        pixels(&from_outline),
        pixels(&sdedit(&filled, false, "b.png"))
    );
    assert_ne!(
        pixels(&from_outline),
        pixels(&sdedit(&outline, false, "c.png"))
    );
    let recipe = read_recipe(&std::fs::read(&from_outline).unwrap()).unwrap();
    assert_eq!(
        recipe.operation,
        Operation::SdEdit {
            strength: 0.4,
            fill_outlines: true
        }
    );
    // the recipe holds the outline as drawn: the fill is redone on rerun
    assert_eq!(recipe.input.unwrap().to_rgb().unwrap(), square(false));
    rerun_same(&from_outline, &[]);
}

/// An edit that replays a noise file names it once (it was recorded twice).
#[test]
fn an_edit_names_its_noise_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let picture = flat_png(dir.path(), "flat.png", 32, 200);
    let noise = dir.path().join("noise.safetensors");
    let z = candle_core::Tensor::randn(0f32, 1f32, (3, 1, 3, 32, 32), &candle_core::Device::Cpu)
        .unwrap();
    write_noise(&noise, &z);
    let out = dir.path().join("edit.png");
    let (ok, _, err) = cmpaint(&[
        "edit",
        "sdedit",
        "--image",
        s(&picture),
        "--strength-index",
        "16",
        "--steps",
        "40",
        "--ts",
        "16,20,39",
        "--class",
        "3",
        "--noise",
        s(&noise),
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let recipe = read_recipe(&std::fs::read(&out).unwrap()).unwrap();
    let noise_files = recipe
        .files
        .iter()
        .filter(|f| f.role == cmpaint::recipe::FileRole::Noise)
        .count();
    assert_eq!(noise_files, 1, "{:?}", recipe.files);
    rerun_same(&out, &[]);
}

#[test]
fn rerun_says_what_is_missing_or_changed() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    std::fs::copy(builtin(), &model).unwrap();
    let noise = dir.path().join("noise.safetensors");
    let z = candle_core::Tensor::randn(0f32, 1f32, (1, 1, 3, 32, 32), &candle_core::Device::Cpu)
        .unwrap();
    write_noise(&noise, &z);
    let out = dir.path().join("replay.png");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&model),
        "--noise",
        s(&noise),
        "--class",
        "3",
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    rerun_same(&out, &[]);

    // the noise file gone, then changed
    let kept = dir.path().join("kept.safetensors");
    std::fs::rename(&noise, &kept).unwrap();
    let (ok, _, err) = cmpaint(&["rerun", s(&out), "--device", "cpu"]);
    assert!(!ok);
    assert!(
        err.contains("noise file") && err.contains("is missing"),
        "{err}"
    );
    write_noise(&noise, &(z * 2.0).unwrap());
    let (ok, _, err) = cmpaint(&["rerun", s(&out), "--device", "cpu"]);
    assert!(!ok);
    assert!(err.contains("has changed"), "{err}");
    std::fs::rename(&kept, &noise).unwrap();

    // the model moved: named, then found with --model, whose hash must match
    let moved = dir.path().join("moved.safetensors");
    std::fs::rename(&model, &moved).unwrap();
    let (ok, _, err) = cmpaint(&["rerun", s(&out), "--device", "cpu"]);
    assert!(!ok);
    assert!(err.contains("give --model PATH"), "{err}");
    rerun_same(&out, &["--model", s(&moved)]);
    let (ok, _, err) = cmpaint(&[
        "rerun",
        s(&out),
        "--model",
        "builtin:teacher",
        "--device",
        "cpu",
    ]);
    assert!(!ok);
    assert!(err.contains("is not the recipe's model"), "{err}");

    // a PNG without a recipe
    let plain = flat_png(dir.path(), "plain.png", 8, 0);
    let (ok, _, err) = cmpaint(&["rerun", s(&plain), "--device", "cpu"]);
    assert!(!ok);
    assert!(err.contains("no cmpaint recipe"), "{err}");
}

/// The drift issue 25 names: on a model with its own σ range, one sketch strength must give the
/// same time indices — and the same pixels — from the CLI as from the app's job layer.
#[test]
fn the_cli_and_the_app_plan_a_strength_alike() {
    let dir = tempfile::tempdir().unwrap();
    let model = builtin_with(dir.path(), "narrow.safetensors", |config| {
        config.name = "emoji32-narrow".into();
        config.sampling.sigma_min = 0.02;
        config.sampling.sigma_max = 20.0;
        config.sampling.rho = 3.0;
    });

    let picture = flat_png(dir.path(), "flat.png", 32, 90);
    let out = dir.path().join("cli.png");
    let (ok, _, err) = cmpaint(&[
        "edit",
        "sdedit",
        "--model",
        s(&model),
        "--image",
        s(&picture),
        "--strength",
        "0.49",
        "--seed",
        "4",
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let from_cli = read_recipe(&std::fs::read(&out).unwrap()).unwrap();

    let device = candle_core::Device::Cpu;
    let loaded = load_any(
        &ModelSource::file(Some(&model)),
        &device,
        cmpaint::job::Precision::F32,
    )
    .unwrap();
    let planned = plan(
        loaded.info(),
        Operation::SdEdit {
            strength: 0.49,
            fill_outlines: false,
        },
        4,
        from_cli.class,
        Steps::One,
    )
    .unwrap();
    assert_eq!((planned.steps, &planned.ts), (from_cli.steps, &from_cli.ts));
    // on this grid the paper's ratio lands on 23; the default σ grid (what the app used to plan
    // with) gives 24
    assert_eq!(planned.ts, Some(vec![20, 23, 39]));
    let (img, _) = run_recipe(&loaded, &from_cli, 1, &device, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap()
    .unwrap()
    .remove(0);
    assert_eq!(
        img.pixels,
        pixels(&out),
        "the app's run of the CLI's recipe"
    );
}

/// A model with styles: its label table read as classes × styles (label class·S + style), `--style`
/// by name, each image's style from its seed when none is given, and recipes that say which.
#[test]
fn a_style_is_a_second_label_beside_the_class() {
    let dir = tempfile::tempdir().unwrap();
    // the built-in network's label table read without styles, and as classes × 2 styles
    let unstyled = builtin_with(dir.path(), "unstyled.safetensors", |config| {
        config.styles.clear();
    });
    let model = builtin_with(dir.path(), "styled.safetensors", |config| {
        config.styles = vec!["plain".into(), "fancy".into()];
    });
    let run = |args: &[&str], out: &Path| {
        let mut all = vec!["generate", "--device", "cpu", "-o", s(out)];
        all.extend(args);
        let (ok, _, err) = cmpaint(&all);
        assert!(ok, "{args:?}: {err}");
    };
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    run(
        &[
            "--model",
            s(&model),
            "--class",
            "1",
            "--style",
            "fancy",
            "--seed",
            "3",
        ],
        &a,
    );
    // the same label read without styles: 1·2 + 1
    run(
        &["--model", s(&unstyled), "--class", "3", "--seed", "3"],
        &b,
    );
    assert_eq!(pixels(&a), pixels(&b));
    let recipe = read_recipe(&std::fs::read(&a).unwrap()).unwrap();
    assert_eq!((recipe.class, recipe.style), (Some(1), Some(1)));

    // no --style: seeds 4 and 5 take styles 0 and 1
    let (c, d) = (dir.path().join("c.png"), dir.path().join("d.png"));
    run(
        &[
            "--model",
            s(&model),
            "--class",
            "2",
            "--batch",
            "2",
            "--seed",
            "4",
        ],
        &c,
    );
    run(
        &[
            "--model",
            s(&unstyled),
            "--class",
            "4,5",
            "--batch",
            "2",
            "--seed",
            "4",
        ],
        &d,
    );
    assert_eq!(pixels(&c), pixels(&d));
    let grid = read_grid(&std::fs::read(&c).unwrap()).unwrap();
    let styles: Vec<Option<u32>> = grid.recipes().iter().map(|r| r.style).collect();
    assert_eq!(styles, [Some(0), Some(1)]);
    rerun_same(&c, &[]);
    let (ok, stdout, _) = cmpaint(&["info", s(&c)]);
    assert!(ok && stdout.contains("class 2 · style 1"), "{stdout}");

    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&unstyled),
        "--style",
        "fancy",
        "--device",
        "cpu",
        "-o",
        s(&d),
    ]);
    assert!(!ok && err.contains("has no styles"), "{err}");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&model),
        "--style",
        "gothic",
        "--device",
        "cpu",
        "-o",
        s(&d),
    ]);
    assert!(
        !ok && err.contains("plain") && err.contains("fancy"),
        "{err}"
    );
}

/// A PNG the app exported — its result enlarged by the Export scale, the app's own recipe chunk —
/// reruns from the command line to the same pixels, at the same scale.
#[test]
fn an_app_export_reruns_from_the_command_line() {
    use cmpaint::recipe::{EmbeddedImage, encode_png};
    let dir = tempfile::tempdir().unwrap();
    let device = candle_core::Device::Cpu;
    let loaded = load_any(
        &ModelSource::file(None),
        &device,
        cmpaint::job::Precision::F32,
    )
    .unwrap();
    let sketch = cmpaint::picture::Rgb8 {
        width: 32,
        height: 32,
        pixels: (0..32 * 32 * 3).map(|i| (i * 7 % 251) as u8).collect(),
    };
    let mut recipe = plan(
        loaded.info(),
        Operation::SdEdit {
            strength: 0.4,
            fill_outlines: true,
        },
        11,
        Some(7),
        Steps::One,
    )
    .unwrap();
    recipe.input = Some(EmbeddedImage::from_rgb(&sketch).unwrap());
    let (img, recipe) = run_recipe(&loaded, &recipe, 1, &device, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap()
    .unwrap()
    .remove(0);
    let exported = dir.path().join("export.png");
    std::fs::write(
        &exported,
        encode_png(&img.enlarged(4), Some(&recipe)).unwrap(),
    )
    .unwrap();
    rerun_same(&exported, &[]);
    let again = dir.path().join("again.png");
    // the rerun's own PNG opens in the app too
    assert_eq!(
        read_recipe(&std::fs::read(&again).unwrap()).unwrap(),
        recipe
    );
}

/// An outpaint and an enlargement are runs of many frames: their PNGs carry the whole run's recipe
/// (the picture they started from, the settings, the first frame's seed) and rerun replays it frame
/// by frame to the same pixels.
#[test]
fn outpaint_and_enlarge_rerun_frame_by_frame() {
    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("start.png");
    cmpaint::picture::write_png(
        &picture,
        &cmpaint::picture::Rgb8 {
            width: 32,
            height: 32,
            pixels: (0..32 * 32 * 3).map(|i| (i * 13 % 241) as u8).collect(),
        },
    )
    .unwrap();
    let grown = dir.path().join("grown.png");
    let (ok, _, err) = cmpaint(&[
        "edit",
        "outpaint",
        "--image",
        s(&picture),
        "--extend",
        "left:16",
        "--seed",
        "3",
        "--device",
        "cpu",
        "-o",
        s(&grown),
    ]);
    assert!(ok, "{err}");
    let recipe = read_recipe(&std::fs::read(&grown).unwrap()).unwrap();
    assert!(matches!(
        recipe.operation,
        Operation::Outpaint { pixels: 16, .. }
    ));
    std::fs::remove_file(&picture).unwrap(); // the recipe holds the picture it started from
    rerun_same(&grown, &[]);
    let (ok, stdout, _) = cmpaint(&["info", s(&grown)]);
    assert!(
        ok && stdout.contains("outpaint · seed 3 · left 16 px"),
        "{stdout}"
    );

    let small = flat_png(dir.path(), "small.png", 16, 120);
    let big = dir.path().join("big.png");
    let (ok, _, err) = cmpaint(&[
        "edit",
        "superres",
        "--enlarge",
        "--factor",
        "2",
        "--image",
        s(&small),
        "--device",
        "cpu",
        "-o",
        s(&big),
    ]);
    assert!(ok, "{err}");
    rerun_same(&big, &[]);
}

/// An interpolation strip written as an animated PNG carries its recipes (the grid at every α, the
/// frame rate); rerun makes every frame again.
#[test]
fn an_interpolation_strip_reruns_frame_for_frame() {
    let dir = tempfile::tempdir().unwrap();
    let strip = dir.path().join("strip.png");
    let (ok, _, err) = cmpaint(&[
        "interpolate",
        "--seed-a",
        "2",
        "--seed-b",
        "9",
        "--frames",
        "4",
        "--batch",
        "2",
        "--fps",
        "6",
        "--device",
        "cpu",
        "-o",
        s(&strip),
    ]);
    assert!(ok, "{err}");
    let grid = read_grid(&std::fs::read(&strip).unwrap()).unwrap();
    let alphas = &grid.strip.as_ref().unwrap().alphas;
    assert_eq!(alphas.len(), 4);
    assert_eq!((grid.cells.len(), grid.strip.as_ref().unwrap().fps), (2, 6));
    assert_eq!(cmpaint::picture::decode_frames(&strip).unwrap().len(), 4);
    rerun_same(&strip, &[]);
}
