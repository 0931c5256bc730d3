// The canvas compositor: checkerboard, picture, sketch strokes, mask overlay, generation frame and
// brush cursor, drawn in one pass over the canvas area. Layers are read with textureLoad at integer pixel coordinates, so
// magnification is nearest-neighbour and every model pixel stays a crisp square.

struct Uniforms {
    // Image rectangle on the framebuffer, in physical pixels: min.x, min.y, max.x, max.y.
    image_rect: vec4<f32>,
    // Image width, height (pixels); checker square (physical pixels); mask overlay opacity.
    image_info: vec4<f32>,
    // Mask overlay colour (rgb) and whether the mask is shown (a > 0.5).
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

// The generation frame: the image outside it dimmed, a white outline inside a black one, and
// square handles at the corners.
fn frame_overlay(p: vec2<f32>, c: vec3<f32>) -> vec3<f32> {
    let lo = u.frame.xy;
    let hi = u.frame.zw;
    let h = u.frame_info.y;
    for (var i = 0; i < 4; i++) {
        let corner = vec2<f32>(select(lo.x, hi.x, (i & 1) == 1), select(lo.y, hi.y, (i & 2) == 2));
        let d = abs(p - corner);
        if (all(d <= vec2<f32>(h))) {
            return select(vec3<f32>(1.0), vec3<f32>(0.0), any(d > vec2<f32>(h - 1.0)));
        }
    }
    let inside = all(p >= lo) && all(p < hi);
    let inner = all(p >= lo + 1.0) && all(p < hi - 1.0);
    let outer = all(p >= lo - 1.0) && all(p < hi + 1.0);
    if (inside && !inner) {
        return vec3<f32>(1.0);
    }
    if (outer && !inside) {
        return vec3<f32>(0.0);
    }
    let in_image = all(p >= u.image_rect.xy) && all(p < u.image_rect.zw);
    if (!inside && in_image) {
        return c * (1.0 - u.frame_info.z);
    }
    return c;
}

fn shade(p: vec2<f32>) -> vec4<f32> {
    let lo = u.image_rect.xy;
    let hi = u.image_rect.zw;
    var colour: vec3<f32>;
    if (any(p < lo) || any(p >= hi)) {
        colour = u.background.rgb;
    } else {
        let size = u.image_info.xy;
        let uv = (p - lo) / (hi - lo);
        let px = vec2<i32>(clamp(floor(uv * size), vec2<f32>(0.0), size - 1.0));
        let pic = textureLoad(picture, px, 0);
        colour = mix(checker(p - lo), pic.rgb, pic.a);
        let s = textureLoad(sketch, px, 0);
        colour = mix(colour, s.rgb, s.a);
        if (u.mask_colour.a > 0.5) {
            let m = textureLoad(mask, px, 0).r * u.image_info.w;
            colour = mix(colour, u.mask_colour.rgb, m);
        }
    }
    if (u.frame_info.x > 0.5) {
        colour = frame_overlay(p, colour);
    }
    // Brush outline: a two-pixel ring, dark inside light, visible on any colour.
    if (u.cursor.w > 0.5) {
        let d = distance(p, u.cursor.xy) - u.cursor.z;
        if (abs(d) < 1.0) {
            colour = vec3<f32>(0.0);
        } else if (abs(d + 1.5) < 0.75 || abs(d - 1.5) < 0.75) {
            colour = vec3<f32>(1.0);
        }
    }
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
