//! The hostile user's reproductions (defects D1–D8 and the minor ones): each is refused with one
//! error line and a non-zero exit, never an abort, a hang, an OOM kill or a destroyed file. Where the
//! real case is slow (24 GB of memory), a small `CMPAINT_MEMORY_LIMIT` stands in for the machine.

mod common;

use candle_core::{DType, Device, Tensor};
use cmpaint::engine::model::load::{Checkpoint, save_project};
use cmpaint::engine::model::spec::ModelConfig;
use common::{flat_png, model_path, s, write_noise};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs cmpaint with `env`, killing it after 60 s (a hang fails the test instead of blocking it).
/// Returns (exit code, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmpaint"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("cmpaint {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Expects exit code 1 (an error, not a signal or an abort) with one `error:` line holding `needle`.
fn refused(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let (code, err) = run(args, env);
    assert_eq!(code, Some(1), "{args:?} must fail with exit code 1: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line for {args:?}: {err}");
    assert!(
        errors[0].contains(needle),
        "`{needle}` not in: {}",
        errors[0]
    );
}

#[test]
fn a_stable_diffusion_2_single_file_checkpoint_is_named_and_the_way_to_a_folder_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v2-1_768-ema-pruned.safetensors");
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let tensors = std::collections::HashMap::from([
        (
            "model.diffusion_model.input_blocks.0.0.weight".to_string(),
            zeros(&[32, 4, 3, 3]),
        ),
        (
            "first_stage_model.decoder.conv_in.weight".to_string(),
            zeros(&[8, 4, 3, 3]),
        ),
        (
            "cond_stage_model.model.token_embedding.weight".to_string(),
            zeros(&[16, 8]),
        ),
    ]);
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let out = dir.path().join("x.png");
    let args = [
        "generate",
        "--model",
        s(&file),
        "--prompt",
        "a fox",
        "-o",
        s(&out),
    ];
    refused(
        &args,
        &[],
        "a Stable Diffusion 2.x checkpoint in the original single-file layout",
    );
    refused(&args, &[], "from_single_file(FILE)");
    refused(&["info", "--model", s(&file)], &[], "single-file layout");
}

#[cfg(unix)]
#[test]
fn printing_into_a_closed_pipe_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    // `cmpaint presets | head -0`: the reader is gone before the first line is written
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_cmpaint"))
        .arg("presets")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

/// A gigabyte: far below what a 100,000-image batch needs, far above what the tests' runs need.
const ONE_GB: &str = "1000000000";

#[test]
fn d1_batches_and_noise_files_that_do_not_fit_are_refused_before_they_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let limit = [("CMPAINT_MEMORY_LIMIT", ONE_GB)];
    refused(
        &["generate", "--batch", "100000", "-o", s(&out)],
        &limit,
        "a batch of 100000 at 32×32 needs about",
    );
    // the refusal says what does fit
    let (_, err) = run(&["generate", "--batch", "100000", "-o", s(&out)], &limit);
    assert!(err.contains("a batch of at most"), "{err}");
    let picture = flat_png(dir.path(), "p.png", 32, 128);
    refused(
        &[
            "edit",
            "colorize",
            "--image",
            s(&picture),
            "--batch",
            "100000",
            "-o",
            s(&out),
        ],
        &limit,
        "a batch of 100000 at 32×32",
    );
    // a replayed noise file at 512² on the 32² built-in model (the report's was 2048²)
    let noise = dir.path().join("noise.safetensors");
    write_noise(
        &noise,
        &Tensor::zeros((1, 1, 3, 512, 512), DType::F32, &Device::Cpu).unwrap(),
    );
    refused(
        &[
            "generate",
            "--noise",
            s(&noise),
            "--class",
            "0",
            "-o",
            s(&out),
        ],
        &[("CMPAINT_MEMORY_LIMIT", "100000000")],
        "a batch of 1 at 512×512 needs about",
    );
    assert!(!out.exists());
}

#[test]
fn d2_devices_fifos_and_folders_are_refused_without_reading_or_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let picture = flat_png(dir.path(), "p.png", 32, 128);
    let picture = s(&picture).to_string();
    for (flag, file, needle) in [
        ("--image", "/dev/zero", "/dev/zero: a device, not a file"),
        ("--image", s(&fifo), "fifo: a FIFO, not a file"),
        ("--image", "/tmp", "/tmp: a folder, not a file"),
        ("--mask", "/dev/zero", "/dev/zero: a device, not a file"),
        ("--noise", "/dev/zero", "/dev/zero: a device, not a file"),
        (
            "--config",
            "/dev/zero",
            "cannot read the model configuration: a device, not a file",
        ),
        ("--model", s(&fifo), "fifo: a FIFO, not a file"),
    ] {
        let image = if flag == "--image" { file } else { &picture };
        let mask = if flag == "--mask" { file } else { &picture };
        let mut args = vec![
            "edit",
            "inpaint",
            "--image",
            image,
            "--mask",
            mask,
            "-o",
            s(&out),
        ];
        if !["--image", "--mask"].contains(&flag) {
            args.extend([flag, file]);
        }
        if flag == "--noise" {
            args.extend(["--class", "0"]);
        }
        refused(&args, &[], needle);
    }
}

/// The tiny project model with `edit` applied to its config, saved in the project format.
fn with_config(dir: &Path, edit: impl FnOnce(&mut ModelConfig)) -> PathBuf {
    let ck = Checkpoint::open(&model_path('c'), None).unwrap();
    let tensors = ck.load_tensors(&Device::Cpu).unwrap();
    let mut config = ck.config.clone();
    edit(&mut config);
    let path = dir.join("edited.safetensors");
    save_project(&path, &config, &tensors).unwrap();
    path
}

#[test]
fn d3_declared_sizes_and_sampling_values_are_checked_when_the_file_opens() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let huge = with_config(dir.path(), |c| c.unet.image_size = 100_000);
    let needle = "image_size is 100000; this model format allows 1…4096";
    refused(&["info", "--model", s(&huge)], &[], needle);
    refused(
        &["generate", "--model", s(&huge), "-o", s(&out)],
        &[],
        needle,
    );
    type Edit = fn(&mut ModelConfig);
    let edits: [(Edit, &str); 5] = [
        (
            |c| c.sampling.sigma_min = 100.0,
            "sigma_min 100 is not below sigma_max 80",
        ),
        (
            |c| c.sampling.rho = -1.0,
            "rho is -1; it must be a positive number",
        ),
        (
            |c| c.sampling.steps = 0,
            "steps is 0; the grid needs 2…10000 points",
        ),
        (
            |c| c.sampling.ts = Some(vec![0, 50]),
            "ts [0, 50] must be increasing indices",
        ),
        (
            |c| c.sampling.sketch_strength = Some(3.0),
            "sketch_strength is 3",
        ),
    ];
    for (edit, needle) in edits {
        let path = with_config(dir.path(), edit);
        refused(&["info", "--model", s(&path)], &[], needle);
    }
}

/// A `.pt` zip whose `archive/data.pkl` is `pickle`.
fn pt_with_pickle(dir: &Path, pickle: &[u8]) -> PathBuf {
    use std::io::Write;
    let path = dir.join("bomb.pt");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(pickle).unwrap();
    zip.finish().unwrap();
    path
}

#[test]
fn d4_a_deeply_nested_pickle_is_refused_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let mut pickle = vec![0x80, 2];
    pickle.extend(std::iter::repeat_n(b']', 200_000));
    pickle.extend(std::iter::repeat_n(b'a', 199_999));
    pickle.push(b'.');
    let bomb = pt_with_pickle(dir.path(), &pickle);
    refused(
        &["info", "--model", s(&bomb)],
        &[],
        "archive/data.pkl: a pickle nested more than 1000 levels deep",
    );
    // five bytes asking for a 4 GiB string
    let bomb = pt_with_pickle(dir.path(), &[0x80, 2, b'X', 0xff, 0xff, 0xff, 0xff]);
    refused(&["info", "--model", s(&bomb)], &[], "a truncated pickle");
}

/// A 200 KB tmpfs at `dir`, filled; None where this machine cannot mount one (not root).
struct FullDisk(PathBuf);

impl FullDisk {
    fn mount(dir: &Path) -> Option<Self> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=200k", "tmpfs", s(dir)])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn d5_a_full_disk_is_an_error_and_an_existing_picture_survives() {
    let dir = tempfile::tempdir().unwrap();
    // a link to /dev/full: refused, the link stays
    let link = dir.path().join("full.png");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    refused(&["generate", "-o", s(&link)], &[], "a device, not a file");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let Some(_mounted) = FullDisk::mount(&disk) else {
        eprintln!(
            "skipped the tmpfs half: this machine cannot mount one (the writer's own test covers it)"
        );
        return;
    };
    // a good picture that fits, then fill the rest of the disk
    let existing = disk.join("existing.png");
    assert_eq!(
        run(&["generate", "--batch", "16", "-o", s(&existing)], &[]).0,
        Some(0)
    );
    let original = std::fs::read(&existing).unwrap();
    let filler = disk.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 400 << 10]);
    for (what, args) in [
        ("new PNG", vec!["generate", "-o", "new.png"]),
        (
            "overwrite",
            vec![
                "generate",
                "--batch",
                "16",
                "--seed",
                "7",
                "-o",
                "existing.png",
            ],
        ),
        (
            "separate",
            vec!["generate", "--batch", "2", "--separate", "-o", "sep.png"],
        ),
        ("tensor", vec!["generate", "-o", "new.safetensors"]),
        (
            "animation",
            vec!["interpolate", "--frames", "4", "-o", "strip.gif"],
        ),
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains('.') {
                    s(&disk.join(a)).to_string()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = run(&args, &[]);
        assert_eq!(code, Some(1), "{what}: {err}");
        assert!(err.contains("No space left on device"), "{what}: {err}");
    }
    assert_eq!(
        std::fs::read(&existing).unwrap(),
        original,
        "the original is intact"
    );
    let mut left: Vec<String> = std::fs::read_dir(&disk)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["existing.png", "filler"],
        "no partial files are left"
    );
}

#[test]
fn outputs_get_the_usual_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (png, tensor) = (dir.path().join("a.png"), dir.path().join("a.safetensors"));
    for out in [&png, &tensor] {
        assert_eq!(run(&["generate", "-o", s(out)], &[]).0, Some(0));
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tensor), mode(&png));
}

#[test]
fn minor_arguments_out_of_range_are_errors_not_silent_clamps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let picture = flat_png(dir.path(), "p.png", 32, 200);
    let p = s(&picture);
    for (args, needle) in [
        (
            vec![
                "edit", "outpaint", "--image", p, "--extend", "left:16", "--frame", "0",
            ],
            "--frame 0: the frame's side runs from 32",
        ),
        (
            vec![
                "edit", "outpaint", "--image", p, "--extend", "left:16", "--frame", "100000",
            ],
            "--frame 100000",
        ),
        (
            vec!["edit", "sdedit", "--image", p, "--strength-index", "100"],
            "--strength-index 100: the 40-point grid starts an edit at index 0…38",
        ),
        (
            vec!["generate", "--model", "builtin:teacher", "--steps", "0"],
            "--steps 0: the grid needs 2…10000 points",
        ),
        (
            vec!["generate", "--model", "builtin:teacher", "--s-churn", "nan"],
            "must be finite numbers",
        ),
        (
            vec!["generate", "--model", "builtin:teacher", "--s-noise", "inf"],
            "must be finite numbers",
        ),
    ] {
        let mut args = args;
        args.extend(["-o", s(&out)]);
        refused(&args, &[], needle);
    }
}

#[test]
fn nan_weights_are_refused_with_the_tensors_name() {
    let dir = tempfile::tempdir().unwrap();
    let ck = Checkpoint::open(&model_path('c'), None).unwrap();
    let mut tensors = ck.load_tensors(&Device::Cpu).unwrap();
    let bias = &tensors["out.2.bias"];
    let poisoned = Tensor::new(&[0f32, f32::NAN, 0.0], &Device::Cpu)
        .unwrap()
        .reshape(bias.shape())
        .unwrap();
    tensors.insert("out.2.bias".into(), poisoned);
    let path = dir.path().join("nan.safetensors");
    save_project(&path, &ck.config, &tensors).unwrap();
    refused(
        &[
            "generate",
            "--model",
            s(&path),
            "-o",
            s(&dir.path().join("x.png")),
        ],
        &[],
        "`out.2.bias` holds NaN or infinite values",
    );
}

#[test]
fn a_symlink_loop_is_said_to_be_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.pt"), dir.path().join("b.pt"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    refused(&["info", "--model", s(&a)], &[], "a loop of symbolic links");
}
