//! The worker's scheduling and isolation rules, on a backend whose steps the test controls (no
//! sleeps: a job waits at a gate until the test opens it).

use cmpaint::engine::cm::sample::{OnStep, Step};
use cmpaint::picture::Rgb8;
use cmpaint::recipe::{ModelRef, Operation, RECIPE_VERSION, Recipe};
use cmpaint::worker::ModelInfo;
use cmpaint::worker::{Backend, Job, JobId, Reply, Worker};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Runs `steps` steps per job; before its first step every job tells `started` and waits for `gate`.
/// A recipe with seed 666 panics; a load of a path named "bad" fails.
struct Gated {
    steps: usize,
    started: Sender<u64>,
    gate: Receiver<()>,
}

impl Backend for Gated {
    fn load(&mut self, path: Option<&Path>) -> Result<ModelInfo, String> {
        if path.is_some_and(|p| p.ends_with("bad")) {
            return Err("bad: not a checkpoint".into());
        }
        Ok(info())
    }

    fn run(
        &mut self,
        recipe: &Recipe,
        _batch: usize,
        on_step: OnStep,
    ) -> Result<Option<Vec<(Rgb8, Recipe)>>, String> {
        let _ = self.started.send(recipe.seed);
        let _ = self.gate.recv_timeout(Duration::from_secs(10));
        if recipe.seed == 666 {
            panic!("a bug in a job");
        }
        for i in 1..=self.steps {
            if on_step(Step::progress(i, self.steps)).is_break() {
                return Ok(None);
            }
        }
        let img = Rgb8 {
            width: 1,
            height: 1,
            pixels: vec![recipe.seed as u8, 0, 0],
        };
        Ok(Some(vec![(img, recipe.clone())]))
    }
}

fn info() -> ModelInfo {
    ModelInfo {
        name: "test".into(),
        file: None,
        sha256: "00".into(),
        image_size: 1,
        num_classes: None,
        styles: Vec::new(),
        parameters: 0,
        sampling: cmpaint::engine::model::spec::SamplingConfig {
            sketch_strength: Some(0.59),
            ..cmpaint::engine::model::spec::SamplingConfig::with_grid(40, None)
        },
        latent: None,
    }
}

fn recipe(seed: u64) -> Box<Recipe> {
    Box::new(Recipe {
        version: RECIPE_VERSION,
        model: ModelRef {
            name: "test".into(),
            file: None,
            sha256: "00".into(),
        },
        operation: Operation::Interpolate {
            seed_b: 1,
            alpha: 0.5,
        },
        seed,
        class: None,
        style: None,
        steps: 40,
        ts: None,
        sampler: None,
        prompt: None,
        input: None,
        mask: None,
        files: Vec::new(),
    })
}

fn run(seed: u64, interactive: bool) -> Job {
    Job::Run {
        recipe: recipe(seed),
        batch: 1,
        interactive,
    }
}

struct Rig {
    worker: Worker,
    started: Receiver<u64>,
    gate: Sender<()>,
}

fn rig(steps: usize) -> Rig {
    let (started_tx, started) = unbounded();
    let (gate, gate_rx) = unbounded();
    let worker = Worker::spawn_with(
        Gated {
            steps,
            started: started_tx,
            gate: gate_rx,
        },
        || {},
    );
    Rig {
        worker,
        started,
        gate,
    }
}

/// The final reply (Finished, Failed or Cancelled) of each of `ids`.
fn outcomes(worker: &Worker, ids: &[JobId]) -> HashMap<JobId, Reply> {
    let mut out = HashMap::new();
    while out.len() < ids.len() {
        let reply = worker
            .recv_timeout(Duration::from_secs(20))
            .expect("the worker answers every job");
        if !matches!(reply, Reply::Progress { .. } | Reply::ModelLoaded { .. }) {
            out.insert(reply.id(), reply);
        }
    }
    out
}

#[test]
fn a_panicking_job_becomes_an_error_and_the_worker_carries_on() {
    let mut r = rig(1);
    let crash = r.worker.submit(run(666, false));
    let next = r.worker.submit(run(7, false));
    r.gate.send(()).unwrap();
    r.gate.send(()).unwrap();
    let out = outcomes(&r.worker, &[crash, next]);
    match &out[&crash] {
        Reply::Failed { message, .. } => assert!(message.contains("a bug in a job"), "{message}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(matches!(out[&next], Reply::Finished { .. }));
}

#[test]
fn a_failed_load_is_an_error_message() {
    let mut r = rig(1);
    let ok = r.worker.submit(Job::LoadModel(None));
    let bad = r.worker.submit(Job::LoadModel(Some("bad".into())));
    let mut replies = Vec::new();
    while replies.len() < 2 {
        replies.push(r.worker.recv_timeout(Duration::from_secs(10)).unwrap());
    }
    assert!(matches!(&replies[0], Reply::ModelLoaded { id, .. } if *id == ok));
    assert!(
        matches!(&replies[1], Reply::Failed { id, message } if *id == bad && message.contains("bad"))
    );
}

#[test]
fn the_newest_interactive_job_wins_and_stale_ones_are_never_computed() {
    let mut r = rig(1);
    let first = r.worker.submit(run(0, true));
    assert_eq!(r.started.recv().unwrap(), 0, "the first frame is running");
    // 500 slider moves while it runs.
    let ids: Vec<JobId> = (1..=500).map(|i| r.worker.submit(run(i, true))).collect();
    r.gate.send(()).unwrap(); // the running frame finishes its network call
    r.gate.send(()).unwrap(); // the newest frame runs
    let mut all = vec![first];
    all.extend(&ids);
    let out = outcomes(&r.worker, &all);
    let finished: Vec<JobId> = all
        .iter()
        .copied()
        .filter(|id| matches!(out[id], Reply::Finished { .. }))
        .collect();
    assert_eq!(
        finished,
        vec![*ids.last().unwrap()],
        "only the newest frame is rendered"
    );
    // Exactly two jobs reached the backend: the one already running and the newest.
    assert_eq!(r.started.try_iter().collect::<Vec<_>>(), vec![500]);
}

#[test]
fn cancel_stops_the_running_job_at_its_next_step_and_skips_the_queue() {
    let mut r = rig(40);
    let running = r.worker.submit(run(1, false));
    let queued: Vec<JobId> = (2..10).map(|s| r.worker.submit(run(s, false))).collect();
    r.started.recv().unwrap();
    r.worker.cancel_all();
    r.worker.cancel_all(); // pressing Esc again is harmless
    r.gate.send(()).unwrap();
    let mut all = vec![running];
    all.extend(&queued);
    let out = outcomes(&r.worker, &all);
    assert!(
        all.iter()
            .all(|id| matches!(out[id], Reply::Cancelled { .. }))
    );
    // A job submitted after the cancel runs normally.
    let after = r.worker.submit(run(11, false));
    r.gate.send(()).unwrap();
    assert!(matches!(
        outcomes(&r.worker, &[after])[&after],
        Reply::Finished { .. }
    ));
}

#[test]
fn dropping_the_worker_mid_job_does_not_hang() {
    let mut r = rig(1_000_000);
    r.worker.submit(run(1, false));
    r.started.recv().unwrap();
    let (done_tx, done) = bounded(1);
    let gate = r.gate.clone();
    std::thread::spawn(move || {
        gate.send(()).unwrap();
        drop(r.worker);
        done_tx.send(()).unwrap();
    });
    done.recv_timeout(Duration::from_secs(10))
        .expect("the worker thread ends after a cancel at the next step");
}

/// Resident memory of this process in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_storm_of_ten_thousand_slider_moves_computes_only_the_newest_and_memory_stays_flat() {
    let mut r = rig(1);
    let first = r.worker.submit(run(0, true));
    r.started.recv().unwrap();
    let before = rss();
    let mut ids = vec![first];
    // Ten bursts of 1,000 moves (ten seconds of a 1 kHz pointer), each while a frame is running.
    for burst in 0..10u64 {
        ids.extend((0..1000).map(|i| r.worker.submit(run(1 + burst * 1000 + i, true))));
        r.gate.send(()).unwrap(); // the running frame ends: superseded
        let next = r.started.recv().unwrap();
        assert_eq!(next, (burst + 1) * 1000, "the newest move runs next");
    }
    r.gate.send(()).unwrap();
    let out = outcomes(&r.worker, &ids);
    let finished: Vec<_> = ids
        .iter()
        .filter(|id| matches!(out[id], Reply::Finished { .. }))
        .collect();
    assert_eq!(finished, vec![ids.last().unwrap()]);
    let grown = rss().saturating_sub(before);
    assert!(grown < 32 << 20, "memory grew by {} MB", grown >> 20);
}

#[test]
fn cancel_pressed_over_and_over_mid_run_never_deadlocks() {
    let mut r = rig(200);
    let ids: Vec<JobId> = (0..20).map(|s| r.worker.submit(run(s, false))).collect();
    let gate = r.gate.clone();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..20 {
                gate.send(()).unwrap();
            }
        });
        for _ in 0..10_000 {
            r.worker.cancel_all();
        }
    });
    let out = outcomes(&r.worker, &ids);
    assert_eq!(out.len(), ids.len(), "every job got its final reply");
}

#[test]
fn a_batch_that_cannot_fit_in_memory_is_refused_before_allocating() {
    use cmpaint::worker::{Steps, plan};
    let mut worker = Worker::spawn(candle_core::Device::Cpu, || {});
    worker.submit(Job::LoadModel(None));
    let info = match worker.recv_timeout(Duration::from_secs(60)).unwrap() {
        Reply::ModelLoaded { info, .. } => info,
        other => panic!("{other:?}"),
    };
    let recipe = plan(&info, Operation::Generate, 0, Some(7), Steps::One).unwrap();
    let id = worker.submit(Job::Run {
        recipe: Box::new(recipe),
        batch: 50_000_000,
        interactive: false,
    });
    let out = outcomes(&worker, &[id]);
    match &out[&id] {
        Reply::Failed { message, .. } => {
            assert!(
                message.contains("needs about") && message.contains("free"),
                "{message}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Reports `steps` steps as fast as it can, each with a clean estimate to preview.
struct Fast {
    steps: usize,
}

impl Backend for Fast {
    fn load(&mut self, _path: Option<&Path>) -> Result<ModelInfo, String> {
        Ok(info())
    }

    fn run(
        &mut self,
        recipe: &Recipe,
        _batch: usize,
        on_step: OnStep,
    ) -> Result<Option<Vec<(Rgb8, Recipe)>>, String> {
        let estimate = candle_core::Tensor::zeros(
            (1, 3, 4, 4),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .map_err(|e| e.to_string())?;
        for i in 1..=self.steps {
            let step = Step {
                done: i,
                total: self.steps,
                estimate: Some(&estimate),
            };
            if on_step(step).is_break() {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let img = Rgb8 {
            width: 1,
            height: 1,
            pixels: vec![0, 0, 0],
        };
        Ok(Some(vec![(img, recipe.clone())]))
    }
}

#[test]
fn step_previews_come_at_most_every_100_ms_and_never_for_the_last_step() {
    let mut worker = Worker::spawn_with(Fast { steps: 300 }, || {});
    let started = std::time::Instant::now();
    let id = worker.submit(run(1, false));
    let (mut previews, mut progress) = (Vec::new(), 0);
    loop {
        match worker
            .recv_timeout(Duration::from_secs(20))
            .expect("a reply")
        {
            Reply::Progress {
                done,
                total,
                preview,
                ..
            } => {
                progress += 1;
                if let Some(p) = preview {
                    assert_eq!((p.width, p.height), (4, 4));
                    assert!(done < total, "the last step's estimate is the result");
                    previews.push(done);
                }
            }
            Reply::Finished { id: done_id, .. } => {
                assert_eq!(done_id, id);
                break;
            }
            Reply::ModelLoaded { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let elapsed_ms = started.elapsed().as_millis() as usize;
    assert_eq!(progress, 300, "every step reports progress");
    assert_eq!(
        previews.first(),
        Some(&1),
        "the first step previews at once"
    );
    assert!(
        previews.len() <= 1 + elapsed_ms / 100,
        "{} previews in {elapsed_ms} ms",
        previews.len()
    );
}
