"""Writes the small seed inputs of the fuzz targets into fuzz/seeds/<target>/ (committed).

Run by hand: python fuzz/make_seeds.py (needs torch, safetensors, numpy, pillow). Seeds are valid or
nearly valid files of each format, kept tiny so every fuzz iteration is fast.
"""
import base64, hashlib, io, json, os, struct, zipfile, zlib

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save as st_save

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def png_bytes(arr, mode):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def embedded(arr, mode):
    return {"sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
            "png_base64": base64.b64encode(png_bytes(arr, mode)).decode()}


rgb = (np.arange(2 * 2 * 3, dtype=np.uint8) * 20).reshape(2, 2, 3)
grey = np.array([[0, 255], [128, 0]], dtype=np.uint8)
rgba = np.zeros((2, 2, 4), dtype=np.uint8)
rgba[0, 1] = [10, 20, 30, 128]

# image_import: PNG (colour, grey) and JPEG.
out("image_import", "rgb.png", png_bytes(rgb, "RGB"))
out("image_import", "grey.png", png_bytes(grey, "L"))
buf = io.BytesIO()
Image.fromarray(np.repeat(np.repeat(rgb, 4, 0), 4, 1), "RGB").save(buf, format="JPEG", quality=80)
out("image_import", "small.jpg", buf.getvalue())

# pt_load: a zip-format torch.save of an openai-named state dict fragment.
buf = io.BytesIO()
torch.save({"time_embed.0.weight": torch.zeros(4, 2), "out.2.bias": torch.ones(3)}, buf)
out("pt_load", "fragment.pt", buf.getvalue())

# safetensors_load: openai names, and the project format's metadata.
tensors = {"time_embed.0.weight": np.zeros((4, 2), np.float32), "out.2.bias": np.ones(3, np.float16)}
out("safetensors_load", "openai.safetensors", st_save(tensors))
config = {"name": "seed", "unet": {"image_size": 8, "in_channels": 3, "out_channels": 3,
          "model_channels": 4, "channel_mult": [1], "num_res_blocks": 1, "attention_ds": [],
          "num_head_channels": 4, "use_scale_shift_norm": True, "resblock_updown": False,
          "num_classes": None}}
out("safetensors_load", "project.safetensors",
    st_save(tensors, metadata={"cmpaint.config": json.dumps(config)}))

# recipe_png: a 2×2 PNG carrying an inpainting recipe with its picture and mask.
recipe = {"version": 1, "model": {"name": "seed", "file": None, "sha256": "00"},
          "operation": {"kind": "inpaint"}, "seed": 1, "class": 3, "steps": 40,
          "ts": [0, 20, 39], "input": embedded(rgb, "RGB"), "mask": embedded(grey, "L")}


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(2))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
       + chunk(b"iTXt", b"cmpaint-recipe\x00\x00\x00\x00\x00" + json.dumps(recipe).encode())
       + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
out("recipe_png", "inpaint.png", png)

# project_file: a 2×2 project with one result in its history.
project = {"format": "cmpaint-project", "version": 1, "width": 2, "height": 2,
           "picture": embedded(rgb, "RGB"), "sketch": embedded(rgba, "RGBA"),
           "mask": embedded(grey, "L"), "recipe": None,
           "history": [{"image": embedded(rgb, "RGB"), "recipe": recipe}],
           "model": None, "saved_at": 0}
out("project_file", "small.cmpaint", json.dumps(project).encode())
# pickle: the pt_load seed's state-dict pickle (accepted), and lists nested one level past
# pickle_guard's bound (refused).
with zipfile.ZipFile(os.path.join(HERE, "seeds", "pt_load", "fragment.pt")) as z:
    out("pickle", "state_dict.pkl", z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))
out("pickle", "nested.pkl", b"\x80\x02" + b"]" * 1001 + b"a" * 1000 + b".")
print("seeds written")
