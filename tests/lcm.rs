//! The latent consistency pipeline against diffusers + transformers on a tiny random LCM
//! (tests/fixtures/make_lcm_fixtures.py). Tolerance 1e-4 (f32) everywhere; the tokenizer exactly.

mod common;

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::Precision;
use cmpaint::engine::cm::sample::{Step, run_to_end};
use cmpaint::engine::latent::tokenizer::ClipTokenizer;
use cmpaint::engine::latent::{LatentEdit, LatentModel, LatentRequest};
use common::{fixture, max_abs, max_abs_diff};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::OnceLock;

const TOLERANCE: f32 = 1e-4;

fn expected() -> &'static HashMap<String, Tensor> {
    static E: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    E.get_or_init(|| {
        candle_core::safetensors::load(fixture("lcm_expected.safetensors"), &Device::Cpu).unwrap()
    })
}

fn cases() -> serde_json::Value {
    cases_in("lcm_expected.safetensors")
}

/// The prompts and settings a fixture script wrote into an expected-outputs file.
fn cases_in(name: &str) -> serde_json::Value {
    let file = std::fs::read(fixture(name)).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&file).unwrap();
    let text = &meta.metadata().as_ref().unwrap()["lcm.cases"];
    serde_json::from_str(text).unwrap()
}

/// The tokenizer's ids of each prompt in `cases` are transformers' (`ids_<i>` in `expected`).
fn assert_ids_are_transformers(
    tokenizer: &ClipTokenizer,
    cases: &serde_json::Value,
    expected: &HashMap<String, Tensor>,
) {
    let prompts = cases["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 7);
    for (i, prompt) in prompts.iter().enumerate() {
        let want: Vec<i64> = expected[&format!("ids_{i}")].to_vec1().unwrap();
        let got: Vec<i64> = tokenizer
            .encode(prompt.as_str().unwrap())
            .into_iter()
            .map(i64::from)
            .collect();
        assert_eq!(got, want, "prompt {i}: {prompt}");
    }
}

fn tensor(name: &str) -> Tensor {
    expected()[name].clone()
}

fn model() -> &'static LatentModel {
    static M: OnceLock<LatentModel> = OnceLock::new();
    M.get_or_init(|| {
        LatentModel::load(&fixture("tiny_lcm"), None, &Device::Cpu, Precision::F32).unwrap()
    })
}

#[test]
fn tokenizer_ids_are_transformers() {
    let tokenizer = ClipTokenizer::from_dir(&fixture("tiny_lcm/tokenizer")).unwrap();
    assert_ids_are_transformers(&tokenizer, &cases(), expected());
}

#[test]
fn text_encoder_states() {
    let ids = tensor("ids_0")
        .to_dtype(DType::U32)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let states = model().text_encoder.forward(&ids).unwrap();
    let err = max_abs_diff(&states, &tensor("text_states"));
    assert!(err < TOLERANCE, "text states off by {err}");
}

#[test]
fn unet_call_with_the_w_embedding() {
    let m = model();
    let dim = m.unet.config.time_cond_proj_dim.unwrap();
    let w: f32 = tensor("unet_w").to_vec1::<f32>().unwrap()[0];
    let w_emb = cmpaint::engine::latent::lcm::guidance_embedding(w as f64, dim);
    let w_emb = Tensor::from_vec(w_emb, (1, dim), &Device::Cpu).unwrap();
    let t = tensor("unet_t").to_vec1::<f32>().unwrap()[0] as f64;
    let out = m
        .unet
        .forward(
            &tensor("unet_sample"),
            t,
            &tensor("text_states"),
            Some(&w_emb),
        )
        .unwrap();
    let err = max_abs_diff(&out, &tensor("unet_out"));
    assert!(err < TOLERANCE, "UNet output off by {err}");
}

/// `--precision bf16`: the convolutions and the transformer blocks' linear layers (the fixture's
/// 32- and 64-wide projections pack) run in bf16, everything else in f32. The UNet call stays within
/// bf16's rounding of diffusers' f32 output, and differs from the f32 engine's (so bf16 really ran).
#[test]
fn unet_call_in_bf16_is_diffusers_to_bf16_precision() {
    if !cmpaint::engine::kernels::bf16::supported() {
        eprintln!("skipped: this CPU has no AVX512-BF16");
        return;
    }
    let bf16 = LatentModel::load(
        &fixture("tiny_lcm"),
        None,
        &Device::Cpu,
        cmpaint::engine::Precision::Bf16,
    )
    .unwrap();
    let dim = bf16.unet.config.time_cond_proj_dim.unwrap();
    let w: f32 = tensor("unet_w").to_vec1::<f32>().unwrap()[0];
    let w_emb = cmpaint::engine::latent::lcm::guidance_embedding(w as f64, dim);
    let w_emb = Tensor::from_vec(w_emb, (1, dim), &Device::Cpu).unwrap();
    let t = tensor("unet_t").to_vec1::<f32>().unwrap()[0] as f64;
    let call = |m: &LatentModel| {
        m.unet
            .forward(
                &tensor("unet_sample"),
                t,
                &tensor("text_states"),
                Some(&w_emb),
            )
            .unwrap()
    };
    let (got, want) = (call(&bf16), tensor("unet_out"));
    let err = max_abs_diff(&got, &want);
    let scale = max_abs(&want);
    // measured: 0.011 for outputs up to 1.07 (1.1 %); bf16 keeps 8 bits of mantissa (0.4 %)
    assert!(
        err < 0.03 * scale,
        "bf16 UNet output off by {err} (outputs up to {scale})"
    );
    assert!(
        max_abs_diff(&got, &call(model())) > 1e-5,
        "the bf16 path did not run"
    );
}

#[test]
fn vae_decode_and_encode() {
    let vae = &model().vae;
    let decoded = vae.decode(&tensor("vae_latents")).unwrap();
    let err = max_abs_diff(&decoded, &tensor("vae_decoded"));
    assert!(err < TOLERANCE, "decode off by {err}");
    let (mean, std) = vae.encode(&tensor("vae_image")).unwrap();
    let err = max_abs_diff(&mean, &tensor("vae_mean"));
    assert!(err < TOLERANCE, "encoded mean off by {err}");
    let err = max_abs_diff(&std, &tensor("vae_std"));
    assert!(err < TOLERANCE, "encoded std off by {err}");
}

#[test]
fn text_to_image_with_replayed_noise_at_1_2_and_4_steps() {
    let cases = cases();
    for steps in [1usize, 2, 4] {
        let case = &cases[format!("txt2img_{steps}")];
        let want_ts: Vec<usize> = serde_json::from_value(case["timesteps"].clone()).unwrap();
        assert_eq!(model().scheduler.timesteps(steps, 1.0).unwrap(), want_ts);
        let request = LatentRequest {
            prompt: case["prompt"].as_str().unwrap(),
            negative_prompt: "",
            steps,
            guidance: case["guidance_scale"].as_f64().unwrap(),
        };
        let mut calls = vec![];
        let image = model()
            .run(
                &request,
                None,
                &tensor(&format!("txt2img_noise_{steps}")),
                &mut |step: Step| {
                    calls.push((step.done, step.total));
                    ControlFlow::Continue(())
                },
            )
            .unwrap()
            .unwrap();
        let err = max_abs_diff(&image, &tensor(&format!("txt2img_image_{steps}")));
        assert!(err < TOLERANCE, "{steps} steps: off by {err}");
        let want_calls: Vec<_> = (1..=steps + 1).map(|d| (d, steps + 1)).collect();
        assert_eq!(
            calls, want_calls,
            "a progress report per UNet call and one for the VAE"
        );
    }
}

/// TAESD's decoder (the step previews') against diffusers' `AutoencoderTiny`.
#[test]
fn tiny_autoencoder_decodes_as_diffusers() {
    use cmpaint::engine::latent::taesd::TinyDecoder;
    let taesd =
        TinyDecoder::load(&fixture("tiny_lcm_taesd"), &Device::Cpu, Precision::F32).unwrap();
    assert_eq!(taesd.factor, 8);
    let decoded = taesd.decode(&tensor("taesd_latents")).unwrap();
    let err = max_abs_diff(&decoded, &tensor("taesd_decoded"));
    assert!(err < TOLERANCE, "off by {err}");
}

/// With TAESD in the folder's `taesd/`, every step but the last reports its estimate as a picture
/// (what the app shows while a run goes on); the result is the full VAE's, unchanged.
#[test]
fn step_previews_decode_with_taesd() {
    let dir = copied_lcm(&ALL_PARTS);
    copy_dir(&fixture("tiny_lcm_taesd"), &dir.path().join("taesd"));
    let m = LatentModel::load(dir.path(), None, &Device::Cpu, Precision::F32).unwrap();
    assert!(m.parts.iter().any(|p| p.name == "taesd"));
    let cases = cases();
    let case = &cases["txt2img_4"];
    let mut previews = vec![];
    let image = m
        .run(
            &case_request(case),
            None,
            &tensor("txt2img_noise_4"),
            &mut |step: Step| {
                previews.push(step.estimate.map(|e| e.dims().to_vec()));
                ControlFlow::Continue(())
            },
        )
        .unwrap()
        .unwrap();
    let shape = Some(vec![1, 3, 64, 64]);
    assert_eq!(previews, [shape.clone(), shape.clone(), shape, None, None]);
    let err = max_abs_diff(&image, &tensor("txt2img_image_4"));
    assert!(
        err < TOLERANCE,
        "the result is the full VAE's: off by {err}"
    );
}

fn case_request(case: &serde_json::Value) -> LatentRequest<'_> {
    LatentRequest {
        prompt: case["prompt"].as_str().unwrap(),
        negative_prompt: case["negative_prompt"].as_str().unwrap_or(""),
        steps: case["steps"].as_u64().unwrap() as usize,
        guidance: case["guidance_scale"].as_f64().unwrap(),
    }
}

/// SD + LCM-LoRA with classifier-free guidance and a negative prompt, as StableDiffusionPipeline with
/// the LCMScheduler runs it.
#[test]
fn classifier_free_guidance_with_a_lora() {
    let m = LatentModel::load(
        &fixture("tiny_sd"),
        Some(&fixture("tiny_lcm_lora_kohya.safetensors")),
        &Device::Cpu,
        Precision::F32,
    )
    .unwrap();
    let cases = cases();
    let image = m
        .run(
            &case_request(&cases["cfg"]),
            None,
            &tensor("cfg_noise"),
            &mut run_to_end,
        )
        .unwrap()
        .unwrap();
    let err = max_abs_diff(&image, &tensor("cfg_image"));
    assert!(err < TOLERANCE, "off by {err}");
}

/// Sketch → picture: diffusers' LCM img2img pipeline at strength 0.5 (the picture encoded to its
/// latent mean).
#[test]
fn image_to_image() {
    let cases = cases();
    let case = &cases["img2img"];
    let picture = tensor("edit_picture");
    let edit = LatentEdit {
        picture: &picture,
        mask: None,
        strength: case["strength"].as_f64().unwrap(),
    };
    let want_ts: Vec<usize> = serde_json::from_value(case["timesteps"].clone()).unwrap();
    assert_eq!(
        model().scheduler.timesteps(4, edit.strength).unwrap(),
        want_ts
    );
    let mut calls = 0;
    let image = model()
        .run(
            &case_request(case),
            Some(&edit),
            &tensor("img2img_noise"),
            &mut |_| {
                calls += 1;
                ControlFlow::Continue(())
            },
        )
        .unwrap()
        .unwrap();
    let err = max_abs_diff(&image, &tensor("img2img_image"));
    assert!(err < TOLERANCE, "off by {err}");
    assert_eq!(calls, 6, "encode, four steps, decode");
}

/// Inpainting against the step-by-step mirror in make_lcm_fixtures.py; outside the mask every pixel
/// is the picture's, bit for bit.
#[test]
fn inpainting_keeps_unmasked_pixels_exact() {
    let cases = cases();
    let (picture, mask) = (tensor("edit_picture"), tensor("edit_mask"));
    let edit = LatentEdit {
        picture: &picture,
        mask: Some(&mask),
        strength: 1.0,
    };
    let image = model()
        .run(
            &case_request(&cases["inpaint"]),
            Some(&edit),
            &tensor("inpaint_noise"),
            &mut run_to_end,
        )
        .unwrap()
        .unwrap();
    let err = max_abs_diff(&image, &tensor("inpaint_image"));
    assert!(err < TOLERANCE, "off by {err}");
    let outside: Vec<u8> = mask
        .eq(0f32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let (got, want): (Vec<f32>, Vec<f32>) = (
        image.flatten_all().unwrap().to_vec1().unwrap(),
        picture.flatten_all().unwrap().to_vec1().unwrap(),
    );
    let plane = outside.len();
    let mut kept = 0;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if outside[i % plane] == 1 {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "pixel {i} outside the mask changed"
            );
            kept += 1;
        }
    }
    assert!(
        kept > 3 * plane / 2,
        "most of the picture is outside the mask ({kept})"
    );
    let inside = max_abs_diff(&image, &picture);
    assert!(inside > 0.05, "the masked part is painted anew ({inside})");
}

#[test]
fn a_folder_without_a_part_names_it() {
    let dir = copied_lcm(&["tokenizer", "text_encoder", "unet", "scheduler"]);
    let err = LatentModel::load(dir.path(), None, &Device::Cpu, Precision::F32)
        .err()
        .expect("no vae")
        .to_string();
    assert!(err.contains("vae"), "{err}");
    let err = LatentModel::load(
        &fixture("tiny_lcm/unet"),
        None,
        &Device::Cpu,
        Precision::F32,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("model_index.json"), "{err}");

    // parts of different models: named in one line before any weight loads
    let mixed = copied_lcm(&ALL_PARTS);
    let unet_config = mixed.path().join("unet/config.json");
    let text = std::fs::read_to_string(&unet_config).unwrap();
    std::fs::write(
        &unet_config,
        text.replace("\"cross_attention_dim\": 32", "\"cross_attention_dim\": 64"),
    )
    .unwrap();
    let err = LatentModel::load(mixed.path(), None, &Device::Cpu, Precision::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("32 wide") && err.contains("reads 64"), "{err}");
    let (ok, _, err) = cmpaint(&["info", "--model", s(mixed.path())]);
    assert!(!ok && err.contains("reads 64"), "{err}");
    // configs that describe no network: one line each, never a panic
    std::fs::write(
        &unet_config,
        text.replace("\"attention_head_dim\": 8", "\"attention_head_dim\": 0"),
    )
    .unwrap();
    let err = LatentModel::load(mixed.path(), None, &Device::Cpu, Precision::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("0 attention heads"), "{err}");
    std::fs::write(&unet_config, &text).unwrap();
    let clip_config = mixed.path().join("text_encoder/config.json");
    let clip = std::fs::read_to_string(&clip_config).unwrap();
    std::fs::write(
        &clip_config,
        clip.replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 0"),
    )
    .unwrap();
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(mixed.path()),
        "--prompt",
        "a",
        "-o",
        "x.png",
    ]);
    assert!(
        !ok && err.contains("0 attention heads") && !err.contains("panicked"),
        "{err}"
    );

    let (ok, out, err) = cmpaint(&["info", "--model", s(&fixture("tiny_lcm"))]);
    assert!(ok, "{err}");
    assert!(out.contains("an LCM") && out.contains("unet:"), "{out}");
}

const ALL_PARTS: [&str; 5] = ["tokenizer", "text_encoder", "unet", "vae", "scheduler"];

/// The tiny LCM copied into a temporary folder (to add, break or take away a part).
fn copied_lcm(parts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for part in parts {
        copy_dir(&fixture("tiny_lcm").join(part), &dir.path().join(part));
    }
    std::fs::copy(
        fixture("tiny_lcm/model_index.json"),
        dir.path().join("model_index.json"),
    )
    .unwrap();
    dir
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// An SD folder plus a LoRA in either layout gives diffusers' `load_lora_weights` + `fuse_lora` UNet.
#[test]
fn lora_merges_as_diffusers_fuses_it_from_both_layouts() {
    for file in [
        "tiny_lcm_lora.safetensors",
        "tiny_lcm_lora_kohya.safetensors",
    ] {
        let m = LatentModel::load(
            &fixture("tiny_sd"),
            Some(&fixture(file)),
            &Device::Cpu,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(
            m.guidance_kind(),
            cmpaint::engine::latent::GuidanceKind::ClassifierFree
        );
        let out = m
            .unet
            .forward(&tensor("unet_sample"), 759.0, &tensor("text_states"), None)
            .unwrap();
        let err = max_abs_diff(&out, &tensor("lora_out"));
        assert!(err < TOLERANCE, "{file}: off by {err}");
    }
    let plain = LatentModel::load(&fixture("tiny_sd"), None, &Device::Cpu, Precision::F32).unwrap();
    let out = plain
        .unet
        .forward(&tensor("unet_sample"), 759.0, &tensor("text_states"), None)
        .unwrap();
    assert!(
        max_abs_diff(&out, &tensor("lora_out")) > 1e-2,
        "the LoRA changes the UNet"
    );
    // a LoRA for another network names its first stray layer
    let err = LatentModel::load(
        &fixture("tiny_lcm"),
        Some(&fixture(
            "tiny_diffusers/unet/diffusion_pytorch_model.safetensors",
        )),
        &Device::Cpu,
        Precision::F32,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("LoRA") && err.contains("neither a peft"),
        "{err}"
    );
}

// ---- the CLI end to end, through the job layer ----

use common::{cmpaint, read_image, s, write_noise};

#[test]
fn cli_generate_replays_diffusers_and_reruns_the_png() {
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.safetensors");
    write_noise(&noise, &tensor("txt2img_noise_4"));
    let out = dir.path().join("out.safetensors");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&fixture("tiny_lcm")),
        "--prompt",
        "a photo of a red cat",
        "--steps",
        "4",
        "--noise",
        s(&noise),
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let err = max_abs_diff(&read_image(&out), &tensor("txt2img_image_4"));
    assert!(err < TOLERANCE, "off by {err}");

    // a seeded batch as a PNG grid carries its recipes; rerun makes the same pixels
    let png = dir.path().join("cats.png");
    let mut args = vec!["generate"];
    args.extend([
        "--prompt",
        "a red cat",
        "--batch",
        "2",
        "--seed",
        "5",
        "-o",
        s(&png),
    ]);
    let (ok, _, err) = cli_lcm_at(&args);
    assert!(ok, "{err}");
    let (ok, _, err) = cmpaint(&["rerun", s(&png), "-o", s(&dir.path().join("again.png"))]);
    assert!(ok, "{err}");
    assert!(err.contains("the same pixels"), "{err}");
    let (ok, out, err) = cmpaint(&["info", s(&png)]);
    assert!(ok, "{err}");
    assert!(
        out.contains("“a red cat”") && out.contains("seed 6"),
        "{out}"
    );
}

/// The subcommand first, then the model: `cmpaint generate --model … …`.
fn cli_lcm_at(args: &[&str]) -> (bool, String, String) {
    let lcm = fixture("tiny_lcm");
    let mut all = vec![args[0], "--model", s(&lcm), "--device", "cpu"];
    all.extend_from_slice(&args[1..]);
    cmpaint(&all)
}

#[test]
fn cli_sketch_to_image_and_inpaint_rerun_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("picture.safetensors");
    candle_core::safetensors::save(
        &HashMap::from([("image".to_string(), tensor("edit_picture"))]),
        &picture,
    )
    .unwrap();
    let noise = dir.path().join("noise.safetensors");
    write_noise(&noise, &tensor("img2img_noise"));
    let out = dir.path().join("sketch.safetensors");
    let (ok, _, err) = cli_lcm_at(&[
        "edit",
        "sdedit",
        "--image",
        s(&picture),
        "--prompt",
        "a photo of a red cat",
        "--strength",
        "0.5",
        "--noise",
        s(&noise),
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let e = max_abs_diff(&read_image(&out), &tensor("img2img_image"));
    assert!(e < TOLERANCE, "img2img off by {e}");

    // inpainting from PNGs, a batch of two; unmasked pixels are the picture's; rerun is exact
    let png = dir.path().join("picture.png");
    let rgb = cmpaint::job::io::tensor_to_rgb8(&tensor("edit_picture").get(0).unwrap()).unwrap();
    cmpaint::picture::write_png(&png, &rgb).unwrap();
    let mask = dir.path().join("mask.png");
    let m = tensor("edit_mask")
        .ge(0.5f32)
        .unwrap()
        .to_dtype(DType::U8)
        .unwrap();
    let m: Vec<u8> = (m * 255.0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    image::GrayImage::from_raw(64, 64, m.clone())
        .unwrap()
        .save(&mask)
        .unwrap();
    let out = dir.path().join("inpainted.png");
    let (ok, _, err) = cli_lcm_at(&[
        "edit",
        "inpaint",
        "--image",
        s(&png),
        "--mask",
        s(&mask),
        "--prompt",
        "a red cat",
        "--batch",
        "2",
        "-o",
        s(&out),
        "--separate",
    ]);
    assert!(ok, "{err}");
    let first = dir.path().join("inpainted_000.png");
    let got = image::open(&first).unwrap().to_rgb8();
    let (want, mut kept) = (image::open(&png).unwrap().to_rgb8(), 0);
    for (i, (g, w)) in got.pixels().zip(want.pixels()).enumerate() {
        if m[i] == 0 {
            assert_eq!(g, w, "pixel {i} outside the mask");
            kept += 1;
        }
    }
    assert!(kept > 2000, "{kept}");
    let (ok, _, err) = cmpaint(&["rerun", s(&first), "-o", s(&dir.path().join("again.png"))]);
    assert!(ok, "{err}");
    assert!(err.contains("the same pixels"), "{err}");

    // outpainting 32 px to the left, frame by frame with the prompt: the picture's pixels stay
    let wider = dir.path().join("wider.png");
    let (ok, _, err) = cli_lcm_at(&[
        "edit",
        "outpaint",
        "--image",
        s(&png),
        "--extend",
        "left:32",
        "--prompt",
        "a red cat",
        "-o",
        s(&wider),
    ]);
    assert!(ok, "{err}");
    let out = image::open(&wider).unwrap().to_rgb8();
    assert_eq!(out.dimensions(), (96, 64));
    for y in 0..64 {
        for x in 0..64 {
            assert_eq!(out.get_pixel(x + 32, y), want.get_pixel(x, y), "({x}, {y})");
        }
    }
    let (ok, _, err) = cmpaint(&["rerun", s(&wider), "-o", s(&dir.path().join("again.png"))]);
    assert!(ok && err.contains("the same pixels"), "{err}");
}

#[test]
fn cli_interpolation_strip_and_lora_with_a_negative_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let strip = dir.path().join("strip.png");
    let (ok, _, err) = cli_lcm_at(&[
        "interpolate",
        "--prompt",
        "a cat",
        "--frames",
        "3",
        "--steps",
        "2",
        "-o",
        s(&strip),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = cmpaint(&["rerun", s(&strip), "-o", s(&dir.path().join("again.png"))]);
    assert!(ok, "{err}");
    assert!(err.contains("the same pixels"), "{err}");

    let noise = dir.path().join("noise.safetensors");
    write_noise(&noise, &tensor("cfg_noise"));
    let out = dir.path().join("lora.safetensors");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&fixture("tiny_sd")),
        "--lora",
        s(&fixture("tiny_lcm_lora.safetensors")),
        "--prompt",
        "a photo of a red cat",
        "--negative-prompt",
        "blurry",
        "--guidance",
        "1.5",
        "--steps",
        "2",
        "--noise",
        s(&noise),
        "-o",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let e = max_abs_diff(&read_image(&out), &tensor("cfg_image"));
    assert!(e < TOLERANCE, "CFG off by {e}");

    // the recipe names the LoRA by hash: rerun merges it again, and refuses another LoRA
    let png = dir.path().join("lora.png");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&fixture("tiny_sd")),
        "--lora",
        s(&fixture("tiny_lcm_lora.safetensors")),
        "--prompt",
        "a cat",
        "-o",
        s(&png),
    ]);
    assert!(ok, "{err}");
    let again = dir.path().join("again.png");
    let (ok, _, err) = cmpaint(&["rerun", s(&png), "-o", s(&again)]);
    assert!(ok && err.contains("the same pixels"), "{err}");
    let other = fixture("tiny_lcm_lora_kohya.safetensors");
    let (ok, _, err) = cmpaint(&["rerun", s(&png), "--lora", s(&other), "-o", s(&again)]);
    assert!(
        !ok && err.contains("LoRA") && err.contains("changed"),
        "{err}"
    );
}

#[test]
fn cli_refuses_what_a_latent_model_cannot_do_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let png = dir.path().join("p.png");
    image::RgbImage::new(64, 64).save(&png).unwrap();
    for (args, says) in [
        (vec!["generate", "-o", s(&out)], "give --prompt"),
        (
            vec!["generate", "--prompt", "a", "--class", "2", "-o", s(&out)],
            "no classes",
        ),
        (
            vec![
                "generate",
                "--prompt",
                "a",
                "--negative-prompt",
                "b",
                "-o",
                s(&out),
            ],
            "no negative prompt",
        ),
        (
            vec!["generate", "--prompt", "a", "--ts", "0,5", "-o", s(&out)],
            "--steps",
        ),
        (
            vec![
                "edit",
                "colorize",
                "--image",
                s(&png),
                "--prompt",
                "a",
                "-o",
                s(&out),
            ],
            "works on pixels",
        ),
        (
            vec![
                "edit",
                "denoise",
                "--image",
                s(&png),
                "--prompt",
                "a",
                "-o",
                s(&out),
            ],
            "works on pixels",
        ),
    ] {
        let (ok, _, err) = cli_lcm_at(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{err}"
        );
    }
    // too large a batch for the memory there is: refused before it starts, with what fits
    let lcm = fixture("tiny_lcm");
    let (ok, _, err) = common::cmpaint_with_env(
        &[
            "generate",
            "--model",
            s(&lcm),
            "--prompt",
            "a",
            "--batch",
            "4",
            "-o",
            s(&out),
        ],
        &[("CMPAINT_MEMORY_LIMIT", "14000000")],
    );
    assert!(!ok && err.contains("at most 1 fit"), "{err}");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&fixture("tiny_lcm")),
        "--lora",
        s(&fixture(
            "tiny_lcm/unet/diffusion_pytorch_model.safetensors",
        )),
        "--prompt",
        "a",
        "-o",
        s(&out),
    ]);
    assert!(!ok);
    assert!(err.contains("LoRA"), "{err}");
}

/// The tiny SD 1.x written as one file in the original LDM layout
/// (tests/fixtures/make_single_file_fixture.py) and what diffusers computes with it.
fn single_file_expected() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("sd15_single_expected.safetensors"), &Device::Cpu)
        .unwrap()
}

/// A single file holds no tokenizer: CLIP's own vocabulary is built in, and gives transformers'
/// ids for the real vocabulary.
#[test]
fn built_in_clip_tokenizer_ids_are_transformers() {
    assert_ids_are_transformers(
        &ClipTokenizer::clip().unwrap(),
        &cases_in("sd15_single_expected.safetensors"),
        &single_file_expected(),
    );
}

/// The checkpoint read in place — names mapped, configs from shapes, f16 weights — runs as
/// diffusers' pipeline on the same networks: CFG with a negative prompt, then with a kohya LoRA
/// merged over the renamed UNet.
#[test]
fn a_single_file_checkpoint_runs_as_diffusers_with_and_without_a_lora() {
    let expected = single_file_expected();
    let request = LatentRequest {
        prompt: "a photo of a red cat",
        negative_prompt: "blurry",
        steps: 2,
        guidance: 1.5,
    };
    let file = fixture("tiny_sd15_single.safetensors");
    let lora = fixture("tiny_sd15_single_lora.safetensors");
    for (lora, want) in [(None, "cfg_image"), (Some(lora.as_path()), "lora_image")] {
        let m = LatentModel::load(&file, lora, &Device::Cpu, Precision::F32).unwrap();
        let image = m
            .run(&request, None, &expected["noise"], &mut run_to_end)
            .unwrap()
            .unwrap();
        let err = max_abs_diff(&image, &expected[want]);
        assert!(err < TOLERANCE, "{want}: off by {err}");
    }
}

#[test]
fn cli_info_and_generate_from_a_single_file_checkpoint() {
    let expected = single_file_expected();
    let file = fixture("tiny_sd15_single.safetensors");
    let (ok, out, err) = cmpaint(&["info", "--model", s(&file)]);
    assert!(ok, "{err}");
    for want in [
        "49408 tokens (CLIP's, built in",
        "channels [32, 32, 32], 2 per block, cross-attention 16",
        "channels [32, 64], 4 latent channels",
        "checkpoint:",
    ] {
        assert!(out.contains(want), "`{want}` not in\n{out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.safetensors");
    write_noise(&noise, &expected["noise"]);
    let image = dir.path().join("out.safetensors");
    let lora = fixture("tiny_sd15_single_lora.safetensors");
    let (ok, _, err) = cmpaint(&[
        "generate",
        "--model",
        s(&file),
        "--lora",
        s(&lora),
        "--prompt",
        "a photo of a red cat",
        "--negative-prompt",
        "blurry",
        "--steps",
        "2",
        "--guidance",
        "1.5",
        "--noise",
        s(&noise),
        "-o",
        s(&image),
    ]);
    assert!(ok, "{err}");
    let err = max_abs_diff(&read_image(&image), &expected["lora_image"]);
    assert!(err < TOLERANCE, "off by {err}");
}
