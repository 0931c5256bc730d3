// The canvas compositor: checkerboard, picture, sketch strokes, mask overlay, generation frame and
// brush cursor, drawn in one pass over the canvas area. Layers are read with textureLoad at integer pixel coordinates, so
// magnification is nearest-neighbour and every model pixel stays a crisp square.

struct Uniforms {
    // Image rectangle on the framebuffer, in physical pixels: min.x, min.y, max.x, max.y.
    image_rect: vec4<f32>,
    // Image width, height (pixels); checker square (physical pixels); mask overlay opacity.
    image_info: vec4<f32>,
    // Mask overlay colour (rgb) and whether the mask is shown (a: 1 or 0).
    mask_colour: vec4<f32>,
    // Brush cursor centre (physical pixels), radius (physical pixels), shown (w > 0.5).
    cursor: vec4<f32>,
    // Colour outside the image.
    background: vec4<f32>,
    // Generation frame on the framebuffer, physical pixels: min.x, min.y, max.x, max.y.
    frame: vec4<f32>,
    // Frame shown (x > 0.5); half the corner handle's side (physical pixels); dimming outside it.
    frame_info: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var picture: texture_2d<f32>;
@group(0) @binding(2) var sketch: texture_2d<f32>;
@group(0) @binding(3) var mask: texture_2d<f32>;

// One triangle that covers the viewport (egui sets the viewport to the canvas area).
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let x = f32((i << 1u) & 2u) * 2.0 - 1.0;
    let y = f32(i & 2u) * 2.0 - 1.0;
    return vec4<f32>(x, y, 0.0, 1.0);
}

fn checker(p: vec2<f32>) -> vec3<f32> {
    let c = floor(p / max(u.image_info.z, 1.0));
    let odd = (i32(c.x) + i32(c.y)) & 1;
    return select(vec3<f32>(0.80), vec3<f32>(0.60), odd == 1);
}

// Everything below is branch-free (select, non-short-circuit & and |): Mesa's lavapipe inlines uniforms
// that steer control flow into new shader variants, and kept allocating them draw after draw — about
// 30 KB of memory per repaint (BENCHMARKS.md, "Memory over hours").

// The generation frame: the image outside it dimmed, a white outline inside a black one, and
// square handles at the corners.
fn frame_overlay(p: vec2<f32>, c: vec3<f32>) -> vec3<f32> {
    let lo = u.frame.xy;
    let hi = u.frame.zw;
    let h = u.frame_info.y;
    let inside = all(p >= lo) & all(p < hi);
    let inner = all(p >= lo + 1.0) & all(p < hi - 1.0);
    let outer = all(p >= lo - 1.0) & all(p < hi + 1.0);
    let in_image = all(p >= u.image_rect.xy) & all(p < u.image_rect.zw);
    var out = select(c, c * (1.0 - u.frame_info.z), !inside & in_image);
    out = select(out, vec3<f32>(0.0), outer & !inside);
    out = select(out, vec3<f32>(1.0), inside & !inner);
    // the nearest corner's handle: white with a one-pixel black border
    let corner = select(lo, hi, p > (lo + hi) * 0.5);
    let d = abs(p - corner);
    let handle = select(vec3<f32>(1.0), vec3<f32>(0.0), any(d > vec2<f32>(h - 1.0)));
    return select(out, handle, all(d <= vec2<f32>(h)));
}

// The mask at screen point p (clamped to the image, so the image's border is no mask edge).
fn mask_at(p: vec2<f32>) -> f32 {
    let lo = u.image_rect.xy;
    let size = u.image_info.xy;
    let px = vec2<i32>(clamp(floor((p - lo) / (u.image_rect.zw - lo) * size), vec2<f32>(0.0), size - 1.0));
    return textureLoad(mask, px, 0).r;
}

fn shade(p: vec2<f32>) -> vec4<f32> {
    let lo = u.image_rect.xy;
    let hi = u.image_rect.zw;
    let size = u.image_info.xy;
    let uv = (p - lo) / (hi - lo);
    // clamped, so the loads are valid outside the image too (their colour is then replaced)
    let px = vec2<i32>(clamp(floor(uv * size), vec2<f32>(0.0), size - 1.0));
    let pic = textureLoad(picture, px, 0);
    var colour = mix(checker(p - lo), pic.rgb, pic.a);
    let s = textureLoad(sketch, px, 0);
    colour = mix(colour, s.rgb, s.a);
    // mask_colour.a is 1 when the mask is shown, else 0
    let m = textureLoad(mask, px, 0).r * u.image_info.w * u.mask_colour.a;
    colour = mix(colour, u.mask_colour.rgb, m);
    // The mask's edge as black and white dashes, a physical pixel each side: a tint alone vanished
    // on red and yellow pictures.
    let inside_mask = mask_at(p) >= 0.5;
    let edge = (mask_at(p + vec2<f32>(1.0, 0.0)) >= 0.5) != inside_mask
        | (mask_at(p - vec2<f32>(1.0, 0.0)) >= 0.5) != inside_mask
        | (mask_at(p + vec2<f32>(0.0, 1.0)) >= 0.5) != inside_mask
        | (mask_at(p - vec2<f32>(0.0, 1.0)) >= 0.5) != inside_mask;
    let dash = select(vec3<f32>(0.0), vec3<f32>(1.0), fract((p.x + p.y) / 12.0) < 0.5);
    colour = select(colour, dash, edge & (u.mask_colour.a > 0.5));
    colour = select(colour, u.background.rgb, any(p < lo) | any(p >= hi));
    colour = select(colour, frame_overlay(p, colour), u.frame_info.x > 0.5);
    // Brush outline: a two-pixel ring, dark inside light, visible on any colour.
    let d = distance(p, u.cursor.xy) - u.cursor.z;
    let cursor = u.cursor.w > 0.5;
    colour = select(colour, vec3<f32>(1.0), cursor & ((abs(d + 1.5) < 0.75) | (abs(d - 1.5) < 0.75)));
    colour = select(colour, vec3<f32>(0.0), cursor & (abs(d) < 1.0));
    return vec4<f32>(colour, 1.0);
}

// egui's framebuffers are gamma-space (Rgba8Unorm / Bgra8Unorm): write the values as they are.
@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    return shade(pos.xy);
}

// An sRGB framebuffer re-encodes what we write, so hand it linear values.
@fragment
fn fs_main_linear(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let c = shade(pos.xy);
    let lin = select(pow((c.rgb + 0.055) / 1.055, vec3<f32>(2.4)), c.rgb / 12.92, c.rgb <= vec3<f32>(0.04045));
    return vec4<f32>(lin, c.a);
}
