//! The CLI end to end: generation from each weight format with replayed noise (checked against the
//! PyTorch reference), seeds, batches, PNG output, info and convert.

mod common;

use common::{cmpaint, fixture, max_abs_diff, model_path, parity, read_image, s, write_noise};

#[test]
fn generate_replays_the_reference_from_a_pt_file() {
    let dir = tempfile::tempdir().unwrap();
    let fx = parity('a');
    let noise = dir.path().join("noise.safetensors");
    write_noise(&noise, &fx["twostep_noise"]);
    let out = dir.path().join("out.safetensors");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&model_path('a')),
        "--noise",
        s(&noise),
        "--class",
        "3,7",
        "--ts",
        "0,22,39",
        "--device",
        "cpu",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    assert!(max_abs_diff(&read_image(&out), &fx["twostep_out"]) <= 1e-4);
}

#[test]
fn generate_replays_the_reference_from_a_diffusers_folder() {
    let dir = tempfile::tempdir().unwrap();
    let fx = parity('b');
    let noise = dir.path().join("noise.safetensors");
    write_noise(&noise, &fx["onestep_noise"]);
    let out = dir.path().join("out.safetensors");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&model_path('b')),
        "--noise",
        s(&noise),
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    assert!(max_abs_diff(&read_image(&out), &fx["onestep_out"]) <= 1e-4);

    // N comes from the pipeline's scheduler config; a model that is no preset has no tuned ts list
    write_noise(&noise, &fx["twostep_noise"]);
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&model_path('b')),
        "--noise",
        s(&noise),
        "--multistep",
        "-o",
        s(&out),
    ]);
    assert!(
        !ok && err.contains("no tuned multistep list: give --ts (e.g. 0,20,39)"),
        "{err}"
    );
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&model_path('b')),
        "--noise",
        s(&noise),
        "--ts",
        "0,22,39",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    assert!(max_abs_diff(&read_image(&out), &fx["twostep_out"]) <= 1e-4);
}

#[test]
fn png_output_rounds_the_tensor_output() {
    let dir = tempfile::tempdir().unwrap();
    let fx = parity('c');
    let noise = dir.path().join("noise.safetensors");
    write_noise(&noise, &fx["onestep_noise"]);
    let (st, png) = (dir.path().join("x.safetensors"), dir.path().join("x.png"));
    for out in [&st, &png] {
        let (ok, _, err) = cmpaint(&[
            "generate",
            "--model",
            s(&model_path('c')),
            "--noise",
            s(&noise),
            "--separate",
            "-o",
            s(out),
        ]);
        assert!(ok, "{err}");
    }
    let x = read_image(&st);
    for i in 0..2 {
        let img = image::open(dir.path().join(format!("x_{i:03}.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!((img.width(), img.height()), (16, 16));
        let expected = ((x.get(i).unwrap() + 1.0).unwrap() * 127.5)
            .unwrap()
            .round()
            .unwrap();
        let expected: Vec<f32> = expected
            .permute((1, 2, 0))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let got: Vec<f32> = img.into_raw().into_iter().map(f32::from).collect();
        assert_eq!(got, expected, "image {i}");
    }
}

#[test]
fn seeds_are_deterministic_and_batches_hold_consecutive_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("tiny_convres.safetensors");
    let run = |seed: &str, batch: &str, name: &str| {
        let out = dir.path().join(name);
        let (ok, _, err) = cmpaint(&[
            "generate",
            "--model",
            s(&model),
            "--seed",
            seed,
            "--batch",
            batch,
            "-o",
            s(&out),
        ]);
        assert!(ok, "{err}");
        read_image(&out)
    };
    let a = run("5", "2", "a.safetensors");
    let again = run("5", "2", "b.safetensors");
    assert_eq!(max_abs_diff(&a, &again), 0.0, "same seed, same image");
    let six = run("6", "1", "c.safetensors");
    assert_eq!(
        max_abs_diff(&a.get(1).unwrap(), &six.get(0).unwrap()),
        0.0,
        "sample 1 of seed 5 is seed 6"
    );
    assert!(
        max_abs_diff(&a.get(0).unwrap(), &six.get(0).unwrap()) > 0.01,
        "other seeds differ"
    );
}

#[test]
fn a_batch_png_is_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grid.png");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&fixture("tiny_convres.safetensors")),
        "--batch",
        "3",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let img = image::open(&out).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (32, 32),
        "3 images of 16² in a 2×2 grid"
    );
}

#[test]
fn class_conditional_models_draw_labels_from_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&model_path('a')),
        "--seed",
        "1",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("class labels (from the seed)"), "{err}");
}

#[test]
fn info_reports_config_parameters_and_memory() {
    let (ok, out, err) = cmpaint(&["info", "--model", s(&model_path('a'))]);
    assert!(ok, "{err}");
    assert!(out.contains("OpenAI .pt"), "{out}");
    assert!(out.contains("inferred from tensor shapes"), "{out}");
    assert!(out.contains("parameters:   828771"), "{out}");
    assert!(out.contains("\"num_classes\": 10"), "{out}");
    assert!(out.contains("memory (f32): weights 3.2 MiB"), "{out}");

    let (ok, out, _) = cmpaint(&["info", "--model", s(&model_path('b'))]);
    assert!(
        ok && out.contains("diffusers config.json") && out.contains("\"num_head_channels\": 16"),
        "{out}"
    );
    let (ok, out, _) = cmpaint(&["info", "--model", s(&model_path('c'))]);
    assert!(
        ok && out.contains("the file's metadata") && out.contains("\"resblock_updown\": false"),
        "{out}"
    );

    // the project file carries its ts list, so --multistep works there
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&model_path('c')),
        "--multistep",
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
}

#[test]
fn convert_writes_the_project_format_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    let fx = parity('a');
    let noise = dir.path().join("noise.safetensors");
    write_noise(&noise, &fx["onestep_noise"]);
    let pt = model_path('a');
    for (name, extra) in [
        ("f32.safetensors", None),
        ("f16.safetensors", Some("--f16")),
    ] {
        let converted = dir.path().join(name);
        let mut args = vec!["convert", "--model", s(&pt), "-o", s(&converted)];
        args.extend(extra);
        let (ok, _, err) = cmpaint(&args);
        assert!(ok, "{err}");
        let out = dir.path().join("out.safetensors");
        let (ok, _, err) = cmpaint(&[
            "generate",
            "--model",
            s(&converted),
            "--noise",
            s(&noise),
            "--class",
            "3,7",
            "-o",
            s(&out),
        ]);
        assert!(ok, "{err}");
        // the fixture weights are f16 values, so even the f16 copy is exact
        assert!(
            max_abs_diff(&read_image(&out), &fx["onestep_out"]) <= 1e-4,
            "{name}"
        );
        let (_, info, _) = cmpaint(&["info", "--model", s(&converted)]);
        assert!(info.contains("cmpaint safetensors"), "{info}");
    }
}
