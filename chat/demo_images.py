"""The offline demo image maker: a labelled Pillow drawing, never a real picture.

Used only when no image back end is configured. It returns base64 PNG like
Stable Diffusion's API, so the rest of the pipeline (decode, optimize, store,
serve) runs exactly as it does with a real back end.
"""

from __future__ import annotations

import base64
import hashlib
import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

from chat.images import ImageRequest, ProgressCallback


class DemoImages:
    name = "demo"

    def generate(self, request: ImageRequest, on_progress: ProgressCallback | None = None) -> str:
        # Drawn at once: no progress to report. The seed and reference change nothing here.
        width, height = request.width, request.height
        digest = hashlib.sha256(request.prompt.encode()).digest()
        top = (80 + digest[0] % 120, 40 + digest[1] % 80, 140 + digest[2] % 100)
        bottom = (230, 120 + digest[3] % 100, 150 + digest[4] % 80)
        mask = Image.linear_gradient("L").resize((width, height))
        image = Image.composite(
            Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), mask
        )
        draw = ImageDraw.Draw(image)
        # The size asked for, not ``font.size``: without FreeType, Pillow's bitmap font has none.
        font_size = max(16, width // 28)
        font = ImageFont.load_default(size=font_size)
        title = ImageFont.load_default(size=max(24, width // 14))
        margin = width // 12
        draw.text((margin, margin), "DEMO PICTURE", font=title, fill=(255, 255, 255))
        draw.text(
            (margin, margin + width // 10),
            "offline stand-in: set SD_API_URL for real images",
            font=font,
            fill=(255, 255, 255),
        )
        wrapped = textwrap.wrap(request.prompt, width=max(20, width // (font_size // 2 + 1)))[:14]
        y = height // 3
        for line in wrapped:
            draw.text((margin, y), line, font=font, fill=(255, 255, 255))
            y += int(font_size * 1.4)
        out = io.BytesIO()
        image.save(out, format="PNG")
        return base64.b64encode(out.getvalue()).decode("ascii")
