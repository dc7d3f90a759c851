"""Gradio's own input handling, made to answer like the rest of the app (run before the endpoint function).

Each input component's ``preprocess`` is wrapped: images reach our loader untouched, and a setting's range or
type error names the setting.
"""

from __future__ import annotations

import base64
import binascii

import gradio as gr

from .errors import user_error
from .limits import MAX_UPLOAD, MAX_UPLOAD_BYTES


def guard_image_input(component: gr.components.Component, name: str) -> gr.components.Component:
    """Hand uploads to our loader untouched, so every image gets our limits, conversions and messages.

    Gradio's own preprocessing would open the file with PIL first (a text file named .png then fails there, with a
    message the client never sees) and, for any mode but RGB, decode and convert it: 16-bit images clipped,
    transparency turned black, a decompression bomb decoded. Instead the uploaded file's path (or the bytes of a
    ``data:`` URL) is passed on as is, and ``images.load_image`` decodes it once in ``request.check_request``.
    Gradio has already checked that the path lies in its upload cache.
    """

    def preprocess(payload):
        if payload is None:
            return None
        url = getattr(payload, "url", None) or ""
        if url.startswith("data:"):
            return _decode_data_url(url, name)
        path = getattr(payload, "path", None)
        if not path:
            raise user_error(f"{name}: no file was received", "Invalid input")
        return str(path)

    component.preprocess = preprocess
    return component


def _decode_data_url(url: str, name: str) -> bytes:
    header, _, data = url.partition(",")
    if not header.endswith(";base64"):
        raise user_error(f"{name}: a data: URL must be base64-encoded", "Invalid input")
    if len(data) * 3 // 4 > MAX_UPLOAD_BYTES:
        raise user_error(f"{name}: the image is larger than the upload limit ({MAX_UPLOAD})", "Invalid input")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise user_error(f"{name}: the data: URL is not valid base64", "Invalid input") from None


def guard_setting(component: gr.components.Component, name: str) -> gr.components.Component:
    """Make a setting's own checks (Gradio's range checks, run before ``stylize``) name the parameter.

    Gradio says "Value 0 is less than minimum value 32." and answers a string, ``null`` or NaN where a number is
    expected with a bare server error; this prefixes the parameter name and turns the latter into a clear message.
    """
    expected = "a finite number" if isinstance(component, (gr.Slider, gr.Number)) else "a valid value"
    # e.g. "lots" < 32 (TypeError), int(round(nan)) (ValueError), int(inf) (OverflowError)
    return _name_errors(component, name, lambda payload: f"expected {expected}, got {_short_repr(payload)}")


def guard_region(component: gr.components.Component, name: str) -> gr.components.Component:
    """Make the image editor's own decoding (Gradio opens every layer with PIL before ``stylize`` runs) answer a
    file that is not an image with a message naming the parameter, instead of a bare server error."""
    return _name_errors(component, name, lambda payload: "a layer or the background is not a readable image")


def _name_errors(component: gr.components.Component, name: str, describe) -> gr.components.Component:
    """Wrap ``component.preprocess``: its ``gr.Error`` gets ``name:`` in front, any other failure becomes a
    ``gr.Error`` saying ``name: describe(payload)``."""
    preprocess = component.preprocess

    def named(payload):
        try:
            return preprocess(payload)
        except gr.Error as exc:
            raise user_error(f"{name}: {exc.message}", "Invalid input") from None
        except Exception:
            raise user_error(f"{name}: {describe(payload)}", "Invalid input") from None

    component.preprocess = named
    return component


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
