#!/usr/bin/env python3
"""The second-generation emoji dataset (issue 27): five emoji styles, one category label and one style
label per picture, held out by emoji *name* across all styles.

    /tmp/ref/bin/python training/make_dataset.py --out training/data/emoji5.npz
    (needs npm on PATH, and pip install numpy pillow cairosvg)

Sources, each an npm package fetched with `npm pack` at a pinned version and checked against its
SHA-256 (below), its licence read from the package itself:
  noto      emoji-datasource-google 16.0.0, img/google/64   Noto Emoji, Apache-2.0
  twemoji   emoji-datasource-twitter 16.0.0, img/twitter/64  Twemoji, CC-BY 4.0
  openmoji  openmoji 17.0.0, color/svg                      OpenMoji, CC BY-SA 4.0 (share-alike: it
                                                            reaches weights trained on it)
  fluent    fluentui-emoji 1.3.0, icons/modern (Color) and  Microsoft Fluent Emoji, MIT
            icons/flat (Flat): two styles
Metadata (code points, CLDR names, Unicode categories) from emoji-datasource 16.0.0 (MIT) and
OpenMoji's data/openmoji.json; Fluent's files are named by CLDR name, which OpenMoji's annotations
give the code points of.

Blobmoji: the npm package the issue names (@svgmoji/blob 3.2.0) holds only JavaScript, no artwork, and
no other npm package carries it, so it is left out (say so in NOTICE/model card when shipping).

Rules, as for the first dataset (shared/data/emoji64.json) but with skin tones: one picture per emoji and
each of its five single skin tones (`tone` 1 … 5; the two-person tone mixes dropped; the trainer lets an
emoji's tones share its weight), country and subdivision flags dropped, straight alpha composited onto white;
64×64 and 32×32 (the 64 averaged 2×2). Held out: the emoji whose code point hashes (SHA-256) into the
lowest `--holdout` share, in every style at once, so no held-out emoji is trained in another style.
Writes an .npz (images64 uint8 [N,64,64,3], images32 [N,32,32,3], category int16, style int16,
held_out bool, code str — the base emoji's, tone int16) and a .json beside it with the counts, the styles, the sources and a
SHA-256 of the arrays (name, then bytes, in name order).
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile

import numpy as np
from PIL import Image

CATEGORIES = ['Activities', 'Animals & Nature', 'Component', 'Flags', 'Food & Drink', 'Objects',
              'People & Body', 'Smileys & Emotion', 'Symbols', 'Travel & Places']
STYLES = ['noto', 'twemoji', 'openmoji', 'fluent', 'fluent-flat']
TONES = ['1F3FB', '1F3FC', '1F3FD', '1F3FE', '1F3FF']  # light … dark: tone 1 … 5, 0 = none
FLUENT_TONES = ['-default', '-light', '-medium-light', '-medium', '-medium-dark', '-dark']
PACKAGES = {
    'emoji-datasource@16.0.0': None,
    'emoji-datasource-google@16.0.0': 'fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438',
    'emoji-datasource-twitter@16.0.0': None,
    'openmoji@17.0.0': None,
    'fluentui-emoji@1.3.0': None,
}


def fetch(spec, work):
    """`npm pack` one package into `work`; returns the open tarball and its SHA-256."""
    out = subprocess.run(['npm', 'pack', spec, '--silent'], cwd=work, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    path = os.path.join(work, out)
    digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    want = PACKAGES[spec]
    if want is not None and digest != want:
        raise SystemExit(f'{spec}: SHA-256 {digest}, expected {want}')
    return tarfile.open(path), digest


def key(code):
    """A code point sequence without variation selectors, upper case: how the sources are matched."""
    return '-'.join(p for p in code.upper().split('-') if p != 'FE0F')


def cldr(name):
    """A CLDR name as Fluent's file names spell it."""
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


def fluent_name(name, by_name):
    """(code key, tone) of a Fluent file name, or None: an emoji with skin tones comes as name-default
    (the yellow one) and name-light … name-dark; a plain name (traffic-light) is tried first."""
    if name in by_name:
        return by_name[name], 0
    for tone, suffix in enumerate(FLUENT_TONES):
        if name.endswith(suffix) and name[:-len(suffix)] in by_name:
            return by_name[name[:-len(suffix)]], tone
    return None


def on_white(img, side):
    img = img.convert('RGBA')
    if img.size != (side, side):
        img = img.resize((side, side), Image.LANCZOS)
    rgba = np.asarray(img).astype(np.float64) / 255.0
    rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    return np.round(rgb * 255.0).astype(np.uint8)


def svg_at(data, side):
    import cairosvg
    png = cairosvg.svg2png(bytestring=data, output_width=side, output_height=side)
    return on_white(Image.open(io.BytesIO(png)), side)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='training/data/emoji5.npz')
    ap.add_argument('--holdout', type=float, default=0.1)
    args = ap.parse_args()
    work = tempfile.mkdtemp()
    tars, digests = {}, {}
    for spec in PACKAGES:
        tars[spec], digests[spec] = fetch(spec, work)

    # the emoji: base code points, category, from emoji-datasource (flags of countries dropped)
    meta = json.load(tars['emoji-datasource@16.0.0'].extractfile('package/emoji.json'))
    emoji = {}
    for e in meta:
        if e['subcategory'] in ('country-flag', 'subdivision-flag'):
            continue
        # single skin tones only (the two-person mixes would outnumber everything else)
        tones = {t: v for t, v in (e.get('skin_variations') or {}).items() if t in TONES}
        emoji[key(e['unified'])] = {'category': CATEGORIES.index(e['category']), 'image': e['image'],
                                    'unified': e['unified'], 'tones': tones}
    # OpenMoji's annotations give Fluent's names their code points
    om = json.load(tars['openmoji@17.0.0'].extractfile('package/data/openmoji.json'))
    by_name = {cldr(o['annotation']): key(o['hexcode']) for o in om if not o['skintone']}

    pictures = []  # (code key, style, image64)
    for style, spec in [('noto', 'emoji-datasource-google@16.0.0'), ('twemoji', 'emoji-datasource-twitter@16.0.0')]:
        folder = 'google' if style == 'noto' else 'twitter'
        names = set(tars[spec].getnames())
        for k, e in emoji.items():
            for tone, image in [(0, e['image'])] + [(TONES.index(t) + 1, v['image']) for t, v in e['tones'].items()]:
                path = f'package/img/{folder}/64/{image}'
                if path in names:
                    pictures.append((k, tone, style, on_white(Image.open(tars[spec].extractfile(path)), 64)))
    omt = tars['openmoji@17.0.0']
    om_names = set(omt.getnames())
    for o in om:
        single = o['skintone_combination'] == 'single'
        k = key(o['skintone_base_hexcode'] if single else o['hexcode'])
        path = f'package/color/svg/{o["hexcode"]}.svg'
        if (o['skintone'] and not single) or k not in emoji or path not in om_names:
            continue
        tone = int(o['skintone'] or 0) if single else 0
        pictures.append((k, tone, 'openmoji', svg_at(omt.extractfile(path).read(), 64)))
    ft = tars['fluentui-emoji@1.3.0']
    for member in ft.getmembers():
        m = re.match(r'package/icons/(modern|flat)/(.+)\.svg$', member.name)
        found = m and fluent_name(m.group(2), by_name)
        if not found or found[0] not in emoji:
            continue
        style = 'fluent' if m.group(1) == 'modern' else 'fluent-flat'
        pictures.append((found[0], found[1], style, svg_at(ft.extractfile(member).read(), 64)))

    codes = sorted({k for k, _, _, _ in pictures})
    rank = {k: int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 2**32 for k in codes}
    images64 = np.stack([p[3] for p in pictures])
    images32 = images64.reshape(-1, 32, 2, 32, 2, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    # held out by the base emoji: its skin tones go with it
    held_out = np.array([rank[k] < args.holdout for k, _, _, _ in pictures])
    category = np.array([emoji[k]['category'] for k, _, _, _ in pictures], dtype=np.int16)
    style = np.array([STYLES.index(s) for _, _, s, _ in pictures], dtype=np.int16)
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    arrays = {'images64': images64, 'images32': images32, 'category': category, 'style': style,
              'held_out': held_out, 'code': np.array([emoji[k]['unified'] for k, _, _, _ in pictures]),
              'tone': np.array([t for _, t, _, _ in pictures], dtype=np.int16)}
    np.savez_compressed(args.out, **arrays)
    # of the arrays, not the file: a zip records the time it was written
    sha = hashlib.sha256()
    for name in sorted(arrays):
        sha.update(name.encode() + np.ascontiguousarray(arrays[name]).tobytes())
    digest = sha.hexdigest()
    counts = {s: {'train': int(((style == i) & ~held_out).sum()), 'held_out': int(((style == i) & held_out).sum())}
              for i, s in enumerate(STYLES)}
    info = {'N': len(pictures), 'train': int((~held_out).sum()), 'held_out': int(held_out.sum()),
            'emoji': len(codes), 'styles': STYLES, 'categories': CATEGORIES, 'per_style': counts,
            'per_category_train': {c: int(((category == i) & ~held_out).sum()) for i, c in enumerate(CATEGORIES)},
            'with_skin_tone': int((arrays['tone'] > 0).sum()),
            'packages': digests, 'arrays_sha256': digest, 'holdout': args.holdout}
    json.dump(info, open(args.out.replace('.npz', '.json'), 'w'), indent=1)
    print(json.dumps(info, indent=1))


if __name__ == '__main__':
    main()
