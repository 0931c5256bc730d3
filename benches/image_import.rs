//! Opening a photo: decode a JPEG and bring it to the model's size, as File → Open image and
//! `cmpaint edit --resize` do. Run: `cargo bench --bench image_import`.

use cmpaint::picture::{Resize, decode_bytes, to_model_size};
use criterion::{Criterion, criterion_group, criterion_main};

/// A photo-like JPEG: smooth gradients with detail a few dozen pixels across.
fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let (x, y) = (x as f32, y as f32);
        image::Rgb([
            (255.0 * x / width as f32) as u8,
            (127.5 * ((x / 37.0).sin() * (y / 37.0).cos() + 1.0)) as u8,
            (255.0 * y / height as f32) as u8,
        ])
    });
    let mut bytes = Vec::new();
    img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut bytes, 90,
    ))
    .unwrap();
    bytes
}

fn import(c: &mut Criterion) {
    let photo = jpeg(6000, 4000);
    let decoded = decode_bytes(&photo).unwrap();
    let mut group = c.benchmark_group("image_import_24mp");
    group.sample_size(10);
    group.bench_function("decode", |b| b.iter(|| decode_bytes(&photo).unwrap()));
    for (name, resize) in [("fit_64", Resize::Fit), ("crop_64", Resize::Crop)] {
        group.bench_function(name, |b| {
            b.iter(|| to_model_size(decoded.clone(), 64, Some(resize)).unwrap())
        });
    }
    group.bench_function("clone_only", |b| b.iter(|| decoded.clone()));
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
