//! The canvas drawn by `shaders/canvas.wgsl` through an egui_wgpu paint callback. The pipeline lives in
//! egui_wgpu's callback resources (registered once per render state). Layers are uploaded whole only
//! when needed (a new size, a Compare view); otherwise only the rectangle that changed, so a 2048²
//! document costs a brush dab's bytes per frame, not 36 MB.

use crate::paint::document::{Document, Layer, Rect, copy_rect};
use eframe::egui;
use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, ScreenDescriptor};
use eframe::wgpu;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Layers to upload: RGBA8 picture and sketch, R8 mask — whole, or a patch of the rectangle `rect`
/// (x, y, width, height) that applies on top of upload `base`.
#[derive(Debug)]
pub struct LayerData {
    /// Numbers the uploads; the compositor skips one it already has.
    pub seq: u64,
    /// None: whole layers. Some(b): a patch, valid only over upload `b`.
    pub base: Option<u64>,
    pub width: u32,
    pub height: u32,
    pub rect: [u32; 4],
    pub picture: Vec<u8>,
    pub sketch: Vec<u8>,
    pub mask: Vec<u8>,
    /// Raised by the compositor when a patch did not fit what it holds: the next upload is whole.
    pub needs_full: Arc<AtomicBool>,
}

impl LayerData {
    pub fn whole(
        seq: u64,
        (width, height): (u32, u32),
        picture: Vec<u8>,
        sketch: Vec<u8>,
        mask: Vec<u8>,
    ) -> Self {
        Self {
            seq,
            base: None,
            width,
            height,
            rect: [0, 0, width, height],
            picture,
            sketch,
            mask,
            needs_full: Arc::default(),
        }
    }

    /// The rectangle `r` of the document's layers, over upload `base`.
    pub fn patch(seq: u64, base: u64, doc: &Document, r: Rect) -> Self {
        let w = doc.width;
        Self {
            seq,
            base: Some(base),
            width: w as u32,
            height: doc.height as u32,
            rect: [
                r.x0 as u32,
                r.y0 as u32,
                (r.x1 - r.x0) as u32,
                (r.y1 - r.y0) as u32,
            ],
            picture: copy_rect(&doc.picture, w, Layer::Picture, r),
            sketch: copy_rect(&doc.sketch, w, Layer::Sketch, r),
            mask: copy_rect(&doc.mask, w, Layer::Mask, r),
            needs_full: Arc::default(),
        }
    }

    pub fn bytes(&self) -> usize {
        self.picture.len() + self.sketch.len() + self.mask.len()
    }
}

/// Must match `Uniforms` in canvas.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Uniforms {
    pub image_rect: [f32; 4],
    pub image_info: [f32; 4],
    pub mask_colour: [f32; 4],
    pub cursor: [f32; 4],
    pub background: [f32; 4],
    pub frame: [f32; 4],
    pub frame_info: [f32; 4],
}

struct Resources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: wgpu::Buffer,
    textures: Option<Textures>,
}

struct Textures {
    /// The upload these textures hold.
    seq: u64,
    size: (u32, u32),
    picture: wgpu::Texture,
    sketch: wgpu::Texture,
    mask: wgpu::Texture,
    bind_group: wgpu::BindGroup,
}

/// Creates the pipeline for this render state's target format and stores it in the callback
/// resources. Call once at start-up (eframe: from the creation context).
pub fn register(render_state: &RenderState) {
    let device = &render_state.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("cmpaint canvas"),
        source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/canvas.wgsl").into()),
    });
    let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    };
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("cmpaint canvas"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            texture_entry(1),
            texture_entry(2),
            texture_entry(3),
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("cmpaint canvas"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let format = render_state.target_format;
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("cmpaint canvas"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs_main"),
            buffers: &[],
            compilation_options: Default::default(),
        },
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some(if format.is_srgb() {
                "fs_main_linear"
            } else {
                "fs_main"
            }),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
            compilation_options: Default::default(),
        }),
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    });
    let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("cmpaint canvas uniforms"),
        size: std::mem::size_of::<Uniforms>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(Resources {
            pipeline,
            layout,
            uniforms,
            textures: None,
        });
}

/// One frame's canvas: the layers (shared, re-uploaded only on a new revision) and the view.
pub struct CanvasCallback {
    pub layers: Arc<LayerData>,
    pub uniforms: Uniforms,
}

impl CanvasCallback {
    pub fn paint_callback(self, rect: egui::Rect) -> egui::PaintCallback {
        egui_wgpu::Callback::new_paint_callback(rect, self)
    }
}

impl CallbackTrait for CanvasCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<Resources>() else {
            return Vec::new();
        };
        queue.write_buffer(&res.uniforms, 0, bytemuck::bytes_of(&self.uniforms));
        let l = &self.layers;
        let size = (l.width, l.height);
        let fits = res
            .textures
            .as_ref()
            .is_some_and(|t| t.size == size && l.base.is_none_or(|b| b == t.seq || l.seq == t.seq));
        if !fits {
            if l.base.is_some() {
                // a patch over an upload this compositor never got (a frame that was not drawn)
                l.needs_full.store(true, Ordering::Relaxed);
                return Vec::new();
            }
            if res.textures.as_ref().is_none_or(|t| t.size != size) {
                res.textures = Some(create_textures(device, &res.layout, &res.uniforms, size));
            }
        }
        let t = res.textures.as_mut().expect("created above");
        if t.seq != l.seq {
            write(queue, &t.picture, &l.picture, l.rect, 4);
            write(queue, &t.sketch, &l.sketch, l.rect, 4);
            write(queue, &t.mask, &l.mask, l.rect, 1);
            t.seq = l.seq;
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(res) = resources.get::<Resources>() else {
            return;
        };
        let Some(t) = &res.textures else { return };
        pass.set_pipeline(&res.pipeline);
        pass.set_bind_group(0, &t.bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}

fn create_textures(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    uniforms: &wgpu::Buffer,
    (width, height): (u32, u32),
) -> Textures {
    let texture = |label, format| {
        device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        })
    };
    let picture = texture("canvas picture", wgpu::TextureFormat::Rgba8Unorm);
    let sketch = texture("canvas sketch", wgpu::TextureFormat::Rgba8Unorm);
    let mask = texture("canvas mask", wgpu::TextureFormat::R8Unorm);
    let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
    let (pv, sv, mv) = (view(&picture), view(&sketch), view(&mask));
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("cmpaint canvas"),
        layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: uniforms.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: wgpu::BindingResource::TextureView(&pv),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: wgpu::BindingResource::TextureView(&sv),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: wgpu::BindingResource::TextureView(&mv),
            },
        ],
    });
    Textures {
        seq: u64::MAX,
        size: (width, height),
        picture,
        sketch,
        mask,
        bind_group,
    }
}

/// Writes the `[x, y, w, h]` rectangle of a texture from its rows.
fn write(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    data: &[u8],
    [x, y, w, h]: [u32; 4],
    bpp: u32,
) {
    if w == 0 || h == 0 {
        return;
    }
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d { x, y, z: 0 },
            aspect: wgpu::TextureAspect::All,
        },
        data,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(w * bpp),
            rows_per_image: Some(h),
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
}
