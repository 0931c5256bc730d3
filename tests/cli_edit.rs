//! `cmpaint edit` and `cmpaint interpolate` end to end: replays against the reference fixtures, the
//! promises each edit makes about pixels, picture and mask handling, animation output, bad input.

mod common;

use candle_core::{Device, Tensor};
use common::{cmpaint, fixture, max_abs_diff, model_path, read_image, s, write_noise};
use std::collections::HashMap;
use std::path::Path;

fn edit_fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("edit_b.safetensors"), &Device::Cpu).unwrap()
}

fn write_tensor(path: &Path, name: &str, t: &Tensor) {
    candle_core::safetensors::save(&HashMap::from([(name, t.clone())]), path).unwrap();
}

/// Replays one edit of model B (the diffusers folder) through the CLI and compares with the reference.
fn replay(task: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let fx = edit_fixture();
    let (image, noise, out) = (
        dir.path().join("in.safetensors"),
        dir.path().join("noise.safetensors"),
        dir.path().join("out.safetensors"),
    );
    write_tensor(&image, "image", &fx["images"]);
    write_noise(&noise, &fx[&format!("{task}_noise")]);
    let model = model_path('b');
    let mut args = vec![
        "edit",
        task,
        "--model",
        s(&model),
        "--image",
        s(&image),
        "--noise",
        s(&noise),
    ];
    args.extend(extra);
    args.extend(["-o", s(&out)]);
    let (ok, _, err) = cmpaint(&args);
    assert!(ok, "{err}");
    let reference = fx[&format!("{task}_out")].clamp(-1f32, 1f32).unwrap();
    let e = max_abs_diff(&read_image(&out), &reference);
    assert!(e <= 1e-4, "{task}: max abs error {e:e}");
}

#[test]
fn colorize_superres_and_sdedit_replay_the_reference() {
    replay("colorize", &["--ts", "0,5,10,15,20,25,30,35,39"]);
    replay(
        "superres",
        &["--factor", "4", "--ts", "0,5,10,15,20,25,30,35,39"],
    );
    replay("sdedit", &["--strength-index", "16"]);
    replay("sdedit", &[]); // the default is the paper's (16, 20, 39)
    // the reference's own invocation states the start twice, consistently
    let same_start = [
        "--strength-index",
        "16",
        "--steps",
        "40",
        "--ts",
        "16,20,39",
    ];
    replay("sdedit", &same_start);
    replay("sdedit", &["--strength", "0.59", "--ts", "16,20,39"]);
}

#[test]
fn a_start_that_contradicts_ts_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let (pic, out) = (dir.path().join("pic.png"), dir.path().join("out.png"));
    picture(&pic, 16);
    let c = model_path('c');
    for (flag, value, said) in [
        (
            "--strength-index",
            "15",
            "--strength-index 15 contradicts --ts, which starts at index 16",
        ),
        (
            "--strength",
            "0.3",
            "--strength 0.3 (start index 27 of N=40) contradicts --ts, which starts at index 16",
        ),
    ] {
        let (ok, _, err) = cmpaint(&[
            "edit",
            "sdedit",
            "--model",
            s(&c),
            "--image",
            s(&pic),
            flag,
            value,
            "--ts",
            "16,20,39",
            "-o",
            s(&out),
        ]);
        assert!(!ok && err.contains(said), "{err}");
    }
}

#[test]
fn a_guessed_image_size_follows_the_picture() {
    // tiny_openai.pt says nothing of its size (guessed 64²): a 32² picture sets it, tensor or PNG
    let dir = tempfile::tempdir().unwrap();
    let (tensor, png, out) = (
        dir.path().join("x.safetensors"),
        dir.path().join("x.png"),
        dir.path().join("out.safetensors"),
    );
    let x = Tensor::rand(-1f32, 1f32, (1, 3, 32, 32), &Device::Cpu).unwrap();
    write_tensor(&tensor, "image", &x);
    picture(&png, 32);
    let pt = model_path('a');
    for input in [&tensor, &png] {
        let (ok, _, err) = cmpaint(&[
            "edit",
            "colorize",
            "--model",
            s(&pt),
            "--image",
            s(input),
            "--class",
            "3",
            "--ts",
            "0,20,39",
            "-o",
            s(&out),
        ]);
        assert!(ok, "{err}");
        assert!(err.contains("image size: 32×32 from the picture"), "{err}");
        assert_eq!(read_image(&out).dims(), [1, 3, 32, 32]);
    }
    // a size the network cannot take still needs --resize
    let odd = dir.path().join("odd.png");
    picture(&odd, 31);
    let (ok, _, err) = cmpaint(&[
        "edit",
        "colorize",
        "--model",
        s(&pt),
        "--image",
        s(&odd),
        "--class",
        "3",
        "-o",
        s(&out),
    ]);
    assert!(!ok && err.contains("--resize"), "{err}");
}

#[test]
fn interpolate_replays_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let fx = edit_fixture();
    let (noise, out) = (
        dir.path().join("noise.safetensors"),
        dir.path().join("out.safetensors"),
    );
    write_noise(&noise, &fx["interp_noise"]);
    let (ok, _, err) = cmpaint(&[
        "interpolate",
        "--model",
        s(&model_path('b')),
        "--noise",
        s(&noise),
        "--alpha",
        "0.3",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    assert!(max_abs_diff(&read_image(&out), &fx["interp_out"].get(1).unwrap()) <= 1e-4);
}

fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    img.save(path).unwrap();
}

fn picture(path: &Path, size: u32) {
    write_png(path, size, size, |x, y| {
        [
            (x * 255 / size) as u8,
            (y * 255 / size) as u8,
            ((x + y) * 7 % 256) as u8,
        ]
    });
}

#[test]
fn inpaint_keeps_the_bytes_of_unmasked_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let (pic, mask, out) = (
        dir.path().join("pic.png"),
        dir.path().join("mask.png"),
        dir.path().join("out.png"),
    );
    picture(&pic, 16);
    write_png(&mask, 16, 16, |x, y| {
        if (4..12).contains(&x) && (5..10).contains(&y) {
            [255; 3]
        } else {
            [0; 3]
        }
    });
    let (ok, _, err) = cmpaint(&[
        "edit",
        "inpaint",
        "--model",
        s(&model_path('c')),
        "--image",
        s(&pic),
        "--mask",
        s(&mask),
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let (a, b) = (
        image::open(&pic).unwrap().to_rgb8(),
        image::open(&out).unwrap().to_rgb8(),
    );
    let mut changed = 0;
    for (x, y, p) in a.enumerate_pixels() {
        if (4..12).contains(&x) && (5..10).contains(&y) {
            changed += usize::from(p != b.get_pixel(x, y));
        } else {
            assert_eq!(p, b.get_pixel(x, y), "kept pixel ({x}, {y})");
        }
    }
    assert!(
        changed > 20,
        "the masked region was regenerated ({changed} of 40 pixels changed)"
    );
}

#[test]
fn superres_takes_a_low_resolution_picture() {
    let dir = tempfile::tempdir().unwrap();
    let (low, out) = (dir.path().join("low.png"), dir.path().join("out.png"));
    write_png(&low, 4, 4, |x, y| {
        [(40 + x * 50) as u8, (200 - y * 40) as u8, 128]
    });
    let (ok, _, err) = cmpaint(&[
        "edit",
        "superres",
        "--model",
        s(&model_path('c')),
        "--image",
        s(&low),
        "--factor",
        "4",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let (small, big) = (
        image::open(&low).unwrap().to_rgb8(),
        image::open(&out).unwrap().to_rgb8(),
    );
    assert_eq!(big.dimensions(), (16, 16));
    for (px, py, p) in small.enumerate_pixels() {
        for c in 0..3 {
            let sum: u32 = (0..16)
                .map(|k| big.get_pixel(px * 4 + k % 4, py * 4 + k / 4)[c] as u32)
                .sum();
            let mean = sum as f64 / 16.0;
            assert!(
                (mean - p[c] as f64).abs() <= 1.0,
                "patch ({px},{py}) channel {c}: {mean} vs {}",
                p[c]
            );
        }
    }
}

#[test]
fn pictures_of_another_size_need_resize() {
    let dir = tempfile::tempdir().unwrap();
    let (pic, out) = (dir.path().join("pic.png"), dir.path().join("out.png"));
    picture(&pic, 24);
    let model = model_path('c');
    let base = [
        "edit",
        "colorize",
        "--model",
        s(&model),
        "--image",
        s(&pic),
        "--ts",
        "0,20,39",
        "-o",
        s(&out),
    ];
    let (ok, _, err) = cmpaint(&base);
    assert!(
        !ok && err.contains(
            "the picture is 24×24, the model works at 16×16: pass --resize fit or --resize crop"
        ),
        "{err}"
    );
    for mode in ["fit", "crop"] {
        let (ok, _, err) = cmpaint(&[&base[..], &["--resize", mode]].concat());
        assert!(ok, "{err}");
        assert_eq!(image::open(&out).unwrap().width(), 16);
    }
}

#[test]
fn edits_run_on_a_pt_checkpoint() {
    // tiny_openai.pt infers a 64² model: a 64² picture, a class label, every edit
    let dir = tempfile::tempdir().unwrap();
    let (pic, mask, out) = (
        dir.path().join("pic.png"),
        dir.path().join("mask.png"),
        dir.path().join("out.png"),
    );
    picture(&pic, 64);
    write_png(&mask, 64, 64, |x, _| if x < 32 { [0; 3] } else { [255; 3] });
    let pt = model_path('a');
    for (task, extra) in [
        ("inpaint", vec!["--mask", s(&mask)]),
        ("colorize", vec![]),
        ("superres", vec!["--factor", "8"]),
        ("sdedit", vec!["--strength", "0.5"]),
        ("denoise", vec!["--sigma", "0.3"]),
    ] {
        let mut args = vec![
            "edit",
            task,
            "--model",
            s(&pt),
            "--image",
            s(&pic),
            "--class",
            "3",
            "--ts",
            "0,39",
            "-o",
            s(&out),
        ];
        if task == "sdedit" || task == "denoise" {
            args.retain(|a| *a != "--ts" && *a != "0,39");
        }
        args.extend(extra);
        let (ok, _, err) = cmpaint(&args);
        assert!(ok, "{task}: {err}");
        assert_eq!(image::open(&out).unwrap().width(), 64, "{task}");
    }
}

#[test]
fn denoise_estimates_the_noise_level() {
    let dir = tempfile::tempdir().unwrap();
    let (pic, out) = (dir.path().join("pic.png"), dir.path().join("out.png"));
    picture(&pic, 16);
    let (ok, _, err) = cmpaint(&[
        "edit",
        "denoise",
        "--model",
        s(&model_path('c')),
        "--image",
        s(&pic),
        "-o",
        s(&out),
    ]);
    assert!(ok && err.contains("estimated noise level σ ="), "{err}");
}

#[test]
fn frames_make_an_animated_png() {
    let dir = tempfile::tempdir().unwrap();
    let (out, gif) = (dir.path().join("strip.png"), dir.path().join("strip.gif"));
    for path in [&out, &gif] {
        let (ok, _, err) = cmpaint(&[
            "interpolate",
            "--model",
            s(&model_path('c')),
            "--seed-a",
            "1",
            "--seed-b",
            "2",
            "--frames",
            "5",
            "--batch",
            "2",
            "-o",
            s(path),
        ]);
        assert!(ok, "{err}");
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!(info.animation_control.map(|a| a.num_frames), Some(5));
    assert_eq!(
        (info.width, info.height),
        (32, 16),
        "two images side by side per frame"
    );

    // the same as a GIF: five frames of 32×16
    {
        use image::AnimationDecoder;
        let file = std::io::BufReader::new(std::fs::File::open(&gif).unwrap());
        let frames = image::codecs::gif::GifDecoder::new(file)
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0].buffer().dimensions(), (32, 16));
    }
    // a GIF is only for animations
    let (ok, _, err) = cmpaint(&["generate", "--model", s(&model_path('c')), "-o", s(&gif)]);
    assert!(
        !ok && err.contains("a .gif output is for animations"),
        "{err}"
    );

    // the ends of a strip are the plain one-step images of the two seeds
    let (strip, a) = (
        dir.path().join("strip.safetensors"),
        dir.path().join("a.safetensors"),
    );
    let model = model_path('c');
    let (ok, _, err) = cmpaint(&[
        "interpolate",
        "--model",
        s(&model),
        "--seed-a",
        "1",
        "--seed-b",
        "2",
        "--frames",
        "3",
        "-o",
        s(&strip),
    ]);
    assert!(ok, "{err}");
    let (ok, _, _) = cmpaint(&["generate", "--model", s(&model), "--seed", "2", "-o", s(&a)]);
    assert!(ok);
    assert_eq!(
        max_abs_diff(
            &read_image(&strip).get(2).unwrap(),
            &read_image(&a).get(0).unwrap()
        ),
        0.0
    );
}

#[test]
fn edit_arguments_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (pic, out) = (dir.path().join("pic.png"), dir.path().join("out.png"));
    picture(&pic, 16);
    let c = model_path('c');
    let fails = |args: &[&str], needle: &str| {
        let (ok, _, err) = cmpaint(args);
        assert!(
            !ok && !err.contains("panicked") && err.contains(needle),
            "{args:?}: {err}"
        );
    };
    let base = ["--model", s(&c), "--image", s(&pic), "-o", s(&out)];
    fails(
        &[&["edit", "inpaint"], &base[..]].concat(),
        "inpaint needs --mask",
    );
    fails(
        &[&["edit", "colorize", "--mask", s(&pic)], &base[..]].concat(),
        "--mask is for inpaint only",
    );
    fails(
        &[&["edit", "superres", "--factor", "3"], &base[..]].concat(),
        "factor 3 must be at least 2 and divide",
    );
    fails(
        &[&["edit", "sdedit", "--strength", "2"], &base[..]].concat(),
        "strength 2 is outside [0, 1]",
    );
    fails(
        &[&["edit", "denoise", "--sigma", "100"], &base[..]].concat(),
        "outside the model's range",
    );
    let small = dir.path().join("small.png");
    picture(&small, 8);
    fails(
        &[
            "edit",
            "inpaint",
            "--model",
            s(&c),
            "--image",
            s(&pic),
            "--mask",
            s(&small),
            "-o",
            s(&out),
        ],
        "the mask is 8×8, the image 16×16",
    );
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    fails(
        &[
            "edit",
            "colorize",
            "--model",
            s(&c),
            "--image",
            s(&text),
            "-o",
            s(&out),
        ],
        "not a readable image",
    );
}

#[test]
fn a_model_s_own_sketch_strength_is_the_sdedit_default() {
    // model C with a config that states sketch_strength 0.3: no --strength means --strength 0.3
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cmpaint::engine::model::load::Checkpoint::open(&model_path('c'), None)
        .unwrap()
        .config;
    cfg.sampling.sketch_strength = Some(0.3);
    let cfg_path = dir.path().join("c.json");
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let (pic, a, b) = (
        dir.path().join("pic.png"),
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    picture(&pic, 16);
    let c = model_path('c');
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "edit",
            "sdedit",
            "--model",
            s(&c),
            "--image",
            s(&pic),
            "--seed",
            "5",
        ];
        args.extend(extra);
        args.extend(["-o", s(out)]);
        let (ok, _, err) = cmpaint(&args);
        assert!(ok, "{err}");
    };
    run(&["--config", s(&cfg_path)], &a);
    run(&["--strength", "0.3"], &b);
    assert_eq!(max_abs_diff(&read_image(&a), &read_image(&b)), 0.0);
    let (_, out, _) = cmpaint(&["info", "--model", s(&c), "--config", s(&cfg_path)]);
    assert!(out.contains("\"sketch_strength\": 0.3"), "{out}");
}

/// `edit outpaint`: a wider (or taller) picture whose old pixels are byte-for-byte the input's and
/// whose new area is generated, natively (frame = model size) and scaled (a larger frame).
#[test]
fn outpaint_grows_the_picture_and_keeps_every_old_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let (pic, out) = (dir.path().join("pic.png"), dir.path().join("out.png"));
    write_png(&pic, 20, 16, |x, y| [(x * 12) as u8, (y * 15) as u8, 77]);
    let input = image::open(&pic).unwrap().to_rgb8();
    let model = model_path('c');
    for (extend, frame, (w, h), (dx, dy)) in [
        ("right:12", None, (32, 16), (0, 0)),
        ("up:10", Some("20"), (20, 26), (0, 10)),
    ] {
        let mut args = vec!["edit", "outpaint", "--model", s(&model), "--image", s(&pic)];
        args.extend(["--extend", extend, "--seed", "3", "-o", s(&out)]);
        if let Some(f) = frame {
            args.extend(["--frame", f]);
        }
        let (ok, _, err) = cmpaint(&args);
        assert!(ok, "{extend}: {err}");
        assert!(err.contains("outpainted"), "{err}");
        let got = image::open(&out).unwrap().to_rgb8();
        assert_eq!(got.dimensions(), (w, h), "{extend}");
        for (x, y, p) in input.enumerate_pixels() {
            assert_eq!(
                p,
                got.get_pixel(x + dx, y + dy),
                "{extend}: old pixel ({x}, {y})"
            );
        }
        let white = image::Rgb([255u8; 3]);
        let generated = got
            .enumerate_pixels()
            .filter(|(x, y, _)| *x < dx || *y < dy || *x >= 20 + dx || *y >= 16 + dy)
            .filter(|(_, _, p)| **p != white)
            .count();
        let new_area = (w * h - 20 * 16) as usize;
        assert!(
            generated > new_area / 2,
            "{extend}: {generated} of {new_area} generated"
        );
    }
    let refused = |args: &[&str], needle: &str| {
        let (ok, _, err) = cmpaint(args);
        assert!(!ok && err.contains(needle), "{args:?}: {err}");
    };
    let base = [
        "edit",
        "outpaint",
        "--model",
        s(&model),
        "--image",
        s(&pic),
        "-o",
        s(&out),
    ];
    refused(&base, "outpaint needs --extend");
    refused(
        &[&base[..], &["--extend", "sideways:4"]].concat(),
        "left, right, up or down",
    );
    refused(
        &[&base[..], &["--extend", "left:9000"]].concat(),
        "the largest is 4096",
    );
    let colorize = ["edit", "colorize", "--model", s(&model), "--image", s(&pic)];
    refused(
        &[&colorize[..], &["--extend", "left:4", "-o", s(&out)]].concat(),
        "for outpaint only",
    );
}

/// `edit superres --enlarge`: the picture F times larger, tile by tile at the model's size, every
/// F×F patch keeping the pixel it came from as its mean (to rounding and the blend between tiles)
/// and holding generated detail.
#[test]
fn superres_enlarge_makes_the_picture_larger_and_keeps_its_pixels_as_patch_means() {
    let dir = tempfile::tempdir().unwrap();
    let (pic, out) = (dir.path().join("pic.png"), dir.path().join("out.png"));
    write_png(&pic, 12, 8, |x, y| {
        [(40 + x * 13) as u8, (60 + y * 17) as u8, 120]
    });
    let small = image::open(&pic).unwrap().to_rgb8();
    let model = model_path('c'); // 16², so 24×16 is two tiles
    let (ok, _, err) = cmpaint(&[
        "edit",
        "superres",
        "--enlarge",
        "--factor",
        "2",
        "--model",
        s(&model),
        "--image",
        s(&pic),
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("enlarged 12×8 to 24×16 in 2 tiles of 16²"),
        "{err}"
    );
    let big = image::open(&out).unwrap().to_rgb8();
    assert_eq!(big.dimensions(), (24, 16));
    let mut worst = 0f64;
    for (x, y, p) in small.enumerate_pixels() {
        for c in 0..3 {
            let patch: Vec<f64> = (0..4)
                .map(|i| big.get_pixel(2 * x + i % 2, 2 * y + i / 2).0[c] as f64)
                .collect();
            let mean = patch.iter().sum::<f64>() / 4.0;
            worst = worst.max((mean - p.0[c] as f64).abs());
        }
    }
    assert!(worst <= 0.5, "a patch mean moved by {worst} levels");
    let (ok, _, err) = cmpaint(&[
        "edit",
        "colorize",
        "--enlarge",
        "--model",
        s(&model),
        "--image",
        s(&pic),
        "-o",
        s(&out),
    ]);
    assert!(
        !ok && err.contains("--enlarge is for superres only"),
        "{err}"
    );
}
